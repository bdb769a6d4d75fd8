"""Omniboard (the Sacred run browser) against a MongoDB: installed once with npm, run
as a process of its own (:func:`start_omniboard`); ``python -m iwx.db omniboard`` is
the command line around it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from iwx.experiment.dbserver import DatabaseError, free_port, log_tail

OMNIBOARD_VERSION = "2.16.1"

_OMNIBOARD_LISTENING = re.compile(r"Omniboard is listening on port (\d+)")
_OMNIBOARD_CONNECTED = "established successfully"


def node_available() -> bool:
    """Whether ``node`` and ``npm`` are on PATH (Omniboard needs both)."""
    return shutil.which("node") is not None and shutil.which("npm") is not None


def omniboard_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where Omniboard is installed: ``cache_dir``, ``$IWX_OMNIBOARD_DIR`` or the user cache."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get("IWX_OMNIBOARD_DIR"):
        return Path(os.environ["IWX_OMNIBOARD_DIR"])
    return Path.home() / ".cache" / "iwx" / f"omniboard-{OMNIBOARD_VERSION}"


def ensure_omniboard(cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of the Omniboard executable, installing Omniboard with npm first if needed."""
    cache = omniboard_cache_dir(cache_dir)
    exe = cache / "node_modules" / ".bin" / "omniboard"
    if exe.exists():
        return exe
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise DatabaseError("Omniboard needs Node.js and npm on PATH (node >= 18); install "
                            "them (e.g. from https://nodejs.org or your package manager) and retry.")
    cache.mkdir(parents=True, exist_ok=True)
    import fcntl

    # Two processes (two test workers, two users) must not npm-install into one prefix
    # at once: the second waits for the first, then finds Omniboard installed.
    with open(cache / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if exe.exists():
            return exe
        return _npm_install_omniboard(npm, cache, exe)


def _npm_install_omniboard(npm: str, cache: Path, exe: Path) -> Path:
    print(f"Installing Omniboard {OMNIBOARD_VERSION} into {cache} with npm "
          "(about a minute, only the first time)...", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache),
                           f"omniboard@{OMNIBOARD_VERSION}"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0 or not exe.exists():
        output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise DatabaseError(f"`npm install omniboard@{OMNIBOARD_VERSION}` into {cache} failed "
                            f"(exit {done.returncode}); check network access to the npm registry. "
                            f"npm said:\n{output}")
    print(f"Installed Omniboard in {time.monotonic() - t0:.0f} s.", file=sys.stderr, flush=True)
    return exe


@dataclass
class Omniboard:
    """An Omniboard process started by :func:`start_omniboard`; ``url`` is ``http://127.0.0.1:PORT``."""

    process: subprocess.Popen
    port: int
    url: str
    log_path: Path | None = None
    _temporary_log: bool = field(default=False, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop Omniboard (its whole process group) and remove a temporary log."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        if self._temporary_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)


def _http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_omniboard(mongo_url: str, http_port: int = 0, cache_dir: str | os.PathLike | None = None,
                    log_path: str | os.PathLike | None = None, timeout: float = 60.0) -> Omniboard:
    """Start Omniboard against the database of ``mongo_url`` and wait until it serves runs.

    ``http_port=0`` picks a free port. Omniboard 2.16.1 reads its port from the ``PORT``
    environment variable (it ignores ``-p``) and silently moves to the next port when
    that one is taken, so the port it reports in its log is the one returned. Ready
    means ``GET /sacred/api/v1/Version`` answers and Omniboard has connected to the
    database, within ``timeout`` seconds; otherwise it is stopped and
    :class:`DatabaseError` carries its log's tail. Output goes to ``log_path`` (a
    temporary file, removed by :meth:`Omniboard.stop`, when None).
    """
    from pymongo.uri_parser import parse_uri

    parsed = parse_uri(mongo_url)
    if not parsed["database"]:
        raise DatabaseError(f"{mongo_url} names no database; Omniboard needs "
                            "mongodb://HOST:PORT/DB (e.g. mongodb://127.0.0.1:27017/iwx).")
    mongo_host, mongo_port = parsed["nodelist"][0]
    exe = ensure_omniboard(cache_dir)
    temporary = log_path is None
    if temporary:
        fd, name = tempfile.mkstemp(prefix="iwx-omniboard-", suffix=".log")
        os.close(fd)
        log_path = name
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    offset = log_path.stat().st_size if log_path.exists() else 0
    port = http_port or free_port()
    env = {**os.environ, "PORT": str(port)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([str(exe), "-m", f"{mongo_host}:{mongo_port}:{parsed['database']}"],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
    board = Omniboard(process=proc, port=port, url=f"http://127.0.0.1:{port}", log_path=log_path,
                      _temporary_log=temporary)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_tail(log_path)
            board.stop()
            raise DatabaseError(f"Omniboard exited with code {proc.returncode} while starting "
                                f"against {mongo_url}. Its log:\n{tail}")
        with open(log_path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        listening = _OMNIBOARD_LISTENING.search(text)
        if listening and _OMNIBOARD_CONNECTED in text:
            board.port = int(listening.group(1))
            board.url = f"http://127.0.0.1:{board.port}"
            if _http_ok(f"{board.url}/sacred/api/v1/Version"):
                return board
        time.sleep(0.2)
    tail = log_tail(log_path)
    board.stop()
    raise DatabaseError(f"Omniboard did not serve {board.url}/sacred/api/v1/Version with a "
                        f"database connection to {mongo_url} within {timeout:.0f} s; it was "
                        f"stopped. Is the server running? Its log:\n{tail}")
