"""One recorded run as a library call: :func:`run` of a plain-data :class:`RunSpec`.

``python -m iwx.run`` parses its command line into a spec and calls :func:`run`;
``iwx.compare`` calls it in child processes (:func:`run_captured`) and every sweep
trial in its Ray worker (``iwx.tuning.trial``). A run

1. parses its gin files and bindings once (:func:`prepare`), failing fast with
   file / line / binding before any compute, and derives its configuration key
   there (the one place it is derived: resuming, ``iwx.compare`` and sweeps all
   find a configuration by it) and its identity (task, method);
2. with ``reuse``, returns the COMPLETED run of that key instead of running it
   again (of the same sweep when ``meta`` names one);
3. otherwise opens a Sacred run (file store under ``runs_dir``, MongoDB mirror
   with ``mongo``), resumes from the key's checkpoint unless ``fresh``, calls the
   configured ``pretrain_and_adapt``, records results.json, the figures, the
   gin text and operative config, and prints the summary
   (:mod:`iwx.experiment.outcome`).

Nothing heavy is imported before the configuration parsed: a bad binding is
reported without Sacred, matplotlib or scipy.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

from iwx.experiment.gin_config import ConfigError, GinConfig, flat_bindings, parse

PREFIX = "iwx.run"   # how messages name the run, whichever tool started it


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """Everything one run needs, as plain data (picklable: it crosses processes)."""

    gin_files: tuple[str, ...]                # parsed in order; later files override
    bindings: tuple[str, ...] = ()            # 'Name.param = value', after the files
    seed: int = 0
    runs_dir: str = "runs"                    # the Sacred file store
    mongo: str | None = None                  # also mirror the record into this MongoDB
    fresh: bool = False                       # ignore an existing checkpoint
    tags: tuple[str, ...] = ()                # Sacred meta.tags (Omniboard tags)
    meta: dict = dataclasses.field(default_factory=dict)   # more Sacred meta (a sweep's)
    progress: bool = True                     # progress bars
    video: bool = False                       # a GIF of an adaptation episode
    reuse: bool = False                       # return a completed run of the same key


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A parsed configuration (in this process's gin state), ready to :func:`execute`."""

    spec: RunSpec
    config: GinConfig
    key: str            # the configuration key: same files, bindings, flags, seed -> same key
    identity: dict      # {"task", "method"} (iwx.experiment.identity)


@dataclasses.dataclass(frozen=True)
class RunRecord:
    run_id: str
    run_dir: Path
    results: dict       # results.json
    key: str
    identity: dict
    reused: bool = False


def flag_bindings(spec: RunSpec) -> list[str]:
    """The bindings a run parses after its files: the spec's, then its flags' (these
    enter the configuration key: a run without progress bars is another key)."""
    params = list(spec.bindings)
    if not spec.progress:
        params += ["MultiTaskTraining.progress = False", "Adaptation.progress = False"]
    if spec.video:
        params += ["Adaptation.video = True"]
    return params


def prepare(spec: RunSpec) -> Prepared:
    """Parse the spec's configuration into gin (raises ConfigError) and derive its key
    and identity."""
    from iwx.experiment.identity import identity_from_bindings

    config = parse(list(spec.gin_files), flag_bindings(spec))
    return Prepared(spec, config, config.key(spec.seed), identity_from_bindings(flat_bindings()))


def run(spec: RunSpec) -> RunRecord | None:
    """One recorded run (or, with ``reuse``, the completed run of its configuration).
    None: a configuration error, already reported on stderr."""
    # Before anything imports mujoco: render offscreen only when a video is asked for.
    os.environ.setdefault("MUJOCO_GL", "egl" if spec.video else "disable")
    if spec.mongo:
        from iwx.experiment.mongo import check_url

        problem = check_url(spec.mongo)
        if problem:
            print(f"{PREFIX}: --mongo: {problem}", file=sys.stderr)
            return None
    try:
        prepared = prepare(spec)
    except ConfigError as exc:
        print(f"{PREFIX}: configuration error: {exc}", file=sys.stderr)
        return None
    if spec.reuse:
        done = completed_run(prepared)
        if done is not None:
            return done
    return execute(prepared)


def completed_run(prepared: Prepared) -> RunRecord | None:
    """The newest COMPLETED run of the prepared key in the file store (of the sweep
    ``meta.sweep.id`` when the spec is a sweep's), or None."""
    from iwx.experiment.identity import recorded_identity
    from iwx.experiment.store import completed_runs

    spec = prepared.spec
    sweep = (spec.meta.get("sweep") or {}).get("id")
    done = completed_runs(Path(spec.runs_dir), sweep=sweep).get(prepared.key)
    if done is None:
        return None
    config = json.loads((done / "config.json").read_text())
    return RunRecord(done.name, done, json.loads((done / "results.json").read_text()),
                     prepared.key, recorded_identity(config), reused=True)


def execute(prepared: Prepared) -> RunRecord:
    """The Sacred run of a prepared configuration (gin must still hold it)."""
    import uuid

    import gin

    from iwx.experiment import outcome
    from iwx.experiment.recording import make_experiment
    from iwx.loops.checkpoint import Checkpointer
    from iwx.loops.logger import MemoryLogger
    from iwx.loops.pipeline import pretrain_and_adapt

    spec, cfg, key, identity = prepared.spec, prepared.config, prepared.key, prepared.identity
    runs_dir = Path(spec.runs_dir)
    checkpoints = Checkpointer(runs_dir / "_checkpoints" / key)
    if spec.fresh:
        checkpoints.clear()
    config = {"seed": spec.seed, "gin_files": list(cfg.files), "gin_params": list(cfg.params),
              "bindings": flat_bindings(), "identity": dict(identity)}
    ex = make_experiment("iwx", config, runs_dir, spec.mongo)

    @ex.main
    def experiment(_run, seed):
        _run.info["gin_text"] = cfg.text
        _run.info["checkpoint_key"] = key
        _run.info["identity"] = dict(identity)
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
            headline = outcome.headlines(result)
            (out / "results.json").write_text(json.dumps(
                outcome.results_record(result, logger.history, headline), indent=1))
            outcome.write_figures(result, logger.history, out, title=", ".join(cfg.files))
            for f in sorted(out.iterdir()):
                _run.add_artifact(str(f), f.name)
        print(outcome.summary_text(result, logger.history, headline))
        _run.info["summary"] = headline
        checkpoints.clear()
        return headline

    meta_info = {"iwx_uid": uuid.uuid4().hex, "tags": list(spec.tags), **spec.meta}
    sacred_run = ex.run(config_updates={"seed": spec.seed}, meta_info=meta_info,
                        options={"--force": False})
    print(f"[iwx] recorded run {sacred_run._id} in {runs_dir}"
          + (f" and MongoDB {spec.mongo}" if spec.mongo else ""))
    run_dir = runs_dir / str(sacred_run._id)
    return RunRecord(str(sacred_run._id), run_dir,
                     json.loads((run_dir / "results.json").read_text()), key, dict(identity))


def run_captured(spec: RunSpec) -> dict:
    """:func:`run` in a process of its own (one per run: gin's configuration and the RNGs
    are per process), its stdout / stderr captured rather than shown. Returns plain
    data: {"ok", "seconds", "reused", "run_dir", "results", "identity"} or, when the
    run failed, {"ok": False, "seconds", "error": the tail of its output}."""
    import time
    import traceback

    start = time.monotonic()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)     # what the run and anything below Python writes
        os.dup2(err.fileno(), 2)
        record = None
        try:
            record = run(spec)
        except Exception:  # noqa: BLE001  (reported like a failed command)
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        seconds = time.monotonic() - start
        if record is None:
            err.seek(0)
            out.seek(0)
            return {"ok": False, "seconds": seconds, "error": (err.read() or out.read())[-2000:]}
    return {"ok": True, "seconds": 0.0 if record.reused else seconds, "reused": record.reused,
            "run_dir": str(record.run_dir), "results": record.results,
            "identity": record.identity}
