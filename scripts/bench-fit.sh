#!/usr/bin/env bash
# Fitter speed: `synthscale bench fit` (Epoch AI's Chinchilla fit, 4500 L-BFGS starts)
# and its peer `scripts/bench/fit_reference.py` (the same grid with SciPy's L-BFGS-B), on
# the same data and machine, one after the other. Prints the JSON lines of both, then a
# summary of times and objectives; record them in docs/performance.md.
#
#   bash scripts/bench-fit.sh [--numeric-grad]   (also time SciPy with finite differences)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p synthscale
venv=${BENCH_VENV:-target/bench-fit-venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q numpy==2.4.6 scipy==1.17.1
fi

echo "# machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
ours=$(./target/release/synthscale bench fit)
echo "$ours"
peer=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$venv/bin/python" scripts/bench/fit_reference.py)
echo "$peer"
numeric=""
if [ "${1:-}" = "--numeric-grad" ]; then
  numeric=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$venv/bin/python" scripts/bench/fit_reference.py --numeric-grad)
  echo "$numeric"
fi
"$venv/bin/python" - "$ours" "$peer" "$numeric" <<'PY'
import json, sys
ours, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"synthscale: {ours['fit_s']:.2f} s on {ours['threads']} threads, {ours['fit_1thread_s']:.2f} s on 1; objective {ours['objective']:.10e}")
print(f"SciPy ({peer['gradient']} gradient): {peer['fit_s']:.2f} s on 1 thread; objective {peer['objective']:.10e}")
print(f"speed-up: {peer['fit_s'] / ours['fit_s']:.1f}x (all threads), {peer['fit_s'] / ours['fit_1thread_s']:.1f}x (1 thread each)")
if sys.argv[3]:
    num = json.loads(sys.argv[3])
    print(f"SciPy (numeric gradient, as Epoch AI ran it): {num['fit_s']:.2f} s; objective {num['objective']:.10e}; "
          f"speed-up {num['fit_s'] / ours['fit_s']:.1f}x")
PY
