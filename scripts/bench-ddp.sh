#!/usr/bin/env bash
# Data-parallel overhead on the CPU: one run trained by 1 process (all cores) and by
# `--nproc 2` (half the cores each) with ZeRO-1 (the default) and without it
# (`shard_optimizer = false`: one all-reduce of the gradients), same model, data and global
# batch, in one go. Prints one JSON line: each one's median step time over the steps after
# the first five, and the 2-rank runs' median share of a step spent in collectives (`comm_s`
# in metrics.jsonl).
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
{ echo "shard_optimizer = false"; cat "$work/run.toml"; } >"$work/whole.toml"
"$bin" train --config "$work/whole.toml" --run-dir "$work/whole" --nproc 2 >/dev/null 2>&1
python3 - "$work" "$steps" "$(nproc)" <<'PY'
import json, statistics, sys
work = sys.argv[1]
def steps(run):
    rows = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")]
    return [r for r in rows if "train_loss" in r and r["step"] > 5]
one, two, whole = steps("one"), steps("two"), steps("whole")
step_s = lambda rows: statistics.median(4096 / r["tokens_per_s"] for r in rows)
share = lambda rows: statistics.median(r["comm_s"] / (4096 / r["tokens_per_s"]) for r in rows)
same = lambda rows: all(abs(a["train_loss"] - b["train_loss"]) <= 1e-6 * abs(a["train_loss"]) for a, b in zip(one, rows))
t1 = step_s(one)
print(json.dumps({"bench": "ddp", "cores": int(sys.argv[3]), "steps": int(sys.argv[2]),
                  "one_process_step_s": round(t1, 4),
                  "two_ranks_zero1_step_s": round(step_s(two), 4),
                  "two_ranks_allreduce_step_s": round(step_s(whole), 4),
                  "ratio_zero1_over_one": round(step_s(two) / t1, 3),
                  "ratio_allreduce_over_one": round(step_s(whole) / t1, 3),
                  "comm_share_zero1": round(share(two), 4),
                  "comm_share_allreduce": round(share(whole), 4),
                  "losses_match_1e-6": same(two) and same(whole)}))
PY
