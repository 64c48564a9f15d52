#!/usr/bin/env bash
# Screenshot of a synthscale report in headless Chromium, as a reader's browser renders it:
#   scripts/report-screenshot.sh results/<name>/report/report.html out.png [WIDTHxHEIGHT]
# Installs Debian's `chromium` when it is missing (root, apt-get). The report is one file
# with its figures inlined, so the page renders with the network off. Headless Chromium
# shoots the window, not the page: the default 1280x16000 holds a 72-row study with its
# per-domain tables (~10000 px); pass a taller size for larger studies. The PNG is checked
# to exist and to be a PNG.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  echo "usage: $0 <report.html> <out.png> [WIDTHxHEIGHT]" >&2
  exit 2
fi
html=$1
out=$2
size=${3:-1280x16000}
if [[ ! -f $html ]]; then
  echo "$html: no such file" >&2
  exit 2
fi
if ! [[ $size =~ ^([0-9]+)x([0-9]+)$ ]]; then
  echo "window size $size: expected WIDTHxHEIGHT, e.g. 1280x16000" >&2
  exit 2
fi
w=${BASH_REMATCH[1]}
h=${BASH_REMATCH[2]}

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian's chromium (apt-get)" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi

abs_html=$(realpath "$html")
mkdir -p "$(dirname "$out")"
abs_out=$(realpath -m "$out")
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# No network is needed or wanted: a proxy that goes nowhere makes any stray fetch fail.
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
  --user-data-dir="$profile" --proxy-server=127.0.0.1:9 \
  --window-size="$w,$h" --screenshot="$abs_out" "file://$abs_html" >/dev/null 2>&1

if [[ ! -s $abs_out ]] || [[ $(head -c 8 "$abs_out" | od -An -tx1 | tr -d ' \n') != 89504e470d0a1a0a ]]; then
  echo "chromium wrote no PNG at $abs_out" >&2
  exit 1
fi
echo "$abs_out ($(stat -c %s "$abs_out") bytes, ${w}x${h})"
