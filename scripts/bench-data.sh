#!/usr/bin/env bash
# Data-stage throughput: `synthscale bench data` and its peers (Hugging Face tokenizers,
# tiktoken, nanoGPT's get_batch) on the same corpora, tokenizer and machine, one after the
# other. Prints two JSON lines; record them in docs/performance.md.
#
#   bash scripts/bench-data.sh [manifest]     (default experiments/quickstart.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
manifest=${1:-experiments/quickstart.toml}

cargo build --release -q -p synthscale
venv=${BENCH_VENV:-target/bench-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q tokenizers==0.23.3 tiktoken==0.14.0 numpy==2.4.6
fi

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
./target/release/synthscale bench data --manifest "$manifest"

data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
./target/release/synthscale data prepare "$manifest" --out "$data/d" >/dev/null 2>&1
shard=$(ls -S "$data"/d/train/*.bin | head -1)
mapfile -t corpora < <(sed -n 's/^path = "\(.*\)"/\1/p' "$manifest" | sed "s|^|$(dirname "$manifest")/|")
tok=$(sed -n 's/.*tokenizer = { kind = "file", path = "\(.*\)" }/\1/p' "$manifest")
"$venv/bin/python" scripts/bench_data_peers.py --tokenizer "$(dirname "$manifest")/$tok" \
  --shard "$shard" "${corpora[@]}"
