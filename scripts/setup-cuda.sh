#!/usr/bin/env bash
# Prepares a CUDA 13.0 build toolchain on a machine without a GPU or a system CUDA install
# (REFERENCE.md §5): the toolkit from pip wheels into a venv, the unversioned library
# symlinks the linker wants, and a link-time stub libcuda.so for the driver API.
#
#   bash scripts/setup-cuda.sh [VENV_DIR]      # default: target/cuda-venv; idempotent
#   source target/cuda-venv/cuda-env.sh
#   cargo build --release -p synthscale --features cuda        # one GPU per run
#   cargo build --release -p synthscale --features cuda,nccl   # and data-parallel GPUs
#
# Pinned to 13.0: a newer nvcc writes PTX that the 580 driver series refuses. The stub
# libcuda.so lives in $CUDA_HOME/lib/stubs and must never be on a run-time library path;
# at run time the binary needs the real driver's libcuda.so.1 (see docs/performance.md).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-target/cuda-venv}"
CUDA_TOOLKIT_SPEC='cuda-toolkit[nvcc,crt,nvvm,cudart,cublas,curand,nvrtc,cccl]==13.0.2'
PYTHON="${PYTHON:-python3}"

mkdir -p "$(dirname "$VENV")"
VENV="$(cd "$(dirname "$VENV")" && pwd)/$(basename "$VENV")"

# 1. The toolkit (≈ 1.2 GB of wheels). Skipped when nvcc 13.0 is already in the venv.
CUDA_HOME=""
if [ -x "$VENV/bin/python" ]; then
  CUDA_HOME="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))' 2>/dev/null || true)"
fi
if [ -z "$CUDA_HOME" ] || ! "$CUDA_HOME/bin/nvcc" --version 2>/dev/null | grep -q 'release 13\.0'; then
  echo "setup-cuda: installing $CUDA_TOOLKIT_SPEC into $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet "$CUDA_TOOLKIT_SPEC"
  CUDA_HOME="$("$VENV/bin/python" -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"
fi
"$CUDA_HOME/bin/nvcc" --version | grep -q 'release 13\.0' || {
  echo "setup-cuda: $CUDA_HOME/bin/nvcc is not CUDA 13.0" >&2
  exit 1
}

# 1b. NCCL for data-parallel runs on GPUs (`--features nccl`): 2.30, the version cudarc's
#     `nccl` bindings are written for.
NCCL_SPEC='nvidia-nccl-cu13==2.30.7'
nccl_lib="$("$VENV/bin/python" -c 'import nvidia, os; print(next((os.path.join(p, "nccl", "lib") for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "nccl", "lib"))), ""))' 2>/dev/null || true)"
if [ -z "$nccl_lib" ] || [ ! -e "$nccl_lib/libnccl.so.2" ]; then
  echo "setup-cuda: installing $NCCL_SPEC into $VENV"
  "$VENV/bin/python" -m pip install --quiet "$NCCL_SPEC"
  nccl_lib="$("$VENV/bin/python" -c 'import nvidia, os; print(next(os.path.join(p, "nccl", "lib") for p in nvidia.__path__ if os.path.isdir(os.path.join(p, "nccl", "lib"))))')"
fi

# 2. The wheels ship only versioned libraries; the linker looks for the bare names.
lib="$CUDA_HOME/lib"
link() { # link <bare name> <versioned name>
  [ -e "$lib/$2" ] || { echo "setup-cuda: missing $lib/$2" >&2; exit 1; }
  ln -sfn "$2" "$lib/$1"
}
link libcudart.so libcudart.so.13
link libcublas.so libcublas.so.13
link libcublasLt.so libcublasLt.so.13
link libnvrtc.so libnvrtc.so.13
link libcurand.so libcurand.so.10
# NCCL lives in its own wheel: linked into the toolkit's lib directory, where the linker
# and gpu-check.sh's library search look.
ln -sfn "$(realpath --relative-to="$lib" "$nccl_lib")/libnccl.so.2" "$lib/libnccl.so.2"
ln -sfn libnccl.so.2 "$lib/libnccl.so"

# 3. A link-time stub of the driver library (no wheel ships libcuda): one empty function
#    per cu* name that cudarc's driver bindings declare. Soname libcuda.so.1, so the
#    binary asks the loader for the real driver library at run time.
cudarc_sys="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$cudarc_sys" ]; then
  cargo fetch --quiet
  cudarc_sys="$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.*/src/driver/sys/mod.rs | sort -V | tail -1)"
fi
stubs="$lib/stubs"
mkdir -p "$stubs"
if [ ! -e "$stubs/libcuda.so" ] || [ "$cudarc_sys" -nt "$stubs/libcuda.so" ]; then
  src="$stubs/libcuda-stub.c"
  grep -oE 'pub (unsafe )?fn cu[A-Za-z0-9_]+' "$cudarc_sys" | sed -E 's/.* //' | sort -u |
    sed -E 's/^(.*)$/void \1(void) {}/' >"$src"
  [ -s "$src" ] || { echo "setup-cuda: no cu* functions found in $cudarc_sys" >&2; exit 1; }
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$src"
  echo "setup-cuda: stub $stubs/libcuda.so with $(wc -l <"$src") symbols from $cudarc_sys"
fi

# 4. The environment for cargo. CUDA_COMPUTE_CAP=90: PTX for sm_90 (H100/H200); there is
#    no GPU here to ask. Override it before building for another architecture.
env_file="$VENV/cuda-env.sh"
cat >"$env_file" <<ENV
export CUDA_HOME="$CUDA_HOME"
export CUDA_PATH="$CUDA_HOME"
export PATH="$CUDA_HOME/bin:\$PATH"
export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
ENV
echo "setup-cuda: ready; to build with CUDA:"
echo "  source $env_file"
cat "$env_file"
