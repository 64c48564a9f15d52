#!/usr/bin/env bash
# GPU check and benchmark with a `synthscale` binary built elsewhere with `--features cuda`
# (no Rust needed here):
#
#   bash scripts/gpu-bench.sh path/to/synthscale[.xz]
#
# 1. `bench gpu-check`: the same model, weights and batch on the CPU in f32 and on the GPU
#    in bf16 (and in f32), a few AdamW steps, losses compared within the dtype's tolerance.
# 2. `bench train --device cuda`: tokens/s and MFU of a GPT-2-small-class decoder (d 768,
#    12 layers, 12 heads, SwiGLU, tied embeddings, vocabulary 50,257, sequence 1024: 124M
#    parameters) at a few batch sizes, then a table. Exit code 1 when a check failed.
# 3. With SYNTH_MODEL=GGUF: `bench synth --device cuda`, the generator on the GPU.
#
# Needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 runtime libraries
# (libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13)
# on the loader path: set CUDA_LIBS=DIR (prepended to LD_LIBRARY_PATH), or have them in a
# Python environment's nvidia/cu13/lib (PyTorch's CUDA 13 wheels bring them), found here.
# Environment: BATCHES (default "8 16"), STEPS (10), WARMUP (3), CUDA_VISIBLE_DEVICES.
set -euo pipefail

bin="${1:?usage: gpu-bench.sh path/to/synthscale[.xz]}"
BATCHES="${BATCHES:-8 16}"
STEPS="${STEPS:-10}"
WARMUP="${WARMUP:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

case "$bin" in
  *.xz) xz -dc "$bin" >"$work/synthscale" && chmod +x "$work/synthscale" && bin="$work/synthscale" ;;
esac
[ -x "$bin" ] || { echo "gpu-bench: $bin is not an executable" >&2; exit 2; }

# Runtime libraries: CUDA_LIBS, else a Python environment's nvidia/cu13/lib.
if [ -n "${CUDA_LIBS:-}" ]; then
  export LD_LIBRARY_PATH="$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ldd "$bin" | grep -q 'not found'; then
  for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    dir="$("$py" -c 'import nvidia, os; print(next((os.path.join(p, "cu13", "lib") for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "cu13", "lib"))), ""))' 2>/dev/null || true)"
    if [ -n "$dir" ]; then
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      break
    fi
  done
fi
if ldd "$bin" | grep 'not found'; then
  echo "gpu-bench: the libraries above are missing; set CUDA_LIBS to a directory holding them" >&2
  exit 2
fi
command -v nvidia-smi >/dev/null 2>&1 &&
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true

echo "== gpu-check: GPU against CPU on the same batch"
check_ok=0
"$bin" bench gpu-check --device cuda --dtype bf16 | tee "$work/check.jsonl" || check_ok=1
"$bin" bench gpu-check --device cuda --dtype f32 | tee -a "$work/check.jsonl" || check_ok=1

echo "== bench train: GPT-2-small class, sequence 1024"
: >"$work/train.jsonl"
for b in $BATCHES; do
  for dt in bf16; do
    "$bin" bench train --device cuda --dtype "$dt" --d-model 768 --layers 12 --heads 12 \
      --vocab 50257 --seq-len 1024 --batch "$b" --steps "$STEPS" --warmup "$WARMUP" \
      | tee -a "$work/train.jsonl" || echo "gpu-bench: batch $b ($dt) failed (the error is above; out of memory?)" >&2
  done
done

# 3. The generator on the GPU, when its GGUF was carried along (no network there):
#    SYNTH_MODEL=path/to/SmolLM2-135M-Instruct.Q4_1.gguf bash scripts/gpu-bench.sh …
if [ -n "${SYNTH_MODEL:-}" ]; then
  echo "== bench synth --device cuda"
  "$bin" bench synth --device cuda --model "$SYNTH_MODEL" --batches 1,16,64,128 \
    --prompt-tokens 256 --steps 16 --no-peer || echo "gpu-bench: bench synth failed (the error is above)" >&2
fi

echo "== results"
python3 - "$work/check.jsonl" "$work/train.jsonl" <<'PY' || cat "$work/check.jsonl" "$work/train.jsonl"
import json, sys
rows = lambda p: [json.loads(l) for l in open(p) if l.strip().startswith("{")]
for r in rows(sys.argv[1]):
    print(f"gpu-check {r['dtype']:>4} on {r['device']}: max relative loss difference "
          f"{r['max_rel_diff']:.2e} (tolerance {r['tolerance']:.0e}) -> {'ok' if r['ok'] else 'FAILED'}")
print()
print(f"| device | params | dtype | batch x seq | step ms | tokens/s | MFU | GPU mem MB |")
print(f"|---|---:|---|---|---:|---:|---:|---:|")
for r in rows(sys.argv[2]):
    print(f"| {r['device']} | {r['params']/1e6:.1f}M | {r['dtype']} | {r['batch']} x {r['seq_len']} "
          f"| {r['step_ms']:.0f} | {r['tokens_per_s']:,.0f} | {100*r['mfu']:.1f}% "
          f"| {r.get('gpu_mem_used_mb', float('nan')):,.0f} |")
print(f"\nMFU = flops_per_token x tokens/s / peak, peak {rows(sys.argv[2])[0]['peak_flops']/1e12:.0f} TFLOP/s"
      if rows(sys.argv[2]) else "")
PY
exit "$check_ok"
