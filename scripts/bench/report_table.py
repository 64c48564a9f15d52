"""Writes a synthetic results table for the report benchmark: 3 sizes x 6 budgets x 4
mixtures x 2 seeds x 2 domains from the joint law 1.5 + 60/N^0.3 + B_m/D^0.35 (the same
table as crates/report/tests/report.rs). Usage: report_table.py OUT_DIR"""
import math
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
mixes = [("natural", 1, 0, 0), ("reph-1/3", 2 / 3, 1 / 3, 0), ("reph-2/3", 1 / 3, 2 / 3, 0),
         ("textbook-1/2", 0.5, 0, 0.5)]
rows = []
i = 0
for m, nat, re, tb in mixes:
    b = 300 * math.exp(1.5 * (re + tb - 0.3) ** 2) * (1.3 if tb else 1)
    for n in (1e6, 3e6, 1e7):
        for j in range(6):
            d = 2e6 * 2 ** j
            loss = 1.5 + 60 / n ** 0.3 + b / d ** 0.35
            for seed in (0, 1):
                i += 1
                for dom, f in (("web", 1.03), ("books", 0.97)):
                    l = loss * f * (1 + 0.001 * math.sin(7 * i + len(dom))) * (1.002 if seed == 0 else 0.998)
                    rows.append(f"{m}-{n:.0f}-{d:.0f}-s{seed},{n},{0.8 * n},{d},{6 * n * d},{m},{nat},{re},{tb},{dom},100,{l},true")
with open(os.path.join(out, "results.csv"), "w") as f:
    f.write("run_id,params,non_embedding_params,tokens,flops,mixture,natural_ratio,rephrased_ratio,textbook_ratio,eval_domain,step,loss,final\n")
    f.write("\n".join(rows) + "\n")
