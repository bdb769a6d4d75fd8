"""A recorded series as means over fixed windows of its steps, one line per run.

    .venv/bin/python docs/experiments/series_means.py RUN [RUN ...] [--metric train/return] [--every 10000]

Reads the run's ``series.json`` (every logged value of a metric against learner updates)
and prints the mean of the values logged in each window (0, every], (every, 2·every], ...:
how a training curve went, e.g. half-cheetah IWPL seed 2's collapse between 20k and 40k
updates (README, figure 2).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--metric", default="train/return")
    parser.add_argument("--every", type=int, default=10000)
    args = parser.parse_args()
    for run in args.runs:
        series = json.loads((Path(run) / "series.json").read_text())
        if args.metric not in series:
            raise SystemExit(f"{run} has no series {args.metric!r}")
        steps = np.asarray(series[args.metric]["steps"])
        values = np.asarray(series[args.metric]["values"], dtype=float)
        means = []
        for start in range(0, int(steps.max()), args.every):
            inside = (steps > start) & (steps <= start + args.every)
            means.append(f"{values[inside].mean():.1f}" if inside.any() else "—")
        print(f"{run} {args.metric} per {args.every} steps: {' '.join(means)}")


if __name__ == "__main__":
    main()
