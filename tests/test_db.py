"""The local run database (SecantusDB, run as a separate process) and Omniboard, for real."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pymongo
import pytest

from iwx import db
from iwx.experiment import dbserver, omniboard
from iwx.experiment.mongo import ping
from tests.cli import run_cli

# Waits below are hang guards (generous: a loaded CI machine is slow), never speed claims.
HANG_GUARD_S = 300
WAIT = ["--timeout", str(HANG_GUARD_S)]

@pytest.fixture
def server(tmp_path):
    srv = dbserver.start_server(tmp_path / "db", port=0, timeout=HANG_GUARD_S)
    try:
        yield srv
    finally:
        srv.stop()


def test_data_survives_a_restart_on_the_same_dir_and_port(tmp_path):
    storage = tmp_path / "db"
    srv = dbserver.start_server(storage, port=0, timeout=HANG_GUARD_S)
    try:
        assert srv.port > 0 and srv.url == f"mongodb://127.0.0.1:{srv.port}/iwx"
        assert ping(srv.url)
        assert not (storage / db.STATE_FILE).exists()  # only the CLI writes the state file
        with pymongo.MongoClient(srv.url, serverSelectionTimeoutMS=5000) as client:
            client.get_default_database()["runs"].insert_one({"_id": 7, "note": "kept"})
    finally:
        srv.stop()
    assert not dbserver.pid_alive(srv.pid)
    assert not ping(srv.url, timeout_ms=300)

    again = dbserver.start_server(storage, port=srv.port, timeout=HANG_GUARD_S)
    try:
        assert again.pid != srv.pid and again.port == srv.port
        with pymongo.MongoClient(again.url, serverSelectionTimeoutMS=5000) as client:
            assert client.get_default_database()["runs"].find_one({"_id": 7}) == {"_id": 7, "note": "kept"}
    finally:
        again.stop()
    assert "listening on 127.0.0.1:" in again.log_path.read_text()


def test_cli_start_status_stop(tmp_path):
    d = tmp_path / "db"
    try:
        started = run_cli("iwx.db", ["start", "--dir", str(d), "--port", "0", *WAIT],
                          timeout=HANG_GUARD_S)
        assert started.returncode == 0, started.stderr
        state = json.loads((d / db.STATE_FILE).read_text())
        assert set(state) >= {"pid", "port", "host", "url", "db", "started"}
        assert state["url"] == f"mongodb://127.0.0.1:{state['port']}/iwx"
        assert f"export IWX_MONGO_URL={state['url']}" in started.stdout
        assert dbserver.pid_alive(state["pid"])  # detached: it outlived the command
        assert ping(state["url"])

        again = run_cli("iwx.db", ["start", "--dir", str(d), "--port", "0", *WAIT],
                        timeout=HANG_GUARD_S)
        assert again.returncode == 0, again.stderr
        assert state["url"] in again.stdout
        assert json.loads((d / db.STATE_FILE).read_text())["pid"] == state["pid"]  # idempotent

        status = run_cli("iwx.db", ["status", "--dir", str(d)], timeout=HANG_GUARD_S)
        assert status.returncode == 0, status.stderr
        assert state["url"] in status.stdout

        stopped = run_cli("iwx.db", ["stop", "--dir", str(d)], timeout=HANG_GUARD_S)
        assert stopped.returncode == 0, stopped.stderr
        assert not dbserver.pid_alive(state["pid"])
        assert not (d / db.STATE_FILE).exists()

        status = run_cli("iwx.db", ["status", "--dir", str(d)], timeout=HANG_GUARD_S)
        assert status.returncode == 1
        assert "not running" in status.stdout
    finally:
        left = db.read_state(d)
        if left and dbserver.pid_alive(left["pid"]):
            dbserver.stop_pid(left["pid"])


def test_cli_replaces_a_stale_state_file(tmp_path):
    d = tmp_path / "db"
    d.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (d / db.STATE_FILE).write_text(json.dumps(
        {"pid": dead.pid, "port": 1, "host": "127.0.0.1", "url": "mongodb://127.0.0.1:1/iwx",
         "db": "iwx", "started": "then"}))
    try:
        status = run_cli("iwx.db", ["status", "--dir", str(d)], timeout=HANG_GUARD_S)
        assert status.returncode == 1 and "stale" in status.stdout
        started = run_cli("iwx.db", ["start", "--dir", str(d), "--port", "0", "--db", "other",
                                     *WAIT], timeout=HANG_GUARD_S)
        assert started.returncode == 0, started.stderr
        state = json.loads((d / db.STATE_FILE).read_text())
        assert state["pid"] != dead.pid and state["url"].endswith("/other")
        assert ping(state["url"])
    finally:
        left = db.read_state(d)
        if left and left["pid"] != dead.pid:
            dbserver.stop_pid(left["pid"])


def test_missing_secantusd_fails_clearly(tmp_path, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setattr(sys, "executable", str(empty / "python"))
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(dbserver.DatabaseError, match=r"pip install SecantusDB"):
        dbserver.find_secantusd()

    assert db.main(["start", "--dir", str(tmp_path / "db"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "secantusd-py" in err and "pip install SecantusDB" in err and "[dev]" in err
    assert not (tmp_path / "db" / db.STATE_FILE).exists()


def test_the_module_never_imports_secantus():
    for module in (db, dbserver, omniboard):
        source = Path(module.__file__).read_text()
        assert "import secantus" not in source and "from secantus" not in source


def test_omniboard_lists_a_sacred_run(server):
    if not omniboard.node_available():
        pytest.skip("Omniboard needs node and npm on PATH; neither is installed here")
    now = dt.datetime(2026, 1, 2, 3, 4, 5)
    run = {"_id": 1, "experiment": {"name": "t"}, "status": "COMPLETED", "config": {}, "info": {},
           "meta": {}, "host": {}, "start_time": now, "heartbeat": now, "artifacts": [],
           "omniboard": {"tags": ["x"]}}
    with pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000) as client:
        client.get_default_database()["runs"].insert_one(run)

    # default cache: installs once (~1 min)
    board = omniboard.start_omniboard(server.url, http_port=0, timeout=HANG_GUARD_S)
    try:
        assert board.process.poll() is None
        with urllib.request.urlopen(f"{board.url}/sacred/api/v1/Runs",
                                    timeout=HANG_GUARD_S) as response:
            runs = json.load(response)
        assert [r["_id"] for r in runs] == [1]
        assert runs[0]["omniboard"]["tags"] == ["x"]
        assert runs[0]["experiment"]["name"] == "t" and runs[0]["status"] == "COMPLETED"
    finally:
        board.stop()
    assert board.process.poll() is not None
