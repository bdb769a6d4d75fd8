"""A local MongoDB-compatible server for recording runs, and Omniboard to browse them.

::

    python -m iwx.db start  [--dir DIR] [--port 27017] [--db iwx]
    python -m iwx.db stop   [--dir DIR]
    python -m iwx.db status [--dir DIR]
    python -m iwx.db omniboard [--dir DIR | --mongo URL] [--port 9000]

``start`` launches SecantusDB (``secantusd-py``, a MongoDB wire-protocol server from
PyPI) detached in the background, storing data in ``DIR/data``, its log in
``DIR/server.log`` and ``{pid, port, host, url, db, started}`` in ``DIR/server.json``;
it prints the URL for ``iwx.run --mongo`` and ``iwx.sweep --mongo``
(``export IWX_MONGO_URL=...``).
DIR defaults to ``$IWX_DB_DIR`` or ``.iwx/db``. ``omniboard`` installs Omniboard
2.16.1 with npm once (into ``$IWX_OMNIBOARD_DIR`` or ``~/.cache/iwx/omniboard-2.16.1``)
and runs it in the foreground against the server.

SecantusDB is GPL-2.0, so iwx only ever runs it as a separate process through its
command line and talks to it over the MongoDB wire protocol — never import it.

The server is an optional dev dependency (``pip install SecantusDB``, or ``./setup.sh``,
which installs the ``[dev]`` extra); the file store stays the source of truth of a run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from iwx.experiment.mongo import ping  # re-exported: iwx.db.ping

OMNIBOARD_VERSION = "2.16.1"
DEFAULT_DIR = ".iwx/db"
STATE_FILE = "server.json"
LOG_FILE = "server.log"

_LISTENING = re.compile(r"listening on \S+:(\d+)")
_OMNIBOARD_LISTENING = re.compile(r"Omniboard is listening on port (\d+)")
_OMNIBOARD_CONNECTED = "established successfully"


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


def _is_server_process(pid: int) -> bool:
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


def _tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file, for error messages."""
    if path is None:
        return "(no log)"
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log at {path})"


def _free_port(host: str = "127.0.0.1") -> int:
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
                                f"({' '.join(cmd)}). Log {log_path}:\n{_tail(log_path)}")
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
                        f"({' '.join(cmd)}); it was stopped. Log {log_path}:\n{_tail(log_path)}")


# --------------------------------------------------------------------------- Omniboard

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
    port = http_port or _free_port()
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
            tail = _tail(log_path)
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
    tail = _tail(log_path)
    board.stop()
    raise DatabaseError(f"Omniboard did not serve {board.url}/sacred/api/v1/Version with a "
                        f"database connection to {mongo_url} within {timeout:.0f} s; it was "
                        f"stopped. Is the server running? Its log:\n{tail}")


# --------------------------------------------------------------------------- command line

def default_dir() -> Path:
    """``$IWX_DB_DIR`` or ``.iwx/db`` (relative to the working directory)."""
    return Path(os.environ.get("IWX_DB_DIR") or DEFAULT_DIR)


def read_state(directory: Path) -> dict | None:
    """The state file of ``directory`` (None when absent or unreadable)."""
    try:
        return json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def running_state(directory: Path) -> dict | None:
    """The recorded server of ``directory`` when its process is alive, else None."""
    state = read_state(directory)
    if state and isinstance(state.get("pid"), int) and _is_server_process(state["pid"]):
        return state
    return None


def _cmd_start(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    state = running_state(directory)
    if state:
        if not ping(state["url"], timeout_ms=2000):
            print(f"A server is recorded in {directory / STATE_FILE} (pid {state['pid']}) but does "
                  f"not answer at {state['url']}; stop it with `python -m iwx.db stop --dir "
                  f"{directory}` and start again.", file=sys.stderr)
            return 1
        print(f"already running (pid {state['pid']}): {state['url']}")
        print(f"export IWX_MONGO_URL={state['url']}")
        return 0
    (directory / STATE_FILE).unlink(missing_ok=True)  # stale: its pid is gone
    server = start_server(directory, port=args.port, db=args.db)
    state = {"pid": server.pid, "port": server.port, "host": server.host, "url": server.url,
             "db": server.db, "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    tmp = directory / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    tmp.replace(directory / STATE_FILE)
    print(f"SecantusDB running (pid {server.pid}, data {server.storage_dir / 'data'}, "
          f"log {server.log_path}): {server.url}")
    print(f"export IWX_MONGO_URL={server.url}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    state = running_state(directory)
    if state is None:
        print(f"no server running in {directory}")
    else:
        stop_pid(state["pid"], timeout=10.0)
        print(f"stopped SecantusDB (pid {state['pid']}, {state['url']})")
    (directory / STATE_FILE).unlink(missing_ok=True)
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    state = running_state(directory)
    if state is None:
        stale = " (stale state file)" if read_state(directory) else ""
        print(f"not running{stale}: {directory}")
        return 1
    answers = "answers ping" if ping(state["url"]) else "does NOT answer ping"
    print(f"running (pid {state['pid']}, since {state.get('started', '?')}, {answers}): {state['url']}")
    return 0


def _cmd_omniboard(args: argparse.Namespace) -> int:
    if args.mongo:
        url, log_path = args.mongo, None
    else:
        directory = Path(args.dir)
        state = running_state(directory)
        if state is None:
            print(f"no server running in {directory}: start one with `python -m iwx.db start "
                  f"--dir {directory}`, or pass --mongo URL", file=sys.stderr)
            return 1
        url, log_path = state["url"], directory / "omniboard.log"
    if not node_available():
        raise DatabaseError("Omniboard needs Node.js and npm on PATH (node >= 18); install them "
                            "(e.g. from https://nodejs.org or your package manager) and retry.")
    def interrupted(signum, frame):
        raise KeyboardInterrupt  # Omniboard runs in its own session: stop it on our way out

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    board = start_omniboard(url, http_port=args.port, log_path=log_path)
    try:
        print(f"Omniboard for {url}: {board.url}/sacred  (Ctrl-C to stop"
              + (f"; log {log_path})" if log_path else ")"), flush=True)
        return board.process.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        board.stop()


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m iwx.db", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dir_help = "state, data and log directory (default: $IWX_DB_DIR or .iwx/db)"
    p = sub.add_parser("start", help="start the server in the background")
    p.add_argument("--dir", default=None, help=dir_help)
    p.add_argument("--port", type=int, default=27017, help="port (0: any free port)")
    p.add_argument("--db", default="iwx", help="database name in the URL")
    p = sub.add_parser("stop", help="stop the server")
    p.add_argument("--dir", default=None, help=dir_help)
    p = sub.add_parser("status", help="exit 0 when the server runs, 1 when not")
    p.add_argument("--dir", default=None, help=dir_help)
    p = sub.add_parser("omniboard", help="run Omniboard in the foreground against the server")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--dir", default=None, help=dir_help)
    where.add_argument("--mongo", default=None, help="MongoDB URL (mongodb://HOST:PORT/DB)")
    p.add_argument("--port", type=int, default=9000, help="HTTP port (0: any free port)")
    args = parser.parse_args(argv)
    if args.dir is None:
        args.dir = str(default_dir())
    commands = {"start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status,
                "omniboard": _cmd_omniboard}
    try:
        return commands[args.command](args)
    except DatabaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
