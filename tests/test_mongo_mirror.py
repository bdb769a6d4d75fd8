"""Runs recorded into a real MongoDB server (SecantusDB), and what happens when it dies.

The file store is every run's record; MongoDB mirrors it (iwx/experiment/mirror.py).
These tests start a real server as a separate process, make real runs with the
real command line, kill the server mid-run, and re-sync.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import ROOT, TINY, iwx_run, read_json, run_cli, run_dirs

pymongo = pytest.importorskip("pymongo")
gridfs = pytest.importorskip("gridfs")
db_module = pytest.importorskip("iwx.experiment.dbserver")

try:
    db_module.find_secantusd()
except db_module.DatabaseError as exc:   # the optional GPL server is not installed
    pytest.skip(f"SecantusDB is not installed ({exc})", allow_module_level=True)


@pytest.fixture
def server(tmp_path):
    s = db_module.start_server(tmp_path / "db", port=0)
    yield s
    s.stop()


def mongo(url):
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000)
    return client, client[pymongo.uri_parser.parse_uri(url)["database"]]


def assert_mirrors(db, run_dir: Path) -> dict:
    """The MongoDB copy of a file-store run holds its status, config, every metric point
    and every artifact byte for byte. Returns the run document."""
    run = read_json(run_dir / "run.json")
    uid = run["meta"]["iwx_uid"]
    docs = list(db.runs.find({"meta.iwx_uid": uid}))
    assert len(docs) == 1, f"{len(docs)} MongoDB documents for run {run_dir.name}"
    doc = docs[0]
    assert doc["status"] == run["status"]
    assert doc["config"] == read_json(run_dir / "config.json")
    metrics = read_json(run_dir / "metrics.json")
    assert metrics, "the run logged no metrics"
    stored = {m["name"]: m for m in db.metrics.find({"run_id": doc["_id"]})}
    assert set(stored) == set(metrics)
    for name, m in metrics.items():
        assert stored[name]["steps"] == m["steps"], name
        assert stored[name]["values"] == m["values"], name
    assert {m["name"] for m in doc["info"]["metrics"]} == set(metrics)
    fs = gridfs.GridFS(db)
    assert sorted(a["name"] for a in doc["artifacts"]) == sorted(run["artifacts"])
    for a in doc["artifacts"]:
        data = fs.get(a["file_id"]).read()
        assert hashlib.md5(data).digest() == hashlib.md5((run_dir / a["name"]).read_bytes()).digest()
    return doc


def counts(db) -> tuple[int, int, int]:
    return (db.runs.count_documents({}), db.metrics.count_documents({}),
            db["fs.files"].count_documents({}))


def test_run_with_mongo_is_mirrored_and_tagged(tmp_path, server):
    runs = tmp_path / "runs"
    proc = iwx_run(runs, extra=["--mongo", server.url, "--tag", "first", "--tag", "tiny"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, db = mongo(server.url)
    doc = assert_mirrors(db, run_dirs(runs)[0])
    assert doc["status"] == "COMPLETED"
    assert doc["omniboard"]["tags"] == ["first", "tiny"]
    assert doc["meta"]["tags"] == ["first", "tiny"]
    assert "gin_text" in doc["info"] and doc["captured_out"]
    assert doc["experiment"]["sources"], "source files not stored"
    client.close()


def test_database_killed_mid_run_then_resynced(tmp_path, server):
    """The server dies while a run records into it: the run finishes on time with
    exit 0, says how to re-sync, and after the re-sync MongoDB holds every metric and
    artifact of the file store; a second re-sync duplicates nothing."""
    longer = ["MultiTaskTraining.updates = 480", "MultiTaskTraining.log_period = 16"]
    t0 = time.monotonic()
    reference = iwx_run(tmp_path / "reference", params=longer, seed=1)
    ref_wall = time.monotonic() - t0          # the same run, no database at all
    assert reference.returncode == 0, reference.stderr[-3000:]
    runs = tmp_path / "runs"
    args = ["--gin", str(ROOT / "gin/point_nav_iwpl.gin"), "--runs-dir", str(runs),
            "--seed", "1", "--no-progress", "--mongo", server.url]
    for p in [*TINY, *longer]:
        args += ["--gin_param", p]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IWX_HEARTBEAT_S": "0.5"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "iwx.run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client, db = mongo(server.url)
    # Kill the server once the run is being mirrored (its document and some metrics exist).
    deadline = time.monotonic() + 120
    while db.metrics.count_documents({}) == 0:
        assert proc.poll() is None, "the run ended before it was mirrored: make it longer"
        assert time.monotonic() < deadline, "the run never reached MongoDB"
        time.sleep(0.2)
    client.close()
    os.kill(server.pid, signal.SIGKILL)
    killed_at = time.monotonic() - started
    out, err = proc.communicate(timeout=300)
    wall = time.monotonic() - started
    assert proc.returncode == 0, err[-3000:]
    assert "python -m iwx.resync" in err, err[-3000:]
    # On time: no longer than the same run without a database, plus the bounded
    # (2 s) attempts of the end-of-run sync, plus start-up noise.
    assert wall < ref_wall + 20, (wall, ref_wall, killed_at)
    run_dir = run_dirs(runs)[0]
    assert read_json(run_dir / "run.json")["status"] == "COMPLETED"

    # The server comes back (same storage, same port); the re-sync completes the record.
    revived = db_module.start_server(server.storage_dir, port=server.port)
    try:
        client, db = mongo(revived.url)
        partial = db.runs.find_one({"meta.iwx_uid": read_json(run_dir / "run.json")["meta"]["iwx_uid"]})
        assert partial is not None and partial["status"] == "RUNNING"
        sync = run_cli("iwx.resync", ["--runs-dir", str(runs), "--mongo", revived.url,
                                      "--no-progress"])
        assert sync.returncode == 0, sync.stderr[-3000:]
        doc = assert_mirrors(db, run_dir)
        assert doc["status"] == "COMPLETED" and doc["_id"] == partial["_id"]
        first = counts(db)
        again = run_cli("iwx.resync", ["--runs-dir", str(runs), "--mongo", revived.url,
                                       "--no-progress"])
        assert again.returncode == 0, again.stderr[-3000:]
        assert "0 new" in again.stdout
        assert counts(db) == first
        assert_mirrors(db, run_dir)
        client.close()
    finally:
        revived.stop()


def test_unreachable_database_never_costs_the_run(tmp_path):
    """Nothing listens at the URL: the run completes (exit 0) in the file store and
    says how to re-sync; the re-sync command itself fails clearly, changing nothing."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"mongodb://127.0.0.1:{port}/iwx"
    runs = tmp_path / "runs"
    proc = iwx_run(runs, extra=["--mongo", url])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "does not answer" in proc.stderr
    assert "python -m iwx.resync" in proc.stderr
    run_dir = run_dirs(runs)[0]
    assert read_json(run_dir / "run.json")["status"] == "COMPLETED"
    assert (run_dir / "results.json").is_file()
    sync = run_cli("iwx.resync", ["--runs-dir", str(runs), "--mongo", url, "--no-progress"])
    assert sync.returncode == 1
    assert "does not answer" in sync.stderr


@pytest.mark.parametrize("url", ["http://localhost:27017", "mongodb://"])
def test_malformed_mongo_url_is_refused_before_any_compute(tmp_path, url):
    proc = iwx_run(tmp_path / "runs", extra=["--mongo", url])
    assert proc.returncode == 2
    assert "--mongo" in proc.stderr and "not a MongoDB URL" in proc.stderr
    assert not (tmp_path / "runs").exists() or not run_dirs(tmp_path / "runs")


def test_resync_copies_runs_made_without_mongo(tmp_path, server):
    runs = tmp_path / "runs"
    for seed in (0, 1):
        proc = iwx_run(runs, seed=seed, extra=["--tag", "offline"])
        assert proc.returncode == 0, proc.stderr[-3000:]
    sync = run_cli("iwx.resync", ["--runs-dir", str(runs), "--mongo", server.url, "--no-progress"])
    assert sync.returncode == 0, sync.stderr[-3000:]
    assert "2 new" in sync.stdout
    client, db = mongo(server.url)
    for run_dir in run_dirs(runs):
        assert assert_mirrors(db, run_dir)["omniboard"]["tags"] == ["offline"]
    missing = run_cli("iwx.resync", ["--runs-dir", str(runs), "--mongo", server.url, "7"])
    assert missing.returncode == 2 and "no run(s) ['7']" in missing.stderr
    client.close()
