#!/usr/bin/env bash
# Data-parallel overhead on the CPU: one run trained by 1 process (all cores) and by
# `--nproc 2` (half the cores each), same model, data and global batch, in one go. Prints
# one JSON line: each one's median step time over the steps after the first five, and the
# 2-rank run's median share of a step spent in the all-reduces (`comm_s` in metrics.jsonl).
#
#   bash scripts/bench-ddp.sh [STEPS] [D_MODEL] [LAYERS]     # defaults: 30 256 4
#
# Needs OpenMPI (apt-get install libopenmpi-dev openmpi-bin libclang-dev); builds the binary
# with `--features mpi`. Data: the bundled State of the Union corpus, a 4,096-token BPE,
# sequences of 256 tokens; 2 micro-batches of 8 sequences a step (one per rank).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30}
d_model=${2:-256}
layers=${3:-4}
cargo build --release -q -p synthscale --features mpi
bin=$PWD/target/release/synthscale
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
cat >"$work/data.toml" <<EOF
[data]
tokenizer = { kind = "bpe", vocab_size = 4096 }
validation_fraction = 0.02
seq_len = 256
[[data.sources]]
name = "sotu"
kind = "natural"
domain = "speeches"
path = "$PWD/experiments/corpora/natural/sotu.jsonl.gz"
EOF
"$bin" data prepare "$work/data.toml" --out "$work/data" >/dev/null
budget=$((steps * 4096))
cat >"$work/run.toml" <<EOF
seed = 1
[model]
d_model = $d_model
n_layers = $layers
n_heads = 4
[data]
dir = "$work/data"
weights = { sotu = 1.0 }
token_budget = $budget
[optim]
lr = 1e-3
batch_tokens = 4096
micro_batch_size = 8
warmup_steps = 5
[eval]
interval = $steps
max_tokens = 2048
batch_size = 8
[checkpoint]
interval = $steps
EOF
"$bin" train --config "$work/run.toml" --run-dir "$work/one" >/dev/null 2>&1
"$bin" train --config "$work/run.toml" --run-dir "$work/two" --nproc 2 >/dev/null 2>&1
python3 - "$work/one/metrics.jsonl" "$work/two/metrics.jsonl" "$steps" "$(nproc)" <<'PY'
import json, statistics, sys
def steps(path):
    rows = [json.loads(l) for l in open(path)]
    return [r for r in rows if "train_loss" in r and r["step"] > 5]
one, two = steps(sys.argv[1]), steps(sys.argv[2])
t1 = statistics.median(4096 / r["tokens_per_s"] for r in one)
t2 = statistics.median(4096 / r["tokens_per_s"] for r in two)
share = statistics.median(r["comm_s"] / (4096 / r["tokens_per_s"]) for r in two)
same = all(abs(a["train_loss"] - b["train_loss"]) <= 1e-6 * abs(a["train_loss"]) for a, b in zip(one, two))
print(json.dumps({"bench": "ddp", "cores": int(sys.argv[4]), "steps": int(sys.argv[3]),
                  "one_process_step_s": round(t1, 4), "two_ranks_step_s": round(t2, 4),
                  "ratio_two_over_one": round(t2 / t1, 3),
                  "allreduce_share_of_step": round(share, 4),
                  "allreduce_s": round(statistics.median(r["comm_s"] for r in two), 5),
                  "losses_match_1e-6": same}))
PY
