"""Runs recorded into a real MongoDB server (SecantusDB), and what happens when it dies.

The file store is every run's record; MongoDB mirrors it (iwx/experiment/mirror.py).
These tests start a real server as a separate process, make real runs with the
real command line, kill the server mid-run, and re-sync.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import ROOT, TINY, iwx_run, read_json, run_cli, run_dirs
from iwx.experiment.metrics import COLUMNS

pymongo = pytest.importorskip("pymongo")
gridfs = pytest.importorskip("gridfs")
db_module = pytest.importorskip("iwx.experiment.dbserver")

try:
    db_module.find_secantusd()
except db_module.DatabaseError as exc:   # the optional GPL server is not installed
    pytest.skip(f"SecantusDB is not installed ({exc})", allow_module_level=True)


# Waits below are hang guards (generous: a loaded CI machine is slow), never speed claims.
HANG_GUARD_S = 300


@pytest.fixture
def server(tmp_path):
    s = db_module.start_server(tmp_path / "db", port=0, timeout=HANG_GUARD_S)
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
    # info.metrics lists the runs-list column series only (metrics.COLUMNS), each
    # pointing at its document; the collection keeps every series.
    listed = {m["name"]: m["id"] for m in doc["info"]["metrics"]}
    assert set(listed) == {n for n in metrics if COLUMNS.match(n)}
    assert "train/return" in listed
    assert all(str(stored[n]["_id"]) == i for n, i in listed.items())
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
    """The server dies while a run records into it: the run still completes with exit 0
    and its whole record in the file store, says once that the database is gone and how
    to re-sync; after the re-sync MongoDB holds every metric and artifact of the file
    store; a second re-sync duplicates nothing. (That a dead database costs a run no
    time is a speed goal: python -m iwx.bench, not a timed test.)"""
    longer = ["MultiTaskTraining.updates = 480", "MultiTaskTraining.log_period = 16"]
    runs = tmp_path / "runs"
    args = ["--gin", str(ROOT / "gin/point_nav_iwpl.gin"), "--runs-dir", str(runs),
            "--seed", "1", "--no-progress", "--mongo", server.url]
    for p in [*TINY, *longer]:
        args += ["--gin_param", p]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IWX_HEARTBEAT_S": "0.5"}
    proc = subprocess.Popen([sys.executable, "-m", "iwx.run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client, db = mongo(server.url)
    # Kill the server once the run is being mirrored (its document and some metrics exist).
    deadline = time.monotonic() + HANG_GUARD_S
    while db.metrics.count_documents({}) == 0:
        assert proc.poll() is None, "the run ended before it was mirrored: make it longer"
        assert time.monotonic() < deadline, "the run never reached MongoDB"
        time.sleep(0.2)
    client.close()
    os.kill(server.pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == 0, err[-3000:]
    assert err.count("did not take run") == 1, err[-3000:]     # said once, not per heartbeat
    assert "python -m iwx.resync" in err, err[-3000:]
    run_dir = run_dirs(runs)[0]
    record = read_json(run_dir / "run.json")
    assert record["status"] == "COMPLETED"
    assert {"results.json", "model.pt"} <= set(record["artifacts"])
    assert all((run_dir / name).is_file() for name in record["artifacts"])

    # The server comes back (same storage, same port); the re-sync completes the record.
    revived = db_module.start_server(server.storage_dir, port=server.port,
                                      timeout=HANG_GUARD_S)
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


RESYNC_AT_THE_SIGNAL = """
import sys, time
from pathlib import Path
import iwx.experiment.mirror, pymongo, tqdm.auto   # imported before the start line
from iwx.resync import main
go = Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").touch()
while not go.exists():
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def test_concurrent_resyncs_leave_no_duplicate_and_no_orphan(tmp_path, server):
    """Two ``iwx.resync`` processes started at the same instant (both waiting for one
    file to appear) over the same runs: every run is one document, every artifact and
    source file is in GridFS once, and GridFS holds nothing no run names."""
    import collections
    import shutil
    import uuid

    runs = tmp_path / "runs"
    proc = iwx_run(runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = run_dirs(runs)[0]
    for i in range(2, 9):                # 8 runs sharing their source files
        copy = runs / str(i)
        shutil.copytree(first, copy)
        record = read_json(copy / "run.json")
        record["meta"]["iwx_uid"] = uuid.uuid4().hex
        (copy / "run.json").write_text(json.dumps(record))
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", RESYNC_AT_THE_SIGNAL, str(go), str(i),
                               "--runs-dir", str(runs), "--mongo", server.url, "--no-progress"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for i in range(2)]
    deadline = time.monotonic() + HANG_GUARD_S
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):   # both imported
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "the resyncs never got ready"
        time.sleep(0.05)
    go.touch()
    outs = [p.communicate(timeout=HANG_GUARD_S) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out[-2000:] + err[-2000:]
    created = sum(int(re.search(r"\((\d+) new,", out).group(1)) for out, _ in outs)
    assert created == 8, [out[-500:] for out, _ in outs]   # each run created by one of them

    client, db = mongo(server.url)
    docs = [assert_mirrors(db, run_dir) for run_dir in run_dirs(runs)]
    assert db.runs.count_documents({}) == 8
    named = {a["file_id"] for d in docs for a in d["artifacts"]} | \
        {file_id for d in docs for _, file_id in d["experiment"]["sources"]}
    files = list(db["fs.files"].find({}, {"filename": 1, "md5": 1}))
    assert {f["_id"] for f in files} == named, "orphaned GridFS files"
    copies = collections.Counter((f["filename"], f["md5"]) for f in files)
    assert max(copies.values()) == 1, [k for k, n in copies.items() if n > 1]
    sources = {frozenset(file_id for _, file_id in d["experiment"]["sources"]) for d in docs}
    assert len(sources) == 1 and next(iter(sources)), "runs name different copies of a source"
    assert set(db["fs.chunks"].distinct("files_id")) <= named, "orphaned GridFS chunks"
    metrics = collections.Counter((m["run_id"], m["name"]) for m in db.metrics.find())
    assert max(metrics.values()) == 1
    assert db["iwx_claims"].count_documents({}) == 0, "a claim was left behind"
    client.close()


def test_a_claim_has_one_holder_until_it_dies_or_its_lease_runs_out(server):
    """The claim under which a run is written (iwx/experiment/claims.py): a second
    process is refused while the holder lives; a holder that died on this host, or whose
    lease ran out, is taken over, and then finds out it lost the claim."""
    import datetime as dt

    from iwx.experiment.claims import ClaimBusy, ClaimLost, Claims

    client, db = mongo(server.url)
    a, b = Claims(db), Claims(db)
    a.take("run:x")
    assert b.try_take("run:x")["owner"] == a.owner
    with pytest.raises(ClaimBusy, match=f"process {os.getpid()}"):
        b.take("run:x", wait_s=0.5)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()                       # the holder died (kill -9 mid-sync): taken over at once
    db.iwx_claims.update_one({"_id": "run:x"}, {"$set": {"owner.pid": dead.pid}})
    assert b.try_take("run:x") is None
    with pytest.raises(ClaimLost):
        a.renew("run:x")
    a.release("run:x")                # not a's any more: b keeps it
    assert db.iwx_claims.find_one({"_id": "run:x"})["owner"]["token"] == b.owner["token"]
    # A holder on another machine: only the lease tells; once it ran out, taken over.
    db.iwx_claims.update_one({"_id": "run:x"}, {"$set": {"owner.host": "elsewhere"}})
    assert a.try_take("run:x")["owner"]["token"] == b.owner["token"]
    db.iwx_claims.update_one({"_id": "run:x"}, {"$set": {"until": dt.datetime(2000, 1, 1)}})
    assert a.try_take("run:x") is None
    a.release("run:x")
    assert db.iwx_claims.count_documents({}) == 0
    client.close()
