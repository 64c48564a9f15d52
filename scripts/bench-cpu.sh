#!/usr/bin/env bash
# Training speed on CPU against PyTorch: `synthscale bench train` and
# scripts/bench/torch_reference.py (the same decoder, shapes and steps in PyTorch eager, fp32),
# one after the other in one go, then the ratio. Extra arguments go to both.
#
#   bash scripts/bench-cpu.sh [--d-model 256 --layers 4 --heads 4 --vocab 8192 --seq-len 256 --batch 16 --steps 5]
#
# PyTorch is installed into a virtual environment on first use (TORCH_VENV, default
# target/torch-venv; the PyPI wheel with its CUDA dependencies is several GB).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TORCH_VENV:-target/torch-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q torch==2.15.0 numpy
fi
cargo build --release -q -p synthscale
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
ours=$(./target/release/synthscale bench train "$@")
theirs=$("$venv/bin/python" scripts/bench/torch_reference.py "$@")
echo "$ours"
echo "$theirs"
python3 - "$ours" "$theirs" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert a["params"] == b["params"], (a["params"], b["params"])
print(json.dumps({"ratio_tokens_per_s": a["tokens_per_s"] / b["tokens_per_s"],
                  "ratio_best_step": a["best_tokens_per_s"] / b["best_tokens_per_s"],
                  "synthscale_tokens_per_s": a["tokens_per_s"], "torch_eager_tokens_per_s": b["tokens_per_s"],
                  "synthscale_peak_rss_mb": a["peak_rss_mb"], "torch_peak_rss_mb": b["peak_rss_mb"]}))
PY
