"""Read recorded runs back, from a Sacred file store or from MongoDB.

    from iwx.experiment.store import load_runs
    runs = load_runs("runs", tags=["figure2"])                     # file store
    runs = load_runs("mongodb://127.0.0.1:27017/iwx", sweep="a1b2")  # Sacred's MongoDB layout

Both sources give the same :class:`RecordedRun` objects, so analysis code
(``python -m iwx.report``) never knows where a run was recorded:

* **file store** (Sacred's ``FileStorageObserver``): ``DIR/<id>/`` with
  ``run.json``, ``config.json``, ``info.json``, ``metrics.json`` and the artifact
  files. Folders not named by digits (``_sources``, ``_checkpoints``, ``_sweeps``)
  are not runs.
* **MongoDB** (Sacred's ``MongoObserver``): collection ``runs``, collection
  ``metrics`` (one document per run and metric name), artifacts in GridFS.
  ``mongodb://host:port/DB``; DB is ``iwx`` when the URL names none.

Selection: ``sweep`` matches ``meta.sweep.id``; ``tags`` (any of them) match
``meta.tags`` (and, in MongoDB, the tags Omniboard keeps in ``omniboard.tags``);
``run_ids`` are file-store folder names / MongoDB ``_id``; ``statuses`` the Sacred
statuses kept (``None`` or empty: any). Runs come back sorted by id.

Nothing here imports Ray, torch or the agents: reading records is cheap.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

MONGO_SCHEMES = ("mongodb://", "mongodb+srv://")
MONGO_TIMEOUT_MS = 3000

Metrics = dict[str, tuple[np.ndarray, np.ndarray]]


class StoreError(Exception):
    """The source cannot be read: not a file store, not a MongoDB URL, or no answer."""


@dataclass
class RecordedRun:
    """One Sacred run as recorded: what ``iwx.run`` wrote, wherever it was written.

    ``metrics``: {name: (steps, values)} as numpy arrays (values float, NaN where
    Sacred stored none): every series the run logged (:func:`logged_series`).
    ``tags``: ``meta.tags`` plus, from MongoDB, Omniboard's tags.
    """

    id: int
    source: str
    status: str
    config: dict
    info: dict
    meta: dict
    metrics: Metrics
    tags: list[str] = field(default_factory=list)
    artifact_names: list[str] = field(default_factory=list)
    # As Sacred wrote them (UTC): an ISO string in a file store, a datetime in MongoDB.
    start_time: Any = None
    stop_time: Any = None
    heartbeat: Any = None
    _fetch: Callable[[str], bytes | None] | None = field(default=None, repr=False,
                                                         compare=False)
    _cache: dict[str, bytes | None] = field(default_factory=dict, repr=False, compare=False)

    def artifact(self, name: str) -> bytes | None:
        """The bytes of artifact ``name`` (e.g. ``results.json``), None if not recorded."""
        if name not in self._cache:
            self._cache[name] = self._fetch(name) if self._fetch is not None else None
        return self._cache[name]

    def results(self) -> dict | None:
        """The parsed ``results.json`` artifact (None when absent or unreadable)."""
        data = self.artifact("results.json")
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return None

    @property
    def sweep(self) -> dict | None:
        """``meta.sweep`` ({id, params, trial}) of a run made by a sweep, else None."""
        sweep = self.meta.get("sweep")
        return sweep if isinstance(sweep, dict) else None


def is_mongo_url(source: str) -> bool:
    return str(source).startswith(MONGO_SCHEMES)


def sacred_time(value) -> datetime | None:
    """A Sacred time (naive UTC: an ISO string in a file store, a datetime from MongoDB)
    as an aware datetime; None when it is neither."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def load_runs(source: str | Path, *, sweep: str | None = None, tags: Iterable[str] = (),
              run_ids: Iterable[int | str] = (),
              statuses: Sequence[str] | None = ("COMPLETED",)) -> list[RecordedRun]:
    """The runs of ``source`` (file-store directory or ``mongodb://`` URL) that match
    every given criterion, sorted by id. Raises :class:`StoreError` for a source that
    is neither, or a MongoDB that does not answer."""
    selection = _Selection(sweep=sweep, tags=frozenset(tags),
                           run_ids=frozenset(_as_id(i) for i in run_ids),
                           statuses=frozenset(statuses or ()))
    if is_mongo_url(str(source)):
        runs = _load_mongo(str(source), selection)
    else:
        path = Path(source)
        if not path.is_dir():
            raise StoreError(f"unknown source {str(source)!r}: neither a directory (a Sacred "
                             f"file store) nor a mongodb:// URL")
        runs = _load_file_store(path, selection)
    return sorted(runs, key=lambda r: r.id)


# --------------------------------------------------------------------------- selection

@dataclass(frozen=True)
class _Selection:
    sweep: str | None
    tags: frozenset[str]
    run_ids: frozenset[int]
    statuses: frozenset[str]

    def matches(self, run_id: int, status: str, meta: dict, tags: Iterable[str]) -> bool:
        if self.run_ids and run_id not in self.run_ids:
            return False
        if self.statuses and status not in self.statuses:
            return False
        if self.sweep is not None and (meta.get("sweep") or {}).get("id") != self.sweep:
            return False
        return not self.tags or bool(self.tags & set(tags))


def _as_id(value: int | str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StoreError(f"run id {value!r} is not a number (Sacred ids are integers)") from None


def _metrics(entries: Iterable[tuple[str, list, list]]) -> Metrics:
    """{name: (steps, values)}; several entries of one name are concatenated."""
    out: dict[str, tuple[list, list]] = {}
    for name, steps, values in entries:
        s, v = out.setdefault(name, ([], []))
        s.extend(steps or [])
        v.extend(values or [])
    return {name: (np.asarray(s, dtype=np.int64 if all(isinstance(x, int) for x in s)
                              else np.float64),
                   np.asarray([np.nan if x is None else x for x in v], dtype=np.float64))
            for name, (s, v) in out.items()}


SERIES = "series.json"


def logged_series(run: RecordedRun) -> Metrics:
    """Every series the run's loops logged, as they logged them (``train/*`` against
    learner updates, with ``train/env_steps`` beside; ``adapt/*`` against episodes,
    per-task series included): the ``series.json`` artifact where the run wrote one.

    Sacred's metrics of a run made since the artifact exists hold only a browsable
    subset with the training series against env steps (iwx/experiment/metrics.py);
    a run without the artifact yet (still running) is read from them, its training
    axis given back as ``train/env_steps``. Older runs logged everything into
    Sacred's metrics, which are returned as they are.
    """
    if SERIES in run.artifact_names:
        data = run.artifact(SERIES)
        try:
            series = json.loads(data) if data is not None else None
        except ValueError:
            series = None
        if isinstance(series, dict):
            return _metrics((name, m.get("steps"), m.get("values"))
                            for name, m in series.items() if isinstance(m, dict))
    axes = run.info.get("metric_axes") or {}
    metrics = dict(run.metrics)
    if axes.get("train/") == "env steps" and "train/env_steps" not in metrics:
        train = [steps for name, (steps, _) in metrics.items() if name.startswith("train/")]
        if train:
            steps = np.unique(np.concatenate(train))
            metrics["train/env_steps"] = (steps, steps.astype(np.float64))
    return metrics


# --------------------------------------------------------------------------- file store

def _read_json(path: Path, default: Any = None, tries: int = 5) -> Any:
    """A JSON file of a run folder, or ``default`` when absent or unreadable. Sacred's
    file store rewrites ``run.json``, ``info.json`` and ``metrics.json`` of a live run
    in place, so a read can meet one half written: that is read again a few times,
    then treated as unreadable (never an error: a live run must not break a report)."""
    for attempt in range(tries):
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return default
        except (OSError, ValueError):
            if attempt == tries - 1:
                return default
        time.sleep(0.05 * (attempt + 1))
    return default


def run_dirs(runs_dir: str | Path) -> list[Path]:
    """Run folders of a Sacred file store (named by their integer id), in id order."""
    if not Path(runs_dir).is_dir():
        return []
    return sorted((p for p in Path(runs_dir).iterdir() if p.is_dir() and p.name.isdigit()),
                  key=lambda p: int(p.name))


def completed_runs(runs_dir: str | Path, sweep: str | None = None) -> dict[str, Path]:
    """{configuration key: run folder} of the COMPLETED runs of a file store that wrote
    their ``results.json`` (of one sweep when ``sweep`` is given); the newest run wins.
    The key is ``info.checkpoint_key``: the same files, bindings and seed give the same
    key, which is how ``iwx.compare`` and sweeps avoid running a configuration twice."""
    found = {}
    for run in run_dirs(runs_dir):
        record = _read_json(run / "run.json")
        if not isinstance(record, dict) or record.get("status") != "COMPLETED":
            continue
        of_sweep = ((record.get("meta") or {}).get("sweep") or {}).get("id")
        if sweep is not None and of_sweep != sweep:
            continue
        key = (_read_json(run / "info.json", {}) or {}).get("checkpoint_key")
        if key and (run / "results.json").is_file():
            found[key] = run
    return found


def _load_file_store(root: Path, selection: _Selection) -> list[RecordedRun]:
    runs = []
    for folder in run_dirs(root):
        record = _read_json(folder / "run.json")
        if not isinstance(record, dict):   # being created, or not a Sacred run
            continue
        meta = record.get("meta") or {}
        tags = [str(t) for t in meta.get("tags") or []]
        run_id = int(folder.name)
        status = record.get("status", "UNKNOWN")
        if not selection.matches(run_id, status, meta, tags):
            continue
        metrics = _read_json(folder / "metrics.json", {}) or {}
        runs.append(RecordedRun(
            id=run_id, source=str(root), status=status,
            config=_read_json(folder / "config.json", {}) or {},
            info=_read_json(folder / "info.json", {}) or {},
            meta=meta, tags=tags, artifact_names=list(record.get("artifacts") or []),
            **{k: record.get(k) for k in ("start_time", "stop_time", "heartbeat")},
            metrics=_metrics((name, m.get("steps"), m.get("values"))
                             for name, m in metrics.items()),
            _fetch=_file_fetcher(folder)))
        runs[-1].metrics = logged_series(runs[-1])
    return runs


def _file_fetcher(folder: Path) -> Callable[[str], bytes | None]:
    def fetch(name: str) -> bytes | None:
        path = folder / name
        if Path(name).name != name or not path.is_file():
            return None
        return path.read_bytes()
    return fetch


# --------------------------------------------------------------------------- MongoDB

def mongo_database(url: str, timeout_ms: int = MONGO_TIMEOUT_MS):
    """(client, database) of ``url`` once the server answered a ping within
    ``timeout_ms``; raises :class:`StoreError` with what to check otherwise."""
    from pymongo.errors import PyMongoError

    from iwx.experiment.mongo import check_url, database

    problem = check_url(url)
    if problem:
        raise StoreError(f"bad MongoDB URL: {problem}")
    client, db = database(url, timeout_ms)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        client.close()
        raise StoreError(f"MongoDB at {url} did not answer within {timeout_ms} ms "
                         f"({type(exc).__name__}); is the server running? "
                         f"(python -m iwx.db status)") from None
    return client, db


def _mongo_query(selection: _Selection) -> dict:
    query: dict[str, Any] = {}
    if selection.run_ids:
        query["_id"] = {"$in": sorted(selection.run_ids)}
    if selection.statuses:
        query["status"] = {"$in": sorted(selection.statuses)}
    if selection.sweep is not None:
        query["meta.sweep.id"] = selection.sweep
    if selection.tags:
        tags = sorted(selection.tags)
        query["$or"] = [{"meta.tags": {"$in": tags}}, {"omniboard.tags": {"$in": tags}}]
    return query


def _load_mongo(url: str, selection: _Selection) -> list[RecordedRun]:
    from pymongo.errors import PyMongoError

    client, db = mongo_database(url)
    try:
        docs = []
        for doc in db["runs"].find(_mongo_query(selection)):
            meta = doc.get("meta") or {}
            tags = list(dict.fromkeys(
                [str(t) for t in meta.get("tags") or []]
                + [str(t) for t in (doc.get("omniboard") or {}).get("tags") or []]))
            if selection.matches(_as_id(doc["_id"]), doc.get("status", "UNKNOWN"), meta, tags):
                docs.append((doc, meta, tags))
        ids = [doc["_id"] for doc, _, _ in docs]
        per_run: dict[Any, list] = {i: [] for i in ids}
        if ids:
            for m in db["metrics"].find({"run_id": {"$in": ids}}):
                per_run.setdefault(m.get("run_id"), []).append(
                    (m.get("name"), m.get("steps"), m.get("values")))
    except PyMongoError as exc:
        client.close()
        raise StoreError(f"reading runs from MongoDB at {url} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    runs = []
    for doc, meta, tags in docs:
        artifacts = {a.get("name"): a.get("file_id") for a in doc.get("artifacts") or []
                     if isinstance(a, dict)}
        runs.append(RecordedRun(
            id=_as_id(doc["_id"]), source=url, status=doc.get("status", "UNKNOWN"),
            config=doc.get("config") or {}, info=doc.get("info") or {}, meta=meta,
            tags=tags, artifact_names=list(artifacts),
            **{k: doc.get(k) for k in ("start_time", "stop_time", "heartbeat")},
            metrics=_metrics(per_run.get(doc["_id"], [])),
            _fetch=_gridfs_fetcher(db, artifacts)))
        runs[-1].metrics = logged_series(runs[-1])
    return runs


def _gridfs_fetcher(db, artifacts: dict[str, Any]) -> Callable[[str], bytes | None]:
    def fetch(name: str) -> bytes | None:
        file_id = artifacts.get(name)
        if file_id is None:
            return None
        import gridfs
        from pymongo.errors import PyMongoError

        try:
            return gridfs.GridFS(db).get(file_id).read()
        except (gridfs.errors.NoFile, PyMongoError):
            return None
    return fetch
