"""Where on the half circle the mixture prior helps (sparse 2D navigation).

    .venv/bin/python docs/experiments/mixture_by_angle.py DIR --gaussian 17 18 20 \
        --mixture 22 23 25

DIR is a runs folder (docs/records/cpu-runs or the one the mixture_prior figure ran in);
the run ids are its navigation runs with either prior (the figure's README lists them).
A held-out goal lies on the half circle at an angle in [0°, 180°]; π0 sees only the
position, so whether its exploration reaches a goal depends on where the goal is
(docs/DECISIONS.md: the single Gaussian finds goals near the ends rarely). For each
prior and each band of goal angles, over the runs' held-out tasks (30 per run × 3
adaptation seeds): the fraction of adaptations whose 5 exploration episodes scored a
reward (π0 acting alone), and the mean return of the last 3 episodes of Shared Q + IW
and of IW.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BANDS = [(0, 30), (30, 60), (60, 120), (120, 150), (150, 180)]
LAST = 3


def load(runs_dir: Path, ids: list[str]) -> dict[str, np.ndarray]:
    angle, found, last = [], [], {}
    for run in ids:
        results = json.loads((runs_dir / run / "results.json").read_text())
        explore = results["exploration_episodes"]
        goals = np.asarray(results["test_goals"], float)
        angle.append(np.degrees(np.arctan2(goals[:, 1], goals[:, 0])))
        returns = {v: np.asarray(r, float) for v, r in results["returns"].items()}
        found.append((returns["Shared Q + IW"][..., :explore] > 0).any(-1).mean(-1))
        for variant, r in returns.items():
            last.setdefault(variant, []).append(r[..., -LAST:].mean((-1, -2)))
    return {"angle": np.concatenate(angle), "found": np.concatenate(found),
            **{v: np.concatenate(x) for v, x in last.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs_dir", type=Path)
    parser.add_argument("--gaussian", nargs="+", required=True)
    parser.add_argument("--mixture", nargs="+", required=True)
    args = parser.parse_args()
    for name, ids in (("Gaussian π0", args.gaussian), ("mixture π0", args.mixture)):
        d = load(args.runs_dir, ids)
        print(f"{name} (runs {', '.join(ids)}): {len(d['angle'])} held-out tasks, found in "
              f"exploration {d['found'].mean():.2f}, last 3: Shared Q + IW "
              f"{d['Shared Q + IW'].mean():.2f}, IW {d['IW'].mean():.2f}")
        for lo, hi in BANDS:
            m = (d["angle"] >= lo) & (d["angle"] < hi if hi < 180 else d["angle"] <= hi)
            print(f"  goal angle {lo:3d}-{hi:3d}° (n={m.sum():2d}): found {d['found'][m].mean():.2f}"
                  f", Shared Q + IW {d['Shared Q + IW'][m].mean():5.2f}, IW {d['IW'][m].mean():5.2f}")


if __name__ == "__main__":
    main()
