#!/usr/bin/env bash
# Budget ladders against separate runs, in one invocation on this machine:
# experiments/sweep-ladder.toml (2 sizes × 3 doubling budgets as ladders) and the same grid
# with the `ladder = true` line removed (one cosine run per budget, as without ladders),
# each launched with `--jobs J` into its own folder. Prints each one's plan totals (FLOPs
# trained) and wall time, then one JSON line.
#   usage: scripts/bench-ladder.sh [J=2]
set -euo pipefail
J=${1:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/synthscale"
[ -x "$bin" ] || (cd "$root" && cargo build --release -p synthscale)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$root/experiments/sweep-ladder.toml" "$work/ladder.toml"
grep -v '^ladder = true' "$root/experiments/sweep-ladder.toml" > "$work/separate.toml"
ln -s "$root/experiments/corpora" "$work/corpora"
cd "$work"
"$bin" data prepare ladder.toml --out data > /dev/null 2>&1
declare -A wall flops
for m in ladder separate; do
  plan=$("$bin" sweep plan "$m.toml" --data data --out "out-$m")
  flops[$m]=$(echo "$plan" | sed -n 's/.*(\([0-9.e+-]*\) with attention.*/\1/p')
  echo "$plan" | grep -E '^(total|ladder)' || true
  t0=$(date +%s.%N)
  "$bin" sweep launch "$m.toml" --data data --out "out-$m" --jobs "$J" > /dev/null 2>&1
  t1=$(date +%s.%N)
  wall[$m]=$(echo "$t1 - $t0" | bc)
  echo "$m: ${wall[$m]} s wall, ${flops[$m]} FLOPs trained"
done
"$bin" sweep collect ladder.toml --data data --out out-ladder > /dev/null
final=$(grep -c ',true,' out-ladder/results.csv || true)
printf '{"jobs": %s, "ladder_s": %s, "separate_s": %s, "ladder_flops": %s, "separate_flops": %s, "ladder_final_rows": %s, "load": "%s"}\n' \
  "$J" "${wall[ladder]}" "${wall[separate]}" "${flops[ladder]}" "${flops[separate]}" "$final" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
