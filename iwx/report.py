"""Turn recorded runs into the paper's figures: ``python -m iwx.report SOURCE``.

    python -m iwx.report runs --tag figure2
    python -m iwx.report mongodb://127.0.0.1:27017/iwx --sweep a1b2 --group-by IWPA.alpha
    python -m iwx.report runs --runs 3 4 7 --group-by config --window 1 --out reports/mine

SOURCE is a Sacred file store or a ``mongodb://`` URL (read by
:mod:`iwx.experiment.store`, so both give the same report). Runs are selected by
``--sweep`` (``meta.sweep.id``), ``--tag`` (any of them) and ``--runs`` (ids), by
default only COMPLETED ones, and grouped by ``--group-by``: ``method`` (the gin
file's stem without its task, e.g. ``iwpl``), ``config`` (a sweep trial's
parameters) or a binding name such as ``IWPA.alpha`` read from each run's
``config.bindings``.

**Adaptation figure** (the paper's figures 2-3): mean return against adaptation
episode, one line per (group, variant), 95% CI shaded (Student t across units).
Per-run data are the ``adapt/<variant>/return/task_NN`` metrics (each already the
mean over the run's adaptation seeds), so a MongoDB source needs no artifacts.
A *unit* is what the CI is taken across, as in ``iwx.compare.pool``: when every
run of a line adapted on the same tasks (their ``results.json`` ``test_goals``
are equal), a unit is a task and its value the mean over the runs (appendix
A.2: 30 tasks, each averaged over seeds); otherwise (no ``results.json``, or
each run seed drew its own split, the default) every (run, task) is a unit.
Smoothing (appendix A.2): a trailing rolling mean along episodes (min periods
1), per unit before the mean and CI; the window defaults to the paper's for the
task named by the gin file: sparse 2D navigation 5, half-cheetah 1 (none), Go
To Ring / Move Box / Reach / GTT 30 (figure 3); other tasks 1. With fewer
episodes than the window this is the running mean since episode 1. The
headline numbers (last 3 episodes, after exploration) are means of the
*unsmoothed* returns per unit, as appendix A.2 defines them.

**Training figure** (figure 1, when runs logged ``train/return``): mean training
return against environment steps (``train/env_steps`` logged at the same
learner step; learner updates when a run lacks it), one line per group, 95% CI
across runs. Appendix A.1 averages the return in chunks of 200k timesteps and
rolls a window of 200 chunks over tens of millions of steps; at this project's
budgets (a few hundred logged points) that would flatten every curve, so the
default here is: chunk width = the logging period (the largest median spacing
of ``train/env_steps`` among the runs, so each chunk holds about one logged
value of every run; ``--train-bin`` overrides) and a rolling window of
min(200, a tenth of the chunks) chunks (``--train-window``, or ``--window``,
overrides). Chunks are labelled by their end, kept where every run of the group
has data, smoothed per run, then averaged. The table's final training return is
each run's mean of its last 10 logged values (as ``iwx.run`` reports it), mean
± CI across the group's runs.

Writes to ``--out`` (default ``reports/<sweep | tags | runs>``): ``adaptation.png``
/ ``.svg``, ``training.png`` / ``.svg`` (when there is training data),
``report.md`` (the table) and ``report.json`` (exactly the plotted series).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")  # this process never renders

import numpy as np  # noqa: E402

from iwx.analysis import mean_ci  # noqa: E402
from iwx.experiment.store import RecordedRun, StoreError, load_runs  # noqa: E402

#: Appendix A.2: rolling window of the adaptation curves per task family.
PAPER_WINDOWS = {"point_nav": 5, "cheetah_vel": 1, "go_to_ring": 30, "move_box": 30,
                 "reach": 30, "gtt": 30}
LAST = 3                 # appendix A.2: the headline averages the last 3 episodes
TRAIN_MAX_WINDOW = 200   # appendix A.1's rolling window, in chunks
TRAIN_FINAL = 10         # logged values averaged for a run's final training return
ADAPT_TASK = re.compile(r"^adapt/(?P<variant>.+)/return/task_(?P<task>\d+)$")


class ReportError(Exception):
    """A request the report cannot serve (printed, exit status 2)."""


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.report",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE",
                   help="Sacred file store (e.g. runs) or mongodb://host:port/DB")
    p.add_argument("--sweep", default=None, metavar="ID", help="runs of this sweep only")
    p.add_argument("--tag", nargs="+", action="extend", default=[], metavar="T",
                   help="runs carrying any of these tags (iwx.run --tag)")
    p.add_argument("--runs", nargs="+", action="extend", default=[], metavar="ID",
                   help="these run ids only")
    p.add_argument("--status", nargs="+", default=["COMPLETED"], metavar="S",
                   help="Sacred statuses kept (default COMPLETED; 'any' for all)")
    p.add_argument("--group-by", default="method", metavar="method|config|BINDING",
                   help="line groups: method (gin file stem without its task; default), "
                        "config (a sweep trial's parameters) or a binding, e.g. IWPA.alpha")
    p.add_argument("--variant", nargs="+", action="extend", default=[], metavar="NAME",
                   help="adaptation variants to plot (default: all)")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="rolling window (episodes; also training chunks unless "
                        "--train-window): default the paper's per task (appendix A.2)")
    p.add_argument("--train-window", type=int, default=None, metavar="N",
                   help="rolling window of the training curves in chunks "
                        "(default min(200, chunks/10))")
    p.add_argument("--train-bin", type=float, default=None, metavar="STEPS",
                   help="chunk width of the training curves in env steps "
                        "(default: the logging period)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default reports/<sweep or tag or 'runs'>)")
    p.add_argument("--title", default=None, metavar="TEXT", help="figure title")
    args = p.parse_args(argv)
    for name in ("window", "train_window"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.train_bin is not None and args.train_bin <= 0:
        p.error("--train-bin must be positive")
    return args


# --------------------------------------------------------------------------- groups

def task_of(run: RecordedRun) -> str | None:
    """The suite task a run's gin files name (longest prefix of a file stem), or None."""
    from iwx.envs.suite import SUITE

    for gin_file in run.config.get("gin_files") or []:
        stem = Path(gin_file).stem
        for task in sorted(SUITE, key=len, reverse=True):
            if stem == task or stem.startswith(task + "_"):
                return task
    return None


def method_of(run: RecordedRun) -> str:
    """The gin file stem(s) without the task prefix, e.g. 'iwpl' (``iwx.compare``'s label)."""
    from iwx.compare import method_label

    files = run.config.get("gin_files") or []
    return "+".join(method_label(f) for f in files) or "(no gin file)"


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def binding_value(run: RecordedRun, name: str) -> tuple[bool, object]:
    """(found, value) of binding ``[scope/]Configurable.param`` (or a macro ``NAME``) in
    the run's ``config.bindings`` (``{"scope/Configurable": {"param": value}}``)."""
    bindings = run.config.get("bindings") or {}
    scope, _, rest = name.rpartition("/")
    if "." in rest:
        configurable, param = rest.rsplit(".", 1)
        key = configurable.rsplit(".", 1)[-1]
        key = f"{scope}/{key}" if scope else key
    else:  # a macro: gin records GAMMA = 0.9 as {"GAMMA/macro": {"value": 0.9}}
        key, param = f"{name}/macro", "value"
    params = bindings.get(key)
    if isinstance(params, dict) and param in params:
        return True, params[param]
    return False, None


def known_bindings(runs: Sequence[RecordedRun]) -> list[str]:
    names = set()
    for run in runs:
        for key, params in (run.config.get("bindings") or {}).items():
            if key.endswith("/macro"):
                names.add(key[:-len("/macro")])
            elif isinstance(params, dict):
                names.update(f"{key}.{p}" for p in params)
    return sorted(names)


def group_runs(runs: Sequence[RecordedRun], group_by: str) -> dict[str, list[RecordedRun]]:
    """{group label: runs}, groups in first-appearance order (by value for a binding)."""
    keyed: list[tuple[str, object, RecordedRun]] = []
    if group_by in ("method", "config"):
        for run in runs:
            sweep = run.sweep
            if group_by == "config" and sweep and sweep.get("params"):
                label = ", ".join(f"{k}={format_value(v)}" for k, v in sweep["params"].items())
            else:
                label = method_of(run)
            keyed.append((label, None, run))
    else:
        found = [binding_value(run, group_by) for run in runs]
        if not any(ok for ok, _ in found):
            import difflib

            names = known_bindings(runs)
            close = difflib.get_close_matches(group_by, names, n=5, cutoff=0.5)
            raise ReportError(
                f"--group-by {group_by!r}: no selected run has this binding in "
                f"config.bindings (use method, config, or a binding such as "
                f"{', '.join(close or names[:5]) or 'IWPA.alpha'})")
        for run, (ok, value) in zip(runs, found):
            label = f"{group_by}={format_value(value)}" if ok else f"{group_by} unbound"
            order = (0, value, "") if isinstance(value, (int, float)) and ok \
                else (1, 0, format_value(value) if ok else "~")
            keyed.append((label, order, run))
        keyed.sort(key=lambda item: item[1])
    groups: dict[str, list[RecordedRun]] = {}
    for label, _, run in keyed:
        groups.setdefault(label, []).append(run)
    return groups


# --------------------------------------------------------------------------- smoothing

def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling mean along the last axis, min periods 1: element e is the mean
    of elements max(0, e - window + 1) .. e (appendix A.1 / A.2 smoothing)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1:
        return values.copy()
    csum = np.cumsum(values, axis=-1)
    n = values.shape[-1]
    idx = np.arange(n)
    lo = idx - window
    upper = csum
    lower = np.where(lo >= 0, np.take(csum, np.clip(lo, 0, None), axis=-1), 0.0)
    count = np.minimum(idx + 1, window)
    return (upper - lower) / count


# --------------------------------------------------------------------------- lines

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

    def series(self) -> dict:
        """What report.json records of this line: exactly what the figure plots."""
        keep = ("label", "group", "variant", "x", "mean", "ci95", "units", "runs", "window",
                "unit", "run_ids")
        out = {k: getattr(self, k) for k in keep}
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
    """Did all ``runs`` adapt on the same tasks? Compared on ``results.json``'s
    ``test_goals``; a run without them counts as different (``iwx.compare.pool``)."""
    if len(runs) < 2:
        return True
    goals = []
    for run in runs:
        results = run.results()
        if not results or results.get("test_goals") is None:
            return False
        goals.append(np.asarray(results["test_goals"], dtype=np.float64))
    return all(g.shape == goals[0].shape and np.allclose(g, goals[0]) for g in goals)


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
    """Appendix A.2's window for the runs' task (1 when unknown or mixed)."""
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
    rows = [[[per_task[t][s] for s in x.tolist()] for t in sorted(per_task)]
            for per_task in curves]
    if shared:
        matrix = np.mean(np.asarray(rows, dtype=np.float64), axis=0)
        unit = "task"
    else:
        matrix = np.asarray([r for run_rows in rows for r in run_rows], dtype=np.float64)
        unit = "(run, task)"
    return x, matrix.reshape(-1, len(x)), unit


def adaptation_lines(groups: dict[str, list[RecordedRun]], window: int | None,
                     variants: Sequence[str] = ()) -> list[Line]:
    """One :class:`Line` per (group, variant) that logged per-task adaptation returns."""
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
                run_ids=[r.id for r in having], exploration_episodes=exploration_of(having)))
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
                   width: float | None) -> tuple[list[Line], str]:
    """One :class:`Line` per group: chunked, smoothed training return, CI across runs."""
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
        if not per:
            continue
        chunks = [binned(x, values, width) for _, (x, values, _) in per]
        common = sorted(set.intersection(*(set(ch) for ch in chunks)))
        if not common:
            continue
        raw = np.array([[ch[k] for k in common] for ch in chunks])
        w = window if window is not None else min(TRAIN_MAX_WINDOW, max(1, len(common) // 10))
        mean, half = mean_ci(rolling_mean(raw, w), axis=0)
        lines.append(Line(label=group, group=group, variant="train/return", x=common,
                          mean=mean.tolist(), ci95=half.tolist(), units=len(per),
                          runs=len(per), window=w, unit="run", raw=raw,
                          run_ids=[r.id for r, _ in per], bin=width))
    return lines, x_name


def final_training(runs: Sequence[RecordedRun]) -> tuple[float, float, int] | None:
    """(mean, 95% CI half-width, runs) of each run's mean of its last 10 training returns."""
    finals = [float(np.mean(r.metrics["train/return"][1][-TRAIN_FINAL:])) for r in runs
              if "train/return" in r.metrics and len(r.metrics["train/return"][1])]
    if not finals:
        return None
    m, h = mean_ci(np.array(finals))
    return float(m), float(h), len(finals)


def oracle_units(runs: Sequence[RecordedRun]) -> np.ndarray | None:
    """The goal-knowing oracle's return per task (``results.json``): runs that adapted on
    the same tasks are averaged per task, distinct task sets concatenated."""
    per_split: dict[bytes, list[np.ndarray]] = {}
    for run in runs:
        res = run.results() or {}
        if res.get("oracle") is None or res.get("test_goals") is None:
            return None
        goals = np.round(np.asarray(res["test_goals"], np.float64), 9)
        per_split.setdefault(goals.tobytes() + str(goals.shape).encode(), []).append(
            np.asarray(res["oracle"], np.float64))
    if not per_split:
        return None
    return np.concatenate([np.mean(found, axis=0) for found in per_split.values()])


# --------------------------------------------------------------------------- outputs

def fmt(mean: float, half: float) -> str:
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.2f} ± {half:.2f}"


def headline(line: Line) -> tuple[str, str]:
    """Appendix A.2's numbers of a line (unsmoothed, per unit): the mean of the last 3
    episodes, and of the episodes after exploration, each mean ± 95% CI across units."""
    last = fmt(*map(float, mean_ci(line.raw[:, -LAST:].mean(axis=1))))
    after = "—"
    if line.exploration_episodes is not None:
        keep = np.asarray(line.x) > line.exploration_episodes
        if keep.any():
            after = fmt(*map(float, mean_ci(line.raw[:, keep].mean(axis=1))))
    return last, after


def table(adapt: list[Line], train: list[Line], groups: dict[str, list[RecordedRun]]) -> str:
    rows = ["| line | units | unit | runs | window | last 3 episodes | after exploration "
            "| final training return |", "|---|---|---|---|---|---|---|---|"]
    finals = {g: final_training(runs) for g, runs in groups.items()}
    for line in adapt:
        last, after = headline(line)
        final = finals.get(line.group)
        rows.append(f"| {line.label} | {line.units} | {line.unit} | {line.runs} | "
                    f"{line.window} | {last} | {after} | "
                    f"{fmt(*final[:2]) if final else '—'} |")
    plotted = {line.group for line in adapt}
    for line in train:   # groups with training only (multi-task runs)
        if line.group not in plotted:
            final = finals.get(line.group)
            rows.append(f"| {line.label} | {line.units} | run | {line.runs} | "
                        f"{line.window} | — | — | {fmt(*final[:2]) if final else '—'} |")
    return "\n".join(rows)


def windows_note(lines: list[Line], what: str) -> str:
    ws = sorted({line.window for line in lines})
    if len(ws) == 1:
        w = ws[0]
        return "no smoothing (window 1)" if w == 1 else f"trailing mean over {w} {what}"
    return "trailing mean, " + ", ".join(f"{line.label}: {line.window}" for line in lines)


def units_note(lines: list[Line]) -> str:
    units = sorted({line.unit for line in lines})
    return "unit = " + " / ".join(units)


def plot(lines: list[Line], stem: Path, *, xlabel: str, ylabel: str, title: str, note: str,
         exploration: int | None = None, oracle: float | None = None,
         integer_x: bool = False) -> list[Path]:
    """Mean ± 95% CI per line, PNG and SVG; ``note`` (smoothing, units) under the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(lines) > 4
    fig, ax = plt.subplots(figsize=(9.5 if many else 6.5, 4.4), dpi=120)
    markers = len(lines[0].x) <= 30
    for line in lines:
        x, mean, half = np.asarray(line.x), np.asarray(line.mean), np.asarray(line.ci95)
        ax.plot(x, mean, marker="o" if markers else None, ms=3, label=line.label)
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    if exploration:
        ax.axvspan(0.5, exploration + 0.5, color="grey", alpha=0.1,
                   label="exploration (acting from π0\nwhere a variant has one)")
    if oracle is not None:
        ax.axhline(oracle, color="k", ls="--", lw=1, label="goal-knowing oracle")
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=8)
    if many:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path)
    plt.close(fig)
    return paths


def selection_text(args) -> str:
    parts = []
    if args.sweep:
        parts.append(f"sweep {args.sweep!r}")
    if args.tag:
        parts.append(f"tag{'s' if len(args.tag) > 1 else ''} {' | '.join(args.tag)}")
    if args.runs:
        parts.append(f"run ids {' '.join(map(str, args.runs))}")
    status = "any status" if "any" in args.status else f"status {'/'.join(args.status)}"
    return ", ".join(parts + [status]) if parts else f"every run, {status}"


def default_out(args) -> Path:
    name = args.sweep or ("+".join(args.tag) if args.tag else "runs")
    return Path("reports") / re.sub(r"[^\w.+-]", "_", name)


def select(args) -> list[RecordedRun]:
    statuses = None if "any" in args.status else args.status
    runs = load_runs(args.source, sweep=args.sweep, tags=args.tag, run_ids=args.runs,
                     statuses=statuses)
    if not runs:
        raise ReportError(f"no runs selected: searched {args.source} for "
                          f"{selection_text(args)}")
    return runs


@dataclass
class Report:
    """Everything a report shows: the selected runs, their groups and the plotted lines."""

    args: argparse.Namespace
    runs: list[RecordedRun]
    groups: dict[str, list[RecordedRun]]
    adapt: list[Line]
    train: list[Line]
    x_name: str
    title: str
    oracle: tuple[float, float] | None   # mean ± CI of the goal-knowing oracle, one task only


def build(args) -> Report:
    """Select, group and compute every line (no files written)."""
    runs = select(args)
    groups = group_runs(runs, args.group_by)
    adapt = adaptation_lines(groups, args.window, args.variant)
    train_window = args.train_window if args.train_window is not None else args.window
    train, x_name = training_lines(groups, train_window, args.train_bin)
    if not adapt and not train:
        raise ReportError(f"the {len(runs)} selected runs ({selection_text(args)}) logged "
                          f"neither adapt/<variant>/return/task_NN nor train/return"
                          + (f" for variants {args.variant}" if args.variant else ""))
    tasks = sorted({t for r in runs if (t := task_of(r))})
    title = args.title or (f"{', '.join(tasks) or 'runs'}: {len(runs)} runs "
                           f"({selection_text(args)}), grouped by {args.group_by}")
    units = oracle_units(runs) if adapt and len(tasks) == 1 else None
    oracle = None if units is None else tuple(float(v) for v in mean_ci(units))
    return Report(args, runs, groups, adapt, train, x_name, title, oracle)


def write_figures(rep: Report, out: Path) -> list[Path]:
    written = []
    if rep.adapt:
        explore = {line.exploration_episodes for line in rep.adapt}
        note = (f"95% CI (Student t) across units, {units_note(rep.adapt)}; "
                f"{windows_note(rep.adapt, 'episodes')} (appendix A.2)")
        written += plot(rep.adapt, out / "adaptation", xlabel="adaptation episode",
                        ylabel="mean return during adaptation", title=rep.title, note=note,
                        exploration=explore.pop() if len(explore) == 1 else None,
                        oracle=rep.oracle[0] if rep.oracle else None, integer_x=True)
    if rep.train:
        note = (f"95% CI across runs; chunks of {rep.train[0].bin:g} {rep.x_name}, "
                f"{windows_note(rep.train, 'chunks')} (appendix A.1, rescaled)")
        written += plot(rep.train, out / "training", xlabel=rep.x_name,
                        ylabel="training return (mean over training tasks)",
                        title=rep.title, note=note)
    return written


def markdown(rep: Report, text: str) -> str:
    """report.md: what was selected, how the curves were made, the table."""
    args = rep.args
    md = [f"# {rep.title}", "",
          f"Source `{args.source}`: {len(rep.runs)} runs "
          f"({', '.join(str(r.id) for r in rep.runs)}), {selection_text(args)}; lines grouped "
          f"by `{args.group_by}`.", ""]
    if rep.adapt:
        md += ["Adaptation: mean return per adaptation episode, 95% CI (Student t) across "
               f"units; {units_note(rep.adapt)}: a task when every run of the line adapted on "
               "the same tasks (mean over runs), else each (run, task). Curves: "
               f"{windows_note(rep.adapt, 'episodes')} per unit (appendix A.2). The table's "
               f"last-{LAST}-episodes and after-exploration columns use the unsmoothed "
               "returns.", "", "![adaptation](adaptation.png)", ""]
    if rep.train:
        md += [f"Training: training return against {rep.x_name}, averaged in chunks of "
               f"{rep.train[0].bin:g}, {windows_note(rep.train, 'chunks')}, 95% CI across "
               f"runs; final training return = each run's mean of its last {TRAIN_FINAL} "
               "logged values.", "", "![training](training.png)", ""]
    md += [text, ""]
    if rep.oracle is not None:
        md += [f"Goal-knowing oracle (results.json): {fmt(*rep.oracle)} per episode.", ""]
    return "\n".join(md)


def report(args) -> Path:
    """Build the report of ``args``, write its files, print the table; returns the folder."""
    rep = build(args)
    out = Path(args.out) if args.out else default_out(args)
    out.mkdir(parents=True, exist_ok=True)
    written = write_figures(rep, out)
    text = table(rep.adapt, rep.train, rep.groups)
    (out / "report.md").write_text(markdown(rep, text))
    (out / "report.json").write_text(json.dumps({
        "source": str(args.source), "selection": selection_text(args),
        "group_by": args.group_by, "runs": [r.id for r in rep.runs], "title": rep.title,
        "adaptation": [line.series() for line in rep.adapt],
        "training": [line.series() for line in rep.train], "training_x": rep.x_name or None,
        "oracle": rep.oracle, "table": text}, indent=1))
    written += [out / "report.md", out / "report.json"]
    print(f"[iwx.report] {len(rep.runs)} runs from {args.source} ({selection_text(args)}), "
          f"{len(rep.groups)} group(s) by {args.group_by}")
    print("\n" + text + "\n")
    print(f"[iwx.report] wrote {', '.join(str(p) for p in written)}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        report(args)
    except (ReportError, StoreError) as exc:
        print(f"iwx.report: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
