"""Half-cheetah adaptation from the same saved pretrainings, before and after issue 11.

usage: python docs/experiments/cheetah_width_from_saved.py BEFORE_RUNS AFTER_RUNS

Each runs dir holds runs tagged ``<label>-<method>-<seed>`` (README, "The paper's
baselines"). Per (pretraining method, variant): units are (seed, held-out task) pairs
pooled over the seeds both sides have; last 3 episodes, mean ± 95% CI; and the paired
difference after − before per unit (same pretraining, same task).
"""
import json
import sys
from pathlib import Path

import numpy as np

from iwx.results.stats import mean_ci

def load(root):
    out = {}
    for run in Path(root).iterdir():
        if not run.name.isdigit() or not (run / "results.json").exists():
            continue
        tags = json.loads((run / "run.json").read_text())["meta"].get("tags", [])
        label = [t for t in tags if t.count("-") == 2][0]          # e.g. before-iwpl-0
        _, method, seed = label.split("-")
        res = json.loads((run / "results.json").read_text())
        for variant, r in res["returns"].items():
            out[(method, variant, int(seed))] = np.asarray(r).mean(axis=1)   # [tasks, episodes]
    return out

before, after = load(sys.argv[1]), load(sys.argv[2])
rows = sorted({(m, v) for m, v, _ in before} & {(m, v) for m, v, _ in after})
print("| pretraining | variant | seeds | before (last 3) | after (last 3) | after − before, paired |")
print("|---|---|---|---|---|---|")
for m, v in rows:
    seeds = sorted({s for mm, vv, s in before if (mm, vv) == (m, v)} & {s for mm, vv, s in after if (mm, vv) == (m, v)})
    b = np.concatenate([before[(m, v, s)][:, -3:].mean(1) for s in seeds])
    a = np.concatenate([after[(m, v, s)][:, -3:].mean(1) for s in seeds])
    (bm, bc), (am, ac), (dm, dc) = mean_ci(b), mean_ci(a), mean_ci(a - b)
    print(f"| {m} | {v} | {','.join(map(str, seeds))} | {bm:.2f} ± {bc:.2f} | {am:.2f} ± {ac:.2f} | {dm:+.2f} ± {dc:.2f} |")
