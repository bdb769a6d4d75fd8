"""The adaptation protocol a run followed, and the refusal to pool runs that differ in it.

Runs that adapted for different numbers of episodes, with different exploration
episodes or over different numbers of adaptation seeds cannot share one episode
axis (nor one "last 3 episodes" / "after exploration" number), so a report of
such runs of one task is refused with the runs and the setting that differ;
the user then selects runs of one protocol (``--runs``, ``--tag``, ``--sweep``).

Each setting is read from what the run recorded, best source first:
``results.json`` (``exploration_episodes``; seeds and episodes from the shape
[tasks, seeds, episodes] of ``returns``), the ``Adaptation.*`` binding in
``config.bindings``, and, for episodes of a COMPLETED run, the last episode its
``adapt/<variant>/return/task_NN`` metrics logged. A setting a run leaves unknown
(the class default, not recorded, and no results.json) is not compared.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from iwx.experiment.store import RecordedRun
from iwx.results.groups import ReportError, binding_value

#: (key, what it is, the binding that sets it)
SETTINGS = (("episodes", "adaptation episodes", "Adaptation.episodes"),
            ("exploration_episodes", "exploration episodes", "Adaptation.exploration_episodes"),
            ("seeds", "adaptation seeds", "Adaptation.seeds"))


def _from_results(run: RecordedRun) -> dict[str, int]:
    results = run.results() or {}
    found = {}
    if results.get("exploration_episodes") is not None:
        found["exploration_episodes"] = int(results["exploration_episodes"])
    shapes = {np.shape(r)[1:] for r in (results.get("returns") or {}).values()
              if np.ndim(r) == 3}
    if len(shapes) == 1:
        found["seeds"], found["episodes"] = (int(v) for v in shapes.pop())
    return found


def _logged_episodes(run: RecordedRun) -> int | None:
    last = [int(np.max(steps)) for name, (steps, _) in run.metrics.items()
            if name.startswith("adapt/") and "/return/task_" in name and len(steps)]
    return max(last) if last else None


def protocol(run: RecordedRun) -> dict[str, int | None]:
    """{setting: value or None (unknown)} of :data:`SETTINGS` for one run."""
    found = _from_results(run)
    out = {}
    for key, _, binding in SETTINGS:
        value = found.get(key)
        if value is None:
            ok, bound = binding_value(run, binding)
            value = int(bound) if ok and isinstance(bound, (int, float)) else None
        if value is None and key == "episodes" and run.status == "COMPLETED":
            value = _logged_episodes(run)
        out[key] = value
    return out


def differences(runs: Sequence[RecordedRun]) -> list[tuple[str, str, dict[int, list[int]]]]:
    """(what, binding, {value: run ids}) of each setting on which the runs differ (empty
    when they agree)."""
    known = {run.id: protocol(run) for run in runs}
    found = []
    for key, what, binding in SETTINGS:
        values: dict[int, list[int]] = {}
        for run in runs:
            if known[run.id][key] is not None:
                values.setdefault(known[run.id][key], []).append(run.id)
        if len(values) > 1:
            found.append((what, binding, dict(sorted(values.items()))))
    return found


def _runs_text(ids: list[int]) -> str:
    return f"run{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))}"


def check_one_protocol(task: str, runs: Sequence[RecordedRun]) -> None:
    """Raise :class:`ReportError` (exit 2) when the runs of ``task`` that adapted differ in
    their adaptation protocol: which settings, which value in which runs, how to select."""
    differ = differences(runs)
    if not differ:
        return
    texts = [f"{what} ({binding}): " + "; ".join(f"{v} in {_runs_text(ids)}"
                                                 for v, ids in values.items())
             for what, binding, values in differ]
    options = " or ".join("--runs " + " ".join(map(str, ids))
                          for ids in differ[0][2].values())
    raise ReportError(
        f"runs of task {task} adapted under different protocols, which cannot share one "
        f"episode axis: {'; and '.join(texts)}. Report one protocol at a time: select its "
        f"runs with --runs (e.g. {options}), --tag, --sweep or --task")
