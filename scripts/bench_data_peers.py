#!/usr/bin/env python3
"""Peer figures for `synthscale bench data`, on the same corpora, tokenizer and machine.

- Hugging Face `tokenizers` (Python bindings over the same Rust library synthscale uses),
  `encode_batch` on all documents with the same tokenizer.json;
- OpenAI's `tiktoken` with the GPT-2 ranks rebuilt from the same tokenizer.json (its own
  download of the GPT-2 files is not reachable offline);
- nanoGPT's `get_batch` sampler (random windows from a numpy memmap, stacked into int64
  arrays), run on one of synthscale's prepared train shards.

Prints one JSON line. Used by scripts/bench-data.sh; see docs/performance.md.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import tiktoken
import tokenizers


def read_docs(paths):
    docs = []
    for p in paths:
        opener = gzip.open if p.endswith(".gz") else open
        with opener(p, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    docs.append(json.loads(line)["text"])
    return docs


def bytes_to_unicode():
    # GPT-2's reversible byte <-> printable-unicode table (Radford et al., encoder.py).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def tiktoken_gpt2(tokenizer_json):
    spec = json.load(open(tokenizer_json, encoding="utf-8"))
    dec = {v: k for k, v in bytes_to_unicode().items()}
    vocab = spec["model"]["vocab"]
    ranks = {}
    for tok, i in vocab.items():
        if tok == "<|endoftext|>":
            continue
        ranks[bytes(dec[c] for c in tok)] = i
    pat = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    return tiktoken.Encoding(
        name="gpt2-local", pat_str=pat, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--shard", required=True, help="a synthscale train shard (u16)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--sampler-tokens", type=float, default=50e6)
    ap.add_argument("corpora", nargs="+")
    a = ap.parse_args()

    docs = read_docs(a.corpora)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    threads = os.cpu_count()

    hf = tokenizers.Tokenizer.from_file(a.tokenizer)
    t = time.perf_counter()
    enc = hf.encode_batch_fast(docs, add_special_tokens=False) if hasattr(hf, "encode_batch_fast") else hf.encode_batch(docs, add_special_tokens=False)
    hf_s = time.perf_counter() - t
    hf_tokens = sum(len(e.ids) for e in enc)
    del enc

    tk = tiktoken_gpt2(a.tokenizer)
    assert tk.encode_ordinary("Hello world") == [15496, 995]
    t = time.perf_counter()
    ids = tk.encode_ordinary_batch(docs, num_threads=threads)
    tk_s = time.perf_counter() - t
    tk_tokens = sum(len(x) for x in ids)
    del ids

    data = np.memmap(a.shard, dtype=np.uint16, mode="r", offset=128)
    B, T = a.batch_size, a.seq_len
    steps = int(a.sampler_tokens // (B * T))
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(steps):
        ix = rng.integers(0, len(data) - T - 1, size=B)
        x = np.stack([data[i : i + T].astype(np.int64) for i in ix])
        y = np.stack([data[i + 1 : i + 1 + T].astype(np.int64) for i in ix])
    sampler_s = time.perf_counter() - t

    print(
        json.dumps(
            {
                "peer": "python",
                "threads": threads,
                "text_mb": nbytes / 1e6,
                "hf_tokenizers_version": tokenizers.__version__,
                "hf_tokens": hf_tokens,
                "hf_tokenize_mb_per_s": nbytes / 1e6 / hf_s,
                "hf_tokenize_tokens_per_s": hf_tokens / hf_s,
                "tiktoken_version": tiktoken.__version__,
                "tiktoken_tokens": tk_tokens,
                "tiktoken_mb_per_s": nbytes / 1e6 / tk_s,
                "tiktoken_tokens_per_s": tk_tokens / tk_s,
                "nanogpt_get_batch": f"{B}x{T}",
                "nanogpt_sampler_tokens_per_s": steps * B * T / sampler_s,
            }
        )
    )


if __name__ == "__main__":
    sys.exit(main())
