"""A training figure's run found inside a longer run of the same training
(iwx/figures/longer.py): which runs qualify, how their series are cut, and end to end on
figure 1's smoke scale, where a 48-update run stands in for the planned 32."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml

from cli import ROOT, read_json, run_cli, run_dirs
from iwx.experiment.store import RecordedRun
from iwx.figures.longer import budget, cut, find_longer, seconds_to, training_bindings

TRAINING = {"MultiTaskTraining": {"updates": 32, "batch_size": 8},
            "IWPL": {"num_samples": 20},
            "K/macro": {"value": 20},
            "pretrain_and_adapt": {"variants": {}, "train_tasks": None}}


def longer_bindings(**changes) -> dict:
    """TRAINING trained for 48 updates, with adaptation configured differently."""
    out = json.loads(json.dumps(TRAINING))
    out["MultiTaskTraining"]["updates"] = 48
    out["pretrain_and_adapt"]["variants"] = {"Shared Q + IW": "@shared_q_iw/IWPA"}
    out["shared_q_iw/IWPA"] = {"alpha": 0.5}
    out["Adaptation"] = {"seeds": 3}
    out["ParametricAdaptation"] = {"kl_cost": 0.3}
    for name, params in changes.items():
        out.setdefault(name.replace("__", "/"), {}).update(params)
    return out


def store(tmp_path, runs: dict[int, tuple[int, dict]]) -> dict:
    """A file store's completed runs as completed_runs gives them: {key: folder}, each
    folder with the config.json (seed, bindings) a run records."""
    found = {}
    for run_id, (seed, bindings) in runs.items():
        folder = tmp_path / str(run_id)
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"seed": seed, "bindings": bindings}))
        found[f"key{run_id}"] = folder
    return found


def test_only_adaptation_and_the_budget_may_differ(tmp_path):
    assert training_bindings(longer_bindings()) == training_bindings(TRAINING)
    assert training_bindings(TRAINING) == {"IWPL": {"num_samples": 20},
                                           "K/macro": {"value": 20},
                                           "MultiTaskTraining": {"batch_size": 8},
                                           "pretrain_and_adapt": {"train_tasks": None}}
    for changed in ({"IWPL": {"num_samples": 10}}, {"K/macro": {"value": 10}},
                    {"MultiTaskTraining": {"batch_size": 16}},
                    {"pretrain_and_adapt": {"train_tasks": 4}},
                    {"DistributedTraining": {"actors": 2}}):
        assert training_bindings(longer_bindings(**changed)) != training_bindings(TRAINING)
    # a tuple parsed now and the list its record holds are the same binding
    assert training_bindings({"Torso": {"hidden": (64, 64)}}) == \
        training_bindings({"Torso": {"hidden": [64, 64]}})


def test_the_shortest_qualifying_run_of_the_same_seed_is_found(tmp_path):
    completed = store(tmp_path, {
        1: (0, longer_bindings()),                                    # 48 updates: qualifies
        2: (0, longer_bindings(MultiTaskTraining={"updates": 40})),   # fewer updates: closer
        3: (1, longer_bindings(MultiTaskTraining={"updates": 36})),   # another seed
        4: (0, longer_bindings(MultiTaskTraining={"updates": 24})),   # too short
        5: (0, longer_bindings(IWPL={"num_samples": 10}, MultiTaskTraining={"updates": 33})),
        6: (0, longer_bindings(MultiTaskTraining={"updates": 40})),   # as 2, newer
    })
    found = find_longer(tmp_path, bindings=TRAINING, seed=0, updates=32, completed=completed)
    assert (found.run_id, found.trained) == (6, 40)
    assert find_longer(tmp_path, bindings=TRAINING, seed=1, updates=32,
                       completed=completed).run_id == 3
    assert find_longer(tmp_path, bindings=TRAINING, seed=2, updates=32,
                       completed=completed) is None
    assert find_longer(tmp_path, bindings=TRAINING, seed=0, updates=49,
                       completed=completed) is None


def test_the_budget_is_read_as_the_planner_reads_it():
    assert budget({"MultiTaskTraining": {"updates": 80000}}) == 80000
    assert budget({"MultiTaskTraining": {"updates": 80000},
                   "DistributedTraining": {"updates": 50000}}) == 50000
    assert budget({"MultiTaskTraining": {"batch_size": 8}}) is None


def recorded(metrics: dict) -> RecordedRun:
    return RecordedRun(id=7, source="runs", status="COMPLETED", config={}, info={}, meta={},
                       metrics={k: (np.array(s), np.array(v, dtype=float))
                                for k, (s, v) in metrics.items()})


def test_a_cut_keeps_the_training_series_to_the_budget_and_nothing_else():
    run = recorded({"train/return": ([10, 20, 30, 40], [1.0, 2.0, 3.0, 4.0]),
                    "train/env_steps": ([10, 20, 30, 40], [100, 200, 300, 400]),
                    "adapt/IW/return": ([0, 1, 2], [5.0, 6.0, 7.0])})
    short = cut(run, 30)
    assert sorted(short.metrics) == ["train/env_steps", "train/return"]
    assert short.metrics["train/return"][0].tolist() == [10, 20, 30]
    assert short.metrics["train/return"][1].tolist() == [1.0, 2.0, 3.0]
    assert short.metrics["train/env_steps"][1].tolist() == [100, 200, 300]
    assert run.metrics["train/return"][0].tolist() == [10, 20, 30, 40]   # the record intact


def test_the_compute_of_a_cut_is_its_updates_at_their_logged_rates():
    """Logged every 1000 updates at 10, 20, 40 and 50 updates/s: the first 3000 updates
    took 1000/10 + 1000/20 + 1000/40 = 175 s; a period with no rate counts nothing."""
    run = recorded({"train/updates_per_s": ([1000, 2000, 3000, 4000], [10, 20, 40, 50])})
    assert seconds_to(run, 3000) == pytest.approx(175.0)
    assert seconds_to(run, 3500) == pytest.approx(175.0)
    holed = recorded({"train/updates_per_s": ([1000, 2000, 3000], [10, math.nan, 40])})
    assert seconds_to(holed, 3000) == pytest.approx(125.0)
    assert seconds_to(recorded({}), 3000) is None


# --------------------------------------------------------------------------- end to end

def figure_1_smoke() -> tuple[list[str], list[str]]:
    """Figure 1's smoke IWPL run as ``iwx.run`` arguments: its files and bindings."""
    scale = yaml.safe_load((ROOT / "figures" / "figure1.yaml").read_text())["scales"]["smoke"]
    panel = scale["panels"][0]
    entry = next(r for r in panel["runs"] if r["label"] == "IWPL")
    files = [entry["gin"], *entry.get("overlay", []), *panel["overlay"]]
    return files, [*scale["bindings"], *panel.get("bindings", []), *entry.get("bindings", [])]


def test_figure_1_draws_a_seed_from_a_longer_run_cut_at_its_budget(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    files, bindings = figure_1_smoke()
    longer = [*bindings, "MultiTaskTraining.updates = 48",          # 16 updates more,
              "ParametricAdaptation.kl_cost = 0.3"]                 # adaptation aside
    args = [a for f in files for a in ("--gin", str(ROOT / f))]
    args += [a for b in longer for a in ("--gin_param", b)]
    made = run_cli("iwx.run", [*args, "--runs-dir", str(runs), "--seed", "0",
                               "--no-progress"], timeout=600)
    assert made.returncode == 0, made.stderr[-3000:]
    (run_dir,) = run_dirs(runs)
    series = read_json(run_dir / "series.json")
    assert series["train/return"]["steps"][-1] == 48

    figure = ["1", "--scale", "smoke", "--runs", "IWPL", "--runs-dir", str(runs)]
    dry = run_cli("iwx.figure", [*figure, "--dry-run"], timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    rows = [line for line in dry.stdout.splitlines() if line.startswith("reach_cpu")]
    assert len(rows) == 2
    assert f"reused: {run_dir} (its first 32 of 48 updates)" in rows[0]
    assert "will run" in rows[1]                                     # seed 1: none longer

    drawn = run_cli("iwx.figure", [*figure, "--draw-only", "--out", str(out)], timeout=300)
    assert drawn.returncode == 3, drawn.stderr[-3000:]         # drawn; seed 1 not recorded
    assert f"= {run_dir} (its first 32 of 48 updates)" in drawn.stdout
    assert [d.name for d in run_dirs(runs)] == [run_dir.name]        # nothing was run
    record = read_json(out / "figure.json")
    (row,) = [r for r in record["runs"] if r["seed"] == 0]
    assert row["status"] == "reused: first 32 of 48 updates" and row["run_id"] == 1
    assert row["compute_seconds"] is None       # the single loop logs no updates/s
    (line,) = record["panels"][0]["lines"]
    assert line["runs"] == 1
    # the drawn line is the longer run's training to update 32, by hand: the chunk
    # means of train/return over its env steps to there, the last `last` of them
    steps = series["train/return"]["steps"]
    keep = [i for i, s in enumerate(steps) if s <= 32]
    x = [series["train/env_steps"]["values"][i] for i in keep]
    y = [series["train/return"]["values"][i] for i in keep]
    chunk, last = record["chunk"], record["last"]
    chunks: dict[int, list[float]] = {}
    for xi, yi in zip(x, y):
        chunks.setdefault(math.ceil(xi / chunk), []).append(yi)
    final = float(np.mean([np.mean(chunks[k]) for k in sorted(chunks)][-last:]))
    table = (out / "table.md").read_text()
    assert f"| reach_cpu | IWPL | 1 | {x[-1]:,.0f} | {final:.2f} ± " in table, table
    assert x[-1] < series["train/env_steps"]["values"][-1]

    # the same longer run while it is still going (RUNNING, its lock held by a live
    # process): seed 0 waits for it instead of training the same updates again
    from iwx.experiment.run_lock import RunLock, lock_path

    run_json = read_json(run_dir / "run.json")
    (run_dir / "run.json").write_text(json.dumps({**run_json, "status": "RUNNING"}))
    key = read_json(run_dir / "info.json")["checkpoint_key"]
    with RunLock(lock_path(runs, key)):
        dry = run_cli("iwx.figure", [*figure, "--dry-run"], timeout=300)
        ran = run_cli("iwx.figure", [*figure, "--out", str(tmp_path / "out2")], timeout=600)
    assert dry.returncode == 0, dry.stderr[-3000:]
    rows = [line for line in dry.stdout.splitlines() if line.startswith("reach_cpu")]
    assert "inside run 1, running now (pid " in rows[0], rows[0]
    assert "will run" in rows[1]
    assert ran.returncode == 3, ran.stderr[-3000:]          # seed 0 left for later
    assert "not started: reach_cpu · gin/reach_iwpl.gin · seed 0 (inside run 1" in \
        ran.stdout + ran.stderr
    assert len(run_dirs(runs)) == 2                          # seed 1 ran; seed 0 did not
    dry = run_cli("iwx.figure", [*figure, "--dry-run"], timeout=300)   # its process gone
    assert "will run" in [line for line in dry.stdout.splitlines()
                          if line.startswith("reach_cpu")][0]


def test_a_longer_run_in_progress_is_found_only_while_a_live_process_holds_it(tmp_path):
    import os

    from iwx.experiment.run_lock import RunLock, lock_path
    from iwx.figures.longer import find_longer_running

    def record(run_id, status, seed, bindings, key):
        folder = tmp_path / str(run_id)
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"status": status}))
        (folder / "config.json").write_text(json.dumps({"seed": seed, "bindings": bindings}))
        (folder / "info.json").write_text(json.dumps({"checkpoint_key": key}))

    (tmp_path / "_checkpoints").mkdir()
    record(3, "RUNNING", 0, longer_bindings(), "k3")             # 48 updates, seed 0
    record(4, "RUNNING", 1, longer_bindings(), "k4")             # another seed
    record(5, "RUNNING", 0, longer_bindings(IWPL={"num_samples": 10}), "k5")   # other training
    record(6, "COMPLETED", 0, longer_bindings(), "k6")           # find_longer's, not this
    find = dict(bindings=TRAINING, seed=0, updates=32)
    assert find_longer_running(tmp_path, **find) is None         # nobody holds a lock
    locks = [RunLock(lock_path(tmp_path, k)) for k in ("k4", "k5", "k6")]
    for lock in locks:
        lock.acquire()
    try:
        assert find_longer_running(tmp_path, **find) is None     # none of them qualifies
        with RunLock(lock_path(tmp_path, "k3")):
            run_id, holder = find_longer_running(tmp_path, **find)
            assert run_id == 3 and holder["pid"] == os.getpid()
            assert find_longer_running(tmp_path, **{**find, "updates": 64}) is None
    finally:
        for lock in locks:
            lock.release()
    # a record left RUNNING by a killed process: its lock names a pid that is gone
    lock_path(tmp_path, "k3").write_text(json.dumps({"pid": 2 ** 22 + 12345,
                                                     "host": __import__("socket").gethostname()}))
    assert find_longer_running(tmp_path, **find) is None
