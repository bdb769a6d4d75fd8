"""Run one experiment from gin files: ``python -m iwx.run --gin gin/point_nav_iwpl.gin``.

Composes only: parses the configuration (failing fast with file / line /
binding), opens a Sacred run, calls the configured pipeline, records what it
returns. A killed run restarted with the same command resumes from its last
checkpoint (``--fresh`` ignores it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.run", description=__doc__.split("\n")[0])
    p.add_argument("--gin", action="append", required=True, metavar="FILE",
                   help="gin file (repeatable; later files override earlier ones)")
    p.add_argument("--gin_param", action="append", default=[], metavar="'NAME = VALUE'",
                   help="extra gin binding (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="the one seed of the run (default 0)")
    p.add_argument("--mongo", default=os.environ.get("IWX_MONGO_URL"), metavar="URL",
                   help="also record into this MongoDB (default: $IWX_MONGO_URL)")
    p.add_argument("--runs-dir", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   help="Sacred file store (default: runs/)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="label the run (repeatable): recorded in its meta, shown as an "
                        "Omniboard tag, selectable in python -m iwx.report --tag")
    p.add_argument("--video", action="store_true",
                   help="render the last adaptation episode of held-out task 0 as a GIF "
                        "artifact (needs EGL or OSMesa; MUJOCO_GL defaults to egl then)")
    return p.parse_args(argv)


def effective_params(gin_params, no_progress: bool = False, video: bool = False) -> list[str]:
    """The bindings a run parses after its files: the user's, then the flags' (these
    enter the run's configuration key, so ``iwx.compare`` computes keys with it too)."""
    params = list(gin_params)
    if no_progress:
        params += ["MultiTaskTraining.progress = False", "Adaptation.progress = False"]
    if video:
        params += ["Adaptation.video = True"]
    return params


def final_return(history, window: int = 10) -> float | None:
    """Mean of the last ``window`` logged training returns (None without training)."""
    values = [v for name, v, _ in history if name == "train/return"][-window:]
    return float(sum(values) / len(values)) if values else None


def main(argv=None) -> int:
    record = execute(parse_args(argv))
    return 0 if record is not None else 2


def execute(args, meta: dict | None = None) -> dict | None:
    """One recorded run. Returns {"run_id", "run_dir", "results"} (None: configuration
    error, already reported on stderr). ``meta``: extra entries for the run's Sacred
    meta (a sweep puts its id and the trial's parameters there)."""
    # Before anything imports mujoco: render offscreen only when a video is asked for.
    os.environ.setdefault("MUJOCO_GL", "egl" if args.video else "disable")
    from iwx.experiment.gin_config import ConfigError, flat_bindings, parse

    if args.mongo:
        from iwx.experiment.mongo import check_url

        problem = check_url(args.mongo)
        if problem:
            print(f"iwx.run: --mongo: {problem}", file=sys.stderr)
            return None
    params = effective_params(args.gin_param, args.no_progress, args.video)
    try:
        cfg = parse(args.gin, params)
    except ConfigError as exc:
        print(f"iwx.run: configuration error: {exc}", file=sys.stderr)
        return None

    import uuid

    import gin
    import numpy as np

    from iwx import analysis
    from iwx.experiment.recording import make_experiment
    from iwx.loops.checkpoint import Checkpointer
    from iwx.loops.logger import MemoryLogger
    from iwx.loops.pipeline import pretrain_and_adapt

    runs_dir = Path(args.runs_dir)
    key = cfg.key(args.seed)
    checkpoints = Checkpointer(runs_dir / "_checkpoints" / key)
    if args.fresh:
        checkpoints.clear()
    config = {"seed": args.seed, "gin_files": list(cfg.files), "gin_params": list(cfg.params),
              "bindings": flat_bindings()}
    ex = make_experiment("iwx", config, runs_dir, args.mongo)

    @ex.main
    def experiment(_run, seed):
        _run.info["gin_text"] = cfg.text
        _run.info["checkpoint_key"] = key
        previous = checkpoints.load()
        if previous is not None:
            _run.info["resumed_from"] = {"run_id": previous.get("run_id"),
                                         "checkpoint": previous.get("label")}
            print(f"[iwx] resuming from checkpoint {previous.get('label')!r} "
                  f"of run {previous.get('run_id')}")
        del previous
        checkpoints.meta = {"run_id": _run._id}
        logger = MemoryLogger(sink=lambda name, value, step: _run.log_scalar(name, value, step))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "config.gin").write_text(cfg.text)
            result = pretrain_and_adapt(seed, logger, checkpoints, out)
            (out / "operative_config.gin").write_text(gin.operative_config_str())
            _run.info["operative_config"] = gin.operative_config_str()
            returns, oracle, baseline = result["returns"], result["oracle"], result["baseline"]
            explore = result["exploration_episodes"]
            headline = {name: analysis.summary(r, explore) for name, r in returns.items()}
            if oracle is not None:
                for h in headline.values():
                    h["last3_fraction_of_oracle"] = h["last3_mean"] / float(np.mean(oracle))
            if baseline is not None:
                for h in headline.values():
                    h["last3_minus_baseline"] = h["last3_mean"] - float(np.mean(baseline[1]))
            (out / "results.json").write_text(json.dumps({
                "returns": {n: r.tolist() for n, r in returns.items()},
                "oracle": None if oracle is None else oracle.tolist(),
                "baseline": None if baseline is None else {"name": baseline[0],
                                                           "returns": baseline[1].tolist()},
                "test_goals": np.asarray(result["test_goals"]).tolist(),
                "exploration_episodes": explore, "adapt_on": result["adapt_on"],
                "train_final_return": final_return(logger.history),
                "summary": headline}, indent=1))
            if returns:
                analysis.plot_adaptation(returns, out / "adaptation.png", oracle=oracle,
                                         baseline=baseline,
                                         exploration_episodes=explore,
                                         title=", ".join(cfg.files))
            analysis.plot_training(logger.history, out / "training.png",
                                   title=", ".join(cfg.files))
            for f in sorted(out.iterdir()):
                _run.add_artifact(str(f), f.name)
        if returns:
            which = "held-out" if result["adapt_on"] == "test" else "validation"
            print(f"\nMean {which} return per adaptation episode (± 95% CI across tasks):")
            print(analysis.adaptation_table(returns, oracle))
        else:
            last = [v for n, v, _ in logger.history if n == "train/return"][-1:]
            print("\nmulti-task training only (no adaptation variants)"
                  + (f": last training return {last[0]:.2f}" if last else ""))
        if oracle is not None:
            print(f"\ngoal-knowing oracle: {np.mean(oracle):.2f} per episode")
        if baseline is not None:
            m, h = analysis.mean_ci(baseline[1])
            print(f"\n{baseline[0]}: {m:.2f} ± {h:.2f} per episode")
        for name, h in headline.items():
            line = (f"{name}: last 3 episodes {h['last3_mean']:.2f} ± {h['last3_ci95']:.2f}, "
                    f"after exploration {h['post_exploration_mean']:.2f} "
                    f"± {h['post_exploration_ci95']:.2f}")
            if "last3_fraction_of_oracle" in h:
                line += f", {100 * h['last3_fraction_of_oracle']:.0f}% of the oracle"
            if "last3_minus_baseline" in h:
                line += f", {h['last3_minus_baseline']:+.2f} over {baseline[0]}"
            print(line)
        _run.info["summary"] = headline
        checkpoints.clear()
        return headline

    meta_info = {"iwx_uid": uuid.uuid4().hex, "tags": list(args.tag), **(meta or {})}
    run = ex.run(config_updates={"seed": args.seed}, meta_info=meta_info,
                 options={"--force": False})
    print(f"[iwx] recorded run {run._id} in {runs_dir}"
          + (f" and MongoDB {args.mongo}" if args.mongo else ""))
    run_dir = runs_dir / str(run._id)
    return {"run_id": run._id, "run_dir": run_dir,
            "results": json.loads((run_dir / "results.json").read_text())}


if __name__ == "__main__":
    sys.exit(main())
