"""A training figure's run found inside a longer one: the same training, cut at its budget.

Figures of kind ``training`` (1 and 6) read only a run's training series. A COMPLETED
run whose training was configured exactly as a planned run's, but for more learner
updates, played the planned run's training as its first ``updates`` updates: nothing
in multi-task training reads the budget except to stop (``MultiTaskTraining.run`` and
``DistributedTraining.run`` loop ``while agent.updates < self.updates``; no schedule
decays over it). So figure 1's IWPL line reuses figure 3's 80k-update IWPL
pretrainings for its 60k, the issue's "reusing the figure-3 pretraining runs where
they are the same configuration", instead of spending about an hour per seed again.

"Configured exactly as" is decided on gin's bindings (:func:`training_bindings`): the
run's recorded ``config.bindings`` against the planned run's, both as
:func:`iwx.experiment.gin_config.flat_bindings` gives them, less

- the training budget (``MultiTaskTraining.updates``, ``DistributedTraining.updates``),
  which must be at least the planned run's,
- what only adaptation reads: the configurables ``Adaptation``, ``IWPA`` and
  ``ParametricAdaptation`` (any scope) and ``pretrain_and_adapt``'s ``variants``,
  ``adaptation``, ``oracle``, ``baseline``, ``baseline_name`` and ``adapt_on``.

Every other binding, macros included, must be equal, and so must the seed. Anything
this list does not name is taken to matter: at worst a run that could have been reused
is run again. The longer run's series are cut at the planned run's updates
(:func:`cut`: the logged steps are learner updates), and its compute is the wall time
of those updates from its logged ``train/updates_per_s`` (:func:`seconds_to`), not
its whole record's. Only the file store is searched; a run recorded only in MongoDB is
not reused this way.

A longer run still *in progress* (its record RUNNING, its lock held by a live process:
:func:`find_longer_running`) is waited for, not duplicated: the planned run is left for
later, as a run another process holds, and is drawn cut once the longer one completes.
Two queues share one runs folder, and the mixture figure's 100k-update Gaussian Reach
seed 2 (about 200 minutes) is figure 1's IWPL seed 2 at 60k: without the wait, figure 1
would train the same hour over again beside it.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

ADAPTATION_ONLY = ("Adaptation", "IWPA", "ParametricAdaptation")
PIPELINE_ADAPTATION = ("variants", "adaptation", "oracle", "baseline", "baseline_name",
                       "adapt_on")
BUDGET = ("MultiTaskTraining", "DistributedTraining")


def training_bindings(bindings: dict) -> dict:
    """``{"scope/Name": {param: value}}`` (flat bindings, or a record's
    ``config.bindings``) without the training budget and what only adaptation reads,
    in a canonical JSON form (tuples as lists), so a parse and a record compare."""
    out = {}
    for name, params in bindings.items():
        configurable = name.rpartition("/")[2]
        if configurable in ADAPTATION_ONLY:
            continue
        drop = PIPELINE_ADAPTATION if configurable == "pretrain_and_adapt" else \
            ("updates",) if configurable in BUDGET else ()
        kept = {p: v for p, v in dict(params).items() if p not in drop}
        if kept:
            out[name] = kept
    return json.loads(json.dumps(out, sort_keys=True, default=str))


@dataclasses.dataclass(frozen=True)
class Longer:
    """A completed run of the same training for ``trained`` ≥ the planned updates."""

    run_id: int
    trained: int


def trains_as(config: dict, *, want: dict, seed: int, updates: int) -> int | None:
    """A record's ``config.json`` (seed, bindings) against a planned run: its training
    budget when it trained the same (:func:`training_bindings` equal to ``want``, the same
    seed) for at least ``updates`` updates, else None."""
    trained = budget(config.get("bindings") or {})
    if (config.get("seed") != seed or not isinstance(trained, int) or trained < updates
            or training_bindings(config.get("bindings") or {}) != want):
        return None
    return trained


def find_longer(runs_dir: str | Path, *, bindings: dict, seed: int, updates: int,
                completed: dict[str, Path] | None = None) -> Longer | None:
    """The completed run in ``runs_dir`` (its file store) whose training is the planned
    one's (``bindings``: the planned run's flat bindings; ``seed``) for at least
    ``updates`` learner updates: the one of fewest updates, the newest among those.
    ``completed``: :func:`iwx.experiment.store.completed_runs` of ``runs_dir``, when the
    caller has it."""
    from iwx.experiment.store import completed_runs

    want = training_bindings(bindings)
    best: Longer | None = None
    for folder in (completed if completed is not None else completed_runs(runs_dir)).values():
        try:
            config = json.loads((Path(folder) / "config.json").read_text())
        except (OSError, ValueError):
            continue
        trained = trains_as(config, want=want, seed=seed, updates=updates)
        if trained is None:
            continue
        found = Longer(int(Path(folder).name), trained)
        if best is None or (found.trained, -found.run_id) < (best.trained, -best.run_id):
            best = found
    return best


def find_longer_running(runs_dir: str | Path, *, bindings: dict, seed: int,
                        updates: int) -> tuple[int, dict] | None:
    """A run in progress in ``runs_dir`` whose training is the planned one's (as
    :func:`find_longer`) for at least ``updates`` updates: its record says RUNNING and a
    live process holds its lock (iwx.experiment.run_lock, found by the record's
    ``info.checkpoint_key``). Returns (its run id, the lock's holder), else None. A record
    left RUNNING by a killed process has no live holder and is not waited for."""
    from iwx.experiment.run_lock import current_holder, lock_path

    want = training_bindings(bindings)
    root = Path(runs_dir)
    if not root.is_dir():
        return None
    for folder in sorted((f for f in root.iterdir() if f.name.isdigit()),
                         key=lambda f: -int(f.name)):
        try:
            if json.loads((folder / "run.json").read_text()).get("status") != "RUNNING":
                continue
            config = json.loads((folder / "config.json").read_text())
            key = json.loads((folder / "info.json").read_text()).get("checkpoint_key")
        except (OSError, ValueError, AttributeError):
            continue
        if not key or trains_as(config, want=want, seed=seed, updates=updates) is None:
            continue
        holder = current_holder(lock_path(root, key))
        if holder is not None:
            return int(folder.name), holder
    return None


def budget(bindings: dict) -> int | None:
    """A record's training budget, as :func:`iwx.figures.plan.training_updates` reads a
    parse's: ``DistributedTraining.updates`` where bound, else ``MultiTaskTraining.updates``
    (None when neither is bound: such a run is not searched, its default unread)."""
    for configurable in ("DistributedTraining", "MultiTaskTraining"):
        value = (bindings.get(configurable) or {}).get("updates")
        if value is not None:
            return value if isinstance(value, int) else None
    return None


def cut(run, updates: int):
    """The run as if it had stopped after ``updates`` learner updates: its ``train/``
    series to that step (the steps a training series is logged at are learner updates),
    nothing else (what a run with adaptation switched off records)."""
    metrics = {}
    for name, (steps, values) in run.metrics.items():
        if name.startswith("train/"):
            keep = np.asarray(steps) <= updates
            metrics[name] = (np.asarray(steps)[keep], np.asarray(values)[keep])
    return dataclasses.replace(run, metrics=metrics)


def seconds_to(run, updates: int) -> float | None:
    """Wall seconds the run's training took to reach ``updates``: each logged
    ``train/updates_per_s`` value covers the updates since the previous log at that rate.
    None where the run logged no such series (or no rate up to there)."""
    steps, rates = run.metrics.get("train/updates_per_s", (None, None))
    if steps is None:
        return None
    steps, rates = np.asarray(steps, float), np.asarray(rates, float)
    keep = (steps <= updates) & np.isfinite(rates) & (rates > 0)
    if not keep.any():
        return None
    covered = np.diff(np.concatenate([[0.0], steps]))[keep]
    return float((covered / rates[keep]).sum())
