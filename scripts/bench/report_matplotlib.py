"""The report benchmark's peer: matplotlib draws figure 1 of a synthscale report (final
loss against tokens, log-log, one panel per mixture, one line per model size through the
mean-over-domains points) from the same results.csv, as PNG (1680x930 px) and SVG, and
prints the seconds. Usage: report_matplotlib.py RESULTS_CSV OUT_DIR"""
import csv
import os
import sys
import time

t0 = time.perf_counter()
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

t_import = time.perf_counter() - t0
t1 = time.perf_counter()
pts = {}
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        key = (r["mixture"], float(r["params"]), float(r["tokens"]))
        pts.setdefault(key, []).append(float(r["loss"]))
mixtures = sorted({k[0] for k in pts})
sizes = sorted({k[1] for k in pts})
fig, axes = plt.subplots(2, 3, figsize=(16.8, 9.3), dpi=100)
for ax, m in zip(axes.flat, mixtures):
    for n in sizes:
        xs = sorted(k[2] for k in pts if k[0] == m and k[1] == n)
        ys = [sum(pts[(m, n, x)]) / len(pts[(m, n, x)]) for x in xs]
        ax.plot(xs, ys, "o-", label=f"{n / 1e6:g}M params")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training tokens D")
    ax.set_ylabel("validation loss (nats/token)")
    ax.set_title(m)
    ax.legend()
for ax in list(axes.flat)[len(mixtures):]:
    ax.axis("off")
fig.suptitle("Validation loss against training tokens")
fig.tight_layout()
fig.savefig(os.path.join(sys.argv[2], "mpl-fig1.png"))
fig.savefig(os.path.join(sys.argv[2], "mpl-fig1.svg"))
print(f'{{"peer": "matplotlib {matplotlib.__version__}", "import_s": {t_import:.3f}, "fig1_png_svg_s": {time.perf_counter() - t1:.3f}}}')
