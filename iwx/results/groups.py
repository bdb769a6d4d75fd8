"""Which line a recorded run belongs to: its task (one figure panel per task), its
identity's method, a sweep trial's parameters or the value of one of its bindings; and
which runs are a sweep's shared pretraining rather than a point of its grid."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence

from iwx.experiment.identity import recorded_identity
from iwx.experiment.store import RecordedRun


class ReportError(Exception):
    """A request the report cannot serve (printed, exit status 2)."""


UNKNOWN_TASK = "(unknown task)"
PRETRAIN_TRIAL = "pretrain"   # iwx.sweep's trial name for its one shared pretraining run


def task_of(run: RecordedRun) -> str | None:
    """The task the run recorded (``identity.task``; older records: their bindings)."""
    return recorded_identity(run.config, run.info)["task"]


def task_label(run: RecordedRun) -> str:
    """The run's task as a panel name (:data:`UNKNOWN_TASK` when it recorded none)."""
    return task_of(run) or UNKNOWN_TASK


def by_task(runs: Sequence[RecordedRun]) -> dict[str, list[RecordedRun]]:
    """{task: runs}, tasks by name (an unknown task last), runs in their order: runs of
    different tasks never share a line (their returns are not on one scale)."""
    out: dict[str, list[RecordedRun]] = {}
    for run in runs:
        out.setdefault(task_label(run), []).append(run)
    return dict(sorted(out.items(), key=lambda item: (item[0] == UNKNOWN_TASK, item[0])))


def adapted(run: RecordedRun) -> bool:
    """Did the run log any adaptation (``adapt/...`` metrics)?"""
    return any(name.startswith("adapt/") for name in run.metrics)


def sweep_pretraining(runs: Sequence[RecordedRun]) -> list[RecordedRun]:
    """The runs that are a sweep's shared pretraining (``pretrain: {seed: N}``, appendix
    A.2), not a point of its grid: every trial adapts from it, so it belongs to no group.

    ``iwx.sweep`` records it with ``meta.sweep = {id, trial: "pretrain", params: {}}``
    (``meta.sweep.role == "pretrain"`` is honoured too). Fallbacks, among the selected
    runs of one sweep: a run whose ``meta.sweep`` lacks params or trial while others have
    them, and a COMPLETED run that logged no adaptation while others did."""
    by_sweep: dict[object, list[RecordedRun]] = {}
    for run in runs:
        if run.sweep is not None:
            by_sweep.setdefault(run.sweep.get("id"), []).append(run)
    found = set()
    for members in by_sweep.values():
        some_trial = any(_grid_point(r) for r in members)
        some_adapted = any(adapted(r) for r in members)
        for run in members:
            marked = PRETRAIN_TRIAL in (run.sweep.get("role"), run.sweep.get("trial"))
            bare = some_trial and not _grid_point(run)
            idle = some_adapted and not adapted(run) and run.status == "COMPLETED"
            if marked or bare or idle:
                found.add(run.id)
    return [run for run in runs if run.id in found]


def _grid_point(run: RecordedRun) -> bool:
    """Does the run's ``meta.sweep`` name a trial and its parameters?"""
    return bool(run.sweep.get("params")) and bool(run.sweep.get("trial"))


def pretraining_label(run: RecordedRun) -> str:
    return f"shared pretraining (run {run.id})"


def method_of(run: RecordedRun) -> str:
    """The method the run recorded (``identity.method``, e.g. 'iwpl')."""
    return recorded_identity(run.config, run.info)["method"] or "(unknown method)"


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
    """{group label: runs}, groups in first-appearance order (by value for a binding).
    ``group_by``: ``method`` (the recorded method), ``config`` (a sweep trial's
    parameters; the method for runs of no sweep) or a binding name."""
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
