"""Training return on the training tasks that a panel's pretrainings share.

Figure 4 asks whether a prior and ψ pretrained on few tasks overfit them. The held-out
side is the adaptation curves; this is the training side: the few-task run's training
tasks are the first k of the many-task run's draw (``pretrain_and_adapt.train_tasks``,
iwx.envs.tasks.first_train_tasks), so training task i is the same target in both, and
their per-task training returns (``train/return/task_NNN``, logged by both training
loops) can be set side by side on exactly those k targets. Overfitting shows as the
few-task run ahead there and behind on the held-out tasks.

A panel gets rows only when, for one run seed, its runs that trained logged different
sets of training tasks and drew the same held-out tasks (``test_goals`` in
results.json: the same draw, so the same index is the same target). Figures whose
runs all train on the same tasks (2, 3, 7) get none.
"""

from __future__ import annotations

import re

import numpy as np

from iwx.experiment.store import RecordedRun
from iwx.figures.plan import Plan
from iwx.results.stats import mean_ci
from iwx.results.tables import fmt

TASK = re.compile(r"^train/return/task_(\d+)$")
FRACTION = 0.2     # the last fifth of the training budget, as iwx.results.plateau


def _task_series(run: RecordedRun) -> dict[int, tuple]:
    """{training task index: (steps, values) of its ``train/return/task_NNN`` series}."""
    return {int(m.group(1)): run.metrics[name] for name in run.metrics
            if (m := TASK.match(name))}


def logged_tasks(run: RecordedRun) -> set[int]:
    """The training tasks the run logged a ``train/return/task_NNN`` series for."""
    return set(_task_series(run))


def task_returns(run: RecordedRun, fraction: float = FRACTION) -> dict[int, float]:
    """{training task index: mean of its ``train/return/task_NNN`` points logged in the
    last ``fraction`` of the run's learner updates} (a task without a point there, or
    with only NaN, is absent). The window is by updates, not by points: with many tasks
    a task misses some logging periods, and its last k points would reach further back
    than another task's."""
    series = _task_series(run)
    ends = [float(steps[-1]) for steps, _ in series.values() if len(steps)]
    if not ends:
        return {}
    start = max(ends) * (1.0 - fraction)
    out = {}
    for task, (steps, values) in series.items():
        window = np.asarray(values, dtype=np.float64)[np.asarray(steps, dtype=np.float64) > start]
        window = window[~np.isnan(window)]
        if len(window):
            out[task] = float(window.mean())
    return out


def _held_out(run: RecordedRun):
    results = run.results() or {}
    return results.get("test_goals")


def shared_task_rows(plan: Plan, records: dict[int, RecordedRun],
                     fraction: float = FRACTION) -> list[dict]:
    """Per panel and run seed whose trained runs logged different training task sets:
    one row per such run, on the tasks all of them have a return for (:func:`task_returns`):
    {"panel", "label", "seed", "run_id", "tasks": how many it logged (trained on),
    "shared": [task indices], "per_task":
    [its return on each shared task], "mean", "ci95": mean ± 95% t-interval across the
    shared tasks, "all_tasks": its mean over all its tasks}. Runs whose held-out draws
    differ are not compared (their task indices need not name the same targets)."""
    rows = []
    for panel in plan.panels:
        for seed in plan.scale.seeds:
            trained = []
            for p in plan.runs:
                run = records.get(p.number)
                if p.panel.task != panel.task or p.seed != seed or run is None:
                    continue
                logged = logged_tasks(run)
                if logged:
                    trained.append((p, run, task_returns(run, fraction), logged))
            if len({frozenset(logged) for *_, logged in trained}) < 2:
                continue
            draws = {repr(_held_out(run)) for _, run, *_ in trained}
            if len(draws) > 1:
                continue
            shared = sorted(set.intersection(*(set(r) for _, _, r, _ in trained)))
            if not shared:
                continue
            for p, run, returns, logged in trained:
                values = np.asarray([returns[t] for t in shared], dtype=np.float64)
                mean, half = mean_ci(values)
                rows.append({"panel": panel.task, "label": p.entry.label, "seed": seed,
                             "run_id": run.id, "tasks": len(logged), "shared": shared,
                             "per_task": values.tolist(), "mean": float(mean),
                             "ci95": float(half),
                             "all_tasks": float(np.mean(list(returns.values())))})
    return rows


def shared_task_table(rows: list[dict]) -> str:
    """Markdown of :func:`shared_task_rows`."""
    out = ["| panel | run | seed | trained on | return on the shared tasks | per shared task | "
           "on all its tasks |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        names = ", ".join(f"{t}: {v:.1f}" for t, v in zip(r["shared"], r["per_task"]))
        out.append(f"| {r['panel']} | {r['label']} | {r['seed']} | {r['tasks']} tasks | "
                   f"{fmt(r['mean'], r['ci95'])} ({len(r['shared'])} tasks) | {names} | "
                   f"{r['all_tasks']:.2f} |")
    return "\n".join(out)
