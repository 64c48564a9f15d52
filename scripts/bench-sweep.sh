#!/usr/bin/env bash
# The sweep runner's own cost per run: K tiny runs launched by `synthscale sweep launch`
# against the same K run configs trained by a plain shell loop of `synthscale train` (the
# peer: what a user would do by hand). Both pay process start, data open, model init,
# evaluation and checkpoints; the difference is the sweep's bookkeeping (plan, locks,
# logs, worker pool). Also reports, per run, the wall time outside its training steps
# (process start, data open, model init, evaluations, checkpoints): wall time per run minus
# the step times its metrics record. Prints one JSON line.
#   usage: scripts/bench-sweep.sh [K=8]
set -euo pipefail
K=${1:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/synthscale"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p synthscale)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
python3 - "$K" <<'PY'
import json, sys
k = int(sys.argv[1])
words = "the river carried small boats past a quiet town where people made bread".split()
x, lines = 12345, []
for d in range(300):
    t = []
    for _ in range(120):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        t.append(words[(x >> 33) % len(words)])
    lines.append(json.dumps({"id": d, "text": " ".join(t)}))
open("c.jsonl", "w").write("\n".join(lines) + "\n")
seeds = ", ".join(str(i) for i in range(k))
open("bench.toml", "w").write(f"""
[data]
tokenizer = {{ kind = "bpe", vocab_size = 512 }}
validation_fraction = 0.1
seq_len = 32
out_dir = "data"
[[data.sources]]
name = "c"
kind = "natural"
domain = "web"
path = "c.jsonl"
[sweep]
out_dir = "sweep"
sizes = [{{ preset = "0.1M" }}]
budgets = [{{ tokens = 8192 }}]
seeds = [{seeds}]
[sweep.mixtures]
natural = {{ natural = 1.0 }}
[sweep.run_rule]
eval_max_tokens = 512
""")
PY
"$bin" data prepare bench.toml >/dev/null 2>&1
"$bin" sweep plan bench.toml >/dev/null
t0=$(date +%s.%N)
"$bin" sweep launch bench.toml --jobs 1 >/dev/null 2>&1
t1=$(date +%s.%N)
# The peer: the same configs, one `synthscale train` after another.
for cfg in sweep/configs/*.toml; do
  "$bin" train --config "$cfg" --run-dir "loop/$(basename "$cfg" .toml)" >/dev/null 2>&1
done
t2=$(date +%s.%N)
python3 - "$K" "$t0" "$t1" "$t2" <<'PY'
import glob, json, sys
k, t0, t1, t2 = int(sys.argv[1]), *map(float, sys.argv[2:])
import os, re
def train_seconds(pattern):
    # Each step's seconds: its batch (from the run's resolved config) over its throughput.
    s, steps = 0.0, 0
    for f in glob.glob(pattern):
        cfg = open(os.path.join(os.path.dirname(f), "config.toml")).read()
        batch = int(re.search(r"^batch_tokens = (\d+)", cfg, re.M).group(1))
        for line in open(f):
            m = json.loads(line)
            if m.get("tokens_per_s") and "lr" in m:
                s += batch / m["tokens_per_s"]
                steps += 1
    return s, steps
sweep_train, steps = train_seconds("sweep/runs/*/metrics.jsonl")
loop_train, _ = train_seconds("loop/*/metrics.jsonl")
sweep_wall, loop_wall = t1 - t0, t2 - t1
print(json.dumps({
    "runs": k, "steps_per_run": steps // k,
    "sweep_wall_s": round(sweep_wall, 3), "loop_wall_s": round(loop_wall, 3),
    "sweep_overhead_per_run_s": round((sweep_wall - loop_wall) / k, 4),
    "run_outside_steps_s": round((sweep_wall - sweep_train) / k, 4),
    "run_train_s": round(sweep_train / k, 4),
}))
PY
