"""The records of a plan's completed runs, read back from where they are recorded.

A run found done when planning is read from its store (the file store, or MongoDB
with its results.json from GridFS); a run made now from the file store folder it
reported. Either way the drawing gets :class:`iwx.experiment.store.RecordedRun`
objects and never knows which store a run came from. A run found in a longer one
(iwx/figures/longer.py) comes cut at the planned run's updates.
"""

from __future__ import annotations

from pathlib import Path

from iwx.experiment.store import RecordedRun, load_runs
from iwx.figures.longer import cut
from iwx.figures.plan import Plan


def records(plan: Plan, outcomes: dict[int, dict]) -> dict[int, RecordedRun]:
    """{planned run's number: its COMPLETED record}; runs that failed are absent."""
    wanted: dict[str, dict[int, int]] = {}          # source: {run id: planned number}
    for p in plan.runs:
        outcome = outcomes.get(p.number)
        if outcome is not None and outcome.get("ok"):
            folder = Path(outcome["run_dir"])
            wanted.setdefault(str(folder.parent), {})[int(folder.name)] = p.number
        elif p.done is not None:
            wanted.setdefault(p.done.source, {})[p.done.run_id] = p.number
    cuts = {p.number: p.done.cut for p in plan.runs
            if p.done is not None and p.done.cut is not None and p.number not in outcomes}
    found: dict[int, RecordedRun] = {}
    for source, ids in wanted.items():
        for run in load_runs(source, run_ids=list(ids)):
            number = ids[run.id]
            found[number] = run if number not in cuts else cut(run, cuts[number])
    return found
