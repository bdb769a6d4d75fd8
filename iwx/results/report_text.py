"""The words of a report (``iwx.report``): its table, the notes under its figures, report.md.

Every row of the table names its task; every reference return (oracle, lower
baseline) is listed per task with how many of the task's runs recorded it, and
a task whose runs recorded none says so, so nothing vanishes silently. A
training line whose runs end at different points says how many runs each stretch
of it averages.
"""

from __future__ import annotations

from iwx.results import curves
from iwx.results.curves import Line
from iwx.results.stats import headline
from iwx.results.tables import fmt

LAST = 3   # appendix A.2: the headline averages the last 3 episodes


def line_headline(line: Line) -> tuple[str, str]:
    """Appendix A.2's numbers of a line (unsmoothed, per unit), formatted: the mean of the
    last 3 episodes, and of the episodes after exploration, each ± 95% CI across units."""
    h = headline(line.raw, line.exploration_episodes, LAST, x=line.x)
    return (fmt(h["last3_mean"], h["last3_ci95"]),
            fmt(h["post_exploration_mean"], h["post_exploration_ci95"]))


def _final(rep, line: Line) -> str:
    runs = [r for r in rep.runs if r.id in line.run_ids] if line.variant == "train/return" \
        else rep.groups.get((line.task, line.group), [])
    final = curves.final_training(runs)
    return fmt(*final[:2]) if final else "—"


def table(rep) -> str:
    """One row per adaptation line, then one per training line of a group that has no
    adaptation line (multi-task runs, a sweep's shared pretraining)."""
    rows = ["| task | line | units | unit | runs | window | last 3 episodes | after exploration "
            "| final training return |", "|---|---|---|---|---|---|---|---|---|"]
    for line in rep.adapt:
        last, after = line_headline(line)
        rows.append(f"| {line.task} | {line.label} | {line.units} | {line.unit} | {line.runs} "
                    f"| {line.window} | {last} | {after} | {_final(rep, line)} |")
    plotted = {(line.task, line.group) for line in rep.adapt}
    for line in rep.train:
        if (line.task, line.group) not in plotted:
            rows.append(f"| {line.task} | {line.label} | {line.units} | run | {line.runs} | "
                        f"{line.window} | — | — | {_final(rep, line)} |")
    return "\n".join(rows)


def _named(line: Line, lines: list[Line]) -> str:
    many_tasks = len({x.task for x in lines}) > 1
    return f"{line.task}: {line.label}" if many_tasks else line.label


def windows_note(lines: list[Line], what: str) -> str:
    ws = sorted({line.window for line in lines})
    if len(ws) == 1:
        w = ws[0]
        return "no smoothing (window 1)" if w == 1 else f"trailing mean over {w} {what}"
    return "trailing mean, " + ", ".join(f"{_named(line, lines)}: {line.window}"
                                         for line in lines)


def units_note(lines: list[Line]) -> str:
    return "unit = " + " / ".join(sorted({line.unit for line in lines}))


def adaptation_note(lines: list[Line]) -> str:
    return (f"95% CI (Student t) across units, {units_note(lines)}; "
            f"{windows_note(lines, 'episodes')} (appendix A.2)")


def _chunks_text(lines: list[Line], x_names: dict[str, str]) -> str:
    per_task = {line.task: f"{line.bin:g} {x_names[line.task]}" for line in lines}
    if len(set(per_task.values())) == 1:
        return f"chunks of {next(iter(per_task.values()))}"
    return "chunks of " + ", ".join(f"{v} ({task})" for task, v in per_task.items())


def training_note(lines: list[Line], x_names: dict[str, str]) -> str:
    varies = " (where ≥ 2 runs reach a chunk; | a run ends)" \
        if any(line.ends for line in lines) else ""
    return (f"95% CI across runs{varies}; {_chunks_text(lines, x_names)}, "
            f"{windows_note(lines, 'chunks')} "
            "(appendix A.1, rescaled)")


def coverage(line: Line, x_name: str) -> str | None:
    """'3 runs up to 2400 env steps, 2 up to 4800, 1 up to 24000' for a training line whose
    runs end at different points (None when every point averages every run)."""
    if not line.n or len(set(line.n)) == 1:
        return None
    parts, start = [], 0
    for i in range(1, len(line.n) + 1):
        if i == len(line.n) or line.n[i] != line.n[start]:
            parts.append((line.n[start], line.x[i - 1]))
            start = i
    first = f"{parts[0][0]} run{'s' if parts[0][0] != 1 else ''} up to {parts[0][1]:g} {x_name}"
    return ", ".join([first] + [f"{n} up to {x:g}" for n, x in parts[1:]])


def references_text(rep) -> list[str]:
    """One line per task that has adaptation lines: its oracle / baseline (how many runs
    recorded each), or that its runs recorded none."""
    out = []
    for task, refs in rep.references.items():
        total = len({i for line in rep.adapt if line.task == task for i in line.run_ids})
        if not refs:
            out.append(f"- {task}: no goal-knowing oracle or lower baseline recorded "
                       f"(results.json of its {total} run{'s' if total > 1 else ''})")
            continue
        for ref in refs:
            some = "" if len(ref.run_ids) == ref.of else \
                f"; only {len(ref.run_ids)} of the {ref.of} runs recorded it: drawn from those"
            out.append(f"- {task}: {ref.name} {fmt(ref.mean, ref.ci95)} per episode "
                       f"(runs {', '.join(map(str, ref.run_ids))}{some})")
    return out


def markdown(rep, text: str, selection: str) -> str:
    """report.md: what was selected, how the curves were made, the table, the references."""
    req = rep.request
    md = [f"# {rep.title}", "",
          f"Source `{req.source}`: {len(rep.runs)} runs "
          f"({', '.join(str(r.id) for r in rep.runs)}), {selection}; lines grouped "
          f"by `{req.group_by}`, one figure panel per task ({', '.join(rep.tasks)}).", ""]
    if rep.pretraining:
        md += ["Shared pretraining of a sweep (every trial adapts from it; no group of the "
               "grid, drawn in the training figure only): runs "
               f"{', '.join(str(r.id) for r in rep.pretraining)}.", ""]
    if rep.adapt:
        md += ["Adaptation: mean return per adaptation episode, 95% CI (Student t) across "
               f"units; {units_note(rep.adapt)}: a task when every run of the line adapted on "
               "the same tasks (mean over runs), else each (run, task). Curves: "
               f"{windows_note(rep.adapt, 'episodes')} per unit (appendix A.2). The table's "
               f"last-{LAST}-episodes and after-exploration columns use the unsmoothed "
               "returns.", "", "![adaptation](adaptation.png)", ""]
    if rep.train:
        md += [f"Training: training return against {' / '.join(sorted(set(rep.x_names.values())))}"
               f", averaged in {_chunks_text(rep.train, rep.x_names)}, "
               f"{windows_note(rep.train, 'chunks')}, each run along its own chunks, then "
               f"the mean ± 95% CI across the runs that reach each chunk; every run is drawn "
               f"to its own end; final training return = each run's mean of its last "
               f"{curves.TRAIN_FINAL} logged values.", "", "![training](training.png)", ""]
        varying = [(line, c) for line in rep.train
                   if (c := coverage(line, rep.x_names[line.task]))]
        if varying:
            md += ["Training runs of different lengths (the CI is shaded where ≥ 2 runs "
                   "reach a chunk; | marks where a run ends):", ""]
            md += [f"- {_named(line, rep.train)}: {c}" for line, c in varying] + [""]
    md += [text, ""]
    refs = references_text(rep)
    if refs:
        md += ["Reference returns (results.json), per task:", "", *refs, ""]
    return "\n".join(md)
