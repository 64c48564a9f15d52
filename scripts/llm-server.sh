#!/usr/bin/env bash
# A local OpenAI-compatible inference server for `synthscale synth` (`kind = "openai"`) on a
# laptop or a CPU CI machine: llama.cpp's own HTTP server, through the PyPI package
# xllamacpp (prebuilt CPU wheels; nothing is compiled), serving a GGUF model.
#
# Usage:
#   scripts/llm-server.sh setup [VENV]        install xllamacpp into VENV (default
#                                             target/llm-venv); prints its python
#   scripts/llm-server.sh start [options]     start in the background, wait until it
#                                             answers, print its API root (…/v1)
#   scripts/llm-server.sh stop                stop the server `start` started
# start's options (all optional): --model GGUF (default: scripts/fetch-generator.sh's
# SmolLM2), --alias ID (default smollm2-135m), --port N (default 8080), --parallel N
# (default 8), --ctx N (tokens per sequence, default 2048), --threads N, --api-key-env VAR.
# The server's log is target/llm-server.log; its pid is in target/llm-server.pid.
#
# On a GPU node use vLLM or SGLang instead (README, "Synthetic data through an inference
# server").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV_DEFAULT="$ROOT/target/llm-venv"
PKG="xllamacpp==2026.10.11549"
PIDFILE="$ROOT/target/llm-server.pid"
LOG="$ROOT/target/llm-server.log"

setup() {
  local venv
  venv=$(realpath -m "${1:-$VENV_DEFAULT}")
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import xllamacpp" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet "$PKG"
  fi
  echo "$venv/bin/python"
}

case "${1:-}" in
  setup)
    shift
    setup "${1:-}"
    ;;
  start)
    shift
    PY=$(setup)
    MODEL="" ALIAS="smollm2-135m" PORT=8080 EXTRA=()
    while [ $# -gt 0 ]; do
      case "$1" in
        --model) MODEL=$2; shift 2 ;;
        --alias) ALIAS=$2; shift 2 ;;
        --port) PORT=$2; shift 2 ;;
        --parallel|--ctx|--threads|--api-key-env) EXTRA+=("$1" "$2"); shift 2 ;;
        *) echo "llm-server.sh: unknown option $1" >&2; exit 2 ;;
      esac
    done
    [ -n "$MODEL" ] || MODEL=$(bash "$ROOT/scripts/fetch-generator.sh" | tail -n 1)
    if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "llm-server.sh: a server is already running (pid $(cat "$PIDFILE")); stop it first" >&2
      exit 1
    fi
    mkdir -p "$ROOT/target"
    "$PY" "$ROOT/scripts/llm_server.py" --model "$MODEL" --alias "$ALIAS" --port "$PORT" \
      --parallel 8 "${EXTRA[@]}" >"$LOG" 2>&1 &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
      if grep -q "llm_server: listening" "$LOG"; then
        echo "http://127.0.0.1:$PORT/v1"
        exit 0
      fi
      if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
        tail -n 20 "$LOG" >&2
        echo "llm-server.sh: the server exited; its log is $LOG" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "llm-server.sh: the server did not answer in 60 s; its log is $LOG" >&2
    exit 1
    ;;
  stop)
    if [ -f "$PIDFILE" ]; then
      kill "$(cat "$PIDFILE")" 2>/dev/null || true
      rm -f "$PIDFILE"
    fi
    ;;
  *)
    sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
