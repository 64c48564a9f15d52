#!/usr/bin/env bash
# The first thing to run on a machine with a GPU: one command, about 5 minutes, ending in one
# JSON summary line. Needs only a `synthscale` binary built elsewhere with `--features cuda`
# (REFERENCE.md §5; carried xz-compressed) and the NVIDIA driver; no Rust.
#
#   bash scripts/gpu-check.sh path/to/synthscale[.xz]
#
# 1. The driver and the GPU: the binary's CUDA 13 libraries need driver ≥ 580, and its PTX
#    is built for one compute capability (CUDA_COMPUTE_CAP at build time, default 90 =
#    sm_90a, H100/H200; arch-specific PTX runs on that capability only). Exit 2 with the
#    reason when either is wrong.
# 2. `bench kernels`: every fused op on the GPU in bf16 (the kernels of kernels/) against
#    its composed oracle in f32 on the CPU, values and gradients, within 1e-2 and 2e-2
#    (normalised maximum error; bf16 keeps 8 significant bits).
# 3. `bench gpu-check`: 3 AdamW steps of a tiny model from the same weights and batch on the
#    CPU (f32, the reference) and the GPU (bf16 with the fused kernels, bf16 composed from
#    candle's ops, then f32): losses within 1e-2 (bf16: 8 significant bits through a few
#    layers) or 1e-3 (f32: reduction order only), gradient norms within twice that.
# 4. `bench train` at 124M (d 768, 12 layers, 12 heads, SwiGLU, tied embeddings, vocabulary
#    50,257, sequence 1024) at the micro-batches in BATCHES: tokens/s, MFU, GPU memory in
#    use against the memory model's estimate, launches per step.
# 5. With SYNTH_MODEL=GGUF: `bench synth --device cuda`, the generator on the GPU.
# 6. Runs of a small model (d 256, 4 layers, sequence 256, on the bundled State of the Union
#    corpus) through `synthscale train`:
#    - packing: PACK runs at once on one GPU against one run alone; their summed tokens/s
#      over the lone run's is the packing gain (`sweep.max_runs_per_gpu`);
#    - with 2 or more GPUs and a binary built with `nccl`: the run on 2 NCCL ranks
#      (`--nproc 2`) against 1 rank at the same global batch: per-step losses within 1e-2
#      (bf16, summation order only), and both runs' tokens/s.
#
# Needs the driver's libcuda.so.1 and the CUDA 13 runtime libraries (libcudart.so.13,
# libcublas.so.13, libcublasLt.so.13, libcurand.so.10, libnvrtc.so.13) on the loader path:
# CUDA_LIBS=DIR (prepended to LD_LIBRARY_PATH), or a Python environment's nvidia/cu13/lib.
# Environment: BATCHES (default "4 8"), STEPS (10), WARMUP (3), PACK (4), CUDA_VISIBLE_DEVICES.
set -euo pipefail

bin="${1:?usage: gpu-check.sh path/to/synthscale[.xz]}"
BATCHES="${BATCHES:-4 8}"
STEPS="${STEPS:-10}"
WARMUP="${WARMUP:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say() { echo "gpu-check: $*" >&2; }

case "$bin" in
  *.xz) xz -dc "$bin" >"$work/synthscale" && chmod +x "$work/synthscale" && bin="$work/synthscale" ;;
esac
[ -x "$bin" ] || { say "$bin is not an executable"; exit 2; }

# Runtime libraries: CUDA_LIBS, else a Python environment's nvidia/cu13/lib.
if [ -n "${CUDA_LIBS:-}" ]; then
  export LD_LIBRARY_PATH="$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
if ldd "$bin" | grep -q 'not found'; then
  for py in python3 python; do
    command -v "$py" >/dev/null 2>&1 || continue
    # The toolkit's libraries (nvidia/cu13/lib) and NCCL's (nvidia/nccl/lib).
    dir="$("$py" -c 'import nvidia, os; print(":".join(os.path.join(p, d, "lib") for p in nvidia.__path__ for d in ("cu13", "nccl") if os.path.isdir(os.path.join(p, d, "lib"))))' 2>/dev/null || true)"
    if [ -n "$dir" ]; then
      export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
      break
    fi
  done
fi
if ldd "$bin" | grep 'not found'; then
  say "the libraries above are missing; set CUDA_LIBS to a directory holding them"
  exit 2
fi

# 1. Driver and compute capability.
echo "== driver and GPU"
command -v nvidia-smi >/dev/null 2>&1 || { say "no nvidia-smi: is the NVIDIA driver installed?"; exit 2; }
line="$(nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv,noheader,nounits | head -n 1)"
echo "$line"
IFS=',' read -r gpu driver cc mem_mib <<<"$line"
gpu="$(echo "$gpu" | xargs)"; driver="$(echo "$driver" | xargs)"; cc="$(echo "$cc" | xargs)"
mem_mib="$(echo "$mem_mib" | xargs)"
if [ "${driver%%.*}" -lt 580 ]; then
  say "driver $driver is too old: the CUDA 13 libraries this binary links need driver 580 or newer"
  exit 2
fi
want_cc="${BUILT_FOR_CC:-9.0}"
if [ "$cc" != "$want_cc" ]; then
  say "$gpu has compute capability $cc; this binary's PTX is for $want_cc (sm_90a: H100/H200)."
  say "rebuild with CUDA_COMPUTE_CAP=${cc/./} (scripts/setup-cuda.sh), or set BUILT_FOR_CC if it was"
  exit 2
fi

# 2. Each kernel against its oracle.
echo "== bench kernels: every fused op against its composed oracle"
kernels_ok=1
timeout 120 "$bin" bench kernels --device cuda | tee "$work/kernels.jsonl" || kernels_ok=0

# 3. GPU against CPU.
echo "== bench gpu-check: GPU against CPU, 3 steps"
check_ok=1
timeout 120 "$bin" bench gpu-check --device cuda --dtype bf16 | tee "$work/check.jsonl" || check_ok=0
timeout 120 "$bin" bench gpu-check --device cuda --dtype bf16 --composed | tee -a "$work/check.jsonl" || check_ok=0
timeout 120 "$bin" bench gpu-check --device cuda --dtype f32 | tee -a "$work/check.jsonl" || check_ok=0

# 4. Training speed and memory at 124M.
echo "== bench train: 124M, sequence 1024"
: >"$work/train.jsonl"
for b in $BATCHES; do
  timeout 150 "$bin" bench train --device cuda --dtype bf16 --d-model 768 --layers 12 --heads 12 \
    --vocab 50257 --seq-len 1024 --batch "$b" --steps "$STEPS" --warmup "$WARMUP" \
    | tee -a "$work/train.jsonl" || say "batch $b failed (the error is above; out of memory?)"
done

# 5. The generator, when its GGUF was carried along (no network there).
if [ -n "${SYNTH_MODEL:-}" ]; then
  echo "== bench synth --device cuda"
  timeout 120 "$bin" bench synth --device cuda --model "$SYNTH_MODEL" --batches 1,16,64 \
    --prompt-tokens 256 --steps 16 --no-peer | tee "$work/synth.jsonl" \
    || say "bench synth failed (the error is above)"
fi

# 6. Packing and data parallelism through `synthscale train`.
PACK="${PACK:-4}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
corpus="$repo/experiments/corpora/natural/sotu.jsonl.gz"
: >"$work/pack.jsonl"; : >"$work/ddp.jsonl"
if [ -f "$corpus" ]; then
  echo "== packing: $PACK runs on one GPU against one alone"
  printf '[data]\ntokenizer = { kind = "bpe", vocab_size = 4096 }\nvalidation_fraction = 0.02\nseq_len = 256\n[[data.sources]]\nname = "sotu"\nkind = "natural"\ndomain = "speeches"\npath = "%s"\n' "$corpus" >"$work/data.toml"
  timeout 120 "$bin" data prepare "$work/data.toml" --out "$work/data" >/dev/null
  run_toml() { # run_toml STEPS -> a run config of STEPS steps of 8,192 tokens
    printf 'seed = 1\ndevice = "cuda"\n[model]\nd_model = 256\nn_layers = 4\nn_heads = 4\n[data]\ndir = "%s"\nweights = { sotu = 1.0 }\ntoken_budget = %d\n[optim]\nlr = 1e-3\nbatch_tokens = 8192\nmicro_batch_size = 16\nwarmup_steps = 5\n[eval]\ninterval = %d\nmax_tokens = 4096\nbatch_size = 8\n[checkpoint]\ninterval = %d\n' "$work/data" $(($1 * 8192)) "$1" "$1"
  }
  run_toml 60 >"$work/run.toml"
  first_gpu="${CUDA_VISIBLE_DEVICES:-0}"; first_gpu="${first_gpu%%,*}"
  CUDA_VISIBLE_DEVICES="$first_gpu" timeout 150 "$bin" train --config "$work/run.toml" --run-dir "$work/alone" >"$work/alone.log" 2>&1 \
    || say "the lone run failed: $(tail -n 3 "$work/alone.log")"
  pids=()
  for i in $(seq 1 "$PACK"); do
    CUDA_VISIBLE_DEVICES="$first_gpu" timeout 300 "$bin" train --config "$work/run.toml" --run-dir "$work/packed$i" >"$work/packed$i.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || say "a packed run failed (logs in $work/packed*.log)"; done
  python3 - "$work" "$PACK" >>"$work/pack.jsonl" <<'PY' || true
import json, os, statistics, sys
work, k = sys.argv[1], int(sys.argv[2])
def tps(run):
    rows = [json.loads(l) for l in open(os.path.join(work, run, "metrics.jsonl"))]
    return statistics.median(r["tokens_per_s"] for r in rows if "tokens_per_s" in r and r["step"] > 5)
alone = tps("alone")
packed = [tps(f"packed{i}") for i in range(1, k + 1)]
print(json.dumps({"bench": "pack", "runs": k, "alone_tokens_per_s": round(alone),
                  "packed_tokens_per_s_each": [round(x) for x in packed],
                  "packed_tokens_per_s_total": round(sum(packed)),
                  "gain": round(sum(packed) / alone, 3)}))
PY
  cat "$work/pack.jsonl"
  ngpu="$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)"
  if [ "$ngpu" -ge 2 ]; then
    echo "== data-parallel: 2 NCCL ranks against 1"
    run_toml 30 >"$work/ddp.toml"
    timeout 150 "$bin" train --config "$work/ddp.toml" --run-dir "$work/rank1" >"$work/rank1.log" 2>&1 \
      || say "the 1-rank run failed: $(tail -n 3 "$work/rank1.log")"
    timeout 150 "$bin" train --config "$work/ddp.toml" --run-dir "$work/rank2" --nproc 2 >"$work/rank2.log" 2>&1 \
      || say "the 2-rank run failed: $(tail -n 5 "$work/rank2.log")"
    python3 - "$work" >>"$work/ddp.jsonl" <<'PY' || true
import json, os, statistics, sys
work = sys.argv[1]
def rows(run):
    return [json.loads(l) for l in open(os.path.join(work, run, "metrics.jsonl")) if '"train_loss"' in l]
one, two = rows("rank1"), rows("rank2")
diff = max(abs(a["train_loss"] - b["train_loss"]) / abs(a["train_loss"]) for a, b in zip(one, two))
med = lambda rs, k: statistics.median(r[k] for r in rs if r["step"] > 5 and k in r)
print(json.dumps({"bench": "nccl", "steps": len(two), "max_rel_loss_diff": diff, "ok": diff <= 1e-2 and len(two) == len(one),
                  "one_rank_tokens_per_s": round(med(one, "tokens_per_s")),
                  "two_ranks_tokens_per_s": round(med(two, "tokens_per_s")),
                  "allreduce_s": med(two, "comm_s")}))
PY
    cat "$work/ddp.jsonl"
  else
    say "one GPU: no data-parallel check (it needs 2)"
  fi
else
  say "no $corpus (run from a checkout of the repository): no packing or data-parallel check"
fi

echo "== summary"
python3 - "$work" "$gpu" "$driver" "$cc" "$mem_mib" "$check_ok" "$kernels_ok" <<'PY'
import json, os, sys
work, gpu, driver, cc, mem_mib, check_ok, kernels_ok = sys.argv[1:]
def rows(name):
    p = os.path.join(work, name)
    return [json.loads(l) for l in open(p) if l.strip().startswith("{")] if os.path.exists(p) else []
checks, train, kernels = rows("check.jsonl"), rows("train.jsonl"), rows("kernels.jsonl")
for r in kernels:
    print(f"kernel {r['op']:<24} value {r['value_err']:.1e} (tol {r['value_tolerance']:.0e}), grads "
          + ", ".join(f"{e:.1e}" for e in r['grad_err']) + f" (tol {r['grad_tolerance']:.0e}) "
          f"-> {'ok' if r['ok'] else 'FAILED'}")
for r in checks:
    print(f"gpu-check {r['dtype']:>4} {r.get('ops', 'fused'):>8}: loss {r['max_rel_diff']:.2e} (tol {r['tolerance']:.0e}), "
          f"grad norm {r['max_rel_grad_norm_diff']:.2e} (tol {r['grad_norm_tolerance']:.0e}) "
          f"-> {'ok' if r['ok'] else 'FAILED'}")
print("| batch x seq | step ms | tokens/s | MFU | GPU mem used MB | model's estimate MB | launches fwd |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in train:
    print(f"| {r['batch']} x {r['seq_len']} | {r['step_ms']:.0f} | {r['tokens_per_s']:,.0f} | "
          f"{100*r['mfu']:.1f}% | {r.get('gpu_mem_used_mb', float('nan')):,.0f} | "
          f"{r['memory_estimate_mb']:,.0f} | {r['launches']['forward']} |")
summary = {
    "gpu": gpu, "driver": driver, "compute_capability": cc, "memory_mib": float(mem_mib),
    "kernels_ok": kernels_ok == "1" and len(kernels) > 0 and all(r["ok"] for r in kernels),
    "kernels": [{k: r[k] for k in ("op", "value_err", "grad_err", "ok")} for r in kernels],
    "gpu_check_ok": check_ok == "1" and len(checks) == 3 and all(r["ok"] for r in checks),
    "gpu_check": [{k: r.get(k) for k in ("dtype", "ops", "max_rel_diff", "max_rel_grad_norm_diff", "ok")} for r in checks],
    "train_124m": [{"batch": r["batch"], "tokens_per_s": r["tokens_per_s"], "mfu": r["mfu"],
                    "gpu_mem_used_mb": r.get("gpu_mem_used_mb"),
                    "memory_estimate_mb": r["memory_estimate_mb"],
                    "launches_forward": r["launches"]["forward"]} for r in train],
    "synth": rows("synth.jsonl"),
    "pack": rows("pack.jsonl"),
    "nccl": rows("ddp.jsonl"),
}
print(json.dumps(summary))
PY
[ "$check_ok" = 1 ] && [ "$kernels_ok" = 1 ]
