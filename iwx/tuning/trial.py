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


def run_seed(setup: TrialSetup, params: dict, seed: int, trial_name: str,
             extra_bindings=(), *, tags=(), no_progress: bool = True) -> dict:
    """One recorded run of a configuration (``params``: {axis key: value}; axes it
    leaves out keep the gin file's value) on a seed, or the completed one."""
    from iwx.experiment.runner import RunSpec, run
    from iwx.tuning.spec import point_bindings

    gin_path = write_once(setup.folder / setup.gin_name, setup.gin_text.encode())
    point = point_bindings(setup.axes, params)
    meta = {"sweep": {"id": setup.sweep_id, "trial": trial_name,
                      "params": {k: _plain(v) for k, v in params.items()}}}
    record = run(RunSpec(gin_files=(str(gin_path),),
                         bindings=(*setup.bindings, *extra_bindings, *point), seed=seed,
                         runs_dir=str(setup.runs_dir), mongo=setup.mongo,
                         tags=(setup.sweep_id, *tags), meta=meta, progress=not no_progress,
                         reuse=True))
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
        scores.append(metric_value(out["results"], setup.metric))
        run_ids.append(out["run_id"])
        reused.append(out["reused"])
        tune.report({"score": scores[-1], "mean_score": float(np.mean(scores)),
                     "seeds_done": len(scores), "seed": seed, "scores": list(scores),
                     "seeds_list": seeds[:len(scores)],
                     "run_ids": list(run_ids), "reused": list(reused)})
