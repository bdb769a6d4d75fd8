"""A local MongoDB-compatible server for recording runs, and Omniboard to browse them.

The command line around :mod:`iwx.experiment.dbserver` (the server process) and
:mod:`iwx.experiment.omniboard`; it keeps the started server's state file.

::

    python -m iwx.db start  [--dir DIR] [--port 27017] [--db iwx] [--timeout 60]
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
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path

from iwx.experiment.dbserver import DatabaseError, is_server_process, start_server, stop_pid
from iwx.experiment.mongo import ping
from iwx.experiment.omniboard import node_available, start_omniboard

DEFAULT_DIR = ".iwx/db"
STATE_FILE = "server.json"


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
    if state and isinstance(state.get("pid"), int) and is_server_process(state["pid"]):
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
    server = start_server(directory, port=args.port, db=args.db, timeout=args.timeout)
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
    p.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                   help="how long to wait for the server to answer (default: 60; it usually "
                        "does in seconds, a loaded machine may need more)")
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
