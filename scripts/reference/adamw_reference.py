#!/usr/bin/env python3
"""PyTorch reference for synthscale's AdamW test (crates/train/tests/optim.rs).

Two parameters: a 2x3 matrix with weight decay and a length-3 gain without; four steps
with gradients g[k][i] = sin(1.7*k + 0.3*i) * (1 + i % 3), learning rates 1e-2*(k+1)/4,
global-norm clipping at 1.0 before each step (torch.nn.utils.clip_grad_norm_), AdamW
with betas (0.9, 0.95), eps 1e-8, weight decay 0.1. Prints the parameters after each step
and the pre-clip gradient norms, as float64 text.
"""
import math

import torch

torch.set_default_dtype(torch.float32)
w = torch.nn.Parameter(torch.tensor([[0.5, -1.0, 2.0], [0.0, 3.0, -0.25]]))
g = torch.nn.Parameter(torch.tensor([1.0, 0.9, 1.1]))
opt = torch.optim.AdamW(
    [{"params": [w], "weight_decay": 0.1}, {"params": [g], "weight_decay": 0.0}],
    lr=1e-2, betas=(0.9, 0.95), eps=1e-8,
)
for k in range(4):
    for group in opt.param_groups:
        group["lr"] = 1e-2 * (k + 1) / 4
    w.grad = torch.tensor([math.sin(1.7 * k + 0.3 * i) * (1 + i % 3) for i in range(6)]).reshape(2, 3)
    g.grad = torch.tensor([math.sin(1.7 * k + 0.3 * (i + 6)) * (1 + (i + 6) % 3) for i in range(3)])
    norm = torch.nn.utils.clip_grad_norm_([w, g], max_norm=1.0)
    opt.step()
    print(f"step {k + 1} norm {norm.item():.9g}")
    print("  w", [f"{x:.9g}" for x in w.detach().flatten().tolist()])
    print("  g", [f"{x:.9g}" for x in g.detach().flatten().tolist()])
