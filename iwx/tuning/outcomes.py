"""What became of every (configuration, seed) of a sweep, read from Ray Tune's trials.

Each (configuration, seed) ends in one of five states:

- ``completed``: its run finished and gave the sweep's metric (a finite number);
- ``failed``: its trial raised (a configuration error, a diverged run, a non-finite
  metric) — shown as failed, never ranked as a score;
- ``elsewhere``: its run is going in another process, which holds the run's lock
  (e.g. an orphaned trial of an earlier sweep driver that was killed): not a failure,
  the result is reused once that process finished and the sweep is run again;
- ``interrupted``: its trial was cut off by an interrupt (it continues from its run's
  checkpoint when the sweep is run again);
- ``not started``: no trial ran it yet.

Why not Ray Tune's ``Result`` objects: ``Result.config`` comes from the trial's last
report, so a trial that failed before reporting, or never started, has none, and
grouping results by configuration made a phantom row of ``None`` values; and after
an interrupt Tune returns normally, so failures and cut-off trials looked alike.
The trial's own config and status are always known: :func:`plain_trials` reads them
(as plain data) and :func:`outcomes` classifies them (pure, tested by hand).
"""

from __future__ import annotations

import dataclasses
import math
import os

COMPLETED, FAILED, ELSEWHERE, INTERRUPTED, NOT_STARTED = (
    "completed", "failed", "elsewhere", "interrupted", "not started")


@dataclasses.dataclass(frozen=True)
class Outcome:
    params: dict            # {axis key: value}
    seed: int
    state: str              # one of the five above
    score: float | None = None
    run_id: str | None = None
    error: str | None = None   # why it failed / who runs it elsewhere


def describe_error(error) -> tuple[str, bool]:
    """(one-line message, whether the run is going in another process) of a trial's
    error: the exception Ray kept (a RayTaskError whose ``cause`` is what the trial
    raised) or, when it could not be unpickled, the text of Ray's error file."""
    from iwx.tuning.trial import TrialElsewhere

    if error is None:
        return "failed (Ray Tune recorded no error)", False
    if isinstance(error, BaseException):
        cause = getattr(error, "cause", None)
        cause = cause if isinstance(cause, BaseException) else error
        elsewhere = isinstance(cause, TrialElsewhere) or isinstance(error, TrialElsewhere)
        return _one_line(f"{type(cause).__name__}: {cause}"), elsewhere
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # A Python traceback ends with "module.Class: message"; Ray's header comes first.
    last = next((line for line in reversed(lines) if ":" in line and not line.startswith(
        ("File ", "^", "~"))), lines[-1] if lines else "failed")
    return _one_line(last), "TrialElsewhere" in text


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def trial_error(trial) -> tuple[str, bool]:
    """:func:`describe_error` of the error a Ray Tune ``Trial`` saved (pickled first,
    then its text; the driver's local copy first: the storage copy comes later)."""
    def local(name, load):
        def read():
            path = getattr(trial, name, None)
            if not path or not os.path.isfile(path):
                return None
            with open(path, "rb") as f:
                return load(f)
        return read

    import cloudpickle

    found = None
    for read in (local("pickled_error_file", cloudpickle.load),
                 local("error_file", lambda f: f.read().decode(errors="replace")),
                 trial.get_pickled_error, trial.get_error):
        try:
            found = read()
        except Exception:  # noqa: BLE001  (an unreadable error is still a failure)
            found = None
        if found is not None:
            break
    return describe_error(found)


def plain_trials(trials) -> list[dict]:
    """Ray Tune ``Trial`` objects as plain data: {config, status, last_result, error,
    elsewhere, trial_id}."""
    out = []
    for trial in trials:
        error, elsewhere = trial_error(trial) if trial.status == "ERROR" else (None, False)
        out.append({"config": dict(trial.config or {}), "status": trial.status,
                    "last_result": dict(trial.last_result or {}), "error": error,
                    "elsewhere": elsewhere, "trial_id": trial.trial_id})
    return out


def trial_outcomes(trial: dict, keys: list[str], seeds) -> list[Outcome]:
    """The outcomes of one plain trial (:func:`plain_trials`): one per seed it covers
    (its config's ``seed``, or every seed of the sweep for a search trial, in order)."""
    config = trial["config"]
    params = {key: config.get("params", {}).get(f"p{i}") for i, key in enumerate(keys)}
    covered = [config["seed"]] if "seed" in config else list(seeds)
    last = trial.get("last_result") or {}
    reported = dict(zip(last.get("seeds_list", []), zip(last.get("scores", []),
                                                         last.get("run_ids", []))))
    status = trial["status"]
    out, cut = [], False
    for seed in covered:
        if seed in reported and _finite(reported[seed][0]):
            score, run_id = reported[seed]
            out.append(Outcome(params, seed, COMPLETED, float(score), str(run_id)))
            continue
        if cut:                                  # after the seed that stopped the trial
            out.append(Outcome(params, seed, NOT_STARTED))
            continue
        cut = True
        if status == "ERROR":
            state = ELSEWHERE if trial.get("elsewhere") else FAILED
            out.append(Outcome(params, seed, state, error=trial.get("error")))
        elif seed in reported:                   # a non-finite score (trials before the check)
            out.append(Outcome(params, seed, FAILED, error=f"the metric is {reported[seed][0]}"))
        elif status == "PENDING":                # never ran
            out.append(Outcome(params, seed, NOT_STARTED))
        else:                                    # RUNNING, PAUSED: cut off by an interrupt
            out.append(Outcome(params, seed, INTERRUPTED))
    return out


def outcomes(trials: list[dict], keys: list[str], seeds) -> list[Outcome]:
    """Every outcome of the plain trials; when Ray ran one (configuration, seed) more
    than once, a completed outcome wins over any other, then the latest trial's."""
    best: dict[tuple, Outcome] = {}
    for trial in trials:
        for o in trial_outcomes(trial, keys, seeds):
            key = (repr(list(o.params.items())), o.seed)
            if key not in best or best[key].state != COMPLETED:
                best[key] = o
    return list(best.values())


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
