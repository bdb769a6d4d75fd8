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


class RunStopped(Exception):
    """A run that ended without completing, with what to tell the user and the
    process's exit status (130 Ctrl-C, 143 SIGTERM: 128 + the signal, as a shell
    reports a process a signal ended; 1 a failure)."""

    def __init__(self, message: str, exit_code: int = 1, *, resumable: bool = False,
                 locked: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.resumable = resumable
        self.locked = locked      # not started: another live process runs this key


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
    # Adapt from the model.pt of the COMPLETED run of this configuration key in runs_dir
    # (pretrain_and_adapt.pretrained, resolved when the run starts); part of the key, so
    # a figure can plan an adaptation-only run before its pretraining has run.
    pretrained_from: str | None = None


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
    """The bindings a run parses after its files: the spec's. They enter the
    configuration key; the flags that change nothing computed (progress bars, the
    video) do not: :func:`apply_flags` binds them when the run executes, so a run
    made with ``--no-progress`` resumes or is reused by one made without it."""
    return list(spec.bindings)


def apply_flags(spec: RunSpec) -> None:
    """Bind the display flags (after the key and the recorded bindings were taken)."""
    import gin

    with gin.unlock_config():
        if not spec.progress:
            gin.bind_parameter("MultiTaskTraining.progress", False)
            gin.bind_parameter("Adaptation.progress", False)
        if spec.video:
            gin.bind_parameter("Adaptation.video", True)


def prepare(spec: RunSpec) -> Prepared:
    """Check the seed, parse the spec's configuration into gin and check every value
    (raises ConfigError: iwx.experiment.validate), and derive its key and identity."""
    from iwx.experiment.identity import identity_from_bindings
    from iwx.experiment.validate import check_seed

    check_seed(spec.seed)
    config = parse(list(spec.gin_files), flag_bindings(spec))
    extra = "" if spec.pretrained_from is None else f"pretrained_from={spec.pretrained_from}"
    return Prepared(spec, config, config.key(spec.seed, extra),
                    identity_from_bindings(flat_bindings()))


def pretrained_model(spec: RunSpec) -> Path:
    """The model.pt that ``spec.pretrained_from`` names: that key's newest COMPLETED run
    in the file store. Raises :class:`RunStopped` (exit 2) when there is none."""
    from iwx.experiment.store import completed_runs

    done = completed_runs(Path(spec.runs_dir)).get(spec.pretrained_from)
    if done is None or not (done / "model.pt").is_file():
        where = "has no COMPLETED run" if done is None else f"run {done.name} has no model.pt"
        raise RunStopped(f"{PREFIX}: this run adapts from the pretraining of configuration "
                         f"key {spec.pretrained_from}, and {spec.runs_dir} {where} of it: "
                         "run that pretraining first (a figure orders them itself)", 2)
    return done / "model.pt"


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
    """The Sacred run of a prepared configuration (gin must still hold it).

    Holds the configuration key's run lock for the whole run (a second identical
    command is refused, exit 2, naming the first); a checkpoint neither readable
    nor recoverable is refused before any record exists. Raises
    :class:`RunStopped` for a run that ended without
    completing (interrupted, diverged, its record not writable), saying what to do.
    """
    from iwx.experiment.run_lock import RunLock, RunLocked, lock_path

    spec, key = prepared.spec, prepared.key
    lock = RunLock(lock_path(spec.runs_dir, key), key=key)
    try:
        lock.acquire()
    except RunLocked as exc:
        raise RunStopped(f"{PREFIX}: {exc}", 2, locked=True) from None
    try:
        return _execute_locked(prepared)
    finally:
        lock.release()


def _execute_locked(prepared: Prepared) -> RunRecord:
    import uuid

    import gin

    from iwx.experiment import headline, outcome
    from iwx.experiment.durable import RecordError
    from iwx.experiment.lineage import mark_resumed
    from iwx.experiment.recording import make_experiment
    from iwx.experiment.stops import (Terminated, interrupt_exit_code, interrupt_name,
                                      stop_signals)
    from iwx.experiment.run_lock import checkpoint_dir
    from iwx.loops.checkpoint import CheckpointError, Checkpointer
    from iwx.loops.guard import DivergenceError
    from iwx.loops.logger import MemoryLogger
    from iwx.loops.pipeline import RefusedConfiguration
    from iwx.experiment.metrics import RecordedMetrics, series
    from iwx.experiment.artifacts import content_type
    from iwx.loops import pipeline

    spec, cfg, key, identity = prepared.spec, prepared.config, prepared.key, prepared.identity
    runs_dir = Path(spec.runs_dir)
    model = None if spec.pretrained_from is None else pretrained_model(spec)
    if model is not None:
        with gin.unlock_config():
            gin.bind_parameter("pretrain_and_adapt.pretrained", str(model))
    checkpoints = Checkpointer(checkpoint_dir(runs_dir, key), tolerate_write_errors=True)
    if spec.fresh:
        checkpoints.clear()
    try:   # a bad checkpoint is refused before a record exists
        previous = checkpoints.load()
    except CheckpointError as exc:
        raise RunStopped(f"{PREFIX}: {exc}", 2) from None
    resumed_from = None if previous is None else {"run_id": previous.get("run_id"),
                                                  "checkpoint": previous.get("label")}
    checkpoints.preload(previous)   # the pipeline's load() gets it without reading again
    del previous
    uid = uuid.uuid4().hex
    bindings = flat_bindings()
    config = {**headline.headline_config(bindings, identity, uid,
                                         (spec.meta.get("sweep") or {}).get("params")),
              "seed": spec.seed, "gin_files": list(cfg.files), "gin_params": list(cfg.params),
              "bindings": bindings, "identity": dict(identity)}
    apply_flags(spec)
    ex = make_experiment(headline.experiment_name(identity, cfg.files), config, runs_dir,
                         spec.mongo)
    record = ex.observers[0]          # the file store (iwx.experiment.durable)
    written: list[str] = []           # the artifacts the run must leave on disk

    @ex.main
    def pretrain_and_adapt(_run, seed):   # the name Omniboard shows as the run's command
        _run.info["gin_text"] = cfg.text
        _run.info["checkpoint_key"] = key
        _run.info["identity"] = dict(identity)
        if model is not None:
            _run.info["pretrained_from"] = {"checkpoint_key": spec.pretrained_from,
                                            "run_id": model.parent.name, "model": str(model)}
        if resumed_from is not None:
            _run.info["resumed_from"] = resumed_from
            print(f"[iwx] resuming from checkpoint {resumed_from['checkpoint']!r} "
                  f"of run {resumed_from['run_id']}")
            _close_predecessor(mark_resumed(runs_dir, resumed_from["run_id"], _run._id),
                               spec.mongo)
        checkpoints.meta = {"run_id": _run._id}
        logger = MemoryLogger(sink=RecordedMetrics(_run.log_scalar, _run.info))
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            (out / "config.gin").write_text(cfg.text)
            result = pipeline.pretrain_and_adapt(seed, logger, checkpoints, out)
            (out / "operative_config.gin").write_text(gin.operative_config_str())
            _run.info["operative_config"] = gin.operative_config_str()
            summary = outcome.headlines(result)
            record_json = outcome.results_record(result, logger.history, summary)
            (out / "results.json").write_text(json.dumps(record_json, indent=1))
            (out / "series.json").write_text(json.dumps(series(logger.history)))
            outcome.write_figures(result, logger.history, out, title=", ".join(cfg.files))
            for f in sorted(out.iterdir()):
                _run.add_artifact(str(f), f.name, content_type=content_type(f.name))
                written.append(f.name)
        record.raise_if_lost()   # FAILED, loudly, with the checkpoint kept
        print(outcome.summary_text(result, logger.history, summary))
        _run.info["summary"] = summary
        return headline.compact_result(summary, record_json["train_final_return"])

    meta_info = {"iwx_uid": uid, "tags": list(spec.tags), **spec.meta}
    kept = f"its last checkpoint is kept in {checkpoints.directory}"
    try:
        with stop_signals():
            sacred_run = ex.run(config_updates={"seed": spec.seed}, meta_info=meta_info,
                                options={"--force": False})
    except (KeyboardInterrupt, Terminated) as exc:
        raise RunStopped(f"[iwx] run {_current_id(ex)} interrupted by {interrupt_name(exc)} "
                         f"and recorded as INTERRUPTED; {kept}",
                         interrupt_exit_code(exc), resumable=True) from None
    except RefusedConfiguration as exc:
        raise RunStopped(f"{PREFIX}: configuration error (run {_current_id(ex)} recorded as "
                         f"FAILED before any compute): {exc}", 2) from None
    except DivergenceError as exc:
        raise RunStopped(f"{PREFIX}: run {_current_id(ex)} stopped (status FAILED):\n"
                         f"{exc.diagnostic}",
                         1) from None
    except RecordError as exc:
        raise RunStopped(f"{PREFIX}: run {_current_id(ex)}: {exc}\n{kept}: once the file "
                         "store can be written again", 1, resumable=True) from None
    except OSError as exc:   # e.g. the temporary folder the artifacts are made in is full
        raise RunStopped(f"{PREFIX}: run {_current_id(ex)} failed: {exc}\n{kept}",
                         1, resumable=True) from None
    run_dir = runs_dir / str(sacred_run._id)
    try:   # the checkpoint goes only once the record is complete on disk
        record.verify(written)
    except RecordError as exc:
        raise RunStopped(f"{PREFIX}: run {sacred_run._id}: {exc}\n{kept}: once the file "
                         "store can be written again", 1, resumable=True) from None
    checkpoints.clear()
    print(f"[iwx] recorded run {sacred_run._id} (uid {headline.short_uid(uid)}) in {runs_dir}"
          + (f" and MongoDB {spec.mongo}" if spec.mongo else ""))
    return RunRecord(str(sacred_run._id), run_dir,
                     json.loads((run_dir / "results.json").read_text()), key, dict(identity))


def _current_id(ex) -> str:
    run = getattr(ex, "current_run", None)
    return "?" if run is None or run._id is None else str(run._id)


def _close_predecessor(run_dir: Path | None, mongo: str | None) -> None:
    """Mirror a predecessor's corrected record into MongoDB too (best effort: the
    file store is the record; ``iwx.resync`` repairs what this misses)."""
    if run_dir is None or not mongo:
        return
    try:
        from iwx.experiment.mirror import Mirror
        from iwx.experiment.mongo import database

        client, db = database(mongo, timeout_ms=5000)
        try:
            Mirror(db).sync(run_dir)
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001
        print(f"[iwx] could not mark run {run_dir.name} as resumed in MongoDB ({exc}); "
              "python -m iwx.resync will", file=sys.stderr)


def run_captured(spec: RunSpec, log_path: str | None = None) -> dict:
    """:func:`run` in a process of its own (one per run: gin's configuration and the RNGs
    are per process), its stdout / stderr captured rather than shown. Returns plain
    data: {"ok", "seconds", "reused", "run_dir", "results", "identity"} or, when the
    run failed, {"ok": False, "seconds", "error": the tail of its output, "interrupted":
    the exit status 130 / 143 when a signal stopped it (recorded INTERRUPTED), else 0,
    "locked": True when it did not start because another process runs its key}.
    ``log_path``: a file its stderr goes to (progress status lines among it), for the
    caller to follow while the run goes on; default an anonymous temporary file."""
    import time
    import traceback

    start = time.monotonic()
    err_file = tempfile.TemporaryFile("w+") if log_path is None else open(log_path, "w+")
    with tempfile.TemporaryFile("w+") as out, err_file as err:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(out.fileno(), 1)     # what the run and anything below Python writes
        os.dup2(err.fileno(), 2)
        record, interrupted, locked = None, 0, False
        try:
            record = run(spec)
        except RunStopped as exc:   # its message says what happened and what to do
            print(exc, file=sys.stderr)
            interrupted = exc.exit_code if exc.exit_code in (130, 143) else 0
            locked = exc.locked
        except Exception:  # noqa: BLE001  (reported like a failed command)
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        seconds = time.monotonic() - start
        if record is None:
            err.seek(0)
            out.seek(0)
            return {"ok": False, "seconds": seconds, "error": (err.read() or out.read())[-2000:],
                    "interrupted": interrupted, "locked": locked}
    return {"ok": True, "seconds": 0.0 if record.reused else seconds, "reused": record.reused,
            "run_dir": str(record.run_dir), "results": record.results,
            "identity": record.identity}
