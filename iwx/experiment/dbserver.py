"""A local MongoDB-compatible server (SecantusDB) as a background process.

:func:`start_server` launches SecantusDB's ``secantusd-py`` (a MongoDB
wire-protocol server from PyPI) detached, storing under a folder, and waits
until it answers; :class:`Server` stops it. ``python -m iwx.db`` is the command
line around this; the tests start throwaway servers with it.

SecantusDB is GPL-2.0, so iwx only ever runs it as a separate process through its
command line and talks to it over the MongoDB wire protocol — never import it.
The server is an optional dev dependency (``pip install SecantusDB``, or
``./setup.sh``, which installs the ``[dev]`` extra).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from iwx.experiment.mongo import ping

LOG_FILE = "server.log"

_LISTENING = re.compile(r"listening on \S+:(\d+)")


class DatabaseError(Exception):
    """The run database or Omniboard could not be found, started or reached."""


# --------------------------------------------------------------------------- processes

def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (reaps it if it is our child)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: its parent reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child of another process lingers as a zombie until reaped
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def is_server_process(pid: int) -> bool:
    """Whether ``pid`` looks like a SecantusDB server (guards against a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)  # no /proc (or it vanished): trust the liveness check
    return b"secantusd" in cmdline


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop process ``pid``: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5.0
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    if path is None:
        return "(no log)"
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- server

def find_secantusd() -> str:
    """Path of the ``secantusd-py`` executable: next to this Python first, then on PATH."""
    beside = Path(sys.executable).parent / "secantusd-py"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which("secantusd-py")
    if on_path:
        return on_path
    raise DatabaseError(
        f"secantusd-py (the SecantusDB server) was not found next to {sys.executable} nor on "
        "PATH. It is an optional dev dependency: install it with `pip install SecantusDB` "
        "(or `./setup.sh`, which installs the [dev] extra), or point IWX_MONGO_URL at "
        "another MongoDB server.")


def mongo_url(host: str, port: int, db: str = "iwx") -> str:
    """``mongodb://HOST:PORT/DB``."""
    return f"mongodb://{host}:{port}/{db}"


@dataclass
class Server:
    """A SecantusDB server process started by :func:`start_server`."""

    pid: int
    host: str
    port: int
    db: str
    url: str
    storage_dir: Path
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the server, wait up to ``timeout`` seconds, then SIGKILL it."""
        stop_pid(self.pid, timeout)


def start_server(storage_dir: str | os.PathLike, port: int = 0, host: str = "127.0.0.1",
                 db: str = "iwx", timeout: float = 20.0) -> Server:
    """Start SecantusDB detached on ``host:port`` (0: any free port), data in ``storage_dir/data``.

    Waits until the server logs the port it listens on and answers a ping, for up to
    ``timeout`` seconds; otherwise kills it and raises :class:`DatabaseError` with the
    log's tail. The server outlives this Python process (its own session); stop it
    with :meth:`Server.stop`. Restarting on the same ``storage_dir`` keeps the data.
    """
    exe = find_secantusd()
    storage_dir = Path(storage_dir).resolve()
    (storage_dir / "data").mkdir(parents=True, exist_ok=True)
    log_path = storage_dir / LOG_FILE
    offset = log_path.stat().st_size if log_path.exists() else 0
    cmd = [exe, "--host", host, "--port", str(port),
           "--storage-path", str(storage_dir / "data"), "--sync-on-commit"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + timeout
    bound = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DatabaseError(f"SecantusDB exited with code {proc.returncode} while starting "
                                f"({' '.join(cmd)}). Log {log_path}:\n{log_tail(log_path)}")
        if bound is None:
            with open(log_path, "rb") as f:
                f.seek(offset)
                m = _LISTENING.search(f.read().decode(errors="replace"))
            bound = int(m.group(1)) if m else None
        if bound is not None and ping(mongo_url(host, bound, db), timeout_ms=500):
            pid = proc.pid
            with warnings.catch_warnings():  # detached on purpose: not "still running" by mistake
                warnings.simplefilter("ignore", ResourceWarning)
                del proc  # subprocess still reaps it if it exits while we run
            return Server(pid=pid, host=host, port=bound, db=db, url=mongo_url(host, bound, db),
                          storage_dir=storage_dir, log_path=log_path)
        time.sleep(0.1)
    stop_pid(proc.pid, timeout=5.0)
    raise DatabaseError(f"SecantusDB did not answer a ping within {timeout:.0f} s "
                        f"({' '.join(cmd)}); it was stopped. Log {log_path}:\n{log_tail(log_path)}")
