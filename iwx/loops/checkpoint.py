"""Whole-state checkpoints that let a killed run continue exactly where it was.

A checkpoint holds whatever the loops put in (networks, optimisers, replay,
counters) plus every random state: torch (CPU and CUDA), numpy generators the
loops own, and Python's ``random``. Its directory holds

  state.pt         the newest checkpoint
  state.prev.pt    the one before it, kept in case ``state.pt`` is found damaged

Why it cannot be corrupted or confused:

- **Written aside, then renamed.** Each save writes a temporary file of its own
  (``tempfile.mkstemp`` in the same directory, so two writers never share one),
  flushes and fsyncs it, renames the current ``state.pt`` to ``state.prev.pt``,
  renames the new file to ``state.pt`` and fsyncs the directory. A kill or power
  cut at any moment leaves complete files only; at worst ``state.pt`` is missing
  and ``state.prev.pt`` is used.
- **Checked before use.** Each file starts with a 64-byte header: a magic
  string, the length of the torch payload after it and the payload's sha256
  (computed while writing, so saving reads nothing back). Loading checks length
  and checksum, then loads; a file that is missing, truncated, altered or
  unloadable is reported in one warning line (path and problem) and
  ``state.prev.pt`` is used instead. If neither is usable, :class:`CheckpointError`
  names both files, what is wrong with each, and ``--fresh``. The checksum lives
  in the file itself (not in a sidecar) so that the file and its checksum are
  renamed together: no interleaving of renames can pair a file with another
  file's checksum. Cost, measured once by hand (notes/checkpoints.md): saving
  adds one sha256 pass over the bytes written, loading one read + sha256 pass
  over the file before torch reads it.
- **A failed save changes nothing.** When writing fails (disk full, quota, I/O
  error) the temporary file is removed, the previous checkpoints are untouched
  and an ``OSError`` names the checkpoint and the operating system's reason
  (e.g. "No space left on device"), not torch's stream-writer message.

Files written before the header existed (plain ``torch.save``) still load; they
are checked by loading only.

Two runs of one configuration must not save into one directory at the same time
(each would resume from the other's state): :class:`iwx.experiment.run_lock.RunLock`
keeps the second out. Should they anyway, every ``state.pt`` a reader finds is
still one complete, verified checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import signal
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

# magic, payload length, sha256 of the payload, padding (keeps torch's 64-byte
# record alignment relative to the start of the file).
_HEADER = struct.Struct("<8sQ32s16x")
_MAGIC = b"iwxckpt\x01"          # last byte: format version
_ZIP_MAGIC = b"PK\x03\x04"       # what a plain torch.save file starts with
_CHUNK = 8 << 20                 # bytes per read while verifying
_MISSING = "is missing"


class CheckpointError(Exception):
    """Neither ``state.pt`` nor ``state.prev.pt`` can be used. ``problems`` maps each
    path to what is wrong with it."""

    def __init__(self, message: str, problems: dict[Path, str]):
        super().__init__(message)
        self.problems = problems


def rng_state(np_rng: np.random.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state,
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Saves to / loads from ``directory/state.pt`` (the one before in
    ``state.prev.pt``). ``directory=None`` disables it."""

    def __init__(self, directory: str | os.PathLike | None, *, kill_at: str | None = None,
                 tolerate_write_errors: bool = False):
        self.directory = None if directory is None else Path(directory)
        # A run's periodic checkpoints: a disk that refuses one (full for a moment) costs
        # that checkpoint only — warned, the previous one kept, the run goes on; whether
        # the run's record can be written is checked at its end (iwx.experiment.durable).
        self.tolerate_write_errors = tolerate_write_errors
        self.last_label: str | None = None     # of the last checkpoint this instance wrote
        self.write_errors: list[str] = []
        # Testing hook: "<label>" makes the process SIGKILL itself right after
        # saving the checkpoint with that label (a real, unclean kill).
        if kill_at is None:
            kill_at = os.environ.get("IWX_KILL_AFTER_CHECKPOINT")
        self.kill_at = kill_at
        self.meta: dict = {}  # stored with every checkpoint (e.g. the recording run's id)
        # What this instance knows of state.pt: True good, False found damaged by
        # load() (so save() must not rotate it over a good state.prev.pt), None unknown.
        self._current_ok: bool | None = None
        self._warned: set[str] = set()
        self._preloaded: dict | None = None

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / "state.pt"

    @property
    def previous_path(self) -> Path | None:
        return None if self.directory is None else self.directory / "state.prev.pt"

    @property
    def summary_path(self) -> Path | None:
        """``state.json``: the label and time of the newest save, for a reader that must
        not load ``state.pt`` (hundreds of MB with a replay) to say where a run is."""
        return None if self.directory is None else self.directory / "state.json"

    def preload(self, state: dict | None) -> None:
        """Hand the next :meth:`load` a state this process already loaded (the runner
        loads before the run is recorded, the pipeline again inside it): that load
        returns it without reading the file again, and forgets it."""
        self._preloaded = state

    def load(self) -> dict | None:
        """The newest usable checkpoint, or None when there is none.

        Falls back to ``state.prev.pt`` (one warning line on stderr naming the path
        and the problem) when ``state.pt`` is missing or damaged; raises
        :class:`CheckpointError` when a checkpoint exists but none is usable."""
        if self._preloaded is not None:
            state, self._preloaded = self._preloaded, None
            return state
        if self.path is None:
            return None
        state, problem = read_checkpoint(self.path)
        if problem is None:
            self._current_ok = True
            return state
        previous, previous_problem = read_checkpoint(self.previous_path)
        if problem == _MISSING and previous_problem == _MISSING:
            return None
        if previous_problem is None:
            self._current_ok = None if problem == _MISSING else False
            self._warn(f"[iwx] warning: checkpoint {self.path} {problem}; resuming from the "
                       f"previous one, {self.previous_path} (label {previous.get('label')!r})")
            return previous
        problems = {self.path: problem, self.previous_path: previous_problem}
        lines = "\n".join(f"  {path} {what}" for path, what in problems.items())
        raise CheckpointError(
            f"no usable checkpoint in {self.directory}:\n{lines}\n"
            "Rerun with --fresh to start again from zero (this discards both files).",
            problems)

    def save(self, state: dict, label: str) -> None:
        """Write ``state`` (with ``meta`` and ``label``) as the new ``state.pt``; the
        current one becomes ``state.prev.pt``. Raises OSError naming the checkpoint
        when the file cannot be written (the existing checkpoints are then untouched),
        or with ``tolerate_write_errors`` warns and goes on."""
        if self.path is None:
            return
        if not self.tolerate_write_errors:
            return self._save(state, label)
        try:
            self._save(state, label)
        except OSError as exc:
            kept = (f"the last good one is {self.last_label!r}" if self.last_label else
                    "none was written yet")
            self.write_errors.append(f"{label}: {exc}")
            print(f"[iwx] checkpoint {label!r} not written ({exc}); the run goes on, {kept}",
                  file=sys.stderr, flush=True)

    def _save(self, state: dict, label: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _named(exc, f"cannot create the checkpoint directory {self.directory}") from exc
        tmp = self._write_temporary({**state, **self.meta, "label": label})
        try:
            if self._current_ok is False:
                pass        # state.pt is damaged: replace it, keep the good state.prev.pt
            else:
                try:
                    os.replace(self.path, self.previous_path)
                except FileNotFoundError:
                    pass    # first save (or another writer moved it a moment ago)
            os.replace(tmp, self.path)
            _fsync_directory(self.directory)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _named(exc, f"cannot install the new checkpoint {self.path}") from exc
        self._current_ok = True
        self.last_label = label
        self._write_summary(label)
        if self.kill_at is not None and self.kill_at == label:
            os.kill(os.getpid(), signal.SIGKILL)

    def clear(self) -> None:
        """Remove this checkpointer's files: state.pt, state.prev.pt and temporary
        files left by saves that were killed."""
        if self.directory is None:
            return
        for path in (self.path, self.previous_path, self.summary_path,
                     *self.directory.glob("state*.tmp")):
            path.unlink(missing_ok=True)
        self._current_ok = None
        self._preloaded = None

    def _write_summary(self, label: str) -> None:
        """``state.json`` beside the new ``state.pt`` (best effort: it only informs; a
        kill between the two leaves the previous save's summary, never a wrong state)."""
        import datetime
        import json

        summary = {"label": label, **{k: v for k, v in self.meta.items()
                                      if isinstance(v, (str, int, float))},
                   "saved": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
        tmp = self.summary_path.with_suffix(".json.tmp")
        try:
            tmp.write_text(json.dumps(summary) + "\n")
            os.replace(tmp, self.summary_path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def _write_temporary(self, payload: dict) -> Path:
        """A complete, fsynced checkpoint file next to state.pt, under a unique name."""
        try:
            fd, name = tempfile.mkstemp(prefix="state.", suffix=".tmp", dir=self.directory)
        except OSError as exc:
            raise _named(exc, f"cannot create a temporary file for the checkpoint "
                              f"{self.path}") from exc
        tmp = Path(name)
        sink = None
        try:
            with open(fd, "wb") as f:
                f.write(bytes(_HEADER.size))          # placeholder: not valid until the end
                sink = _HashingWriter(f)
                torch.save(payload, sink)
                f.seek(0)
                f.write(_HEADER.pack(_MAGIC, sink.length, sink.digest()))
                f.flush()
                os.fsync(f.fileno())
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            # torch reports a failed write as its own RuntimeError; the OS error is the news.
            cause = sink.error if sink is not None and sink.error is not None else exc
            if isinstance(cause, OSError):
                raise _named(cause, f"cannot write the checkpoint {self.path} (temporary "
                                    f"file {tmp}, removed; the previous checkpoint is "
                                    f"untouched)") from exc
            raise
        return tmp

    def _warn(self, line: str) -> None:
        if line not in self._warned:     # the runner and the pipeline both load
            self._warned.add(line)
            print(line, file=sys.stderr, flush=True)


def checkpoint_summary(directory: str | os.PathLike) -> dict | None:
    """What ``state.json`` says of the newest checkpoint in ``directory`` ({"label",
    "saved", "run_id", ...}), or None when there is no checkpoint (or no summary)."""
    import json

    directory = Path(directory)
    if not (directory / "state.pt").exists() and not (directory / "state.prev.pt").exists():
        return None
    try:
        summary = json.loads((directory / "state.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def read_checkpoint(path: Path) -> tuple[dict | None, str | None]:
    """(state, None) for a usable checkpoint file, else (None, what is wrong with it,
    phrased to follow the path: "is missing", "is truncated: ...")."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None, _MISSING
    except OSError as exc:
        return None, f"cannot be opened: {exc.strerror or exc}"
    # One open file throughout: a rename by another writer cannot swap it mid-check.
    with f:
        try:
            problem = _check(f)
        except OSError as exc:
            return None, f"cannot be read: {exc.strerror or exc}"
        if problem is not None:
            return None, problem
        try:
            state = torch.load(f, map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001  (any failure makes the file unusable)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return None, f"cannot be loaded by torch: {type(exc).__name__}: {first}"
    if not isinstance(state, dict):
        return None, f"holds a {type(state).__name__}, not a checkpoint"
    return state, None


def _check(f) -> str | None:
    """Check length and checksum of an open checkpoint file; leaves it positioned at
    the torch payload. None when it is good (or a header-less file torch must judge)."""
    size = os.fstat(f.fileno()).st_size
    if size == 0:
        return "is empty (0 bytes)"
    head = f.read(_HEADER.size)
    if head.startswith(_ZIP_MAGIC):             # written before the header existed
        f.seek(0)
        return None
    if not (head.startswith(_MAGIC[:-1]) or _MAGIC[:-1].startswith(head)):
        return f"is not an iwx checkpoint (it starts with {head[:8]!r})"
    if len(head) < _HEADER.size:
        return f"is truncated: {size} bytes, not even its {_HEADER.size}-byte header"
    magic, length, digest = _HEADER.unpack(head)
    if magic != _MAGIC:
        return (f"has checkpoint format version {magic[-1]}; this iwx reads version "
                f"{_MAGIC[-1]}")
    body = size - _HEADER.size
    if body < length:
        return f"is truncated: {body} of its {length} bytes after the header"
    if body > length:
        return f"has {body - length} bytes more than the {length} that were written"
    hasher = hashlib.sha256()
    buffer = memoryview(bytearray(_CHUNK))
    while n := f.readinto(buffer):
        hasher.update(buffer[:n])
    if hasher.digest() != digest:
        return (f"fails its checksum (sha256 {hasher.hexdigest()[:12]}..., written as "
                f"{digest.hex()[:12]}...): its contents changed after it was written")
    f.seek(_HEADER.size)
    return None


class _HashingWriter:
    """The file object torch.save writes to: passes bytes on, hashes and counts them,
    and remembers the first OSError (torch re-raises it as a RuntimeError)."""

    def __init__(self, f):
        self._f = f
        self._hash = hashlib.sha256()
        self.length = 0
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            self._f.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise
        view = memoryview(data)
        self._hash.update(view)
        self.length += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        try:
            self._f.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def digest(self) -> bytes:
        return self._hash.digest()


def _named(exc: OSError, what: str) -> OSError:
    """An OSError of the same errno whose message says what failed, where and why."""
    reason = exc.strerror or str(exc)
    return OSError(exc.errno, f"{what}: {reason}") if exc.errno else OSError(f"{what}: {reason}")


def _fsync_directory(directory: Path) -> None:
    """Make the renames in ``directory`` durable (a no-op where directories cannot be
    fsynced)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)
