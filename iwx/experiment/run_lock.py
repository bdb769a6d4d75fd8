"""One run per checkpoint key at a time: an exclusive lock held for the life of the run.

Two runs of the same configuration share a checkpoint directory, so a second one
started while the first is going would resume from the first's live checkpoint and
the two would overwrite each other's saves (a killed sweep driver's orphaned trials
and a rerun are the same case). :class:`RunLock` stops the second one at once (or
lets it wait), with a message naming the process that holds the key::

    with RunLock(lock_path(runs_dir, key), key=key):
        ...   # the whole run, checkpoints included

How it works: ``fcntl.flock(LOCK_EX | LOCK_NB)`` on ``<runs_dir>/_checkpoints/<key>.lock``.
The kernel holds the lock for the open file, so it goes away when the holder
releases it, closes it or dies in any way (``kill -9`` included): there are no
stale locks to clean up. After acquiring, the holder writes its pid, host, start
time and command line into the file for a second process to report. Lock files
are never deleted (a few bytes per key): deleting one while a process waits to
lock it would let two processes each hold a lock, on different files.

Limits, stated not solved:

- **Network filesystems.** flock is reliable on local filesystems. On NFS, Linux
  clients (2.6.12 and later) emulate flock with NFS byte-range locks, which the
  server arbitrates between machines only if its lock manager is running (NFSv3
  ``lockd``) or on NFSv4; a mount with ``nolock`` / ``local_lock=flock`` makes the
  lock local to each machine, and some cluster filesystems (Lustre without
  ``-o flock``, some FUSE mounts) either fail (ENOSYS, ENOLCK, EOPNOTSUPP: reported as
  an OSError naming the lock file) or lock per node. Two identical runs started on
  two machines sharing such a ``runs/`` directory are then not kept apart.
- **Forked children** of the holder inherit the open file and keep the lock until
  they exit too; processes started by exec (subprocess, Ray workers) do not.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path

_CONTENDED = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class RunLocked(Exception):
    """Another live process holds the run's lock. ``holder``: what it wrote (pid, host,
    started, command, key), possibly empty; ``key`` and ``path``: the lock's."""

    def __init__(self, message: str, *, key: str, path: Path, holder: dict):
        super().__init__(message)
        self.key, self.path, self.holder = key, path, holder


def checkpoint_dir(runs_dir: str | os.PathLike, key: str) -> Path:
    """Where the run of configuration key ``key`` keeps its checkpoints in the file store
    ``runs_dir`` (iwx.loops.checkpoint.Checkpointer writes there; the figure commands
    read its summary from there)."""
    return Path(runs_dir) / "_checkpoints" / key


def lock_path(runs_dir: str | os.PathLike, key: str) -> Path:
    """Where the lock of checkpoint key ``key`` lives: next to its checkpoint directory."""
    return checkpoint_dir(runs_dir, key).with_name(f"{key}.lock")


class RunLock:
    """An exclusive lock on ``path`` for as long as it is held (see the module docstring).

    ``key``: how messages name the run (default: the lock file's stem). ``wait``:
    None (default) raises :class:`RunLocked` at once when another process holds the
    lock; a number of seconds polls (every ``poll`` seconds) until the lock is free
    or that time has passed, then raises. Use as a context manager or with
    :meth:`acquire` / :meth:`release`."""

    def __init__(self, path: str | os.PathLike, *, key: str | None = None,
                 wait: float | None = None, poll: float = 0.5):
        if wait is not None and not wait >= 0:
            raise ValueError(f"RunLock: wait must be None or a number of seconds >= 0, "
                             f"got {wait!r}")
        if not poll > 0:
            raise ValueError(f"RunLock: poll must be a number of seconds > 0, got {poll!r}")
        self.path = Path(path)
        self.key = key if key is not None else self.path.stem
        self.wait = wait
        self.poll = poll
        self.holder: dict = {}      # what this process wrote, while it holds the lock
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock (waiting up to ``wait`` seconds); raises RunLocked."""
        if self._fd is not None:
            raise RuntimeError(f"RunLock {self.path} is already held by this object")
        deadline = None if self.wait is None else time.monotonic() + self.wait
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in _CONTENDED:
                    os.close(fd)
                    raise OSError(exc.errno, f"cannot lock {self.path}: {exc.strerror} "
                                  "(does this filesystem support flock?)") from exc
                holder = _read_holder(fd)
                os.close(fd)
                left = None if deadline is None else deadline - time.monotonic()
                if left is None or left <= 0:
                    raise RunLocked(self._message(holder), key=self.key, path=self.path,
                                    holder=holder) from None
                time.sleep(min(self.poll, left))
                continue
            if not _still_at(fd, self.path):    # replaced between open and lock: retry
                os.close(fd)
                continue
            self._fd = fd
            self._write_holder()
            return self

    def release(self) -> None:
        """Give the lock up (a no-op when it is not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)     # before unlocking: after, it may be the next holder's
        except OSError:
            pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
            self.holder = {}

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # No O_TRUNC: until we hold the lock, the file is the holder's to describe.
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot open the run lock {self.path}: "
                          f"{exc.strerror}") from exc

    def _write_holder(self) -> None:
        self.holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join(getattr(sys, "orig_argv", sys.argv)),
            "key": self.key,
        }
        data = (json.dumps(self.holder) + "\n").encode()
        try:
            os.pwrite(self._fd, data, 0)
            os.ftruncate(self._fd, len(data))
        except OSError:
            pass    # the lock holds without its description; a contender says "unknown"

    def _message(self, holder: dict) -> str:
        if holder:
            who = (f"process {holder.get('pid')} on host {holder.get('host')}, started "
                   f"{holder.get('started')}, command: {holder.get('command')}")
        else:
            who = "a process that has not described itself (yet)"
        waited = "" if not self.wait else f" (still, after waiting {self.wait:g} s)"
        return (f"run {self.key} is already going{waited}: {who}; lock {self.path}. Two runs "
                "of one configuration would overwrite each other's checkpoint: wait for it to "
                "finish, or stop it and rerun (the rerun resumes from its checkpoint).")


def current_holder(path: str | os.PathLike) -> dict | None:
    """The description of the process holding the lock at ``path``, read without taking
    or testing the lock (which would make a run starting that instant fail): the file's
    holder, if it names a process alive on this host (or another host, which cannot be
    checked from here). None when free: a released lock is empty, a killed holder's
    process is gone."""
    try:
        holder = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or "pid" not in holder:
        return None
    if holder.get("host") != socket.gethostname():
        return holder
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return None
    except (PermissionError, ValueError, TypeError, OverflowError):
        pass        # alive but not ours (PermissionError), or unreadable: say what it says
    return holder


def _read_holder(fd: int) -> dict:
    """The holder's description in the lock file; {} if unreadable. The holder may be
    writing it this instant, so a torn read is retried a few times."""
    for attempt in range(5):
        try:
            text = os.pread(fd, 1 << 16, 0).decode("utf-8", "replace")
            holder = json.loads(text)
            if isinstance(holder, dict):
                return holder
        except (OSError, ValueError):
            pass
        time.sleep(0.02 * (attempt + 1))
    return {}


def _still_at(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is still the file at ``path``."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    there = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)
