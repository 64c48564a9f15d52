#!/usr/bin/env python3
"""Checks the quickstart's report against what the quickstart promises (issue 14's bar):
every fitted run's final loss at least 0.3 nats below the unigram loss of its mixture on the
same domains; at least 3 sizes, 6 budgets per (size, mixture), 4 rephrased shares and a
textbook mixture; two seeds at one size; and fit.json carrying unigram_loss, seed_noise,
multipliers and an `extrapolated` mark on every derived number.

Usage: scripts/check-quickstart.py [results/quickstart/report/fit.json]
"""
import json
import sys
from collections import defaultdict

path = sys.argv[1] if len(sys.argv) > 1 else "results/quickstart/report/fit.json"
j = json.load(open(path))
fail = []
head = j["config"]["headline_domain"]
uni = {(u["mixture"], u["domain"]): u["loss"] for u in j["unigram_loss"]}
gaps = []
for r in j["runs"]:
    u = uni.get((r["mixture"], head))
    if u is None:
        fail.append(f"no unigram_loss for mixture {r['mixture']} on {head}")
        continue
    gaps.append((u - r["loss"][head], r["mixture"], r["params"], r["tokens"]))
low = [g for g in gaps if g[0] < 0.3]
if low:
    fail.append(f"{len(low)} run(s) less than 0.3 nats below the unigram loss: {low[:3]}")
sizes = {r["params"] for r in j["runs"]}
budgets = defaultdict(set)
for r in j["runs"]:
    budgets[(r["params"], r["mixture"])].add(r["tokens"])
if len(sizes) < 3:
    fail.append(f"{len(sizes)} sizes, fewer than 3")
if min(len(b) for b in budgets.values()) < 6:
    fail.append("a (size, mixture) with fewer than 6 budgets")
reph = {m["rephrased"] for m in j["mixtures"] if m["textbook"] == 0}
if len(reph) < 4:
    fail.append(f"{len(reph)} rephrased shares, fewer than 4")
if not any(m["textbook"] > 0 for m in j["mixtures"]):
    fail.append("no textbook mixture")
if not any(r["seeds"] >= 2 for r in j["runs"]):
    fail.append("no size with two seeds")
if not j.get("seed_noise"):
    fail.append("no seed_noise")
mult = j["rectified"].get("multipliers", [])
if not mult:
    fail.append("no multipliers")


def marked(items, what):
    for x in items:
        if "extrapolated" not in x and "doubling_extrapolated" not in x:
            fail.append(f"{what} without an extrapolated mark: {x}")
            return


for law in ("rectified", "power", "chinchilla"):
    r = j.get(law) or {}
    marked(r.get("speedups", []), f"{law} speed-up")
    marked(r.get("multipliers", []), f"{law} multiplier")
    marked(r.get("budget_speedups", []), f"{law} per-budget speed-up")
    for g in r.get("groups", []):
        marked(g["derived"].get("plateau", []), f"{law} plateau")
        marked(g["derived"].get("compute_optimal", []), f"{law} compute-optimal split")
for s in j.get("optimal_share", []):
    marked(s["report"].get("optimal_ratios", []), "optimal share")
if fail:
    print("quickstart check FAILED:\n  " + "\n  ".join(fail))
    sys.exit(1)
print(
    f"quickstart check: {len(gaps)} runs, {min(g[0] for g in gaps):.3f} to "
    f"{max(g[0] for g in gaps):.3f} nats below their unigram loss; {len(sizes)} sizes, "
    f"{min(len(b) for b in budgets.values())}+ budgets, {len(reph)} rephrased shares, "
    f"{len(mult)} multipliers; every derived number marked"
)
