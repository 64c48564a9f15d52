#!/usr/bin/env python3
"""The peer for `synthscale bench train`: the same decoder in PyTorch (CPU, fp32), timed
over the same training steps (forward, backward, AdamW) on random tokens.

Architecture as synthscale-model: token embedding tied to the output head, pre-norm
blocks of RMSNorm, rotary causal attention (half-split layout), RMSNorm, SwiGLU MLP with
width 8/3·d rounded up to a multiple of 32, a final RMSNorm; no biases. Attention uses
plain matmul + softmax (as synthscale does) unless --sdpa is given.

Prints one JSON line with the same fields as `synthscale bench train`.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Block(nn.Module):
    def __init__(self, d, heads, ff, sdpa):
        super().__init__()
        self.heads, self.sdpa = heads, sdpa
        self.input_layernorm = RMSNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.post_attention_layernorm = RMSNorm(d)
        self.gate = nn.Linear(d, ff, bias=False)
        self.up = nn.Linear(d, ff, bias=False)
        self.down = nn.Linear(ff, d, bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        hd = d // self.heads
        h = self.input_layernorm(x)
        q = self.q(h).view(b, t, self.heads, hd).transpose(1, 2)
        k = self.k(h).view(b, t, self.heads, hd).transpose(1, 2)
        v = self.v(h).view(b, t, self.heads, hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd) + mask
            y = att.softmax(-1) @ v
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        h = self.post_attention_layernorm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Decoder(nn.Module):
    def __init__(self, vocab, d, layers, heads, seq, sdpa):
        super().__init__()
        ff = -(-(-(-8 * d // 3)) // 32) * 32
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d, heads, ff, sdpa) for _ in range(layers)])
        self.norm = RMSNorm(d)
        hd = d // heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd // 2).float() * 2 / hd))
        ang = torch.arange(seq).float()[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())
        self.register_buffer("mask", torch.full((seq, seq), float("-inf")).triu(1))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids, targets):
        x = self.embed(ids)
        for blk in self.blocks:
            x = blk(x, self.cos, self.sin, self.mask)
        logits = self.norm(x) @ self.embed.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--sdpa", action="store_true")
    a = ap.parse_args()
    torch.manual_seed(0)
    m = Decoder(a.vocab, a.d_model, a.layers, a.heads, a.seq_len, a.sdpa)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
    step = torch.compile(m) if a.compile else m
    times = []
    loss = None
    for s in range(a.warmup + a.steps):
        ids = torch.randint(0, a.vocab, (a.batch, a.seq_len))
        tgt = torch.randint(0, a.vocab, (a.batch, a.seq_len))
        t0 = time.perf_counter()
        loss = step(ids, tgt)
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if s >= a.warmup:
            times.append((t1 - t0, t2 - t1, t3 - t2))
    st = sum(sum(t) for t in times) / a.steps
    best = min(sum(t) for t in times)
    mean = lambda i: sum(t[i] for t in times) / a.steps * 1e3
    params = sum(p.numel() for p in m.parameters())
    print(json.dumps({
        "bench": "train-torch" + ("-compile" if a.compile else "-eager") + ("-sdpa" if a.sdpa else ""),
        "torch": torch.__version__,
        "params": params,
        "d_model": a.d_model, "layers": a.layers, "heads": a.heads, "vocab": a.vocab,
        "seq_len": a.seq_len, "batch": a.batch, "steps": a.steps,
        "threads": torch.get_num_threads(),
        "step_ms": st * 1e3,
        "best_step_ms": best * 1e3,
        "forward_ms": mean(0), "backward_ms": mean(1), "optimizer_ms": mean(2),
        "tokens_per_s": a.batch * a.seq_len / st,
        "best_tokens_per_s": a.batch * a.seq_len / best,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "last_loss": loss.item(),
    }))


if __name__ == "__main__":
    main()
