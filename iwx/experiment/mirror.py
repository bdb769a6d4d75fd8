"""Mirror Sacred file-store runs into MongoDB, in the layout Sacred's MongoObserver writes.

Why not Sacred's own MongoObserver: measured on this machine (STACK-NOTES), it
silently stops recording after its first failed write (Sacred marks a failing
observer dead for the rest of the run), and QueuedMongoObserver can hang a run
forever when the server never answers. Here the file store is the record and
MongoDB a mirror of it:

- :class:`Mirror` copies one run folder (``run.json``, ``config.json``,
  ``info.json``, ``metrics.json``, ``cout.txt``, the artifacts and the source
  files) into the ``runs`` / ``metrics`` collections and GridFS. It is
  idempotent: a run is found again by ``meta.iwx_uid`` (a new run takes its
  file-store id as ``_id`` when that id is free, so ``run 9`` names the same run
  in both stores; else the next free id), metrics are replaced whole, artifacts
  and sources are uploaded only when their MD5 changed: syncing twice duplicates
  nothing. It is safe to run concurrently, from any number of processes and
  machines: each run (and each source file) is written under a claim held in
  MongoDB (iwx/experiment/claims.py), so one process at a time reads the run's
  document, uploads and writes it; the others wait or come back later. The
  claim holder also deletes the run's GridFS artifact files that its document no
  longer names (a replaced artifact; leftovers of a process that died mid-sync, or
  of syncs before the claims). Omniboard reads the result like any Sacred run;
  tags from ``meta.tags`` become Omniboard tags (tags added in Omniboard are kept).
- :class:`MirrorObserver` is the observer ``iwx.run --mongo URL`` attaches. It runs
  after the FileStorageObserver (lower priority) and mirrors the run at its start,
  at every Sacred heartbeat (10 s) and at its end. Every database call is bounded
  by short pymongo timeouts and every error is caught: a database that is down or
  dies mid-run costs at most a few seconds per heartbeat, never the run, and the
  next heartbeat that reaches it catches up on everything. If the end of the run
  cannot reach it, the run still exits 0 and prints the re-sync command.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

import pymongo
from sacred.observers import RunObserver

from iwx.experiment.artifacts import content_type as artifact_content_type
from iwx.experiment.claims import ClaimBusy, ClaimLost, Claims
from iwx.experiment.metrics import COLUMNS
from iwx.experiment.mongo import database

FORMAT = "MongoObserver-0.7.0"   # the run-document layout Sacred 0.8.7 writes (Omniboard reads it)


class SyncError(Exception):
    """A run folder could not be read completely (e.g. caught mid-write); retry later."""


class SyncBusy(SyncError):
    """Another process is writing this run into MongoDB right now; retry later."""


def _json(path: Path, default=None, tries: int = 5):
    """A JSON file of the run folder; a file caught while its writer rewrites it in
    place (Sacred's file store does) is read again a few times before giving up."""
    for attempt in range(tries):
        if not path.is_file():
            if default is not None:
                return default
            raise SyncError(f"{path} is missing")
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            if attempt == tries - 1:   # still torn: the next sync reads it whole
                raise SyncError(f"{path} is being written ({exc})") from exc
        except OSError as exc:
            raise SyncError(f"{path} cannot be read ({exc})") from exc
        time.sleep(0.05 * (attempt + 1))


def _time(value):
    """Sacred's file store writes ISO strings; its MongoDB layout holds datetimes."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_uid(run: dict, run_dir: Path) -> str:
    """The identity a run keeps in MongoDB: ``meta.iwx_uid`` (every ``iwx.run`` sets one);
    for older runs without it, a hash of where and when the run was recorded."""
    uid = (run.get("meta") or {}).get("iwx_uid")
    if uid:
        return uid
    where = f"{socket.gethostname()}:{Path(run_dir).resolve()}:{run.get('start_time')}"
    return "path-" + hashlib.sha256(where.encode()).hexdigest()[:32]


class Mirror:
    """Copies file-store runs into one MongoDB database (Sacred's layout)."""

    def __init__(self, db, lease_s: float | None = None):
        import gridfs

        self.db = db
        self.runs, self.metrics = db["runs"], db["metrics"]
        self.fs = gridfs.GridFS(db)
        self.claims = Claims(db) if lease_s is None else Claims(db, lease_s)
        self.created: set[int] = set()     # MongoDB ids of the runs this mirror created
        # What this process already wrote, so a heartbeat re-sends only what changed:
        # metric name -> points, artifact name -> (size, mtime_ns, file_id), and the
        # GridFS id of each stored source file (its name carries its MD5: it never changes).
        self._metric_points: dict[tuple[int, str], int] = {}
        self._artifact_stat: dict[tuple[int, str], tuple] = {}
        self._source_ids: dict[tuple[str, Path], object] = {}
        self._indexed = False
        self._holding: str | None = None   # the run claim held during a sync

    def forget(self) -> None:
        """Drop the cache (after a failed sync the database state is unknown)."""
        self._metric_points.clear()
        self._artifact_stat.clear()
        self._source_ids.clear()

    def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        self.metrics.create_index([("run_id", 1), ("name", 1)])
        try:   # one document per uid even when two syncs race (where the server supports it)
            self.runs.create_index("meta.iwx_uid", unique=True, sparse=True)
        except pymongo.errors.OperationFailure:
            self.runs.create_index("meta.iwx_uid")
        self._indexed = True

    def _run_id(self, uid: str, wanted: int | None = None) -> tuple[int, dict | None]:
        """The MongoDB ``_id`` of the run with this uid and its current document; a new
        run gets ``wanted`` (its file-store id, so both stores name it alike) when that
        id is free, else the next id after the largest (Sacred's auto-increment)."""
        existing = self.runs.find_one({"meta.iwx_uid": uid},
                                      {"artifacts": 1, "experiment.sources": 1, "omniboard": 1})
        if existing is not None:
            return existing["_id"], existing
        while True:
            if wanted is not None and self.runs.find_one({"_id": wanted}, {"_id": 1}) is None:
                new_id, wanted = wanted, None    # tried once: a race for it falls back
            else:
                last = list(self.runs.find({}, {"_id": 1}).sort("_id", -1).limit(1))
                new_id = (last[0]["_id"] + 1) if last and isinstance(last[0]["_id"], int) else 1
            try:
                self.runs.insert_one({"_id": new_id, "meta": {"iwx_uid": uid},
                                      "status": "QUEUED"})
                self.created.add(new_id)
                return new_id, None
            except pymongo.errors.DuplicateKeyError:
                again = self.runs.find_one({"meta.iwx_uid": uid}, {"_id": 1})
                if again is not None:       # another sync of this run won the race
                    return again["_id"], again

    def _put(self, path: Path, filename: str, md5: str):
        if self._holding is not None:     # never upload under a claim that ran out
            self.claims.renew(self._holding)
        content_type = artifact_content_type(path.name)
        with open(path, "rb") as f:
            return self.fs.put(f, filename=filename, md5=md5, content_type=content_type)

    def _source_id(self, filename: str, path: Path):
        """The GridFS id of a source file's content, uploaded once (under a claim on the
        content: two runs syncing at once share one copy)."""
        md5 = md5_of(path)
        found = self.fs.find_one({"filename": filename, "md5": md5})
        if found is not None:
            return found._id
        with self.claims.held(f"source:{md5}:{filename}", wait_s=30.0):
            found = self.fs.find_one({"filename": filename, "md5": md5})
            return found._id if found is not None else self._put(path, filename, md5)

    def _sources(self, run: dict, runs_dir: Path) -> list:
        """[[name, file_id]]: each source file in GridFS once per content (as Sacred does)."""
        experiment = run.get("experiment") or {}
        out = []
        for name, stored in experiment.get("sources", []):
            path = runs_dir / stored
            filename = os.path.join(experiment.get("base_dir", ""), name)
            key = (filename, path)
            if key not in self._source_ids:
                if not path.is_file():
                    continue
                self._source_ids[key] = self._source_id(filename, path)
            out.append([name, self._source_ids[key]])
        return out

    def _artifacts(self, run_id: int, names: list[str], run_dir: Path,
                   existing: list[dict]) -> list[dict]:
        """[{name, file_id}], uploading only what is new or changed (what it replaces is
        deleted by :meth:`_drop_unnamed` once the document names the new file)."""
        have = {a["name"]: a["file_id"] for a in existing}
        out = []
        for name in names:
            path = run_dir / name
            if not path.is_file():
                continue
            stat = path.stat()
            key = (run_id, name)
            cached = self._artifact_stat.get(key)
            if cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns) \
                    and cached[2] == have.get(name):
                out.append({"name": name, "file_id": cached[2]})
                continue
            md5 = md5_of(path)
            old = have.get(name)
            old_doc = None if old is None else self.db["fs.files"].find_one({"_id": old})
            if old_doc is not None and old_doc.get("md5") == md5:
                file_id = old
            else:
                file_id = self._put(path, f"artifact://runs/{run_id}/{name}", md5)
            self._artifact_stat[key] = (stat.st_size, stat.st_mtime_ns, file_id)
            out.append({"name": name, "file_id": file_id})
        return out

    def _drop_unnamed(self, run_id: int, names, artifacts: list[dict]) -> None:
        """Delete this run's GridFS artifact files its document does not name."""
        keep = {a["file_id"] for a in artifacts}
        filenames = [f"artifact://runs/{run_id}/{name}" for name in sorted(set(names))]
        for f in self.db["fs.files"].find({"filename": {"$in": filenames}}, {"_id": 1}):
            if f["_id"] not in keep:
                self.fs.delete(f["_id"])

    def _metrics(self, run_id: int, metrics: dict) -> list[dict]:
        """Replace each metric whole (idempotent); returns ``info.metrics``: see COLUMNS."""
        for name, m in metrics.items():
            key = (run_id, name)
            if self._metric_points.get(key) == len(m.get("steps", [])):
                continue
            doc = {"run_id": run_id, "name": name, "steps": list(m.get("steps", [])),
                   "values": list(m.get("values", [])),
                   "timestamps": [_time(t) for t in m.get("timestamps", [])]}
            self.metrics.replace_one({"run_id": run_id, "name": name}, doc, upsert=True)
            self._metric_points[key] = len(doc["steps"])
        stale = {"run_id": run_id, "name": {"$nin": list(metrics)}}
        if self.metrics.count_documents(stale, limit=1):
            self.metrics.delete_many(stale)
        listed = {"run_id": run_id, "name": {"$in": [n for n in metrics if COLUMNS.match(n)]}}
        return [{"id": str(d["_id"]), "name": d["name"]} for d in self.metrics.find(
            listed, {"name": 1}).sort("name", 1)]

    def sync(self, run_dir: str | Path, wait_s: float = 0.0) -> int:
        """Mirror one file-store run; returns its MongoDB ``_id``. Safe to repeat, and
        to run beside other processes syncing the same run: raises :class:`SyncBusy`
        when another holds the run's claim for longer than ``wait_s`` seconds."""
        run_dir = Path(run_dir)
        uid = run_uid(_json(run_dir / "run.json"), run_dir)
        key = f"run:{uid}"
        try:
            with self.claims.held(key, wait_s):
                self._holding = key
                try:
                    return self._sync_held(run_dir, uid)
                finally:
                    self._holding = None
        except ClaimBusy as exc:
            raise SyncBusy(f"run {run_dir.name}: {exc}") from None
        except ClaimLost as exc:
            self.forget()
            raise SyncBusy(f"run {run_dir.name}: {exc}") from None

    def _sync_held(self, run_dir: Path, uid: str) -> int:
        # Read under the claim: what another holder wrote before is never overwritten
        # with an older reading of the folder.
        run = _json(run_dir / "run.json")
        config = _json(run_dir / "config.json", {})
        info = _json(run_dir / "info.json", {})
        metrics = _json(run_dir / "metrics.json", {})
        cout = run_dir / "cout.txt"
        captured = cout.read_text(errors="replace") if cout.is_file() else ""
        self._ensure_indexes()
        run_id, existing = self._run_id(uid, int(run_dir.name) if run_dir.name.isdigit()
                                        else None)
        existing = existing or {}
        meta = dict(run.get("meta") or {})
        meta["iwx_uid"] = uid
        info = dict(info)
        info["metrics"] = self._metrics(run_id, metrics)
        info["file_store"] = f"{socket.gethostname()}:{run_dir.resolve()}"
        experiment = dict(run.get("experiment") or {})
        experiment["sources"] = self._sources(run, run_dir.parent)
        tags = sorted(set((existing.get("omniboard") or {}).get("tags") or [])
                      | set(meta.get("tags") or []))
        before = existing.get("artifacts") or []
        artifacts = self._artifacts(run_id, run.get("artifacts", []), run_dir, before)
        doc = {"experiment": experiment, "format": FORMAT, "command": run.get("command"),
               "host": run.get("host", {}), "start_time": _time(run.get("start_time")),
               "config": config, "meta": meta, "status": run.get("status"),
               "resources": run.get("resources", []), "artifacts": artifacts,
               "captured_out": captured, "info": info,
               "heartbeat": _time(run.get("heartbeat")), "result": run.get("result"),
               "omniboard.tags": tags}
        for optional in ("stop_time", "fail_trace"):
            if optional in run:
                doc[optional] = _time(run[optional])
        self.claims.renew(self._holding)
        self.runs.update_one({"_id": run_id}, {"$set": doc})
        self._drop_unnamed(run_id, [*run.get("artifacts", []), *(a["name"] for a in before)],
                           artifacts)
        return run_id


def resync_command(runs_dir: str | Path, url: str, run_id=None) -> str:
    return (f"python -m iwx.resync --runs-dir {runs_dir} --mongo {url}"
            + (f" {run_id}" if run_id is not None else ""))


class MirrorObserver(RunObserver):
    """Sacred observer mirroring the run's file-store folder into MongoDB (module doc)."""

    priority = 10   # after the FileStorageObserver (20): its files are written first

    def __init__(self, url: str, runs_dir: str | Path):
        self.url, self.runs_dir = url, Path(runs_dir)
        self.run_dir: Path | None = None
        self.mongo_id: int | None = None
        self._mirror: Mirror | None = None
        self._client = None
        self._lock = threading.Lock()
        self.failures = 0
        self._down = False

    FINAL_WAIT_S = 30.0   # at the end, how long to wait for another process syncing the run

    def _sync(self, wait_s: float = 0.0) -> bool:
        if self.run_dir is None:
            return False
        with self._lock:
            try:
                if self._mirror is None:
                    self._client, db = database(self.url)
                    self._mirror = Mirror(db)
                self.mongo_id = self._mirror.sync(self.run_dir, wait_s)
            except SyncError:
                # a file caught mid-write, or another process (iwx.resync) writing the
                # run this moment: the next heartbeat syncs it
                return False
            except Exception as exc:  # noqa: BLE001  (the database never decides a run's fate)
                self.failures += 1
                if self._mirror is not None:
                    self._mirror.forget()
                if not self._down:
                    print(f"[iwx] MongoDB at {self.url} did not take run {self.run_dir.name} "
                          f"({type(exc).__name__}: {str(exc)[:200]}); the file store keeps "
                          "recording everything, and iwx retries at every heartbeat.",
                          file=sys.stderr, flush=True)
                self._down = True
                return False
            if self._down:
                print(f"[iwx] MongoDB at {self.url} answers again: run {self.run_dir.name} "
                      "is mirrored up to now.", file=sys.stderr, flush=True)
            self._down = False
            return True

    def started_event(self, ex_info, command, host_info, start_time, config, meta_info, _id):
        self.run_dir = self.runs_dir / str(_id)
        self._sync()
        return _id

    def heartbeat_event(self, info, captured_out, beat_time, result):
        self._sync()

    def _final(self):
        was_down = self._down
        ok = self._sync(self.FINAL_WAIT_S)
        if not ok and not was_down:   # one more try: a lost packet should not need a resync
            ok = self._sync(self.FINAL_WAIT_S)
        if ok:
            print(f"[iwx] mirrored into MongoDB {self.url} as run {self.mongo_id}", flush=True)
        else:
            print(f"[iwx] MongoDB at {self.url} does not hold run {self.run_dir.name} "
                  "completely; the file store does. Once the server is back: "
                  f"{resync_command(self.runs_dir, self.url, self.run_dir.name)}",
                  file=sys.stderr, flush=True)
        if self._client is not None:
            self._client.close()

    def completed_event(self, stop_time, result):
        self._final()

    def interrupted_event(self, interrupt_time, status):
        self._final()

    def failed_event(self, fail_time, fail_trace):
        self._final()
