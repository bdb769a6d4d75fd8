"""What Omniboard shows of real iwx runs, read through Omniboard's own API (the requests
its pages make), against the local server: runs that name themselves, filterable by
task, method and α; a metric plot of a few aggregate series, training against env
steps and adaptation against episodes; the runs list with a metric column; artifacts
with content types a browser can use."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pymongo
import pytest

from cli import iwx_run, read_json, run_dirs
from iwx.experiment import dbserver, omniboard
from iwx.experiment.metrics import PER_TASK

HANG_GUARD_S = 300           # a hang guard for a loaded machine, not a speed claim
MAX_SERIES = 25              # issue 15: "at most about 25 metric series"


def api(board, path: str, **params):
    query = urllib.parse.urlencode({k: v if isinstance(v, str) else json.dumps(v)
                                    for k, v in params.items()})
    with urllib.request.urlopen(f"{board.url}/sacred/api/v1/{path}?{query}",
                                timeout=HANG_GUARD_S) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    if not omniboard.node_available():
        pytest.skip("Omniboard needs node and npm on PATH; neither is installed here")
    tmp = tmp_path_factory.mktemp("omniboard")
    server = dbserver.start_server(tmp / "db", port=0, timeout=HANG_GUARD_S)
    try:
        runs = tmp / "runs"
        for alpha in ("0.03", "0.3"):
            proc = iwx_run(runs, params=[f"IWPA_ALPHA = {alpha}"], extra=["--mongo", server.url])
            assert proc.returncode == 0, proc.stderr[-3000:]
        web = omniboard.start_omniboard(server.url, http_port=0, timeout=HANG_GUARD_S)
        try:
            yield web, server, run_dirs(runs)
        finally:
            web.stop()
    finally:
        server.stop()


def test_runs_are_named_and_filterable_by_task_method_and_alpha(board):
    web, _, runs = board
    listed = api(web, "Runs", select="_id,experiment,command,config,result")
    assert sorted(r["_id"] for r in listed) == [1, 2]      # the file store's ids
    for r in listed:
        assert r["experiment"]["name"] == "point_nav_iwpl"
        assert r["command"] == "pretrain_and_adapt"
        assert {"task", "method", "alpha", "K", "uid", "seed"} <= set(r["config"])
        # the result: a few numbers with 3 significant digits, not a nested record
        assert all(isinstance(v, (int, float)) and len(repr(v)) <= 8
                   for v in r["result"].values()), r["result"]
    query = {"$and": [{"config.task": "point_nav"}, {"config.method": "iwpl"},
                      {"config.alpha": 0.3}]}   # what Omniboard's filter sends
    (found,) = api(web, "Runs", select="_id,config", query=query)
    assert found["config"]["alpha"] == 0.3
    assert found["config"]["uid"] == read_json(runs[1] / "run.json")["meta"]["iwx_uid"][:8]


def test_the_metric_plot_holds_a_few_series_on_their_own_axes(board):
    web, _, runs = board
    (run,) = api(web, "Runs", select="_id,info", query={"_id": 1})
    metrics = api(web, "Metrics", query={"run_id": 1})
    names = sorted(m["name"] for m in metrics)
    assert 0 < len(names) <= MAX_SERIES, names
    assert not [n for n in names if PER_TASK.search(n) or n == "train/env_steps"
                or n.startswith("perf/")]
    assert {"train/return", "train/success", "adapt/IW/return"} <= set(names)
    by_name = {m["name"]: m for m in metrics}
    # training against env steps (what train/env_steps said at each logging period)
    logged = read_json(runs[0] / "series.json")
    assert by_name["train/return"]["steps"] == logged["train/env_steps"]["values"]
    assert by_name["adapt/IW/return"]["steps"] == [1, 2, 3]   # adaptation episodes
    assert run["info"]["throughput"]["samples_per_insert"] > 0


def test_runs_list_with_a_metric_column(board):
    web, server, runs = board
    with pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000) as client:
        client.get_default_database()["omniboard.metric.columns"].insert_one(
            {"name": "train_return_max", "metric_name": "train/return", "extrema": "max"})
    listed = api(web, "Runs", select="_id,config,train_return_max", sort_by="_id",
                 order_by="-1", query="{}", limit="50")
    assert [r["_id"] for r in listed] == [2, 1]
    for r, run in zip(listed, reversed(runs)):
        best = max(read_json(run / "series.json")["train/return"]["values"])
        assert r["train_return_max"] == pytest.approx(best)


def test_artifacts_carry_content_types_a_browser_can_use(board):
    _, server, _ = board
    with pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000) as client:
        db = client.get_default_database()
        (doc,) = db.runs.find({"_id": 1}, {"artifacts": 1})
        types = {a["name"]: db["fs.files"].find_one({"_id": a["file_id"]})["contentType"]
                 for a in doc["artifacts"]}
    assert types["model.pt"] == "application/octet-stream"
    assert types["series.json"] == types["results.json"] == "application/json"
    assert types["config.gin"] == "text/plain" and types["adaptation.png"] == "image/png"
