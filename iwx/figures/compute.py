"""A recorded run's compute from its file store: its record's wall time (Sacred's
``stop_time - start_time``) plus that of every record it resumed from (``info.resumed_from``,
followed back; a killed segment counts to its last heartbeat); and the estimates of a
figure's runs still to run, from the compute of their entry's completed seeds."""

from __future__ import annotations

import json
from pathlib import Path

from iwx.experiment.store import sacred_time


def seconds_between(start, stop) -> float | None:
    """Seconds from ``start`` to ``stop`` (Sacred times; None if either is not one)."""
    start, stop = sacred_time(start), sacred_time(stop)
    return None if start is None or stop is None else max(0.0, (stop - start).total_seconds())


def resumed_seconds(folder: Path, previous, seen: set[str]) -> float:
    """The wall time of the records a run resumed from, ``previous`` the first of them
    (its ``info.resumed_from.run_id``; None: it did not resume), followed back through
    ``folder``; ``seen``: the ids already counted (a loop stops there)."""
    total = 0.0
    while previous is not None and str(previous) not in seen:
        seen.add(str(previous))
        try:
            record = json.loads((folder / str(previous) / "run.json").read_text())
            info = json.loads((folder / str(previous) / "info.json").read_text())
        except (OSError, ValueError):
            break
        total += seconds_between(record.get("start_time"),
                                 record.get("stop_time") or record.get("heartbeat")) or 0.0
        previous = (info.get("resumed_from") or {}).get("run_id")
    return total


def folder_seconds(run_dir: Path) -> float | None:
    """A completed run's compute from its record folder (``<runs>/<id>``): its wall time
    and its resumed segments'; None when its record has no start or stop time."""
    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / "run.json").read_text())
        info = json.loads((run_dir / "info.json").read_text())
    except (OSError, ValueError):
        return None
    own = seconds_between(record.get("start_time"), record.get("stop_time"))
    if own is None:
        return None
    previous = (info.get("resumed_from") or {}).get("run_id")
    return own + resumed_seconds(run_dir.parent, previous, {run_dir.name})


def same_entry(a, b) -> bool:
    """Two seeds of one run entry of one panel (what :func:`measure` estimates from)."""
    return a.panel is b.panel and a.entry is b.entry


def measure(plan) -> None:
    """Estimate each run still to run from its entry's seeds already completed in the
    file store: ``measured`` is their recorded compute in minutes (wall time, resumed
    segments included: above), so a figure's later seeds are planned by
    what its first ones took on this machine, not by the spec's guess. A seed found in a
    longer run (iwx/figures/longer.py) is not one: its record's compute is the longer
    training's, and its adaptation's."""
    recorded: dict[int, float] = {}
    for p in plan.runs:
        if p.done is not None and p.done.store == "file store" and p.done.cut is None:
            seconds = folder_seconds(Path(p.done.where()))
            if seconds is not None:
                recorded[p.number] = seconds / 60.0
    for p in plan.missing():
        p.measured = tuple(recorded[q.number] for q in plan.runs
                           if q.number in recorded and same_entry(p, q))
