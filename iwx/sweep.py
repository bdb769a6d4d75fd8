"""Run a sweep file with Ray Tune: ``python -m iwx.sweep sweeps/adapt_alpha.yaml``.

The file (iwx/tuning/spec.py) is checked whole before anything starts. Then
every trial is an ordinary ``iwx.run`` in a Ray worker, recorded in Sacred
(file store, and MongoDB with ``--mongo``), tagged with the sweep's id:
a grid runs every combination on every seed; a search lets Optuna (through
Ray Tune's OptunaSearch) propose ``num_samples`` configurations, each run on
every seed. At the end a table gives each configuration's mean ± 95% CI
across seeds and the best one; trials adapt on the validation tasks
(appendix A.2) unless the file says ``split: test``.

Running the same file again resumes the sweep (its id hashes the file and its
gin files): Ray Tune restores its state, finished trials are not run again
(each trial also checks the file store for its completed run), failed ones
are run again, and an interrupted run continues from its last checkpoint.
``--fresh`` starts over under a new id. ``address:`` in the file (or
``--address``) runs the trials on a Ray cluster.

Exit status: 0 when every (configuration, seed) completed; 1 when some failed or
are missing; 2 for a bad sweep file (nothing started); 130 after Ctrl-C and 143
after SIGTERM (iwx/tuning/interrupts.py: the trials are stopped, the summary of
what ran is written, and the same command resumes).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.sweep", description=__doc__.split("\n")[0])
    p.add_argument("file", metavar="SWEEP.yaml", help="sweep file (see sweeps/)")
    p.add_argument("--runs-dir", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   help="Sacred file store of the trials' runs; the sweep's state and "
                        "summary go to RUNS_DIR/_sweeps/<sweep id>/ (default: runs/)")
    p.add_argument("--mongo", default=os.environ.get("IWX_MONGO_URL"), metavar="URL",
                   help="also record every run into this MongoDB (default: $IWX_MONGO_URL)")
    p.add_argument("--gin", action="append", default=None, metavar="FILE",
                   help="use this base gin file instead of the file's gin: (repeatable), "
                        "e.g. the same grid on another task")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (overrides the file's address:)")
    p.add_argument("--cpus", type=int, default=None,
                   help="CPUs of the local Ray instance (default: this machine's); a trial "
                        "starts when its learner's and actors' CPUs are free")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="at most this many trials at once (overrides the file)")
    p.add_argument("--fresh", action="store_true",
                   help="start a new sweep instead of resuming this file's last one")
    p.add_argument("--dry-run", action="store_true",
                   help="check the file and list the trials, run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def _mongo_write_summary(url: str, doc: dict) -> None:
    """Also keep the sweep's summary in MongoDB (collection ``sweeps``), bounded."""
    from iwx.experiment.mongo import database

    client, db = database(url)
    try:
        db["sweeps"].replace_one({"_id": doc["_id"]}, doc, upsert=True)
    except Exception as exc:  # noqa: BLE001  (the file store keeps the summary)
        print(f"[iwx.sweep] MongoDB did not take the summary ({type(exc).__name__}); "
              "it is in the sweep's folder", file=sys.stderr)
    finally:
        client.close()


def _pretrain(setup, seed: int, no_progress: bool) -> tuple[str, bytes]:
    """Appendix A.2: pretrain once (variants = {}), adapt from it in every trial.
    Reuses this sweep's completed pretraining run when there is one."""
    from iwx.tuning.trial import run_seed

    print(f"[iwx.sweep] pretraining once (seed {seed}) for every trial ...", flush=True)
    out = run_seed(setup, {}, seed, "pretrain", ["pretrain_and_adapt.variants = {}"],
                   tags=("pretrain",), no_progress=no_progress)
    if out["reused"]:
        print(f"[iwx.sweep] reusing pretraining run {out['run_id']}", flush=True)
    return out["run_id"], (Path(setup.runs_dir) / out["run_id"] / "model.pt").read_bytes()


def _pretrain_stopped(exc: BaseException, stop, sweep_id: str) -> int | None:
    """What to say, and the exit status, when the pretraining run did not complete
    (None: an error that is not a stop, to be raised). The runner's stops carry their
    exit status (``RunStopped.exit_code``: 130 / 143 interrupted, 1 failed, 2 refused)."""
    from iwx.tuning.trial import TrialElsewhere

    if isinstance(exc, TrialElsewhere):
        print(f"iwx.sweep: the sweep's pretraining {exc}", file=sys.stderr)
        return 2
    code = getattr(exc, "exit_code", None)
    if isinstance(exc, KeyboardInterrupt):
        code = stop.exit_code
    elif not isinstance(code, int):
        return None
    else:
        print(str(exc), file=sys.stderr)
    if isinstance(exc, KeyboardInterrupt) or getattr(exc, "resumable", False):
        print(f"[iwx.sweep] pretraining stopped; run the same command again to resume sweep "
              f"{sweep_id} (pretraining continues from its checkpoint)", file=sys.stderr)
    return code


def _tune_trials(folder: Path, results) -> list:
    """Ray Tune's trials as ``fit()`` left them: a trial stopped by an interrupt is
    TERMINATED without a result, one never started PENDING. The ResultGrid keeps them
    only in a private attribute; without it (another Ray), the trials of Tune's last
    save (public), where a stopped trial reads PENDING: still missing, not told apart."""
    trials = getattr(getattr(results, "_experiment_analysis", None), "trials", None)
    if trials is not None:
        return list(trials)
    from ray.tune import ExperimentAnalysis

    return list(ExperimentAnalysis(str(folder)).trials)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "disable")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Quiet Ray Tune: no status tables (the sweep prints its own progress), and only the
    # JSON / CSV result loggers (TensorBoard's cannot log the per-seed lists).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    from iwx.tuning.interrupts import StopSignals, SweepInterrupted

    stop = StopSignals().install()
    try:
        return _sweep(args, stop)
    except SweepInterrupted:
        print(f"\n[iwx.sweep] interrupted by {stop.name} before any trial ran; run the "
              "same command again to start or resume the sweep", file=sys.stderr)
        return stop.exit_code
    finally:
        stop.restore()


def _sweep(args, stop) -> int:
    from iwx.tuning import spec as specs
    from iwx.tuning.interrupts import SweepInterrupted
    from iwx.tuning.resources import trial_bundles
    from iwx.tuning.trial import make_setup

    started = time.monotonic()
    try:
        spec = specs.load(args.file, gin_override=args.gin)
        facts = specs.check_bindings(spec)
    except specs.SpecError as exc:
        print(f"iwx.sweep: {exc}", file=sys.stderr)
        return 2
    if args.mongo:
        from iwx.experiment.mongo import check_url

        problem = check_url(args.mongo)
        if problem:
            print(f"iwx.sweep: --mongo: {problem}", file=sys.stderr)
            return 2
    address = args.address or spec.address
    bundles = trial_bundles(spec.resources, facts["actors"])
    need = sum(b["CPU"] for b in bundles)
    cpus = args.cpus or os.cpu_count() or 1
    if not address and need > cpus:
        print(f"iwx.sweep: {spec.path}: a trial needs {need:g} CPUs (resources.cpu = "
              f"{spec.resources['cpu']:g} for its learner + {facts['actors'][0]} actors x "
              f"DistributedTraining.actor_cpus = {facts['actors'][1]:g}) and the local Ray has "
              f"{cpus}: no trial could start. Use fewer actors, a smaller "
              f"actor_cpus, or a cluster (address:)", file=sys.stderr)
        return 2
    max_concurrent = args.max_concurrent or spec.max_concurrent
    sweep_id = spec.sweep_id() + (time.strftime("-%Y%m%d-%H%M%S") if args.fresh else "")
    runs_dir = Path(args.runs_dir).resolve()
    folder = runs_dir / "_sweeps" / sweep_id
    n_configs = len(spec.grid_points()) if not spec.search else spec.num_samples
    n_trials = n_configs * (len(spec.seeds) if not spec.search else 1)
    print(f"[iwx.sweep] {spec.path}: sweep {sweep_id}: "
          + (f"grid of {n_configs} configurations × {len(spec.seeds)} seeds = {n_trials} trials"
             if not spec.search else
             f"Optuna search, {n_configs} configurations, each on seeds {list(spec.seeds)}")
          + f"; {spec.metric} ({spec.mode}) on the {_tasks_of(spec)} tasks"
          + f"; checked in {time.monotonic() - started:.1f} s", flush=True)
    if args.dry_run:
        for point in (spec.grid_points() if not spec.search else []):
            print("  " + ", ".join(spec.point_bindings(point)))
        return 0

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.yaml").write_text(spec.text)
    setup = make_setup(spec, facts, runs_dir, args.mongo, sweep_id)
    pretrain_run = None
    if spec.pretrain_seed is not None:
        try:
            pretrain_run, model = _pretrain(setup, spec.pretrain_seed, args.no_progress)
        except (KeyboardInterrupt, Exception) as exc:
            code = _pretrain_stopped(exc, stop, sweep_id)
            if code is None:
                raise
            return code
        setup = dataclasses.replace(setup, pretrained=model)

    import ray

    results, hard = None, False
    try:
        ray.init(address=address, num_cpus=None if address else cpus,
                 include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                 ignore_reinit_error=True)
        stop.install()    # again: Ray's core worker took SIGTERM over
        tuner = _tuner(spec, setup, folder, runs_dir, sweep_id, bundles, max_concurrent,
                       n_trials, args.no_progress)
        with stop.tuning():
            results = tuner.fit()
    except SweepInterrupted:
        hard = True
    finally:
        ray.shutdown()
    stop.finishing()
    if hard:
        print(f"\n[iwx.sweep] interrupted by {stop.name} (twice: stopped without saving or "
              f"summarising); run the same command again to resume sweep {sweep_id}",
              file=sys.stderr)
        return stop.exit_code
    return _finish(spec, facts, args, stop, folder, sweep_id, pretrain_run,
                   _tune_trials(folder, results), n_configs, started)


def _tuner(spec, setup, folder, runs_dir, sweep_id, bundles, max_concurrent, n_trials,
           no_progress):
    """A new Ray Tune Tuner for the sweep, or the restored one of an earlier run of it."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from iwx.tuning.progress import TrialProgress
    from iwx.tuning.trial import run_trial

    # A trial reserves its learner's resources and its actors' (DistributedTraining) at once.
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup),
                                    tune.PlacementGroupFactory(bundles))
    if tune.Tuner.can_restore(str(folder)):
        print(f"[iwx.sweep] resuming {folder}", flush=True)
        return tune.Tuner.restore(str(folder), trainable=trainable,
                                  resume_unfinished=True, resume_errored=True)
    if spec.search:
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        space = {f"p{i}": _tune_distribution(a.distribution) for i, a in enumerate(spec.axes)}
        search = OptunaSearch(metric="mean_score", mode=spec.mode, seed=spec.seeds[0])
        if max_concurrent:
            search = ConcurrencyLimiter(search, max_concurrent=max_concurrent)
        param_space = {"params": space}
    else:
        search = None
        points = [{f"p{i}": point[a.key] for i, a in enumerate(spec.axes)}
                  for point in spec.grid_points()]
        param_space = {"params": tune.grid_search(points),
                       "seed": tune.grid_search(list(spec.seeds))}
    return tune.Tuner(
        trainable, param_space=param_space,
        tune_config=tune.TuneConfig(
            metric="mean_score", mode=spec.mode, search_alg=search,
            num_samples=spec.num_samples if spec.search else 1,
            max_concurrent_trials=None if spec.search else max_concurrent,
            reuse_actors=True, trial_dirname_creator=lambda t: t.trial_id),
        run_config=tune.RunConfig(
            name=sweep_id, storage_path=str(runs_dir / "_sweeps"), verbose=0,
            callbacks=[TrialProgress(n_trials, no_progress, [a.key for a in spec.axes]),
                       JsonLoggerCallback(), CSVLoggerCallback()],
            failure_config=tune.FailureConfig(max_failures=0)))


def _finish(spec, facts, args, stop, folder, sweep_id, pretrain_run, trials, n_configs,
            started) -> int:
    """Write and print the summary of what ran; say how to continue; the exit status."""
    from iwx.tuning import outcomes, summary

    keys = [a.key for a in spec.axes]
    found = outcomes.outcomes(outcomes.plain_trials(trials), keys, spec.seeds)
    rows = summary.rows_from_outcomes(found, [] if spec.search else spec.grid_points())
    text = summary.table(rows, spec.metric, spec.mode, spec.seeds)
    data = summary.as_json(rows, spec.metric, spec.mode, spec.seeds)
    c = summary.counts(found, n_configs * len(spec.seeds))
    complete = c["completed"] == c["expected"]
    data.update({"sweep_id": sweep_id, "file": str(spec.path), "split": spec.split,
                 "seeds": list(spec.seeds), "pretrain_run": pretrain_run, "counts": c,
                 "missing_results": c["missing"], "failed_results": c["failed"],
                 "failed_trials": sum(1 for t in trials if t.status == "ERROR"),
                 "complete": complete,
                 "interrupted": None if stop.signum is None else stop.name})
    top = data["best"]
    header = (f"# Sweep {sweep_id}\n\n" + (f"{spec.description}\n\n" if spec.description else "")
              + f"{spec.metric} on the {_tasks_of(spec)} tasks, mean ± 95% CI (Student t) over "
              f"seeds {list(spec.seeds)}; {len(trials)} trials"
              + (f", pretrained once by run {pretrain_run}" if pretrain_run else "") + ".\n\n"
              + ("" if complete else f"**Incomplete: {summary.counts_line(c)}.**\n\n"))
    footer = ""
    if top is not None:
        best_bindings = spec.point_bindings(top["params"])
        if pretrain_run is not None:    # adapt from the same π0 / ψ, on the same split
            best_bindings += [f"pretrain_and_adapt.pretrained = '{folder / 'pretrained.pt'}'",
                              f"{facts['tasks']}.seed = {spec.pretrain_seed}"]
        footer = ("\n\nBest configuration: " + top["label"]
                  + f" ({top['mean']:.3f} ± {top['ci95']:.3f}).\nOn the held-out tasks:\n\n"
                  + "    python -m iwx.run " + " ".join(f"--gin {g}" for g in spec.gin_files)
                  + "".join(f" --gin_param {shlex.quote(b)}"
                            for b in [*spec.bindings, *best_bindings])
                  + " --seed 0\n")
    (folder / "summary.md").write_text(header + text + footer)
    (folder / "summary.json").write_text(json.dumps(data, indent=1, default=str))
    if args.mongo:
        _mongo_write_summary(args.mongo, {"_id": sweep_id, "file": str(spec.path),
                                          "yaml": spec.text, "table": text, **data})
    print("\n" + header + text + footer)
    print(f"[iwx.sweep] wrote {folder}/summary.md and summary.json "
          f"({(time.monotonic() - started) / 60:.1f} min)")
    return _continue_line(c, stop, sweep_id)


def _continue_line(c: dict, stop, sweep_id: str) -> int:
    """Tell the user where the sweep stands and how to continue; the exit status."""
    from iwx.tuning.summary import counts_line

    again = f"run the same command again to resume sweep {sweep_id}"
    if c["running_elsewhere"]:
        print(f"[iwx.sweep] {c['running_elsewhere']} (configuration, seed) results are being "
              "computed by another process that holds their run lock (e.g. a trial left "
              "running by a sweep driver that was killed); once it finished, the same "
              "command reuses its runs", file=sys.stderr)
    if stop.signum is not None:
        print(f"[iwx.sweep] interrupted by {stop.name}: {counts_line(c)}; {again} (completed "
              "results are reused, interrupted runs continue from their checkpoints, failed "
              "trials are run again)", file=sys.stderr)
        return stop.exit_code
    if c["completed"] == c["expected"]:
        return 0
    print(f"[iwx.sweep] incomplete: {counts_line(c)}; {again} (completed results are "
          "reused, failed trials are run again)", file=sys.stderr)
    return 1


def _tasks_of(spec) -> str:
    return "training" if spec.metric.startswith("train/") else spec.split


def _tune_distribution(distribution):
    from ray import tune

    kind, params = distribution
    if kind == "loguniform":
        return tune.loguniform(*params)
    if kind == "uniform":
        return tune.uniform(*params)
    if kind == "int":
        return tune.randint(params[0], params[1] + 1)   # inclusive upper end
    return tune.choice(list(params))


if __name__ == "__main__":
    sys.exit(main())
