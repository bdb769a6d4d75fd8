"""A report of recorded runs: select, group, compute the lines, write figures and tables.

``iwx.report`` parses its command line into a :class:`ReportRequest` and calls
:func:`write_report`; the module docstring of ``iwx/report.py`` says how units,
smoothing and the training chunks are chosen (:mod:`iwx.results.curves`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from iwx.experiment.store import RecordedRun, load_runs
from iwx.results import curves, figures
from iwx.results.curves import Line
from iwx.results.groups import ReportError, group_runs, task_of
from iwx.results.stats import headline, mean_ci
from iwx.results.tables import fmt

LAST = 3   # appendix A.2: the headline averages the last 3 episodes

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


@dataclasses.dataclass
class Report:
    """Everything a report shows: the selected runs, their groups and the plotted lines."""

    request: ReportRequest
    runs: list[RecordedRun]
    groups: dict[str, list[RecordedRun]]
    adapt: list[Line]
    train: list[Line]
    x_name: str
    title: str
    oracle: tuple[float, float] | None   # mean ± CI of the goal-knowing oracle, one task only


def selection_text(req: ReportRequest) -> str:
    parts = []
    if req.sweep:
        parts.append(f"sweep {req.sweep!r}")
    if req.tags:
        parts.append(f"tag{'s' if len(req.tags) > 1 else ''} {' | '.join(req.tags)}")
    if req.runs:
        parts.append(f"run ids {' '.join(map(str, req.runs))}")
    status = "any status" if "any" in req.statuses else f"status {'/'.join(req.statuses)}"
    return ", ".join(parts + [status]) if parts else f"every run, {status}"


def default_out(req: ReportRequest) -> Path:
    name = req.sweep or ("+".join(req.tags) if req.tags else "runs")
    return Path("reports") / re.sub(r"[^\w.+-]", "_", name)


def select(req: ReportRequest) -> list[RecordedRun]:
    statuses = None if "any" in req.statuses else list(req.statuses)
    runs = load_runs(req.source, sweep=req.sweep, tags=list(req.tags), run_ids=list(req.runs),
                     statuses=statuses)
    if not runs:
        raise ReportError(f"no runs selected: searched {req.source} for {selection_text(req)}")
    return runs


def build(req: ReportRequest) -> Report:
    """Select, group and compute every line (no files written)."""
    runs = select(req)
    groups = group_runs(runs, req.group_by)
    adapt = curves.adaptation_lines(groups, req.window, req.variants)
    train_window = req.train_window if req.train_window is not None else req.window
    train, x_name = curves.training_lines(groups, train_window, req.train_bin)
    if not adapt and not train:
        raise ReportError(f"the {len(runs)} selected runs ({selection_text(req)}) logged "
                          f"neither adapt/<variant>/return/task_NN nor train/return"
                          + (f" for variants {list(req.variants)}" if req.variants else ""))
    tasks = sorted({t for r in runs if (t := task_of(r))})
    title = req.title or (f"{', '.join(tasks) or 'runs'}: {len(runs)} runs "
                          f"({selection_text(req)}), grouped by {req.group_by}")
    units = curves.oracle_units(runs) if adapt and len(tasks) == 1 else None
    oracle = None if units is None else tuple(float(v) for v in mean_ci(units))
    return Report(req, runs, groups, adapt, train, x_name, title, oracle)


def line_headline(line: Line) -> tuple[str, str]:
    """Appendix A.2's numbers of a line (unsmoothed, per unit), formatted: the mean of the
    last 3 episodes, and of the episodes after exploration, each ± 95% CI across units."""
    h = headline(line.raw, line.exploration_episodes, LAST, x=line.x)
    return (fmt(h["last3_mean"], h["last3_ci95"]),
            fmt(h["post_exploration_mean"], h["post_exploration_ci95"]))


def table(rep: Report) -> str:
    rows = ["| line | units | unit | runs | window | last 3 episodes | after exploration "
            "| final training return |", "|---|---|---|---|---|---|---|---|"]
    finals = {g: curves.final_training(runs) for g, runs in rep.groups.items()}
    for line in rep.adapt:
        last, after = line_headline(line)
        final = finals.get(line.group)
        rows.append(f"| {line.label} | {line.units} | {line.unit} | {line.runs} | "
                    f"{line.window} | {last} | {after} | "
                    f"{fmt(*final[:2]) if final else '—'} |")
    plotted = {line.group for line in rep.adapt}
    for line in rep.train:   # groups with training only (multi-task runs)
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
    return "unit = " + " / ".join(sorted({line.unit for line in lines}))


def write_figures(rep: Report, out: Path) -> list[Path]:
    written = []
    if rep.adapt:
        explore = {line.exploration_episodes for line in rep.adapt}
        note = (f"95% CI (Student t) across units, {units_note(rep.adapt)}; "
                f"{windows_note(rep.adapt, 'episodes')} (appendix A.2)")
        written += figures.plot_curves(
            rep.adapt, [out / "adaptation.png", out / "adaptation.svg"],
            xlabel="adaptation episode", ylabel="mean return during adaptation",
            title=rep.title, note=note, exploration=explore.pop() if len(explore) == 1 else None,
            oracle=rep.oracle[0] if rep.oracle else None, integer_x=True)
    if rep.train:
        note = (f"95% CI across runs; chunks of {rep.train[0].bin:g} {rep.x_name}, "
                f"{windows_note(rep.train, 'chunks')} (appendix A.1, rescaled)")
        written += figures.plot_curves(
            rep.train, [out / "training.png", out / "training.svg"], xlabel=rep.x_name,
            ylabel="training return (mean over training tasks)", title=rep.title, note=note)
    return written


def markdown(rep: Report, text: str) -> str:
    """report.md: what was selected, how the curves were made, the table."""
    req = rep.request
    md = [f"# {rep.title}", "",
          f"Source `{req.source}`: {len(rep.runs)} runs "
          f"({', '.join(str(r.id) for r in rep.runs)}), {selection_text(req)}; lines grouped "
          f"by `{req.group_by}`.", ""]
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
               f"runs; final training return = each run's mean of its last "
               f"{curves.TRAIN_FINAL} logged values.", "", "![training](training.png)", ""]
    md += [text, ""]
    if rep.oracle is not None:
        md += [f"Goal-knowing oracle (results.json): {fmt(*rep.oracle)} per episode.", ""]
    return "\n".join(md)


def write_report(req: ReportRequest) -> tuple[Report, Path, str, list[Path]]:
    """Build the report and write its files: (report, folder, table text, files written)."""
    rep = build(req)
    out = Path(req.out) if req.out else default_out(req)
    out.mkdir(parents=True, exist_ok=True)
    written = write_figures(rep, out)
    text = table(rep)
    (out / "report.md").write_text(markdown(rep, text))
    (out / "report.json").write_text(json.dumps({
        "source": str(req.source), "selection": selection_text(req),
        "group_by": req.group_by, "runs": [r.id for r in rep.runs], "title": rep.title,
        "adaptation": [line.series() for line in rep.adapt],
        "training": [line.series() for line in rep.train], "training_x": rep.x_name or None,
        "oracle": rep.oracle, "table": text}, indent=1))
    return rep, out, text, written + [out / "report.md", out / "report.json"]
