"""What a drawn figure leaves beside its images: ``table.md``, ``figure.json`` (every
plotted number, every run used and its compute) and ``README.md`` (a snippet to paste:
figure, table, training, runs, compute). A figure of kind ``tasks`` runs nothing: its
figure.json and README.md say what each frame shows (:func:`write_frames`).

A run's compute is its record's wall time (Sacred's ``stop_time - start_time``) plus,
for a run resumed after an interruption in a file store, the wall time of every record
it resumed from (``info.resumed_from``, followed back; a killed segment counts to its
last heartbeat). From MongoDB only the completing segment is counted. A run found in a
longer one (iwx/figures/longer.py) counts the wall time of its updates only, from the
longer run's logged ``train/updates_per_s``.
"""

from __future__ import annotations

import json
from pathlib import Path

from iwx.experiment.headline import short_uid
from iwx.experiment.store import RecordedRun, is_mongo_url
from iwx.figures.compute import resumed_seconds, seconds_between
from iwx.figures.draw import Drawing
from iwx.figures.longer import seconds_to
from iwx.figures.plateaus import plateau_table
from iwx.figures.shared_tasks import shared_task_table
from iwx.figures.plan import Plan, Planned


def compute_of(run: RecordedRun) -> float | None:
    """Wall time of the run and, in a file store, of the segments it resumed from."""
    total = seconds_of(run)
    if total is None or is_mongo_url(run.source):
        return total
    previous = (run.info.get("resumed_from") or {}).get("run_id")
    return total + resumed_seconds(Path(run.source), previous, {str(run.id)})


def seconds_of(run: RecordedRun) -> float | None:
    """The record's wall time in seconds (None where it lacks a start or stop)."""
    return seconds_between(run.start_time, run.stop_time)


def run_rows(plan: Plan, records: dict[int, RecordedRun], ran: dict[int, dict]) -> list[dict]:
    """One entry per planned run: configuration, where it is recorded, how it was got."""
    rows = []
    for p in plan.runs:
        record = records.get(p.number)
        outcome = ran.get(p.number)
        if record is None:
            how = "missing" if outcome is None or outcome["ok"] else \
                "not started" if outcome.get("not_started") else "failed"
        elif p.done is not None and p.done.cut is not None:
            how = f"reused: first {p.done.cut:,} of {p.done.trained:,} updates"
        elif p.done is not None or (outcome or {}).get("reused"):
            how = "reused"
        else:
            how = "ran"
        row = {"number": p.number, "panel": p.panel.task, "label": p.entry.label,
               "gin_files": list(p.files), "bindings": list(p.spec.bindings), "seed": p.seed,
               "key": p.key, "status": how, "estimate_minutes": p.minutes,
               "adapts_from_run": None if p.after is None else p.after.number}
        if record is not None:
            uid = record.config.get("uid") or short_uid(record.meta.get("iwx_uid"))
            local = not is_mongo_url(record.source)
            row.update({"run_id": record.id, "uid": uid, "source": str(record.source),
                        "dir": str(Path(record.source) / str(record.id)) if local else None,
                        "method": (record.config.get("identity") or {}).get("method"),
                        "compute_seconds": compute_of(record) if p.done is None or
                        p.done.cut is None else seconds_to(record, p.done.cut)})
        if outcome is not None and outcome.get("not_started"):
            row["not_started"] = outcome["not_started"]
        elif outcome is not None and not outcome["ok"]:
            row["error"] = outcome.get("error", "")[-2000:]
        rows.append(row)
    return rows


def figure_record(plan: Plan, drawing: Drawing, rows: list[dict]) -> dict:
    last = plan.figure.last
    return {
        "figure": plan.figure.figure, "title": plan.figure.title, "kind": plan.figure.kind,
        "spec": str(plan.figure.path), "scale": plan.scale.name, "about": plan.scale.about,
        "seeds": list(plan.scale.seeds), "window": plan.scale.window, "last": last,
        "chunk": plan.scale.chunk,
        "gin_params": list(plan.extra),
        "panels": [{"task": d.panel.task, "title": d.panel.title,
                    "exploration_episodes": d.exploration,
                    "lines": [{**line.series(), "table": drawing.numbers(line, last)}
                              for line in d.lines],
                    "references": [r.as_json() for r in d.references]}
                   for d in drawing.panels],
        "training": {metric: [line.series() for line in lines]
                     for metric, lines in drawing.training.items()},
        "training_x": drawing.x_names,
        "plateaus": drawing.plateaus,
        "shared_tasks": drawing.shared_tasks,
        "table": drawing.table,
        "runs": rows,
        "compute_seconds": sum(r.get("compute_seconds") or 0.0 for r in rows),
        "files": [p.name for p in drawing.files],
    }


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def readme(plan: Plan, drawing: Drawing, rows: list[dict], command: str) -> str:
    name = plan.figure.name
    total = sum(r.get("compute_seconds") or 0.0 for r in rows)
    got = [r for r in rows if "run_id" in r]
    md = [f"## {plan.figure.heading} (scale {plan.scale.name})", ""]
    alt = name if isinstance(plan.figure.figure, str) else f"figure {plan.figure.figure}"
    if drawing.kind == "training":
        chunk = f"{plan.scale.chunk:,.0f} env steps" if plan.scale.chunk else \
            "the logging period"
        md += [f"{plan.scale.about}. Run seeds {list(plan.scale.seeds)}; training curves: "
               f"the mean per chunk of {chunk}, a trailing mean over {plan.scale.window} "
               "chunk(s) per run, mean ± 95% CI across seeds.", ""]
    else:
        md += [f"{plan.scale.about}. Run seeds {list(plan.scale.seeds)}; adaptation curves: "
               f"trailing mean over {plan.scale.window} episode(s) per unit, mean ± 95% CI "
               f"across units (a held-out task: its mean over adaptation and run seeds); the "
               f"shaded start is the exploration episodes.", ""]
    if any(p.name == f"{name}.png" for p in drawing.files):
        md += [f"![{alt}]({name}.png)", ""]
    if any(p.name == f"{name}_success.png" for p in drawing.files):
        md += [f"![{alt}, success rate]({name}_success.png)", ""]
    if drawing.kind == "training":
        md += [f"Per seed the mean of its last {plan.figure.last} chunks (unsmoothed), then "
               "mean ± 95% CI across seeds:", "", drawing.table, ""]
    else:
        md += [f"Mean of the last {plan.figure.last} adaptation episodes (unsmoothed) per "
               "unit, then mean ± 95% CI across units:", "", drawing.table, ""]
    for metric, filename, _ in (("train/success", "training.png", ""),
                                ("train/return", "training_return.png", "")):
        if drawing.kind == "adaptation" and drawing.training.get(metric):
            md += [f"Pretraining / meta-training, `{metric}` against "
                   f"{' / '.join(sorted(set(drawing.x_names.values())))}:", "",
                   f"![{metric}]({filename})", ""]
    if drawing.plateaus:
        md += ["Was each training still rising when its budget ended? `train/return`, the "
               "mean of the last 20% of the logged points against the 20% before them, "
               "Welch 95% CI of the change (iwx.results.plateau); **yes** where the change "
               "is above zero by more than its interval and at least a tenth of what the "
               "run gained in all (last 20% against the first 20%), *flattening* where it "
               "is above zero but less:", "",
               plateau_table(drawing.plateaus), ""]
    if drawing.shared_tasks:
        md += ["Training return on the training tasks the pretrainings share (the few-task "
               "run's are the first of the many-task run's draw, so the same index is the "
               "same target): per task the mean `train/return/task_NNN` over the last 20% "
               "of the run's updates, then mean ± 95% CI across the shared tasks "
               "(iwx.figures.shared_tasks). A prior and ψ that overfit their few tasks are "
               "ahead here and behind on the held-out tasks above:", "",
               shared_task_table(drawing.shared_tasks), ""]
    md += ["| panel | run | seed | record | uid | how | compute |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        where = r.get("dir") or (f"run {r['run_id']} in {r['source']}" if "run_id" in r else "—")
        spent = r.get("compute_seconds")
        md.append(f"| {r['panel']} | {r['label']} | {r['seed']} | {where} | {r.get('uid') or '—'}"
                  f" | {r['status']} | {hours(spent) if spent is not None else '—'} |")
    md += ["", f"{len(got)} of {len(rows)} runs recorded; total compute {hours(total)} (the "
           "sum of the runs' recorded wall times). Redraw (every recorded run is reused): "
           f"`{command}`.", ""]
    return "\n".join(md)


def write(plan: Plan, drawing: Drawing, records: dict[int, RecordedRun], ran: dict[int, dict],
          out: Path, command: str) -> list[Path]:
    """Write table.md, figure.json and README.md; returns every file of the figure."""
    rows = run_rows(plan, records, ran)
    (out / "table.md").write_text(drawing.table + "\n")
    (out / "figure.json").write_text(json.dumps(figure_record(plan, drawing, rows), indent=1,
                                                default=str))
    (out / "README.md").write_text(readme(plan, drawing, rows, command))
    return drawing.files + [out / "table.md", out / "figure.json", out / "README.md"]


def missing_runs(plan: Plan, records: dict[int, RecordedRun]) -> list[Planned]:
    return [p for p in plan.runs if p.number not in records]


# --------------------------------------------------------------------------- tasks kind

def frames_record(figure, scale, frames: list, files: list[Path], backend: str,
                  extra: list[str], seconds: float) -> dict:
    """figure.json of a figure of kind ``tasks``: every panel's configuration, the task
    it shows and how it was rendered."""
    from iwx.figures.frames import HELD_OUT
    from iwx.figures.views import target_pixels

    return {
        "figure": figure.figure, "title": figure.title, "kind": figure.kind,
        "spec": str(figure.path), "scale": scale.name, "about": scale.about,
        "seed": scale.seeds[0], "held_out_task": HELD_OUT, "frame": list(scale.frame),
        "gl_backend": backend, "gin_params": list(extra),
        "panels": [{"task": f.plan.panel.task, "title": f.plan.panel.title,
                    "gin_files": list(f.plan.gin_files), "bindings": list(f.plan.bindings),
                    "env": f.plan.env, "task_params": f.plan.params, "target": f.target,
                    "camera": f.camera, "markers": f.markers,
                    "file": f"frames/{f.plan.panel.task}.png",
                    "pixel_std": round(float(f.pixels.std()), 2),
                    "target_pixels": target_pixels(f.pixels),
                    "seconds": round(f.seconds, 2)}
                   for f in frames],
        "seconds": round(seconds, 1),
        "files": [str(p.relative_to(files[0].parent)) for p in files],
    }


def frames_readme(record: dict, command: str) -> str:
    name = f"figure{record['figure']}"
    width, height = record["frame"]
    md = [f"## Figure {record['figure']}: {record['title']} (scale {record['scale']})", "",
          f"{record['about']}. Each frame: held-out task {record['held_out_task']} of the "
          f"task split of seed {record['seed']}, at the reset of its first episode (reset "
          f"seed {record['seed']}), {width} × {height} pixels, rendered with MuJoCo "
          f"(MUJOCO_GL={record['gl_backend']}); the target in red, drawn into the picture "
          "only (no physics, no observation changes).", "",
          f"![figure {record['figure']}]({name}.png)", "",
          "| panel | gin files | environment | target | camera | drawn markers |",
          "|---|---|---|---|---|---|"]
    for p in record["panels"]:
        md.append(f"| {p['title']} | {' + '.join(p['gin_files'])} | {p['env']} | "
                  f"{p['target']} | {p['camera']} | {'; '.join(p['markers']) or '—'} |")
    md += ["", f"Rendered in {record['seconds']:g} s; nothing was trained or run. Redraw: "
           f"`{command}`.", ""]
    return "\n".join(md)


def write_frames(figure, scale, frames: list, files: list[Path], out: Path, command: str,
                 backend: str, extra: list[str], seconds: float) -> list[Path]:
    """figure.json and README.md of a figure of kind ``tasks``; returns every file."""
    record = frames_record(figure, scale, frames, files, backend, extra, seconds)
    (out / "figure.json").write_text(json.dumps(record, indent=1, ensure_ascii=False))
    (out / "README.md").write_text(frames_readme(record, command))
    return files + [out / "figure.json", out / "README.md"]
