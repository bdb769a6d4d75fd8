"""Two readings of adaptation records that a figure's table does not give.

    .venv/bin/python docs/experiments/adaptation_pairs.py paired RUN_A RUN_B [--spans 21-25 38-40]
        (no --spans: the last 3 episodes, A.2's number)
    .venv/bin/python docs/experiments/adaptation_pairs.py bands RUN [RUN ...] [--variant IW] [--edges 0 1 2 3]

Both read a run's ``results.json`` (``returns``: per variant [held-out tasks, adaptation
seeds, episodes]; ``test_goals``; ``baseline`` where the task has one).

``paired`` compares the first variant of RUN_B with the first variant of RUN_A on the same
held-out tasks (it refuses records whose ``test_goals`` differ): per task the mean over
adaptation seeds and the episodes of a span (1-based, inclusive), then B − A with a
Student-t 95% interval across tasks, and how many tasks went up, down or stayed equal.
It also prints the last episode up to which the two records are identical, which says
whether they are one random stream up to a switch (figure 4's ψ fine-tuned run against
the run without it: identical through episode 20).

``bands`` splits a variant's held-out tasks by their goal's first coordinate (the target
velocity on half-cheetah) into the bands ``--edges`` gives and prints, per run and band:
the tasks in it, the standing-still baseline, the mean of the exploration episodes, the
first episode after them and the last 3 episodes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from iwx.results.stats import mean_ci


def load(run: str) -> dict:
    return json.loads((Path(run) / "results.json").read_text())


def interval(values: np.ndarray) -> str:
    """Mean ± the half-width of a Student-t 95% interval across the values."""
    mean, half = mean_ci(values)
    return f"{mean:+.2f} ± {half:.2f}"


def span(text: str, episodes: int) -> tuple[int, int]:
    """'8-10' -> (8, 10), '7' -> (7, 7), 1-based and inclusive; refused (SystemExit,
    saying the records' range) unless 1 ≤ first ≤ last ≤ ``episodes``."""
    first, _, last = text.partition("-")
    try:
        first, last = int(first), int(last or first)
    except ValueError:
        raise SystemExit(f"--spans {text}: expected FIRST-LAST or one episode, "
                         "e.g. 8-10") from None
    if not 1 <= first <= last <= episodes:
        raise SystemExit(f"--spans {text}: these records have episodes 1-{episodes}")
    return first, last


def paired(run_a: str, run_b: str, spans: list[str] | None = None) -> None:
    a, b = load(run_a), load(run_b)
    if a["test_goals"] != b["test_goals"]:
        raise SystemExit(f"{run_a} and {run_b} adapted on different held-out tasks")
    (name_a, ra), (name_b, rb) = (next(iter(r["returns"].items())) for r in (a, b))
    ra, rb = np.asarray(ra, dtype=float), np.asarray(rb, dtype=float)  # [tasks, seeds, ep]
    if ra.shape != rb.shape:
        raise SystemExit(f"returns of different shapes: {ra.shape} and {rb.shape}")
    same = np.all(ra == rb, axis=(0, 1))
    identical = int(np.argmin(same)) if not same.all() else same.size
    print(f"A = {run_a} ({name_a}), B = {run_b} ({name_b}): {ra.shape[0]} tasks × "
          f"{ra.shape[1]} seeds; identical through episode {identical}")
    episodes = ra.shape[2]
    for text in spans or [f"{max(1, episodes - 2)}-{episodes}"]:
        first, last = span(text, episodes)
        part_a = ra[..., first - 1:last].mean(axis=(1, 2))
        part_b = rb[..., first - 1:last].mean(axis=(1, 2))
        d = part_b - part_a
        print(f"  episodes {first}-{last}: A {part_a.mean():.2f}, B {part_b.mean():.2f}, "
              f"B − A {interval(d)} (up {(d > 0).sum()}, down {(d < 0).sum()}, "
              f"equal {(d == 0).sum()})")


def bands(runs: list[str], variant: str, edges: list[float]) -> None:
    for run in runs:
        results = load(run)
        goal = np.asarray(results["test_goals"], dtype=float)[:, 0]
        r = np.asarray(results["returns"][variant], dtype=float)
        explore = results["exploration_episodes"]
        still = results.get("baseline") or {}
        base = np.asarray(still.get("returns", [np.nan] * len(goal)), dtype=float)
        print(f"{run} ({variant}; standing still: {base.mean():.1f})")
        for low, high in zip(edges[:-1], edges[1:]):
            m = (goal >= low) & (goal < high)
            if not m.any():
                continue
            print(f"  goal in [{low:g}, {high:g}): {m.sum():2d} tasks, still {base[m].mean():7.1f}"
                  f" | explore {r[m][..., :explore].mean():7.1f}, episode {explore + 1} "
                  f"{r[m][..., explore].mean():7.1f}, last 3 {r[m][..., -3:].mean():7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("paired")
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--spans", nargs="+", default=None)
    b = sub.add_parser("bands")
    b.add_argument("runs", nargs="+")
    b.add_argument("--variant", default="IW")
    b.add_argument("--edges", nargs="+", type=float, default=[0, 1, 2, 3])
    args = parser.parse_args()
    if args.command == "paired":
        paired(args.run_a, args.run_b, args.spans)
    else:
        bands(args.runs, args.variant, args.edges)


if __name__ == "__main__":
    main()
