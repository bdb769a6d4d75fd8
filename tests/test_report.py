"""`python -m iwx.report` on real recorded runs (tiny budgets), checked by hand.

Four real ``iwx.run`` runs: IWPL on seeds 0 and 1 with a pinned task split (both
adapt on the same held-out tasks: a unit is a task, averaged over the two runs)
and RS(0)+DISTRAL on seeds 0 and 1 with each seed's own split (a unit is a (run,
task)). Rewards are dense so that the curves move and smoothing shows. The
expected series are recomputed here from each run's logged series (``series.json``, or
``metrics.json`` of a run made before it) with numpy
and scipy written out, never with the report's own functions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cli import iwx_run, read_json, run_cli, run_dirs

DENSE = ["PointNavVec.sparse = False", "Adaptation.episodes = 4"]
PINNED = ["PointNavTasks.seed = 11"]   # the same held-out tasks for every run seed
PAPER_POINT_NAV_WINDOW = 5             # appendix A.2, figure 2 (sparse 2D navigation)


def identity(task: str, method: str) -> list[str]:
    """The identity bindings the task and method files carry (gin/tasks, gin/methods);
    given explicitly so that this test does not depend on them."""
    return [f"run_identity.task = '{task}'", f"run_identity.method = '{method}'"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """{(method, seed): run dir} of four real runs tagged t1 (IWPL seed 1 also t2)."""
    runs = tmp_path_factory.mktemp("runs")
    made = {}
    for method, gin_file, params in (("iwpl", "gin/point_nav_iwpl.gin", DENSE + PINNED),
                                     ("distral", "gin/point_nav_distral.gin", DENSE)):
        params = [*params, *identity("point_nav", method)]
        for seed in (0, 1):
            extra = ["--tag", "t1"] + (["--tag", "t2"] if (method, seed) == ("iwpl", 1) else [])
            proc = iwx_run(runs, gin_file, params=params, seed=seed, extra=extra)
            assert proc.returncode == 0, proc.stderr[-3000:]
            made[(method, seed)] = run_dirs(runs)[-1]
    return runs, made


def report(runs: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli("iwx.report", [str(runs), "--out", str(out), *args])


# --------------------------------------------------------------------------- by hand

def t_interval(units: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = units.shape[0]
    mean = units.mean(axis=0)
    if n < 2:
        return mean, np.zeros_like(mean)
    half = units.std(axis=0, ddof=1) / np.sqrt(n) * stats.t.ppf(0.975, n - 1)
    return mean, half


def trailing_mean(units: np.ndarray, window: int) -> np.ndarray:
    out = np.empty_like(units)
    for e in range(units.shape[1]):
        out[:, e] = units[:, max(0, e - window + 1):e + 1].mean(axis=1)
    return out


def logged(run_dir: Path) -> dict:
    """Every series the run logged: its series.json artifact, else Sacred's metrics.json."""
    series = run_dir / "series.json"
    return read_json(series if series.is_file() else run_dir / "metrics.json")


def per_task_curves(run_dir: Path, variant: str) -> np.ndarray:
    """[tasks, episodes] of one run from its adapt/<variant>/return/task_NN metrics."""
    metrics = logged(run_dir)
    names = sorted(n for n in metrics if re.fullmatch(re.escape(f"adapt/{variant}/return/task_")
                                                       + r"\d+", n))
    assert names, (run_dir, variant)
    for n in names:
        assert metrics[n]["steps"] == [1, 2, 3, 4]
    return np.array([metrics[n]["values"] for n in names])


def expected_adaptation(run_list: list[Path], variant: str, window: int) -> dict:
    curves = [per_task_curves(r, variant) for r in run_list]
    goals = [np.array(read_json(r / "results.json")["test_goals"]) for r in run_list]
    shared = all(np.array_equal(g, goals[0]) for g in goals)
    units = np.mean(curves, axis=0) if shared else np.concatenate(curves)
    mean, half = t_interval(trailing_mean(units, window))
    return {"x": [1, 2, 3, 4], "mean": mean, "ci95": half, "units": len(units),
            "unit": "task" if shared else "(run, task)", "runs": len(run_list)}


def expected_training(run_list: list[Path]) -> dict:
    """Chunks = the logging period (80 env steps), window min(200, 6 // 10) -> 1."""
    xs, ys = [], []
    for r in run_list:
        metrics = logged(r)
        assert metrics["train/env_steps"]["steps"] == metrics["train/return"]["steps"]
        xs.append(metrics["train/env_steps"]["values"])
        ys.append(metrics["train/return"]["values"])
    assert all(x == xs[0] for x in xs)
    mean, half = t_interval(np.array(ys))
    return {"x": xs[0], "mean": mean, "ci95": half, "runs": len(run_list)}


def assert_line(line: dict, expected: dict) -> None:
    assert line["x"] == pytest.approx(expected["x"])
    np.testing.assert_allclose(line["mean"], expected["mean"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(line["ci95"], expected["ci95"], rtol=1e-9, atol=1e-9)
    for key in ("units", "unit", "runs"):
        if key in expected:
            assert line[key] == expected[key], (line["label"], key)


IWPL_VARIANTS = ("Shared Q + IW", "IW")
DISTRAL_VARIANTS = ("Shared Q + IW", "IW", "Shared Q", "DISTRAL")


# --------------------------------------------------------------------------- tests

@pytest.fixture(scope="module")
def default_report(recorded, tmp_path_factory):
    runs, _ = recorded
    out = tmp_path_factory.mktemp("report") / "t1"
    proc = report(runs, out, "--tag", "t1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc, read_json(out / "report.json")


def test_report_writes_figures_table_and_the_hand_computed_series(recorded, default_report):
    _, made = recorded
    out, proc, data = default_report
    for name in ("adaptation.png", "adaptation.svg", "training.png", "training.svg"):
        assert (out / name).stat().st_size > 1000, name
    assert (out / "adaptation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (out / "adaptation.svg").read_text()[:2000]
    assert str(out) in proc.stdout and "| line | units |" in proc.stdout
    assert data["runs"] == sorted(int(p.name) for p in made.values())

    lines = {line["label"]: line for line in data["adaptation"]}
    expected_labels = {f"iwpl · {v}" for v in IWPL_VARIANTS} | \
        {f"distral · {v}" for v in DISTRAL_VARIANTS}
    assert set(lines) == expected_labels
    for method, variants in (("iwpl", IWPL_VARIANTS), ("distral", DISTRAL_VARIANTS)):
        run_list = [made[(method, 0)], made[(method, 1)]]
        for variant in variants:
            line = lines[f"{method} · {variant}"]
            assert (line["group"], line["variant"]) == (method, variant)
            assert line["window"] == PAPER_POINT_NAV_WINDOW
            assert_line(line, expected_adaptation(run_list, variant, PAPER_POINT_NAV_WINDOW))
    # the pinned split makes IWPL's units its 3 tasks; DISTRAL's seeds drew their own
    assert lines["iwpl · IW"]["unit"] == "task" and lines["iwpl · IW"]["units"] == 3
    assert lines["distral · IW"]["unit"] == "(run, task)" and lines["distral · IW"]["units"] == 6

    train = {line["label"]: line for line in data["training"]}
    assert set(train) == {"iwpl", "distral"}
    for method in ("iwpl", "distral"):
        assert train[method]["window"] == 1 and train[method]["bin"] == 80
        assert_line(train[method], expected_training([made[(method, 0)], made[(method, 1)]]))

    md = (out / "report.md").read_text()
    for label in expected_labels:
        assert f"| {label} |" in md
    assert "trailing mean over 5 episodes" in md and "(run, task)" in md
    # the headline (appendix A.2): last 3 episodes of the unsmoothed per-unit returns
    units = np.mean([per_task_curves(made[("iwpl", s)], "IW") for s in (0, 1)], axis=0)
    m, h = t_interval(units[:, -3:].mean(axis=1)[:, None])
    assert f"{m[0]:.2f} ± {h[0]:.2f}" in md.split("| iwpl · IW |")[1].split("\n")[0]


def test_window_1_is_the_raw_curve_and_the_default_its_running_mean(recorded, default_report,
                                                                   tmp_path):
    runs, made = recorded
    smoothed = {line["label"]: line for line in default_report[2]["adaptation"]}
    proc = report(runs, tmp_path / "w1", "--tag", "t1", "--window", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = {line["label"]: line for line in read_json(tmp_path / "w1" / "report.json")
           ["adaptation"]}
    assert set(raw) == set(smoothed)
    differs = 0
    for label, line in raw.items():
        method, variant = label.split(" · ")
        run_list = [made[(method, 0)], made[(method, 1)]]
        assert line["window"] == 1
        assert_line(line, expected_adaptation(run_list, variant, 1))
        # episode 1 is the same; with 4 episodes < window 5, the default is the mean so far
        assert line["mean"][0] == pytest.approx(smoothed[label]["mean"][0])
        np.testing.assert_allclose(smoothed[label]["mean"],
                                   np.cumsum(line["mean"]) / np.arange(1, 5), atol=1e-9)
        differs += not np.allclose(line["mean"], smoothed[label]["mean"])
    assert differs >= len(raw) // 2   # dense rewards: the curves move from episode to episode
    assert "no smoothing (window 1)" in (tmp_path / "w1" / "report.md").read_text()


def test_selection_by_run_ids_and_by_tag(recorded, tmp_path):
    runs, made = recorded
    picked = [made[("iwpl", 0)], made[("distral", 1)]]
    proc = report(runs, tmp_path / "ids", "--runs", *(p.name for p in picked))
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = read_json(tmp_path / "ids" / "report.json")
    assert data["runs"] == sorted(int(p.name) for p in picked)
    for line in data["adaptation"]:
        method, variant = line["label"].split(" · ")
        run = made[("iwpl", 0)] if method == "iwpl" else made[("distral", 1)]
        assert line["runs"] == 1 and line["run_ids"] == [int(run.name)]
        assert_line(line, {**expected_adaptation([run], variant, 5), "unit": "task"})

    proc = report(runs, tmp_path / "t2", "--tag", "t2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = read_json(tmp_path / "t2" / "report.json")
    assert data["runs"] == [int(made[("iwpl", 1)].name)]
    # one group: the line label is the variant alone
    assert [line["label"] for line in data["adaptation"]] == list(IWPL_VARIANTS)


def test_group_by_a_binding(recorded, tmp_path):
    runs, made = recorded
    proc = report(runs, tmp_path / "b", "--tag", "t1", "--group-by", "PointNavTasks.seed",
                  "--variant", "IW")
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {line["label"]: line for line in read_json(tmp_path / "b" / "report.json")
             ["adaptation"]}
    assert set(lines) == {"PointNavTasks.seed=11 · IW", "PointNavTasks.seed unbound · IW"}
    assert lines["PointNavTasks.seed=11 · IW"]["run_ids"] == \
        sorted(int(made[("iwpl", s)].name) for s in (0, 1))


def test_bad_selection_source_and_group_by_exit_2(recorded, tmp_path):
    runs, _ = recorded
    proc = report(runs, tmp_path / "x", "--tag", "no-such-tag")
    assert proc.returncode == 2
    assert "no runs selected" in proc.stderr and "no-such-tag" in proc.stderr
    proc = report(runs, tmp_path / "x", "--runs", "999")
    assert proc.returncode == 2 and "999" in proc.stderr
    proc = report(tmp_path / "missing", tmp_path / "x")
    assert proc.returncode == 2 and "unknown source" in proc.stderr
    proc = report(runs, tmp_path / "x", "--tag", "t1", "--group-by", "IWPA.alpah")
    assert proc.returncode == 2
    assert "IWPA.alpah" in proc.stderr and "IWPA.alpha" in proc.stderr   # a suggestion
    assert not (tmp_path / "x").exists()


def test_load_runs_api(recorded):
    from iwx.experiment.store import load_runs

    runs_dir, made = recorded
    runs = load_runs(runs_dir, tags=["t1"])
    assert [r.id for r in runs] == sorted(int(p.name) for p in made.values())
    first = runs[0]
    steps, values = first.metrics["adapt/IW/return/task_00"]
    assert steps.tolist() == [1, 2, 3, 4] and values.dtype == np.float64
    assert json.loads(first.artifact("results.json"))["adapt_on"] == "test"
    assert first.artifact("no-such-file") is None and first.artifact("../run.json") is None
    assert first.meta["tags"] == ["t1"] and first.config["seed"] == 0
    assert [r.id for r in load_runs(runs_dir, tags=["t2"])] == [int(made[("iwpl", 1)].name)]
    assert load_runs(runs_dir, sweep="nope") == []
    assert load_runs(runs_dir, statuses=("FAILED",)) == []
    assert len(load_runs(runs_dir, statuses=None)) == 4


# --------------------------------------------------------------------------- MongoDB

@pytest.fixture
def mongo_url(tmp_path):
    from iwx.experiment import dbserver

    try:
        dbserver.find_secantusd()
    except dbserver.DatabaseError:
        pytest.skip("secantusd-py (SecantusDB) is not installed: no MongoDB to test against")
    # timeout: a hang guard (a loaded CI machine starts it slowly), not a speed claim
    server = dbserver.start_server(tmp_path / "db", port=0, db="iwx_report_test", timeout=300)
    try:
        yield server.url
    finally:
        server.stop()


def insert_sacred_documents(url: str, run_list: list[Path]) -> None:
    """Sacred's MongoDB layout for the given file-store runs: ``runs`` documents,
    ``metrics`` documents and results.json in GridFS. The last run's tags are kept only
    where Omniboard keeps them (``omniboard.tags``)."""
    import gridfs
    import pymongo

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    db = client.get_default_database()
    fs = gridfs.GridFS(db)
    for i, run in enumerate(run_list):
        record = read_json(run / "run.json")
        meta = dict(record["meta"])
        doc = {"_id": int(run.name), "status": record["status"],
               "config": read_json(run / "config.json"), "info": read_json(run / "info.json"),
               "start_time": record["start_time"], "artifacts": [], "meta": meta}
        if i == len(run_list) - 1:
            doc["omniboard"] = {"tags": meta.pop("tags")}
        for artifact in ("results.json", "series.json"):
            if (run / artifact).is_file():
                file_id = fs.put((run / artifact).read_bytes(), filename=artifact)
                doc["artifacts"].append({"name": artifact, "file_id": file_id})
        db.runs.insert_one(doc)
        for name, m in read_json(run / "metrics.json").items():
            db.metrics.insert_one({"run_id": int(run.name), "name": name, **m})
    client.close()


def test_mongodb_source_gives_the_file_store_series(recorded, default_report, mongo_url,
                                                    tmp_path):
    from iwx.experiment.store import load_runs

    runs_dir, made = recorded
    insert_sacred_documents(mongo_url, sorted(made.values(), key=lambda p: int(p.name)))
    from_mongo = load_runs(mongo_url, tags=["t1"])
    from_files = load_runs(runs_dir, tags=["t1"])
    assert [r.id for r in from_mongo] == [r.id for r in from_files]
    for a, b in zip(from_mongo, from_files):
        assert a.config == b.config and a.meta.get("iwx_uid") == b.meta["iwx_uid"]
        assert set(a.metrics) == set(b.metrics)
        for name in a.metrics:
            np.testing.assert_array_equal(a.metrics[name][1], b.metrics[name][1])
        assert a.artifact("results.json") == b.artifact("results.json")
    assert [r.id for r in load_runs(mongo_url, run_ids=[from_files[0].id])] == \
        [from_files[0].id]

    proc = run_cli("iwx.report", [mongo_url, "--tag", "t1", "--out", str(tmp_path / "m")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    mongo = read_json(tmp_path / "m" / "report.json")
    files = default_report[2]
    for kind in ("adaptation", "training"):
        assert len(mongo[kind]) == len(files[kind])
        for a, b in zip(mongo[kind], files[kind]):
            assert {k: v for k, v in a.items() if k not in ("mean", "ci95")} == \
                {k: v for k, v in b.items() if k not in ("mean", "ci95")}
            np.testing.assert_allclose(a["mean"], b["mean"], atol=1e-12)
            np.testing.assert_allclose(a["ci95"], b["ci95"], atol=1e-12)


def test_unreachable_mongodb_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_cli("iwx.report", [f"mongodb://127.0.0.1:{port}/iwx", "--out",
                                  str(tmp_path / "x")], env={"MUJOCO_GL": "disable"})
    assert proc.returncode == 2 and "did not answer" in proc.stderr



def test_sweep_runs_grouped_by_config(recorded, tmp_path):
    """Runs made by a sweep carry meta.sweep {id, params, trial}; --group-by config labels
    lines with the trial's parameters, and the default output folder is reports/<sweep id>."""
    from iwx.experiment.store import load_runs

    _, made = recorded
    store = tmp_path / "store"
    for trial, (seed, alpha) in enumerate(((0, 0.1), (1, 0.3))):
        src = made[("iwpl", seed)]
        shutil.copytree(src, store / src.name)
        record = read_json(src / "run.json")
        record["meta"]["sweep"] = {"id": "sw1", "params": {"IWPA.alpha": alpha},
                                   "trial": f"trial_{trial}"}
        (store / src.name / "run.json").write_text(json.dumps(record))
    (store / "_sweeps").mkdir()   # not a run
    assert [r.sweep["trial"] for r in load_runs(store, sweep="sw1")] == ["trial_0", "trial_1"]
    assert load_runs(store, sweep="other") == []

    proc = run_cli("iwx.report", [str(store), "--sweep", "sw1", "--group-by", "config",
                                  "--variant", "IW"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = read_json(tmp_path / "reports" / "sw1" / "report.json")
    assert [line["label"] for line in data["adaptation"]] == \
        ["IWPA.alpha=0.1 · IW", "IWPA.alpha=0.3 · IW"]
    assert [line["label"] for line in data["training"]] == ["IWPA.alpha=0.1", "IWPA.alpha=0.3"]
    line = data["adaptation"][1]
    assert_line(line, {**expected_adaptation([made[("iwpl", 1)]], "IW", 5), "runs": 1})


def test_a_half_written_record_never_breaks_reading_or_reporting(recorded, tmp_path):
    """A live run's run.json and metrics.json are rewritten in place (Sacred's file
    store): a reader can meet them half written. Such a run is read again, then left out
    (it is not a finished record yet), never an error: the report on the finished runs
    beside it is made."""
    from iwx.experiment.store import completed_runs, load_runs

    _, made = recorded
    store = tmp_path / "store"
    for seed in (0, 1):
        src = made[("iwpl", seed)]
        shutil.copytree(src, store / str(seed + 1))
    torn = store / "2"
    text = (torn / "run.json").read_text()
    (torn / "run.json").write_text(text[:len(text) // 2])     # caught mid-write
    (torn / "metrics.json").write_text('{"train/return": {"steps": [0, 8')
    assert [r.id for r in load_runs(store, statuses=None)] == [1]
    assert list(completed_runs(store).values()) == [store / "1"]
    proc = report(store, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_json(tmp_path / "out" / "report.json")["adaptation"]
