"""The file store as a record that survives storage faults (issue 14).

Sacred's ``FileStorageObserver`` writes ``run.json`` / ``metrics.json`` in place
(a full disk leaves them cut off, and a reader can see them half written),
re-reads ``metrics.json`` to append to it, and Sacred itself disables an observer
for the rest of the run after its first exception, so a disk that is full for
three seconds during one heartbeat loses everything recorded afterwards while
the run computes on and reports COMPLETED.

:class:`DurableFileObserver` is the same file store (same layout, same files)
written so that nothing is lost silently:

- every file is written whole to a temporary file and renamed into place, so a
  reader (``iwx.report``, a sweep's summary) sees the old or the new version,
  never half of one, and a failed write leaves the old version;
- metrics, captured output and info are kept in memory and written whole, so a
  heartbeat that failed is repaired by the next one that succeeds;
- no exception ever reaches Sacred from a heartbeat (which would switch the
  observer off): a failed heartbeat is remembered (:attr:`pending`) and retried
  at the next one;
- a heartbeat copies the run's ``info`` (a live dict the run's main thread keeps
  changing while Sacred's heartbeat thread reads it) before writing it. Before, a
  heartbeat that serialised ``info`` while the main thread added a key raised
  "dictionary changed size during iteration", Sacred switched the observer off,
  and the artifacts written after it never reached the file store (a CI sweep
  trial lost ``results.json``; tests/test_record_races.py);
- artifacts and the final ``run.json`` are retried for ``retry_s`` seconds; what
  still cannot be written is remembered in :attr:`lost`, and
  :meth:`raise_if_lost` turns it into a :class:`RecordError` naming the path and
  the OS error ("No space left on device"), so the run fails loudly and keeps its
  checkpoint (the runner clears a checkpoint only after :meth:`verify` saw the
  record complete on disk).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from sacred.observers import FileStorageObserver
from sacred.serializer import flatten


class RecordError(OSError):
    """The run's record could not be written to the file store."""


@contextlib.contextmanager
def _replacing(path: Path):
    """A binary file to fill; on leaving, flushed, fsync'ed and renamed over ``path``
    (a unique temporary file in the same folder: ``path`` is whole, old or new; on an
    error the temporary file is removed and ``path`` untouched)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_atomically(path: str | os.PathLike, data: bytes) -> None:
    """``path`` holds ``data`` or is untouched."""
    with _replacing(Path(path)) as f:
        f.write(data)


def copy_atomically(source: str | os.PathLike, path: str | os.PathLike) -> None:
    with _replacing(Path(path)) as out, open(source, "rb") as src:
        shutil.copyfileobj(src, out, 1 << 20)


def snapshot(live: dict, tries: int = 50) -> dict | None:
    """A deep copy of ``live``, a dict another thread may be changing (None when every
    try met it mid-change: the caller keeps what it had and tries again later)."""
    for _ in range(tries):
        try:
            return copy.deepcopy(live)
        except RuntimeError:   # "dictionary changed size during iteration"
            time.sleep(0.001)
    return None


def describe(exc: BaseException) -> str:
    """'No space left on device' rather than '[Errno 28] No space left on device: ...'."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class DurableFileObserver(FileStorageObserver):
    """A Sacred file store that retries, never switches itself off, and says what it
    could not write (module doc). ``retry_s``: how long an artifact or the final
    ``run.json`` is retried before it counts as lost (env ``IWX_RECORD_RETRY_S``)."""

    def __init__(self, basedir, *args, retry_s: float | None = None, **kwargs):
        super().__init__(basedir, *args, **kwargs)
        if retry_s is None:
            retry_s = float(os.environ.get("IWX_RECORD_RETRY_S", "60"))
        self.retry_s = retry_s
        self.pending: dict[str, str] = {}       # file -> why its last write failed
        self.lost: list[tuple[str, str]] = []   # (path, why): given up on
        self._metrics: dict[str, dict] = {}
        self._warned = False

    # -- writing -------------------------------------------------------------------
    def save_json(self, obj, filename):
        data = json.dumps(flatten(obj), sort_keys=True, indent=2).encode()
        write_atomically(os.path.join(self.dir, filename), data)

    def save_cout(self):
        write_atomically(os.path.join(self.dir, "cout.txt"), self.cout.encode("utf-8"))
        self.cout_write_cursor = len(self.cout)

    def save_file(self, filename, target_name=None):
        target_name = target_name or os.path.basename(filename)
        if target_name in ("run.json", "config.json", "cout.txt", "metrics.json"):
            raise FileExistsError(f"an artifact may not be named {target_name!r}: the file "
                                  "store keeps its own record under that name")
        copy_atomically(filename, os.path.join(self.dir, target_name))

    def _attempt(self, name: str, write) -> bool:
        """One try; a failure is remembered in ``pending`` and warned about once. Any
        exception counts (an OSError of a full disk, or anything else): none may reach
        Sacred, which would switch the observer off for the rest of the run."""
        try:
            write()
        except Exception as exc:
            self.pending[name] = describe(exc)
            if not self._warned:
                self._warned = True
                print(f"[iwx] could not write {os.path.join(self.dir, name)}: {describe(exc)}; "
                      "retrying at every heartbeat", flush=True)
            return False
        self.pending.pop(name, None)
        return True

    def _persist(self, name: str, write) -> bool:
        """Retry ``write`` for ``retry_s`` seconds (backing off); False: it is lost."""
        deadline = time.monotonic() + self.retry_s
        delay = 0.25
        while not self._attempt(name, write):
            if time.monotonic() >= deadline:
                self.lost.append((os.path.join(self.dir, name), self.pending[name]))
                return False
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        return True

    def _flush_all(self) -> None:
        self._attempt("cout.txt", self.save_cout)
        self._attempt("run.json", lambda: self.save_json(self.run_entry, "run.json"))
        if self.info:
            self._attempt("info.json", lambda: self.save_json(self.info, "info.json"))
        if self._metrics:
            self._attempt("metrics.json", lambda: self.save_json(self._metrics, "metrics.json"))

    # -- Sacred's events -----------------------------------------------------------
    def heartbeat_event(self, info, captured_out, beat_time, result):
        copied = snapshot(info)
        if copied is not None:   # else the last copy is written; the next beat catches up
            self.info = copied
        self.run_entry["heartbeat"] = beat_time.isoformat()
        self.run_entry["result"] = result
        self.cout = captured_out
        self._flush_all()

    def log_metrics(self, metrics_by_name, info):
        for name, entry in metrics_by_name.items():
            saved = self._metrics.setdefault(name, {"values": [], "steps": [],
                                                    "timestamps": []})
            saved["values"] += list(entry["values"])
            saved["steps"] += list(entry["steps"])
            saved["timestamps"] += [t.isoformat() for t in entry["timestamps"]]
        self._attempt("metrics.json", lambda: self.save_json(self._metrics, "metrics.json"))

    def artifact_event(self, name, filename, metadata=None, content_type=None):
        if self._persist(name, lambda: self.save_file(filename, name)):
            self.run_entry["artifacts"].append(name)
            self._attempt("run.json", lambda: self.save_json(self.run_entry, "run.json"))

    def resource_event(self, filename):
        try:
            super().resource_event(filename)
        except OSError as exc:
            self.pending["resources"] = describe(exc)

    def _final(self, status_fields: dict) -> None:
        self.run_entry.update(status_fields)
        # everything a failed heartbeat left behind first, then the status
        for name in list(self.pending):
            if name == "metrics.json":
                self._persist(name, lambda: self.save_json(self._metrics, "metrics.json"))
            elif name == "cout.txt":
                self._persist(name, self.save_cout)
            elif name == "info.json" and self.info:
                self._persist(name, lambda: self.save_json(self.info, "info.json"))
        self._persist("run.json", lambda: self.save_json(self.run_entry, "run.json"))

    def completed_event(self, stop_time, result):
        self._final({"stop_time": stop_time.isoformat(), "result": result,
                     "status": "COMPLETED"})

    def interrupted_event(self, interrupt_time, status):
        self._final({"stop_time": interrupt_time.isoformat(), "status": status})

    def failed_event(self, fail_time, fail_trace):
        self._final({"stop_time": fail_time.isoformat(), "status": "FAILED",
                     "fail_trace": fail_trace})

    # -- what the runner asks ------------------------------------------------------
    def raise_if_lost(self) -> None:
        if self.lost:
            lines = [f"  {path}: {why}" for path, why in self.lost]
            raise RecordError("the run's record could not be written to the file store:\n"
                              + "\n".join(lines))

    def verify(self, artifacts) -> None:
        """Raise :class:`RecordError` unless the final ``run.json`` and every named
        artifact are on disk (what must hold before a checkpoint is cleared)."""
        self.raise_if_lost()
        missing = [a for a in artifacts if not os.path.isfile(os.path.join(self.dir, a))]
        if missing:
            raise RecordError(f"artifacts missing from {self.dir}: {', '.join(missing)}")
        with open(os.path.join(self.dir, "run.json")) as f:
            status = json.load(f).get("status")
        if status not in ("COMPLETED",):
            raise RecordError(f"{os.path.join(self.dir, 'run.json')} says {status!r}, "
                              "not COMPLETED")
