#!/usr/bin/env bash
# Registers, static shared memory and spills of every synthscale kernel, as ptxas assembles
# them for the GPU their PTX targets (sm_90a with the default CUDA_COMPUTE_CAP=90). One line
# per kernel; exits 1 if an attention or cross-entropy kernel spills (they are tuned not to).
#
#   source target/cuda-venv/cuda-env.sh
#   CARGO_TARGET_DIR=target/cuda cargo build --release -p synthscale-kernels --features cuda
#   bash scripts/ptxas-report.sh [PTX_DIR]
#
# PTX_DIR defaults to the newest synthscale-kernels OUT_DIR under $CARGO_TARGET_DIR (or
# target/cuda, then target); without any, the .cu files are compiled here with nvcc.
# Dynamic shared memory (attention) is not in these figures: see kernels/src/attention.cu.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v ptxas >/dev/null || { echo "ptxas-report: no ptxas on PATH (source cuda-env.sh)" >&2; exit 2; }

ptx_dir="${1:-}"
if [ -z "$ptx_dir" ]; then
  for t in "${CARGO_TARGET_DIR:-}" target/cuda target; do
    [ -n "$t" ] || continue
    # shellcheck disable=SC2012
    d="$(ls -td "$t"/release/build/synthscale-kernels-*/out 2>/dev/null | while read -r o; do
      [ -e "$o/attention.ptx" ] && echo "$o" && break; done || true)"
    if [ -n "$d" ]; then ptx_dir="$d"; break; fi
  done
fi
tmp=""
if [ -z "$ptx_dir" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  cap="${CUDA_COMPUTE_CAP:-90}"
  # As cudaforge names it: sm_90 and above get the arch-specific "a" unless told otherwise.
  case "$cap" in
    *a | *f) arch="sm_$cap" ;;
    *) if [ "$cap" -ge 90 ]; then arch="sm_${cap}a"; else arch="sm_$cap"; fi ;;
  esac
  echo "ptxas-report: no built PTX found; compiling kernels/src/*.cu for $arch"
  for cu in kernels/src/*.cu; do
    nvcc -O3 -std=c++17 --expt-relaxed-constexpr -arch="$arch" --ptx \
      -o "$tmp/$(basename "${cu%.cu}").ptx" "$cu"
  done
  ptx_dir="$tmp"
fi

status=0
printf '%-15s %-32s %5s %8s %8s %8s\n' module kernel regs smem spill_st spill_ld
for ptx in "$ptx_dir"/*.ptx; do
  module="$(basename "${ptx%.ptx}")"
  gpu="$(awk '$1 == ".target" { sub(/,.*/, "", $2); print $2; exit }' "$ptx")"
  report="$(ptxas -v --gpu-name "$gpu" "$ptx" -o /dev/null 2>&1)" || { echo "$report" >&2; exit 1; }
  # ptxas prints, per entry: "Compiling entry function 'f'", then its spills, then
  # "Used N registers, ..., M bytes smem".
  lines="$(echo "$report" | awk -v m="$module" '
    /Compiling entry function/ { split($0, q, "\047"); f = q[2]; st = 0; ld = 0 }
    /spill stores/ { st = $5; ld = $9 }
    /Used [0-9]+ registers/ {
      regs = $5; smem = 0
      if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH) + 0
      printf "%-15s %-32s %5s %8s %8s %8s\n", m, f, regs, smem, st, ld
    }')"
  echo "$lines"
  case "$module" in
    attention | cross_entropy)
      if echo "$lines" | awk '$5 != 0 || $6 != 0 { bad = 1 } END { exit !bad }'; then
        echo "ptxas-report: $module spills registers (see above)" >&2
        status=1
      fi
      ;;
  esac
done
echo "(assembled for $gpu from $ptx_dir)"
exit "$status"
