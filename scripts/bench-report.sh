#!/usr/bin/env bash
# Report speed: `synthscale report --bootstrap 0` on a synthetic 144-run table (3 sizes x 6
# budgets x 4 mixtures x 2 seeds x 2 domains; scripts/bench/report_table.py), three times,
# printing the time spent fitting and the time spent drawing the six figures (PNG + SVG)
# and writing the HTML, Markdown and JSON; then the peer, matplotlib drawing figure 1 alone
# (PNG + SVG) from the same table. Record the figures in docs/performance.md.
#
#   bash scripts/bench-report.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p synthscale
venv=${BENCH_VENV:-target/bench-report-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q matplotlib==3.10.7
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 scripts/bench/report_table.py "$work/results"
echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
for i in 1 2 3; do
  ./target/release/synthscale report "$work/results" --bootstrap 0 2>/dev/null | grep '^fits'
done
for i in 1 2 3; do
  "$venv/bin/python" scripts/bench/report_matplotlib.py "$work/results/results.csv" "$work"
done
