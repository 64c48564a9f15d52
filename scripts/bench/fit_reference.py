#!/usr/bin/env python3
"""The peer of `synthscale bench fit`: Epoch AI's Chinchilla fit with SciPy's L-BFGS-B.

Same data (D = Training FLOP / (6 · Model Size), the 5 highest-loss rows dropped), same
objective (sum of Huber losses, delta 1e-3, of log residuals, in Epoch's parametrization
log L = LSE(a − alpha·log N, b − beta·log D, e)), same 4500-point start grid, best kept.
By default SciPy gets the analytic gradient too (`jac=True`), which is the fair comparison;
`--numeric-grad` uses finite differences, as Epoch AI's notebook did. One process, one
thread (as the notebook ran). Prints one JSON line.
"""
import argparse
import itertools
import json
import os
import time

import numpy as np
from scipy.optimize import minimize
from scipy.special import huber, logsumexp

DELTA = 1e-3


def load(path):
    import csv

    with open(path) as f:
        rows = list(csv.DictReader(f))
    n = np.array([float(r["Model Size"]) for r in rows])
    c = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    keep = np.argsort(-loss)[5:]  # drop the 5 highest-loss rows
    n, c, loss = n[keep], c[keep], loss[keep]
    return np.log(n), np.log(c / (6 * n)), np.log(loss)


def objective(p, ln_n, ln_d, ln_l):
    a, b, e, alpha, beta = p
    pre = np.stack([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)])
    return np.sum(huber(DELTA, logsumexp(pre, axis=0) - ln_l))


def objective_grad(p, ln_n, ln_d, ln_l):
    a, b, e, alpha, beta = p
    pre = np.stack([a - alpha * ln_n, b - beta * ln_d, np.full_like(ln_n, e)])
    lse = logsumexp(pre, axis=0)
    r = lse - ln_l
    w = np.exp(pre - lse)  # softmax weights, 3 × n
    psi = np.clip(r, -DELTA, DELTA)  # dHuber/dr
    g = np.array([
        np.sum(psi * w[0]),
        np.sum(psi * w[1]),
        np.sum(psi * w[2]),
        -np.sum(psi * w[0] * ln_n),
        -np.sum(psi * w[1] * ln_d),
    ])
    return np.sum(huber(DELTA, r)), g


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default="crates/fit/tests/fixtures/epoch_chinchilla/svg_extracted_data.csv")
    ap.add_argument("--numeric-grad", action="store_true")
    args = ap.parse_args()
    ln_n, ln_d, ln_l = load(args.data)
    grid = list(itertools.product(
        np.arange(0, 30, 5), np.arange(0, 30, 5), np.arange(-1, 1.5, 0.5),
        np.arange(0, 2.5, 0.5), np.arange(0, 2.5, 0.5)))
    assert len(grid) == 4500
    t = time.perf_counter()
    best = None
    for x0 in grid:
        if args.numeric_grad:
            res = minimize(objective, x0, args=(ln_n, ln_d, ln_l), method="L-BFGS-B")
        else:
            res = minimize(objective_grad, x0, args=(ln_n, ln_d, ln_l), method="L-BFGS-B", jac=True)
        if best is None or res.fun < best.fun:
            best = res
    secs = time.perf_counter() - t
    a, b, e, alpha, beta = best.x
    import scipy
    print(json.dumps({
        "bench": "fit_reference",
        "peer": f"scipy {scipy.__version__} L-BFGS-B, numpy {np.__version__}",
        "gradient": "numeric" if args.numeric_grad else "analytic",
        "points": len(ln_l), "starts": len(grid), "threads": 1,
        "fit_s": secs, "objective": float(best.fun),
        "e": float(np.exp(e)), "alpha": float(alpha), "beta": float(beta),
        "a": float(np.exp(a)), "b": float(np.exp(b)),
    }))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
