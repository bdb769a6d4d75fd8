"""Drawing a figure from its recorded runs, one function per kind of figure (:data:`DRAWERS`).

Kind ``adaptation`` (the paper's figures 2 and 3): one panel per spec panel; one line
per adaptation variant of the panel's runs, labelled by the variant ('Shared Q + IW',
'RL²', ...; '<method> · <variant>' where two runs of a panel adapt with a variant of
the same name); each line is :func:`iwx.results.curves.adaptation_lines` of that
run's seeds: a held-out task's value is its mean over adaptation seeds and run seeds
(each (run seed, task) its own unit when the seeds drew different splits), smoothed
with the scale's trailing window, mean ± 95% CI across units; the exploration
episodes shaded, the task's oracle / lower baseline drawn where recorded. The table
is appendix A.2's: per unit the mean of the last ``last`` unsmoothed episodes (and of
the episodes after exploration), then mean ± 95% CI across units
(:func:`iwx.results.stats.headline`, what ``iwx.report`` tabulates).

Kind ``training`` (the paper's figures 1 and 6): one panel per spec panel, one line per
spec run: ``train/return`` against env steps, cut into chunks of the scale's ``chunk``
env steps (appendix A.1: 200k; default the logging period) and averaged in each, then a
trailing rolling mean over the scale's ``window`` chunks per run, mean ± 95% CI across
the run's seeds (:func:`iwx.results.curves.training_lines`); ``figureN.png`` plots the
return and ``figureN_success.png`` ``train/success`` the same way. Its table
(iwx/figures/finals.py): per seed the mean of its last ``last`` unsmoothed chunks, then
mean ± 95% CI across seeds, for the return and the success rate, beside the env steps
each line's seeds reached (the methods of a panel are meant to share one env-step
budget), and each seed's own final return and rate beside its record id.

Kind ``tasks`` (the paper's figure 5; :func:`frames_figure`): no runs, one rendered
frame per panel (iwx/figures/frames.py), three a row, each titled with the panel's title
and its target in words; every frame is also written on its own (``frames/<task>.png``).

A figure of kind ``adaptation`` also draws the training of its runs that trained
(pretraining / meta-training; From Scratch has none): ``train/success`` (training.png) and
``train/return`` (training_return.png) against env steps, one panel per spec panel,
one line per run of the spec (mean ± CI across its seeds), chunked and smoothed as
``iwx.report``'s training figure (:func:`iwx.results.curves.training_lines`). Where a
panel's pretrainings trained on different sets of tasks of one draw (figure 4's few and
many tasks), their training returns on the tasks they share are tabulated side by side
(iwx/figures/shared_tasks.py): the training side of "do few tasks overfit?".
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from iwx.experiment.store import RecordedRun
from iwx.figures.finals import final_numbers, training_table
from iwx.figures.plan import Plan
from iwx.figures.plateaus import plateau_rows
from iwx.figures.shared_tasks import shared_task_rows
from iwx.figures.spec import PanelSpec, SpecError
from iwx.results import curves, figures, report_text
from iwx.results.curves import ORACLE, Line
from iwx.results.protocol import differences
from iwx.results.reporting import references_of
from iwx.results.stats import headline
from iwx.results.tables import fmt

TRAINING = (("train/success", "training.png", "training success rate"),
            ("train/return", "training_return.png", "training return"))


@dataclasses.dataclass
class PanelDrawing:
    panel: PanelSpec
    lines: list[Line]
    references: list            # iwx.results.reporting.Reference
    exploration: int | None


@dataclasses.dataclass
class Drawing:
    """What a kind's drawer made: the panels' lines, the training lines per metric, the
    table, and the files it wrote."""

    panels: list[PanelDrawing]
    training: dict[str, list[Line]]          # metric: lines (each with .task)
    x_names: dict[str, str]                  # task: the training figure's x axis
    table: str
    files: list[Path]
    kind: str = "adaptation"
    plateaus: list[dict] = dataclasses.field(default_factory=list)   # plateau_rows
    shared_tasks: list[dict] = dataclasses.field(default_factory=list)  # shared_task_rows

    def numbers(self, line: Line, last: int) -> dict:
        """The table's numbers of one of ``panels``' lines, as this kind computes them."""
        return final_numbers(line, last) if self.kind == "training" else \
            line_numbers(line, last)


def draw(plan: Plan, records: dict[int, RecordedRun], out: Path) -> Drawing:
    """Draw ``plan``'s figure from ``records`` ({planned run's number: its record}; the
    runs that did not complete are absent) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    return DRAWERS[plan.figure.kind](plan, records, out)


# --------------------------------------------------------------------------- adaptation

def panel_lines(plan: Plan, panel: PanelSpec, records: dict[int, RecordedRun]) -> list[Line]:
    """The adaptation lines of one panel: each spec run's seeds pooled, per variant (those
    its ``variants`` draw, under the label it gives them), smoothed over the panel's
    window (else the scale's). Two lines of one label are told apart by their runs'
    labels ('IWPL · Shared Q + IW')."""
    lines = []
    for entry in panel.runs:
        if entry.draws_nothing:
            continue
        runs = [records[p.number] for p in plan.of(panel, entry) if p.number in records]
        if not runs:
            continue
        wanted = [] if entry.variants is None else [name for name, _ in entry.variants]
        found = curves.adaptation_lines({entry.label: runs}, panel.window or plan.scale.window,
                                        variants=wanted, task=panel.task)
        for line in found:
            line.variant = entry.shown(line.variant)
        lines += found
    repeated = Counter(line.variant for line in lines)
    for line in lines:
        line.label = (f"{line.group} · {line.variant}" if repeated[line.variant] > 1
                      else line.variant)
    return lines


def drawn_runs(plan: Plan, panel: PanelSpec, records: dict[int, RecordedRun]) -> list:
    """The records of a panel's runs that draw adaptation lines (not ``variants: []``)."""
    return [records[p.number] for p in plan.of(panel)
            if p.number in records and not p.entry.draws_nothing]


def check_protocol(plan: Plan, panel: PanelSpec, runs: list[RecordedRun]) -> None:
    """A panel's runs must share one adaptation protocol (one episode axis)."""
    differ = differences(runs)
    if differ:
        what = "; ".join(f"{w} ({b}): " + "; ".join(f"{v} in runs {ids}" for v, ids in
                                                    values.items())
                         for w, b, values in differ)
        raise SpecError(f"{plan.figure.path}: panel {panel.task} of scale {plan.scale.name!r}:"
                        f" its runs adapted under different protocols ({what}); bind the "
                        "adaptation settings at the scale or the panel, not per run")


def adaptation(plan: Plan, records: dict[int, RecordedRun], out: Path) -> Drawing:
    drawings = []
    for panel in plan.panels:
        runs = drawn_runs(plan, panel, records)
        check_protocol(plan, panel, runs)
        lines = panel_lines(plan, panel, records)
        used = {i for line in lines for i in line.run_ids}
        explore = {line.exploration_episodes for line in lines}
        drawings.append(PanelDrawing(panel, lines,
                                     references_of([r for r in runs if r.id in used]),
                                     explore.pop() if len(explore) == 1 else None))
    files = []
    shown = [d for d in drawings if d.lines]
    if shown:
        all_lines = [line for d in shown for line in d.lines]
        panels = [figures.Panel(d.lines, panel_heading(d.panel, d.lines), d.exploration,
                                next((r.mean for r in d.references if r.name == ORACLE), None),
                                next(((r.name, r.mean) for r in d.references
                                      if r.name != ORACLE), None))
                  for d in shown]
        name = plan.figure.name
        files += figures.plot_panels(
            panels, [out / f"{name}.png", out / f"{name}.pdf"], xlabel="adaptation episode",
            ylabel="mean return on held-out tasks", title=heading(plan),
            note=report_text.adaptation_note(all_lines), integer_x=True)
    training, x_names = training_lines(plan, records)
    files += draw_training(plan, training, x_names, out)
    return Drawing(drawings, training, x_names, table(plan, drawings), files,
                   plateaus=plateau_rows(plan, records),
                   shared_tasks=shared_task_rows(plan, records))


def heading(plan: Plan) -> str:
    return (f"{plan.figure.heading} — scale {plan.scale.name} "
            f"({plan.scale.about})")


def panel_heading(panel: PanelSpec, lines: list[Line]) -> str:
    runs = {i for line in lines for i in line.run_ids}
    return f"{panel.title} (task {panel.task}; {len(runs)} run{'s' * (len(runs) != 1)})"


def line_numbers(line: Line, last: int) -> dict:
    """Appendix A.2's numbers of a line from its unsmoothed units (iwx.results.stats)."""
    return headline(line.raw, line.exploration_episodes, last, x=line.x)


def table(plan: Plan, drawings: list[PanelDrawing]) -> str:
    """Markdown: one row per line (mean ± 95% CI across units of the per-unit mean of the
    last ``last`` episodes, and of the episodes after exploration), then the references."""
    last = plan.figure.last
    rows = [f"| panel | line | units | unit | runs | last {last} episodes | after exploration |",
            "|---|---|---|---|---|---|---|"]
    refs = []
    for d in drawings:
        if not d.lines:
            rows.append(f"| {d.panel.task} | (no completed run) | | | | — | — |")
        for line in d.lines:
            h = line_numbers(line, last)
            rows.append(f"| {d.panel.task} | {line.label} | {line.units} | {line.unit} | "
                        f"{line.runs} | {fmt(h['last3_mean'], h['last3_ci95'])} | "
                        f"{fmt(h['post_exploration_mean'], h['post_exploration_ci95'])} |")
        refs += [f"{d.panel.task}: {r.name} {fmt(r.mean, r.ci95)} per episode "
                 f"(runs {', '.join(map(str, r.run_ids))})" for r in d.references]
    return "\n".join(rows + ([""] + [f"- {r}" for r in refs] if refs else []))


# --------------------------------------------------------------------------- training

def as_training_return(run: RecordedRun, metric: str) -> RecordedRun | None:
    """The run with ``metric`` in the place of ``train/return``, so the training figure's
    chunking and smoothing (:func:`curves.training_lines`) draw it as they draw returns;
    None when the run did not log it."""
    if metric not in run.metrics:
        return None
    return dataclasses.replace(run, metrics={**run.metrics, "train/return": run.metrics[metric]})


def training_lines(plan: Plan, records: dict[int, RecordedRun], window: int | None = None
                   ) -> tuple[dict[str, list[Line]], dict[str, str]]:
    """{metric: lines} over every panel (a line per spec run that trained), and each
    panel's x axis (env steps, or learner updates for runs that logged none); chunks of
    the scale's ``chunk`` env steps, smoothed over ``window`` chunks (None: automatic)."""
    found: dict[str, list[Line]] = {}
    x_names: dict[str, str] = {}
    for metric, _, _ in TRAINING:
        for panel in plan.panels:
            groups = {}
            for entry in panel.runs:
                runs = [r for p in plan.of(panel, entry) if p.number in records
                        if (r := as_training_return(records[p.number], metric)) is not None]
                if runs:
                    groups[entry.label] = runs
            lines, x_name = curves.training_lines(groups, window, plan.scale.chunk,
                                                  task=panel.task)
            for line in lines:
                line.variant = metric
            found.setdefault(metric, []).extend(lines)
            if lines:
                x_names[panel.task] = x_name
    return found, x_names


def draw_training(plan: Plan, training: dict[str, list[Line]], x_names: dict[str, str],
                  out: Path, files=None, title=None) -> list[Path]:
    """One figure per metric with lines (a panel per spec panel): ``files`` lists
    (metric, file names, y label), default :data:`TRAINING`; ``title(metric)`` heads each
    (default: the figure's heading and the metric)."""
    written = []
    for metric, names, ylabel in files or [(m, [f], y) for m, f, y in TRAINING]:
        lines = training.get(metric) or []
        if not lines:
            continue
        bounds = figures.metric_bounds(metric)
        panels = [figures.Panel(mine, panel_heading(panel, mine),
                                xlabel=x_names[panel.task], bounds=bounds)
                  for panel in plan.panels
                  if (mine := [line for line in lines if line.task == panel.task])]
        written += figures.plot_panels(
            panels, [out / n for n in names], xlabel=" / ".join(sorted(set(x_names.values()))),
            ylabel=ylabel, title=title(metric) if title else
            f"{heading(plan)}: pretraining / meta-training ({metric})",
            note=report_text.training_note(lines, x_names)
            + ("; a rate's interval is drawn within [0, 1]" if bounds else ""))
    return written


# --------------------------------------------------------------------------- training kind

def training(plan: Plan, records: dict[int, RecordedRun], out: Path) -> Drawing:
    found, x_names = training_lines(plan, records, window=plan.scale.window)
    returns, success = found.get("train/return", []), found.get("train/success", [])
    drawings = [PanelDrawing(panel, [line for line in returns if line.task == panel.task],
                             [], None) for panel in plan.panels]
    name = plan.figure.name
    files = draw_training(plan, found, x_names, out, title=lambda metric: heading(plan),
                          files=[("train/return", [f"{name}.png", f"{name}.pdf"],
                                  "training return"),
                                 ("train/success", [f"{name}_success.png"],
                                  "training success rate")])
    table = training_table(drawings, success, records, plan.figure.last)
    return Drawing(drawings, found, x_names, table, files, kind="training")


DRAWERS = {"adaptation": adaptation, "training": training}


# --------------------------------------------------------------------------- tasks kind

def frames_figure(heading_text: str, note: str, frames: list, out: Path,
                  name: str) -> list[Path]:
    """The frames (iwx.figures.frames.Frame, all of one size) as one figure, three a row,
    into ``out``/``name``.png and .pdf; each frame alone into ``out``/frames/. Returns
    every file written."""
    from iwx.results.figures import _pyplot

    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    (out / "frames").mkdir(exist_ok=True)
    figure_files = [out / f"{name}.png", out / f"{name}.pdf"]
    frame_files = [out / "frames" / f"{frame.plan.panel.task}.png" for frame in frames]
    for frame, path in zip(frames, frame_files):
        plt.imsave(path, frame.pixels)
    height, width = frames[0].pixels.shape[:2]
    cols = min(3, len(frames))
    rows = -(-len(frames) // cols)
    # inches: each frame 4 wide, a title band above it, the heading above all, the note below
    frame_w, side, gap, band, top, bottom = 4.0, 0.1, 0.12, 0.45, 0.45, 0.3
    frame_h = frame_w * height / width
    fig_w = 2 * side + cols * frame_w + (cols - 1) * gap
    fig_h = top + rows * (band + frame_h) + (rows - 1) * gap + bottom
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=max(100, width / frame_w))
    for i, frame in enumerate(frames):
        row, col = divmod(i, cols)
        left = side + col * (frame_w + gap)
        lower = fig_h - top - (row + 1) * (band + frame_h) - row * gap
        ax = fig.add_axes((left / fig_w, lower / fig_h, frame_w / fig_w, frame_h / fig_h))
        ax.imshow(frame.pixels, interpolation="antialiased")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_color("0.75")
        ax.text(0.5, 1 + 0.24 / frame_h, frame.plan.panel.title, transform=ax.transAxes,
                ha="center", va="bottom", fontsize=11, fontweight="bold")
        ax.text(0.5, 1 + 0.05 / frame_h, frame.target, transform=ax.transAxes, ha="center",
                va="bottom", fontsize=8, color="0.3")
    fig.text(0.5, 1 - 0.12 / fig_h, heading_text, ha="center", va="top", fontsize=12)
    fig.text(0.5, 0.08 / fig_h, note, ha="center", va="bottom", fontsize=7.5, color="0.35")
    for path in figure_files:
        fig.savefig(path)
    plt.close(fig)
    return figure_files + frame_files
