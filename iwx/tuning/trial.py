"""One sweep trial, as Ray Tune runs it in a worker process: ordinary recorded runs.

What crosses into the worker is plain data (:class:`TrialSetup`: the gin text,
bindings, paths, the sweep's id), never a Sacred object or a gin config:
the trial writes the gin text to a file, and :func:`iwx.experiment.runner.run`
parses it (once: gin's config is per process) and builds the Sacred experiment
and its observers (the MongoDB client included) inside the worker, in Sacred's
``sys`` capture mode. These are the documented Ray + Sacred pitfalls (STACK-NOTES).

A trial is one configuration on one seed (a grid), or one configuration on
every seed in turn (a search: Optuna sees the mean). A seed whose configuration
key already has a COMPLETED run of this sweep in the file store is not run
again (the runner's ``reuse``): a resumed sweep never runs a finished trial
twice, and an interrupted one continues from its run's last checkpoint (a run
resumes by key).

A trial fails (Ray Tune: ERROR; the summary: failed, never a score) when its run
does, and when the metric it gives is not a finite number. A run whose lock is
held by another process (an orphaned trial of a killed sweep driver, still
going) raises :class:`TrialElsewhere`: the summary shows it as running
elsewhere, and the sweep run again reuses that run once it completed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class TrialSetup:
    sweep_id: str
    gin_name: str                    # file name the gin text is written under
    gin_text: str                    # the base files, includes flattened in place
    bindings: tuple[str, ...]        # fixed bindings of every trial
    axes: tuple                      # spec.Axis objects (plain dataclasses)
    seeds: tuple[int, ...]
    metric: str
    runs_dir: str
    mongo: str | None
    pretrained: bytes | None = None  # model.pt of the sweep's pretraining run

    @property
    def folder(self) -> Path:
        return Path(self.runs_dir) / "_sweeps" / self.sweep_id


class TrialElsewhere(RuntimeError):
    """The trial's run is going in another process, which holds its run lock
    (``iwx.experiment.run_lock``): e.g. an orphaned trial of an earlier sweep driver
    that was killed. Not a failure of the configuration: once that process finished,
    running the sweep again reuses its run. (Plain message only: it crosses from the
    Ray worker to the driver by pickling.)"""


def run_locked_in(exc: BaseException) -> BaseException | None:
    """The run-lock refusal (``iwx.experiment.run_lock.RunLocked``) in ``exc`` or its
    chain (the runner may report it as another exception), else None."""
    try:
        from iwx.experiment.run_lock import RunLocked
    except ImportError:       # a runner without run locks: compare by name
        RunLocked = None
    seen, current = set(), exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (RunLocked is not None and isinstance(current, RunLocked)) \
                or type(current).__name__ == "RunLocked":
            return current
        current = current.__cause__ or current.__context__
    return None


def write_once(path: Path, data: bytes) -> Path:
    """Write ``data`` at ``path`` unless it is already there (atomic: trials race)."""
    if path.is_file() and path.read_bytes() == data:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def metric_value(results: dict, metric: str) -> float:
    """The sweep's metric from a run's ``results.json`` (spec.METRICS)."""
    from iwx.results import stats

    if metric == "train/final_return":
        value = results.get("train_final_return")
        if value is None:
            raise ValueError("train/final_return: the run logged no training return")
        return float(value)
    _, rest = metric.split("/", 1)
    variant, stat = rest.rsplit("/", 1)
    returns = results["returns"].get(variant)
    if returns is None:
        raise ValueError(f"{metric}: the run has no variant {variant!r} "
                         f"(it has {sorted(results['returns'])})")
    s = stats.summary(np.asarray(returns), results["exploration_episodes"])
    return float(s["last3_mean"] if stat == "last3" else s["post_exploration_mean"])


def make_setup(spec, facts: dict, runs_dir: Path, mongo: str | None,
               sweep_id: str) -> TrialSetup:
    """The plain data every trial of sweep ``spec`` (checked: ``facts``) receives."""
    from iwx.experiment.gin_config import flattened_text

    bindings = spec.fixed_bindings()
    if spec.pretrain_seed is not None:
        bindings.append(f"{facts['tasks']}.seed = {spec.pretrain_seed}")  # one split for all
    return TrialSetup(sweep_id=sweep_id,
                      gin_name=spec.gin_files[-1].name,  # the path enters the run's key
                      gin_text="\n".join(flattened_text(p) for p in spec.gin_files),
                      bindings=tuple(bindings), axes=spec.axes, seeds=spec.seeds,
                      metric=spec.metric, runs_dir=str(runs_dir), mongo=mongo)


def trial_spec(setup: TrialSetup, params: dict, seed: int, trial_name: str,
               extra_bindings=(), *, tags=(), no_progress: bool = True):
    """The :class:`~iwx.experiment.runner.RunSpec` of a configuration (``params``:
    {axis key: value}; axes it leaves out keep the gin file's value) on a seed."""
    from iwx.experiment.runner import RunSpec
    from iwx.tuning.spec import point_bindings

    gin_path = write_once(setup.folder / setup.gin_name, setup.gin_text.encode())
    point = point_bindings(setup.axes, params)
    meta = {"sweep": {"id": setup.sweep_id, "trial": trial_name,
                      "params": {k: _plain(v) for k, v in params.items()}}}
    return RunSpec(gin_files=(str(gin_path),),
                   bindings=(*setup.bindings, *extra_bindings, *point), seed=seed,
                   runs_dir=str(setup.runs_dir), mongo=setup.mongo,
                   tags=(setup.sweep_id, *tags), meta=meta, progress=not no_progress,
                   reuse=True)


def run_seed(setup: TrialSetup, params: dict, seed: int, trial_name: str,
             extra_bindings=(), *, tags=(), no_progress: bool = True) -> dict:
    """One recorded run of a configuration on a seed (:func:`trial_spec`), or the
    completed one. Raises :class:`TrialElsewhere` when another process runs it."""
    from iwx.experiment.runner import run

    spec = trial_spec(setup, params, seed, trial_name, extra_bindings, tags=tags,
                      no_progress=no_progress)
    try:
        record = run(spec)
    except Exception as exc:
        locked = run_locked_in(exc)
        if locked is None:
            raise
        raise TrialElsewhere(f"trial {trial_name}, seed {seed}: {locked}") from None
    if record is None:
        raise RuntimeError(f"configuration error in trial {trial_name} (see its log)")
    return {"run_id": str(record.run_id), "reused": record.reused, "results": record.results}


def _plain(value):
    return value if isinstance(value, (int, float, str, bool, type(None))) else str(value)


def run_trial(config: dict, setup: TrialSetup) -> None:
    """Ray Tune's trainable: ``config = {"params": {axis key: value}, "seed": s}`` (a grid
    trial) or ``{"params": ...}`` (a search trial: every seed of the sweep)."""
    os.environ.setdefault("MUJOCO_GL", "disable")
    import torch
    from ray import tune

    torch.set_num_threads(1)
    params = {axis.key: config["params"][f"p{i}"] for i, axis in enumerate(setup.axes)}
    seeds = [config["seed"]] if "seed" in config else list(setup.seeds)
    extra = []
    if setup.pretrained is not None:
        model = write_once(setup.folder / "pretrained.pt", setup.pretrained)
        extra = [f"pretrain_and_adapt.pretrained = '{model}'"]
    trial_name = tune.get_context().get_trial_name()
    scores, run_ids, reused = [], [], []
    for seed in seeds:
        out = run_seed(setup, params, seed, trial_name, extra)
        score = metric_value(out["results"], setup.metric)
        if not np.isfinite(score):      # a diverged run is a failure, never a score
            raise ValueError(f"trial {trial_name}, seed {seed}: {setup.metric} of run "
                             f"{out['run_id']} is {score} (the run diverged or logged no "
                             "value); the trial counts as failed")
        scores.append(score)
        run_ids.append(out["run_id"])
        reused.append(out["reused"])
        tune.report({"score": scores[-1], "mean_score": float(np.mean(scores)),
                     "seeds_done": len(scores), "seed": seed, "scores": list(scores),
                     "seeds_list": seeds[:len(scores)],
                     "run_ids": list(run_ids), "reused": list(reused)})
