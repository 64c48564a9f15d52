#!/usr/bin/env bash
# Chaos test of a local sweep: "nothing lost, nothing trained twice, nothing silently wrong".
# Trains a tiny sweep once undisturbed (the oracle), then again while launchers and
# trainers are SIGKILLed at random moments and relaunches start beside live launches and
# orphaned trainers; then checks that every run finished exactly once (DONE, one "done
# after" line, every step's metrics once and in order, equal to the oracle's metrics but
# for wall-clock fields) and that `sweep collect` gives the oracle's results table, row for
# row. Prints its figures; exits 1 on any mismatch. About 2-3 minutes on 2 cores.
#   usage: scripts/chaos-sweep.sh [SEED=1] [CHAOS_SECONDS=60]
# The seed fixes the sequence of actions and pauses (bash's $RANDOM); the moments they hit
# depend on the machine's speed.
set -euo pipefail
SEED=${1:-1}
CHAOS_SECONDS=${2:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/synthscale"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p synthscale)
work=$(mktemp -d)
launchers=()
cleanup() {
  for p in "${launchers[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  # Trainers of killed launchers exit on their parent-death signal; give them a moment.
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
started=$SECONDS

python3 - <<'PY'
import json
words = ("the river carried small boats past a quiet town where people made bread and wrote "
         "letters to friends far away every morning").split()
x, w, lines = 12345, 0, []
for d in range(300):
    t = []
    for _ in range(120):
        x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
        r = x >> 33
        w = r // 10 % len(words) if r % 10 == 0 else (w * 5 + 3) % len(words)
        t.append(words[w])
    lines.append(json.dumps({"id": d, "text": " ".join(t)}))
open("c.jsonl", "w").write("\n".join(lines) + "\n")
PY
# Six runs of 1200-2000 steps (10-30 s each on 2 shared cores), 16 checkpoints each.
cat > chaos.toml <<'EOF'
[data]
tokenizer = { kind = "bpe", vocab_size = 512 }
validation_fraction = 0.1
seq_len = 32
out_dir = "data"
[[data.sources]]
name = "c"
kind = "natural"
domain = "web"
path = "c.jsonl"

[sweep]
sizes = [{ name = "a", d_model = 32, n_layers = 2, n_heads = 2 }, { name = "b", d_model = 48, n_layers = 2, n_heads = 2 }]
budgets = [{ tokens = 307200 }, { tokens = 409600 }, { tokens = 512000 }]
seeds = [0]
[sweep.mixtures]
natural = { natural = 1.0 }
[sweep.run_rule]
batch_tokens = 256
micro_batch_size = 8
eval_max_tokens = 256
evals_per_run = 4
checkpoints_per_run = 16
EOF
"$bin" data prepare chaos.toml >/dev/null 2>&1
launch() { "$bin" sweep launch chaos.toml --out "$1" --jobs 2 --retries 100 --lock-wait 30; }

# The oracle: the same sweep, undisturbed.
launch ref >ref.log 2>&1
"$bin" sweep collect chaos.toml --out ref -o ref.csv >/dev/null
ref_s=$((SECONDS - started))

RANDOM=$SEED
killed_launchers=0 killed_trainers=0 relaunches=0 launches=0
alive() { [ -e "/proc/$1" ] && ! grep -q '^[0-9]* (.*) [ZX]' "/proc/$1/stat" 2>/dev/null; }
live_launchers() {
  local p out=()
  for p in "${launchers[@]}"; do alive "$p" && out+=("$p"); done
  launchers=("${out[@]}")
}
start_launcher() {
  launch chaos >>chaos-launch.log 2>&1 &
  launchers+=("$!")
  disown "$!" # no job-control notice when it is killed
  launches=$((launches + 1))
}
# Live trainers of this sweep: the pids their run.lock files record, checked against the
# process's command line (a pid recorded by a trainer that has exited may be reused).
trainers() {
  local f pid
  for f in chaos/runs/*/run.lock; do
    [ -e "$f" ] || continue
    pid=$(sed -n 's/.*"pid":\([0-9]*\).*/\1/p' "$f")
    [ -n "$pid" ] && alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null |
      grep -q -- "--run-dir $work/chaos/runs/" && echo "$pid"
  done
  return 0
}
done_runs() { ls chaos/runs/*/DONE 2>/dev/null | wc -l; }
total_runs=$(ls ref/configs | wc -l)

start_launcher
chaos_end=$((SECONDS + CHAOS_SECONDS))
while [ $SECONDS -lt $chaos_end ] && [ "$(done_runs)" -lt "$total_runs" ]; do
  sleep "0.$((RANDOM % 9 + 1))"
  live_launchers
  action=$((RANDOM % 10))
  if [ $action -le 2 ] && [ ${#launchers[@]} -gt 0 ]; then
    victim=${launchers[$((RANDOM % ${#launchers[@]}))]}
    kill -9 "$victim" 2>/dev/null && killed_launchers=$((killed_launchers + 1))
  elif [ $action -le 5 ]; then
    mapfile -t ts < <(trainers)
    if [ ${#ts[@]} -gt 0 ]; then
      victim=${ts[$((RANDOM % ${#ts[@]}))]}
      kill -9 "$victim" 2>/dev/null && killed_trainers=$((killed_trainers + 1))
    fi
  elif [ $action -le 8 ] && [ ${#launchers[@]} -lt 3 ]; then
    start_launcher
    relaunches=$((relaunches + 1))
  fi
  live_launchers
  [ ${#launchers[@]} -eq 0 ] && start_launcher
done
chaos_s=$((SECONDS - started - ref_s))

# Let the live launches finish, then one more launch for what the kills left (it waits for
# any orphan still checkpointing on its way out).
for p in "${launchers[@]}"; do while alive "$p"; do sleep 0.2; done; done
launchers=()
launch chaos >>chaos-launch.log 2>&1 || true
"$bin" sweep collect chaos.toml --out chaos -o chaos.csv >/dev/null

ok=0
python3 - "$total_runs" <<'PY' || ok=$?
import json, os, sys
total, bad, checked = int(sys.argv[1]), [], 0
def metrics(path):
    out = []
    for line in open(path):
        m = json.loads(line)
        m.pop("tokens_per_s", None)
        m.pop("mfu", None)
        out.append(m)
    return out
for rid in sorted(os.listdir("ref/runs")):
    run = os.path.join("chaos/runs", rid)
    checked += 1
    if not os.path.exists(os.path.join(run, "DONE")):
        bad.append(f"{rid}: not DONE")
        continue
    log = open(os.path.join("chaos/logs", rid + ".log")).read()
    if log.count("done after") != 1:
        bad.append(f"{rid}: {log.count('done after')} 'done after' lines in its log")
    m, ref = metrics(os.path.join(run, "metrics.jsonl")), metrics(os.path.join("ref/runs", rid, "metrics.jsonl"))
    steps = [x["step"] for x in m if "train_loss" in x]
    if steps != list(range(1, len(steps) + 1)):
        bad.append(f"{rid}: training steps not once each in order")
    evals = [(x["step"], x["eval_domain"]) for x in m if "val_loss" in x]
    if len(set(evals)) != len(evals) or evals != sorted(evals):
        bad.append(f"{rid}: evaluations repeated or out of order")
    if m != ref:
        bad.append(f"{rid}: metrics differ from the undisturbed run's")
if checked != total:
    bad.append(f"{checked} runs checked, {total} planned")
if open("chaos.csv").read() != open("ref.csv").read():
    bad.append("results tables differ")
for b in bad:
    print("MISMATCH", b)
print(f"runs checked: {checked}, mismatches: {len(bad)}")
sys.exit(1 if bad else 0)
PY
echo "chaos-sweep seed $SEED: launchers killed $killed_launchers, trainers killed $killed_trainers," \
  "relaunches $relaunches ($launches launches in all); oracle sweep ${ref_s}s, chaos ${chaos_s}s," \
  "total $((SECONDS - started))s"
exit $ok
