"""The lines of a report, computed from recorded runs (``iwx.report``), one task at a time.

Adaptation lines (figures 2-3): per-run data are the
``adapt/<variant>/return/task_NN`` metrics (each already the mean over the run's
adaptation seeds), pooled into units (:func:`iwx.results.stats.pool`: a task when
every run of the line adapted on the same tasks, else each (run, task)),
smoothed per unit with appendix A.2's trailing window for the run's task
(:data:`PAPER_WINDOWS`), mean ± 95% CI across units.

Training lines (figure 1): each run's ``train/return`` against ``train/env_steps``
(learner updates where a run lacks them), averaged in chunks of the logging
period and smoothed over min(200, chunks / 10) chunks, each run along its own
chunks; then at each chunk the mean ± 95% CI across the runs that reached it. Runs
of different lengths are each drawn to their own end (never cut to the shortest):
a line records how many runs each point averages (``n``) and where runs end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from iwx.experiment.store import RecordedRun
from iwx.results.groups import binding_value, task_of
from iwx.results.stats import (mean_ci, mean_ci_present, pool, pool_by_split, rolling_mean,
                               same_split, trailing_chunk_mean, unit_values)

#: Appendix A.2: rolling window of the adaptation curves per task family.
PAPER_WINDOWS = {"point_nav": 5, "cheetah_vel": 1, "go_to_ring": 30, "move_box": 30,
                 "reach": 30, "gtt": 30}
TRAIN_MAX_WINDOW = 200   # appendix A.1's rolling window, in chunks
TRAIN_FINAL = 10         # logged values averaged for a run's final training return
ADAPT_TASK = re.compile(r"^adapt/(?P<variant>.+)/return/task_(?P<task>\d+)$")
ORACLE = "goal-knowing oracle"


@dataclass
class Line:
    """One plotted curve and the unit matrix behind it (``raw``: unsmoothed)."""

    label: str
    group: str
    variant: str
    x: list[float]
    mean: list[float]
    ci95: list[float]
    units: int
    runs: int
    window: int
    unit: str
    raw: np.ndarray = field(repr=False)
    run_ids: list[int] = field(default_factory=list)
    exploration_episodes: int | None = None
    bin: float | None = None
    task: str = ""
    n: list[int] | None = None          # runs averaged at each x (training lines)
    ends: list[dict] = field(default_factory=list)   # {run, x}: runs ending before the last x

    def series(self) -> dict:
        """What report.json records of this line: exactly what the figure plots."""
        keep = ("task", "label", "group", "variant", "x", "mean", "ci95", "units", "runs",
                "window", "unit", "run_ids")
        out = {k: getattr(self, k) for k in keep}
        if self.n is not None:
            out["n"] = self.n
            out["ends"] = self.ends
        if self.bin is not None:
            out["bin"] = self.bin
        if self.exploration_episodes is not None:
            out["exploration_episodes"] = self.exploration_episodes
        return out


def task_curves(run: RecordedRun) -> dict[str, dict[int, dict[float, float]]]:
    """{variant: {task: {episode: return}}} from ``adapt/<variant>/return/task_NN``."""
    out: dict[str, dict[int, dict[float, float]]] = {}
    for name, (steps, values) in run.metrics.items():
        match = ADAPT_TASK.match(name)
        if match:
            out.setdefault(match["variant"], {})[int(match["task"])] = \
                dict(zip(steps.tolist(), values.tolist()))
    return out


def same_tasks(runs: Sequence[RecordedRun]) -> bool:
    """Did all ``runs`` adapt on the same tasks (``results.json``'s ``test_goals``; a run
    without them counts as different)?"""
    return same_split([(run.results() or {}).get("test_goals") for run in runs])


def exploration_of(runs: Sequence[RecordedRun]) -> int | None:
    """Exploration episodes of the runs (``results.json``, else the
    ``Adaptation.exploration_episodes`` binding); None when unknown or mixed."""
    found = set()
    for run in runs:
        results = run.results() or {}
        value = results.get("exploration_episodes")
        if value is None:
            ok, value = binding_value(run, "Adaptation.exploration_episodes")
            if not ok:
                return None
        found.add(int(value))
    return found.pop() if len(found) == 1 else None


def default_window(runs: Sequence[RecordedRun]) -> int:
    """Appendix A.2's window for the runs' recorded task (1 when unknown or mixed)."""
    tasks = {task_of(run) for run in runs}
    return PAPER_WINDOWS.get(tasks.pop(), 1) if len(tasks) == 1 else 1


def unit_matrix(runs: Sequence[RecordedRun], curves: Sequence[dict[int, dict[float, float]]]
                ) -> tuple[np.ndarray, np.ndarray, str]:
    """(episodes, [units, episodes] returns, unit description) of one variant.

    Episodes are those every run logged for every task. Same tasks in every run:
    a unit is a task, its value the mean over runs; else one unit per (run, task).
    """
    steps = None
    for per_task in curves:
        for curve in per_task.values():
            steps = set(curve) if steps is None else steps & set(curve)
    x = np.array(sorted(steps or ()), dtype=np.float64)
    tasks = [sorted(per_task) for per_task in curves]
    shared = same_tasks(runs) and all(t == tasks[0] for t in tasks)
    per_run = [np.asarray([[per_task[t][s] for s in x.tolist()] for t in sorted(per_task)],
                          dtype=np.float64).reshape(len(per_task), 1, len(x))
               for per_task in curves]
    matrix = unit_values(pool(per_run, shared))
    return x, matrix.reshape(-1, len(x)), "task" if shared else "(run, task)"


def adaptation_lines(groups: dict[str, list[RecordedRun]], window: int | None,
                     variants: Sequence[str] = (), task: str = "") -> list[Line]:
    """One :class:`Line` per (group, variant) that logged per-task adaptation returns;
    ``groups`` are the groups of one task (labelled by the variant alone when one)."""
    lines = []
    one_group = len(groups) == 1
    for group, runs in groups.items():
        curves = {run.id: task_curves(run) for run in runs}
        order: list[str] = []
        for run in runs:   # the pipeline's variant order (results.json), then the rest
            order += [v for v in ((run.results() or {}).get("returns") or {}) if v not in order]
        for run in runs:
            order += sorted(v for v in curves[run.id] if v not in order)
        for variant in order:
            if variants and variant not in variants:
                continue
            having = [run for run in runs if variant in curves[run.id]]
            if not having:
                continue
            x, raw, unit = unit_matrix(having, [curves[r.id][variant] for r in having])
            if raw.size == 0:
                continue
            w = window if window is not None else default_window(having)
            mean, half = mean_ci(rolling_mean(raw, w), axis=0)
            lines.append(Line(
                label=variant if one_group else f"{group} · {variant}", group=group,
                variant=variant, x=[int(e) if e.is_integer() else e for e in x.tolist()],
                mean=mean.tolist(), ci95=half.tolist(),
                units=raw.shape[0], runs=len(having), window=w, unit=unit, raw=raw,
                run_ids=[r.id for r in having], exploration_episodes=exploration_of(having),
                task=task))
    return lines


def training_curve(run: RecordedRun) -> tuple[np.ndarray, np.ndarray, str] | None:
    """(x, train/return, x name) of one run: x = ``train/env_steps`` at the same learner
    step, or learner updates where env steps were not logged; None without training."""
    if "train/return" not in run.metrics:
        return None
    steps, values = run.metrics["train/return"]
    if "train/env_steps" in run.metrics:
        env_steps, env_values = run.metrics["train/env_steps"]
        at = dict(zip(env_steps.tolist(), env_values.tolist()))
        if all(s in at for s in steps.tolist()):
            return np.array([at[s] for s in steps.tolist()], np.float64), values, "env steps"
    return steps.astype(np.float64), values, "learner updates"


def logging_period(curves: Sequence[np.ndarray]) -> float:
    """The largest median spacing of logged x among runs (the default chunk width)."""
    spacings = [float(np.median(np.diff(x))) for x in curves if len(x) > 1]
    spacings = [s for s in spacings if s > 0]
    return max(spacings) if spacings else 1.0


def binned(x: np.ndarray, values: np.ndarray, width: float) -> dict[float, float]:
    """Appendix A.1: mean value per chunk ((k-1)·width, k·width], keyed by its end."""
    chunks = np.ceil(np.round(x / width, 9)).astype(np.int64)
    out = {}
    for k in np.unique(chunks):
        out[float(k * width)] = float(np.mean(values[chunks == k]))
    return out


def training_lines(groups: dict[str, list[RecordedRun]], window: int | None,
                   width: float | None, task: str = "") -> tuple[list[Line], str]:
    """One :class:`Line` per group of one task: chunked, smoothed training return, mean ±
    CI across the runs that reach each chunk (each run drawn to its own end)."""
    curves = {g: [(r, c) for r in runs if (c := training_curve(r)) is not None]
              for g, runs in groups.items()}
    found = [c for per in curves.values() for _, c in per]
    if not found:
        return [], ""
    x_name = "env steps"
    if any(name != "env steps" for _, _, name in found):   # one x axis for the figure
        x_name = "learner updates"
        curves = {g: [(r, (r.metrics["train/return"][0].astype(np.float64), c[1], x_name))
                      for r, c in per] for g, per in curves.items()}
    width = width or logging_period([c[0] for per in curves.values() for _, c in per])
    lines = []
    for group, per in curves.items():
        chunked = [(r, binned(x, values, width)) for r, (x, values, _) in per if len(x)]
        if not chunked:
            continue
        xs = sorted(set().union(*(chunks for _, chunks in chunked)))
        w = window if window is not None else min(TRAIN_MAX_WINDOW, max(1, len(xs) // 10))
        column = {k: i for i, k in enumerate(xs)}
        numbers = [round(k / width) for k in xs]            # chunk k ends at k·width
        raw = np.full((len(chunked), len(xs)), np.nan)      # [runs, chunks], NaN: not reached
        smoothed = raw.copy()
        ends = []
        for row, (r, chunks) in enumerate(chunked):
            keys = sorted(chunks)
            at = [column[k] for k in keys]
            raw[row, at] = [chunks[k] for k in keys]
            # by chunk position: a chunk the run logged nothing in still gets the mean of
            # its logged chunks among the last w (it stays in the CI there)
            smoothed[row] = trailing_chunk_mean([round(k / width) for k in keys],
                                                raw[row, at], w, numbers)
            if keys[-1] < xs[-1]:
                ends.append({"run": r.id, "x": keys[-1]})
        mean, half, n = mean_ci_present(smoothed)
        lines.append(Line(label=group, group=group, variant="train/return", x=xs,
                          mean=mean.tolist(), ci95=half.tolist(), units=len(chunked),
                          runs=len(chunked), window=w, unit="run", raw=raw,
                          run_ids=[r.id for r, _ in chunked], bin=width, task=task,
                          n=n.tolist(), ends=sorted(ends, key=lambda e: e["x"])))
    return lines, x_name


def final_training(runs: Sequence[RecordedRun]) -> tuple[float, float, int] | None:
    """(mean, 95% CI half-width, runs) of each run's mean of its last 10 training returns."""
    finals = [float(np.mean(r.metrics["train/return"][1][-TRAIN_FINAL:])) for r in runs
              if "train/return" in r.metrics and len(r.metrics["train/return"][1])]
    if not finals:
        return None
    m, h = mean_ci(np.array(finals))
    return float(m), float(h), len(finals)


def references(runs: Sequence[RecordedRun]) -> list[tuple[str, np.ndarray, list[int]]]:
    """(name, return per task, ids of the runs that recorded it) of the reference policies
    in the runs' ``results.json``: the goal-knowing oracle and the lower baseline (by its
    name). Runs that adapted on the same tasks are averaged per task, distinct task sets
    concatenated. Runs that recorded none are left out (the caller says how many did)."""
    found: dict[str, list[tuple[list, list, int]]] = {}
    for run in runs:
        res = run.results() or {}
        goals = res.get("test_goals")
        if goals is None:
            continue
        if res.get("oracle") is not None:
            found.setdefault(ORACLE, []).append((res["oracle"], goals, run.id))
        baseline = res.get("baseline")
        if isinstance(baseline, dict) and baseline.get("returns") is not None:
            found.setdefault(str(baseline.get("name") or "baseline"), []).append(
                (baseline["returns"], goals, run.id))
    return [(name, pool_by_split([v for v, _, _ in got], [g for _, g, _ in got]),
             [i for _, _, i in got]) for name, got in found.items()]
