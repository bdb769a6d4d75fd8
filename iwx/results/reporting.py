"""A report of recorded runs: select, group, compute the lines, write figures and tables.

``iwx.report`` parses its command line into a :class:`ReportRequest` and calls
:func:`write_report`; the module docstring of ``iwx/report.py`` says how units,
smoothing and the training chunks are chosen (:mod:`iwx.results.curves`).

Runs of different tasks are never pooled: every line belongs to one task and each
figure has one panel per task (:func:`iwx.results.groups.by_task`); runs of one
task that adapted under different protocols are refused
(:mod:`iwx.results.protocol`). A sweep's shared pretraining run is no group of its
grid: it is drawn in the training figure only, labelled as such
(:func:`iwx.results.groups.sweep_pretraining`). The text (table, report.md) is
:mod:`iwx.results.report_text`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from iwx.experiment.store import RecordedRun, load_runs
from iwx.results import curves, figures, report_text
from iwx.results.curves import ORACLE, Line
from iwx.results.groups import (ReportError, adapted, by_task, group_runs, pretraining_label,
                                sweep_pretraining, task_label)
from iwx.results.protocol import check_one_protocol
from iwx.results.stats import mean_ci

__all__ = ["ReportError", "ReportRequest", "Report", "build", "write_report"]


@dataclasses.dataclass(frozen=True)
class ReportRequest:
    """What to report: the source (a file store or a MongoDB URL), which runs, how."""

    source: str
    sweep: str | None = None
    tags: tuple[str, ...] = ()
    runs: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("COMPLETED",)     # 'any' among them: every status
    group_by: str = "method"
    variants: tuple[str, ...] = ()
    window: int | None = None
    train_window: int | None = None
    train_bin: float | None = None
    out: str | None = None
    title: str | None = None
    tasks: tuple[str, ...] = ()                     # recorded tasks kept (empty: all)


def selection_text(req: ReportRequest) -> str:
    parts = []
    if req.sweep:
        parts.append(f"sweep {req.sweep!r}")
    if req.tags:
        parts.append(f"tag{'s' if len(req.tags) > 1 else ''} {' | '.join(req.tags)}")
    if req.runs:
        parts.append(f"run ids {' '.join(map(str, req.runs))}")
    if req.tasks:
        parts.append(f"task{'s' if len(req.tasks) > 1 else ''} {' | '.join(req.tasks)}")
    status = "any status" if "any" in req.statuses else f"status {'/'.join(req.statuses)}"
    return ", ".join(parts + [status]) if parts else f"every run, {status}"


def default_out(req: ReportRequest) -> Path:
    name = req.sweep or ("+".join(req.tags) if req.tags else "runs")
    if req.tasks:
        name += "-" + "+".join(req.tasks)
    return Path("reports") / re.sub(r"[^\w.+-]", "_", name)


def select(req: ReportRequest) -> list[RecordedRun]:
    """The runs of the request's selection (and of its tasks, when it names some)."""
    statuses = None if "any" in req.statuses else list(req.statuses)
    runs = load_runs(req.source, sweep=req.sweep, tags=list(req.tags), run_ids=list(req.runs),
                     statuses=statuses)
    if req.tasks and runs:
        found = by_task(runs)
        runs = [r for r in runs if task_label(r) in req.tasks]
        if not runs:
            present = ", ".join(f"{t} ({len(rs)} run{'s' if len(rs) > 1 else ''})"
                                for t, rs in found.items())
            raise ReportError(f"no selected run is of task {' | '.join(req.tasks)}: the runs "
                              f"of {req.source} selected otherwise are of {present}")
    if not runs:
        raise ReportError(f"no runs selected: searched {req.source} for {selection_text(req)}")
    return runs


@dataclasses.dataclass
class Reference:
    """A reference return of one task (results.json): mean ± CI across its tasks, and
    how many of the task's adapting runs recorded it."""

    name: str
    mean: float
    ci95: float
    run_ids: list[int]
    of: int

    def as_json(self) -> dict:
        return {"name": self.name, "mean": self.mean, "ci95": self.ci95,
                "run_ids": self.run_ids, "of_runs": self.of}


@dataclasses.dataclass
class Report:
    """Everything a report shows: the selected runs, their groups and the plotted lines,
    every line and group keyed by its task."""

    request: ReportRequest
    runs: list[RecordedRun]
    groups: dict[tuple[str, str], list[RecordedRun]]   # (task, group): runs
    pretraining: list[RecordedRun]                      # sweeps' shared pretraining runs
    adapt: list[Line]
    train: list[Line]
    x_names: dict[str, str]                             # task: training x axis
    title: str
    references: dict[str, list[Reference]]              # task: oracle / baseline

    @property
    def tasks(self) -> list[str]:
        return list(dict.fromkeys([t for t, _ in self.groups]
                                  + [task_label(r) for r in self.pretraining]))


def references_of(runs: list[RecordedRun]) -> list[Reference]:
    """The oracle (first) and baselines the runs recorded, mean ± CI across tasks."""
    found = []
    for name, units, ids in curves.references(runs):
        m, h = mean_ci(units)
        found.append(Reference(name, float(m), float(h), ids, len(runs)))
    return sorted(found, key=lambda ref: ref.name != ORACLE)


def build(req: ReportRequest) -> Report:
    """Select, group per task and compute every line (no files written)."""
    runs = select(req)
    pretraining = sweep_pretraining(runs)
    shared_ids = {r.id for r in pretraining}
    trials = [r for r in runs if r.id not in shared_ids]
    grouped = group_runs(trials, req.group_by) if trials else {}
    groups: dict[tuple[str, str], list[RecordedRun]] = {}
    adapt, train, x_names, references = [], [], {}, {}
    train_window = req.train_window if req.train_window is not None else req.window
    for task, task_runs in by_task(runs).items():
        ids = {r.id for r in task_runs}
        mine = {g: kept for g, members in grouped.items()    # in the order of all groups
                if (kept := [r for r in members if r.id in ids])}
        check_one_protocol(task, [r for group in mine.values() for r in group if adapted(r)])
        groups.update({(task, g): members for g, members in mine.items()})
        lines = curves.adaptation_lines(mine, req.window, req.variants, task=task)
        adapt += lines
        if lines:
            used = {i for line in lines for i in line.run_ids}
            references[task] = references_of([r for r in task_runs if r.id in used])
        shared = {pretraining_label(r): [r] for r in task_runs if r.id in shared_ids}
        lines, x_name = curves.training_lines({**shared, **mine}, train_window, req.train_bin,
                                              task=task)
        train += lines
        if lines:
            x_names[task] = x_name
    if not adapt and not train:
        raise ReportError(f"the {len(runs)} selected runs ({selection_text(req)}) logged "
                          f"neither adapt/<variant>/return/task_NN nor train/return"
                          + (f" for variants {list(req.variants)}" if req.variants else ""))
    tasks = list(by_task(runs))
    title = req.title or (f"{', '.join(tasks)}: {len(runs)} runs ({selection_text(req)}), "
                          f"grouped by {req.group_by}"
                          + ("; one panel per task" if len(tasks) > 1 else ""))
    return Report(req, runs, groups, pretraining, adapt, train, x_names, title, references)


def panel_title(task: str, lines: list[Line]) -> str:
    runs = {i for line in lines for i in line.run_ids}
    return f"task {task}: {len(runs)} run{'s' if len(runs) != 1 else ''}"


def write_figures(rep: Report, out: Path) -> list[Path]:
    written = []
    if rep.adapt:
        panels = []
        for task in rep.tasks:
            lines = [line for line in rep.adapt if line.task == task]
            if not lines:
                continue
            explore = {line.exploration_episodes for line in lines}
            refs = rep.references.get(task, [])
            oracle = next((r.mean for r in refs if r.name == ORACLE), None)
            baseline = next(((r.name, r.mean) for r in refs if r.name != ORACLE), None)
            panels.append(figures.Panel(lines, panel_title(task, lines),
                                        explore.pop() if len(explore) == 1 else None,
                                        oracle, baseline))
        written += figures.plot_panels(
            panels, [out / "adaptation.png", out / "adaptation.svg"],
            xlabel="adaptation episode", ylabel="mean return during adaptation",
            title=rep.title, note=report_text.adaptation_note(rep.adapt), integer_x=True)
    if rep.train:
        x_name = " / ".join(sorted(set(rep.x_names.values())))
        panels = [figures.Panel(lines, panel_title(task, lines), xlabel=rep.x_names[task])
                  for task in rep.tasks
                  if (lines := [line for line in rep.train if line.task == task])]
        written += figures.plot_panels(
            panels, [out / "training.png", out / "training.svg"], xlabel=x_name,
            ylabel="training return (mean over training tasks)", title=rep.title,
            note=report_text.training_note(rep.train, rep.x_names))
    return written


def write_report(req: ReportRequest) -> tuple[Report, Path, str, list[Path]]:
    """Build the report and write its files: (report, folder, table text, files written)."""
    rep = build(req)
    out = Path(req.out) if req.out else default_out(req)
    out.mkdir(parents=True, exist_ok=True)
    written = write_figures(rep, out)
    text = report_text.table(rep)
    (out / "report.md").write_text(report_text.markdown(rep, text, selection_text(req)))
    x_names = set(rep.x_names.values())
    (out / "report.json").write_text(json.dumps({
        "source": str(req.source), "selection": selection_text(req),
        "group_by": req.group_by, "runs": [r.id for r in rep.runs], "title": rep.title,
        "tasks": rep.tasks, "shared_pretraining": [r.id for r in rep.pretraining],
        "adaptation": [line.series() for line in rep.adapt],
        "training": [line.series() for line in rep.train],
        "training_x": (x_names.pop() if len(x_names) == 1 else rep.x_names) or None,
        "references": {t: [r.as_json() for r in refs] for t, refs in rep.references.items()},
        "table": text}, indent=1))
    return rep, out, text, written + [out / "report.md", out / "report.json"]
