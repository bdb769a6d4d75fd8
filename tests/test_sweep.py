"""``python -m iwx.sweep``: Ray Tune over gin bindings, every trial a recorded run.

End to end on tiny budgets: a 2 × 2 grid × 2 seeds recorded into a real MongoDB
server (SecantusDB) and listed by Omniboard's API; a sweep interrupted and
resumed; bad sweep files refused before anything starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from cli import ROOT, TINY, read_json, run_cli, run_dirs

db_module = pytest.importorskip("iwx.experiment.dbserver")
omniboard = pytest.importorskip("iwx.experiment.omniboard")


def sweep_file(path: Path, grid: dict, *, seeds=(0, 1), extra: str = "",
               bindings=TINY) -> Path:
    lines = ["gin: gin/point_nav_iwpl.gin", "bindings:"]
    lines += [f"  - {b}" for b in bindings]
    lines += ["grid:"] + [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in grid.items()]
    lines += [f"seeds: {list(seeds)}", "metric: adapt/Shared Q + IW/last3", "mode: max", extra]
    path.write_text("\n".join(lines) + "\n")
    return path


def read_whole(path: Path):
    """A JSON file another process may be rewriting in place (Sacred does with run.json
    at every heartbeat; a trial stopped by an interrupt may be writing as the sweep
    exits): read again until it parses (a hang guard, not a speed claim)."""
    deadline = time.monotonic() + 300
    while True:
        try:
            return read_json(path)
        except ValueError:
            assert time.monotonic() < deadline, f"{path} never read whole"
            time.sleep(0.1)


def status_of(run: Path) -> str | None:
    """A run's status (None: no run.json yet)."""
    try:
        return read_whole(run / "run.json")["status"]
    except FileNotFoundError:
        return None


def completed(runs: Path) -> list[Path]:
    return [r for r in run_dirs(runs) if status_of(r) == "COMPLETED"]


def by_hand_last3(results: dict, variant: str = "Shared Q + IW") -> float:
    """Appendix A.2's number for one run: per task, the mean over adaptation seeds of
    the last 3 episodes; then the mean over tasks."""
    r = np.asarray(results["returns"][variant])            # [tasks, seeds, episodes]
    return float(r[:, :, -3:].mean(axis=(1, 2)).mean())


@pytest.fixture(scope="module")
def mongo_sweep(tmp_path_factory):
    try:
        db_module.find_secantusd()
    except db_module.DatabaseError as exc:
        pytest.skip(f"SecantusDB is not installed ({exc})")
    tmp = tmp_path_factory.mktemp("sweep")
    server = db_module.start_server(tmp / "db", port=0)
    try:
        # Dense reward: every curve moves, so the report's numbers are worth checking.
        spec = sweep_file(tmp / "grid.yaml", {"IWPA.alpha": [0.03, 0.3],
                                              "IWPL.critic_lr, IWPL.prior_lr": [0.001, 0.003]},
                          bindings=[*TINY, "PointNavVec.sparse = False"])
        runs = tmp / "runs"
        proc = run_cli("iwx.sweep", [str(spec), "--runs-dir", str(runs), "--mongo", server.url,
                                     "--no-progress"], timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        folders = list((runs / "_sweeps").iterdir())
        assert len(folders) == 1
        yield {"server": server, "runs": runs, "folder": folders[0],
               "sweep_id": folders[0].name, "stdout": proc.stdout}
    finally:
        server.stop()


def test_grid_sweep_records_every_trial_in_mongodb(mongo_sweep):
    import gridfs
    import pymongo

    sweep_id = mongo_sweep["sweep_id"]
    client = pymongo.MongoClient(mongo_sweep["server"].url, serverSelectionTimeoutMS=3000)
    db = client["iwx"]
    docs = list(db.runs.find({"meta.sweep.id": sweep_id}))
    assert len(docs) == 8
    assert all(d["status"] == "COMPLETED" for d in docs)
    assert all(sweep_id in d["omniboard"]["tags"] for d in docs)
    combos = sorted((d["config"]["bindings"]["IWPA"]["alpha"],
                     d["config"]["bindings"]["IWPL"]["critic_lr"],
                     d["config"]["bindings"]["IWPL"]["prior_lr"], d["config"]["seed"])
                    for d in docs)
    assert combos == sorted((a, lr, lr, s) for a in (0.03, 0.3) for lr in (0.001, 0.003)
                            for s in (0, 1))
    # Trials adapt on the validation tasks (appendix A.2), never on the held-out ones.
    assert all(d["config"]["bindings"]["pretrain_and_adapt"]["adapt_on"] == "validation"
               for d in docs)
    fs = gridfs.GridFS(db)
    for d in docs:
        names = {m["name"] for m in d["info"]["metrics"]}
        assert "adapt/Shared Q + IW/return" in names and "train/return" in names
        assert db.metrics.count_documents({"run_id": d["_id"]}) >= len(names)
        artifact = {a["name"]: a["file_id"] for a in d["artifacts"]}
        results = json.loads(fs.get(artifact["results.json"]).read())
        assert results["adapt_on"] == "validation"
    summary = db.sweeps.find_one({"_id": sweep_id})
    assert summary is not None and len(summary["configurations"]) == 4
    assert summary["complete"] is True
    client.close()


def test_summary_table_is_mean_and_t_interval_over_seeds(mongo_sweep):
    data = read_json(mongo_sweep["folder"] / "summary.json")
    assert len(data["configurations"]) == 4
    runs = mongo_sweep["runs"]
    for row in data["configurations"]:
        assert row["n"] == 2
        values = [by_hand_last3(read_json(runs / run_id / "results.json"))
                  for _, run_id in sorted(row["run_ids"].items())]
        assert [row["scores"][s] for s in sorted(row["scores"])] == pytest.approx(values)
        half = stats.t.ppf(0.975, 1) * np.std(values, ddof=1) / np.sqrt(2)
        assert row["mean"] == pytest.approx(np.mean(values))
        assert row["ci95"] == pytest.approx(half)
    best = max(data["configurations"], key=lambda r: r["mean"])
    assert data["best"]["params"] == best["params"]
    table = (mongo_sweep["folder"] / "summary.md").read_text()
    assert table.count("| IWPA.alpha = ") == 4 and "**best**" in table
    assert "Best configuration" in mongo_sweep["stdout"]


def test_omniboard_lists_the_sweep_runs(mongo_sweep):
    if not omniboard.node_available():
        pytest.skip("Node.js / npm are not installed: Omniboard cannot run here")
    board = omniboard.start_omniboard(mongo_sweep["server"].url)
    try:
        query = urllib.parse.quote(json.dumps({"meta.sweep.id": mongo_sweep["sweep_id"]}))
        with urllib.request.urlopen(f"{board.url}/sacred/api/v1/Runs?query={query}",
                                    timeout=30) as response:
            listed = json.loads(response.read())
        assert len(listed) == 8, [r.get("_id") for r in listed]
        assert all(r["status"] == "COMPLETED" for r in listed)
        assert all(mongo_sweep["sweep_id"] in r["omniboard"]["tags"] for r in listed)
    finally:
        board.stop()


def test_interrupted_sweep_resumes_without_running_a_trial_twice(tmp_path):
    """SIGTERM (what ``timeout`` and schedulers send) stops the sweep like Ctrl-C: the
    trials stop, the summary of what ran is written, exit 143 and how to resume; the same
    command then runs every missing trial and none twice."""
    spec = sweep_file(tmp_path / "resume.yaml", {"IWPA.alpha": [0.03, 0.3]},
                      extra="max_concurrent: 1")
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "iwx.sweep", str(spec), "--runs-dir", str(runs),
            "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300        # a hang guard, not a speed claim
    while not (runs.is_dir() and completed(runs)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 143, out[-2000:] + err[-2000:]
    assert "interrupted by SIGTERM" in err and "run the same command again to resume" in err
    before = {r.name: read_whole(r / "info.json")["checkpoint_key"] for r in completed(runs)}
    assert 1 <= len(before) < 4
    stopped = read_json(next((runs / "_sweeps").iterdir()) / "summary.json")
    assert stopped["interrupted"] == "SIGTERM" and not stopped["complete"]
    # (a run that completed as the signal came may not have reached Ray Tune: missing
    # here, reused by the resume)
    assert stopped["counts"]["completed"] <= len(before)
    assert stopped["counts"]["failed"] == 0 and stopped["counts"]["missing"] >= 1

    again = run_cli("iwx.sweep", args[3:], timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming" in again.stdout
    done = completed(runs)
    keys = [read_whole(r / "info.json")["checkpoint_key"] for r in done]
    assert len(done) == 4 and len(set(keys)) == 4, "a trial completed twice, or one is missing"
    for name, key in before.items():      # finished before the interrupt: never run again
        assert [r.name for r in run_dirs(runs)
                if (r / "info.json").is_file()   # a run stopped before its first write has none
                and read_whole(r / "info.json").get("checkpoint_key") == key] == [name]
    data = read_json(next((runs / "_sweeps").iterdir()) / "summary.json")
    assert data["complete"] and all(c["n"] == 2 for c in data["configurations"])
    assert data["interrupted"] is None and data["counts"]["completed"] == 4


BAD = {
    "unknown key": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\ngird:\n  IWPA.alpha: [1]\n",
                    "unknown key(s) ['gird']"),
    "empty grid": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\ngrid: {}\n",
                   "grid: expected a non-empty mapping"),
    "empty values": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\ngrid:\n  IWPA.alpha: []\n",
                     "grid.IWPA.alpha: expected a non-empty list"),
    "unknown parameter": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\n"
                          "grid:\n  IWPA.alhpa: [1, 2]\n", "alhpa"),
    "unknown configurable": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\n"
                             "grid:\n  NoSuchThing.alpha: [1]\n", "NoSuchThing"),
    "unknown variant": ("gin: gin/point_nav_iwpl.gin\nmetric: adapt/Shared Q/last3\n"
                        "grid:\n  IWPA.alpha: [1]\n", "no adaptation variant 'Shared Q'"),
    "bad metric": ("gin: gin/point_nav_iwpl.gin\nmetric: return\ngrid:\n  IWPA.alpha: [1]\n",
                   "metric: 'return' is not a metric"),
    "search without budget": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\n"
                              "search:\n  IWPA.alpha: {loguniform: [0.001, 10]}\n",
                              "num_samples"),
    "bad distribution": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\n"
                         "num_samples: 3\nsearch:\n  IWPA.alpha: {lognormal: [0, 1]}\n",
                         "unknown distribution 'lognormal'"),
    "missing gin file": ("gin: gin/nope.gin\nmetric: train/final_return\n", "gin/nope.gin"),
    "not yaml": ("gin: [gin/point_nav_iwpl.gin\n", "not valid YAML"),
    "bad fixed binding": ("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\n"
                          "bindings:\n  - IWPA.alpha = = 3\n", "bindings"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_sweep_file_is_refused_before_anything_starts(tmp_path, case):
    from iwx import sweep

    text, message = BAD[case]
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    code = sweep.main([str(path), "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    assert not (tmp_path / "runs").exists(), "something started before the file was checked"


def test_bad_sweep_file_message_names_the_key(tmp_path):
    for case, (text, message) in BAD.items():
        path = tmp_path / f"{case.replace(' ', '_')}.yaml"
        path.write_text(text)
    proc = run_cli("iwx.sweep", [str(tmp_path / "unknown_parameter.yaml"), "--runs-dir",
                                 str(tmp_path / "runs")], timeout=120)
    assert proc.returncode == 2
    assert "grid.IWPA.alhpa" in proc.stderr and "alhpa" in proc.stderr
    from iwx.tuning.spec import SpecError, check_bindings, load

    for case, (text, message) in BAD.items():
        with pytest.raises(SpecError) as err:
            check_bindings(load(tmp_path / f"{case.replace(' ', '_')}.yaml"))
        assert message in str(err.value), (case, str(err.value))


def test_optuna_search_after_one_pretraining(tmp_path):
    """A search: Optuna proposes 3 configurations inside their ranges, each runs on
    both seeds, all adapting from one pretraining run on the pinned split (A.2)."""
    path = tmp_path / "search.yaml"
    lines = ["gin: gin/point_nav_iwpl.gin", "bindings:", *[f"  - {b}" for b in TINY],
             "pretrain: {seed: 0}", "search:",
             "  IWPA.alpha: {loguniform: [0.001, 10]}", "  IWPA.num_samples: {choice: [8, 16]}",
             "num_samples: 3", "seeds: [0, 1]", "metric: adapt/IW/after_exploration",
             "max_concurrent: 2"]
    path.write_text("\n".join(lines) + "\n")
    runs = tmp_path / "runs"
    proc = run_cli("iwx.sweep", [str(path), "--runs-dir", str(runs), "--no-progress"],
                   timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [(r, read_json(r / "run.json")["meta"], read_json(r / "config.json"))
               for r in completed(runs)]
    pretrain = [r for r, meta, _ in records if meta["sweep"]["trial"] == "pretrain"]
    assert len(pretrain) == 1 and len(records) == 7
    model = next((runs / "_sweeps").iterdir()) / "pretrained.pt"
    assert model.read_bytes() == (pretrain[0] / "model.pt").read_bytes()
    for run, meta, config in records:
        bindings = config["bindings"]
        assert bindings["PointNavTasks"]["seed"] == 0          # one split for every run
        if run in pretrain:
            assert bindings["pretrain_and_adapt"]["variants"] == {}
            continue
        assert bindings["pretrain_and_adapt"]["pretrained"] == str(model)
        assert 0.001 <= bindings["IWPA"]["alpha"] <= 10
        assert bindings["IWPA"]["num_samples"] in (8, 16)
        assert meta["sweep"]["params"]["IWPA.alpha"] == bindings["IWPA"]["alpha"]
    data = read_json(model.parent / "summary.json")
    assert data["complete"] and data["pretrain_run"] == pretrain[0].name
    assert len(data["configurations"]) == 3 and all(c["n"] == 2 for c in data["configurations"])


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_file_checks(path):
    """The appendix-A grids in sweeps/ parse, and every binding exists in their gin file."""
    from iwx.tuning.spec import check_bindings, load

    spec = load(path)
    facts = check_bindings(spec)
    assert spec.seeds == (0, 1, 2)
    if spec.metric.startswith("adapt/"):
        assert spec.metric.split("/")[1] in facts["variants"]


def test_report_on_the_sweep_from_mongodb_matches_the_records(mongo_sweep, tmp_path):
    """``iwx.report`` on the sweep's runs, read from MongoDB, draws the same series as
    from the file store, and one line checked by hand against the recorded metrics:
    per (run, task) curve, trailing window 5 (appendix A.2, point navigation), mean and
    Student-t 95% interval across units."""
    url, sweep_id = mongo_sweep["server"].url, mongo_sweep["sweep_id"]
    outs = {}
    for name, source in (("mongo", url), ("files", str(mongo_sweep["runs"]))):
        outs[name] = tmp_path / name
        proc = run_cli("iwx.report", [source, "--sweep", sweep_id, "--group-by", "IWPA.alpha",
                                      "--out", str(outs[name])], timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        for figure in ("adaptation.png", "adaptation.svg", "training.png", "training.svg"):
            assert (outs[name] / figure).stat().st_size > 1000, figure
    mongo, files = (read_json(outs[n] / "report.json") for n in ("mongo", "files"))
    strip = lambda lines: [{k: v for k, v in line.items() if k != "run_ids"} for line in lines]  # noqa: E731
    assert strip(mongo["adaptation"]) == strip(files["adaptation"])
    line = next(l for l in files["adaptation"]
                if l["group"] == "IWPA.alpha=0.03" and l["variant"] == "Shared Q + IW")
    assert line["unit"] == "(run, task)" and line["window"] == 5 and line["runs"] == 4
    curves = []
    for run in completed(mongo_sweep["runs"]):
        if read_json(run / "config.json")["bindings"]["IWPA"]["alpha"] != 0.03:
            continue
        metrics = read_json(run / "series.json")   # per-task series live there
        for name in sorted(m for m in metrics if m.startswith("adapt/Shared Q + IW/return/task_")):
            values = np.asarray(metrics[name]["values"])
            curves.append([values[max(0, e - 4):e + 1].mean() for e in range(len(values))])
    curves = np.asarray(curves)                       # [units, episodes], smoothed
    assert curves.shape == (line["units"], 3) and curves.std() > 0
    half = stats.t.ppf(0.975, len(curves) - 1) * curves.std(axis=0, ddof=1) / np.sqrt(len(curves))
    assert line["mean"] == pytest.approx(curves.mean(axis=0).tolist())
    assert line["ci95"] == pytest.approx(half.tolist())
