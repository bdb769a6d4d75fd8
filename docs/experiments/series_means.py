"""A recorded series as means over fixed windows of its steps, one line per run.

    .venv/bin/python docs/experiments/series_means.py RUN [RUN ...] [--metric train/return] [--every 10000]

Reads the run's logged series through the store's reader (``iwx.experiment.store``:
``series.json``, or Sacred's metrics for a run still going; training series against
learner updates) and prints the mean of the values logged in each window (0, every], (every, 2·every], ...:
how a training curve went, e.g. half-cheetah IWPL seed 2's collapse between 20k and 40k
updates (README, figure 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iwx.experiment.store import load_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--metric", default="train/return")
    parser.add_argument("--every", type=int, default=10000)
    args = parser.parse_args()
    for run in args.runs:
        folder = Path(run)
        (recorded,) = load_runs(folder.parent, run_ids=[folder.name], statuses=None) or [None]
        if recorded is None or args.metric not in recorded.metrics:
            raise SystemExit(f"{run} has no series {args.metric!r}")
        steps, values = recorded.metrics[args.metric]
        means = []
        for start in range(0, int(steps.max()), args.every):
            inside = (steps > start) & (steps <= start + args.every)
            means.append(f"{values[inside].mean():.4g}" if inside.any() else "—")
        print(f"{run} {args.metric} per {args.every} steps: {' '.join(means)}")


if __name__ == "__main__":
    main()
