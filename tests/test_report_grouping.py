"""What ``iwx.report`` / ``iwx.compare`` may pool (issue 15), on small Sacred file stores
written here run by run (no training): runs of two tasks are two panels, never one line;
runs of one task adapted under different protocols are refused (exit 2, naming the runs
and the setting); a sweep's shared pretraining run is no group of its grid; training
curves of different lengths are each drawn to their own end; ``iwx.compare`` writes to
``compare/<task>``. Expected numbers are recomputed here with numpy from what each run
recorded, never with the report's own functions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli import ROOT, TINY, read_json, run_cli
from iwx.results.groups import ReportError
from iwx.results.reporting import ReportRequest, build, write_report


# --------------------------------------------------------------------------- a file store

def curves_of(run_id: int, tasks: int, seeds: int, episodes: int) -> np.ndarray:
    """Returns [tasks, seeds, episodes] of a run: different per run, task and episode."""
    rng = np.random.default_rng(run_id)
    trend = 0.5 * np.arange(1, episodes + 1)
    return np.round(rng.normal(size=(tasks, seeds, episodes)) + trend + run_id, 6)


def training_of(run_id: int, updates: int, period: int = 30) -> tuple[list, list, list]:
    """(learner steps, env steps, train/return) logged every ``period`` updates."""
    steps = list(range(period, updates + 1, period))
    rng = np.random.default_rng(100 + run_id)
    values = np.round(rng.normal(size=len(steps)) + np.arange(len(steps)) * 0.1 + run_id, 6)
    return steps, [10 * s for s in steps], values.tolist()


def write_run(store: Path, run_id: int, *, task: str, method: str = "iwpl", episodes: int = 4,
              explore: int = 1, seeds: int = 2, tasks: int = 3, adapt: bool = True,
              oracle: bool = True, baseline: bool = False, train: int | None = None,
              results: bool = True, sweep: dict | None = None, bindings: dict | None = None,
              tags: tuple[str, ...] = ()) -> None:
    """One run folder as Sacred's file store and ``iwx.run`` write it: run.json,
    config.json (identity, bindings), info.json, metrics.json and results.json."""
    folder = store / str(run_id)
    folder.mkdir(parents=True)
    meta = {"tags": list(tags), **({"sweep": sweep} if sweep else {})}
    (folder / "run.json").write_text(json.dumps(
        {"status": "COMPLETED", "meta": meta, "artifacts": ["results.json"] if results else []}))
    identity = {"task": task, "method": method}
    (folder / "config.json").write_text(json.dumps(
        {"seed": run_id, "identity": identity, "bindings": bindings or {}}))
    (folder / "info.json").write_text(json.dumps({"identity": identity}))
    metrics, returns = {}, {}
    if adapt:
        r = curves_of(run_id, tasks, seeds, episodes)
        returns["IW"] = r.tolist()
        for t in range(tasks):
            metrics[f"adapt/IW/return/task_{t:02d}"] = {
                "steps": list(range(1, episodes + 1)), "values": r[t].mean(axis=0).tolist()}
    if train:
        steps, env_steps, values = training_of(run_id, train)
        metrics["train/return"] = {"steps": steps, "values": values}
        metrics["train/env_steps"] = {"steps": steps, "values": env_steps}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if results:
        goals = np.random.default_rng(1000 + run_id).uniform(size=(tasks, 2)).round(6)
        (folder / "results.json").write_text(json.dumps({
            "returns": returns, "exploration_episodes": explore, "test_goals": goals.tolist(),
            "oracle": [10.0 + t + run_id for t in range(tasks)] if oracle else None,
            "baseline": {"name": "stand still", "returns": [1.0] * tasks} if baseline else None,
            "adapt_on": "test"}))


def request(store: Path, **kw) -> ReportRequest:
    return ReportRequest(source=str(store), **kw)


@pytest.fixture
def two_tasks(tmp_path) -> Path:
    """Runs 1-4: point_nav, 4 episodes (run 4 without an oracle); run 5: reach, 10
    episodes, 5 of them exploring, 1 adaptation seed, no oracle or baseline."""
    store = tmp_path / "runs"
    for run_id in (1, 2, 3, 4):
        write_run(store, run_id, task="point_nav", oracle=run_id != 4, baseline=True, train=120)
    write_run(store, 5, task="reach", episodes=10, explore=5, seeds=1, oracle=False, train=120)
    return store


# --------------------------------------------------------------------------- tasks

def test_two_tasks_are_two_panels_never_one_line(two_tasks):
    rep = build(request(two_tasks, window=1))
    assert rep.tasks == ["point_nav", "reach"]
    lines = {(line.task, line.label): line for line in rep.adapt}
    assert set(lines) == {("point_nav", "IW"), ("reach", "IW")}
    nav, reach = lines[("point_nav", "IW")], lines[("reach", "IW")]
    assert nav.run_ids == [1, 2, 3, 4] and reach.run_ids == [5]
    # each (run, task) a unit: own splits; 12 navigation units, 3 reach units, never 15
    units = np.concatenate([curves_of(i, 3, 2, 4).mean(axis=1) for i in (1, 2, 3, 4)])
    assert (nav.units, nav.unit, nav.x) == (12, "(run, task)", [1, 2, 3, 4])
    np.testing.assert_allclose(nav.mean, units.mean(axis=0), atol=1e-9)
    assert reach.units == 3 and reach.x == list(range(1, 11))
    np.testing.assert_allclose(reach.mean, curves_of(5, 3, 1, 10).mean(axis=(0, 1)), atol=1e-9)
    assert (nav.exploration_episodes, reach.exploration_episodes) == (1, 5)
    assert {line.task: line.run_ids for line in rep.train} == \
        {"point_nav": [1, 2, 3, 4], "reach": [5]}
    # the references of each task: never dropped because another task has none
    refs = {t: {r.name: r for r in found} for t, found in rep.references.items()}
    assert refs["reach"] == {}
    oracle = refs["point_nav"]["goal-knowing oracle"]
    assert oracle.run_ids == [1, 2, 3] and oracle.of == 4   # run 4 recorded none
    per_task = np.concatenate([[10.0 + t + i for t in range(3)] for i in (1, 2, 3)])
    assert oracle.mean == pytest.approx(per_task.mean())
    assert refs["point_nav"]["stand still"].mean == pytest.approx(1.0)


def test_cli_reports_two_tasks_from_a_file_store(two_tasks, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("iwx.report", [str(two_tasks), "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "in 2 task(s) (point_nav, reach)" in proc.stdout
    data = read_json(out / "report.json")
    assert data["tasks"] == ["point_nav", "reach"] and data["runs"] == [1, 2, 3, 4, 5]
    assert {(line["task"], tuple(line["run_ids"])) for line in data["adaptation"]} == \
        {("point_nav", (1, 2, 3, 4)), ("reach", (5,))}
    assert {line["task"] for line in data["training"]} == {"point_nav", "reach"}
    assert [r["name"] for r in data["references"]["point_nav"]] == \
        ["goal-knowing oracle", "stand still"]
    assert data["references"]["reach"] == []
    for name in ("adaptation.png", "adaptation.svg", "training.png", "training.svg"):
        assert (out / name).stat().st_size > 1000, name
    md = (out / "report.md").read_text()
    assert "| task | line | units |" in md and "one figure panel per task" in md
    assert "| point_nav | IW | 12 | (run, task) | 4 |" in md
    assert "| reach | IW | 3 | task | 1 |" in md
    assert "- reach: no goal-knowing oracle or lower baseline recorded" in md
    assert "only 3 of the 4 runs recorded it" in md
    assert "task point_nav: 4 runs" in (out / "adaptation.svg").read_text()

    proc = run_cli("iwx.report", [str(two_tasks), "--task", "reach", "--out", str(out / "r")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_json(out / "r" / "report.json")["runs"] == [5]
    proc = run_cli("iwx.report", [str(two_tasks), "--task", "cheetah_vel", "--out",
                                  str(out / "c")])
    assert proc.returncode == 2
    assert "no selected run is of task cheetah_vel" in proc.stderr
    assert "point_nav (4 runs), reach (1 run)" in proc.stderr
    assert not (out / "c").exists()


# --------------------------------------------------------------------------- protocols

@pytest.mark.parametrize("case", ["episodes", "exploration from bindings", "seeds"])
def test_different_adaptation_protocols_of_one_task_are_refused(tmp_path, case, capsys):
    store = tmp_path / "runs"
    for run_id in (1, 2, 3):
        odd = run_id == 3
        if case == "episodes":
            write_run(store, run_id, task="point_nav", episodes=6 if odd else 4)
        elif case == "seeds":
            write_run(store, run_id, task="point_nav", seeds=3 if odd else 2)
        else:   # no results.json: the recorded binding says it
            write_run(store, run_id, task="point_nav", results=False,
                      bindings={"Adaptation": {"exploration_episodes": 2 if odd else 1}})
    write_run(store, 4, task="reach", episodes=10)    # another task: its own axis, fine
    expected = {"episodes": "adaptation episodes (Adaptation.episodes): 4 in runs 1, 2; "
                            "6 in run 3",
                "seeds": "adaptation seeds (Adaptation.seeds): 2 in runs 1, 2; 3 in run 3",
                "exploration from bindings": "exploration episodes "
                "(Adaptation.exploration_episodes): 1 in runs 1, 2; 2 in run 3"}[case]
    with pytest.raises(ReportError) as err:
        build(request(store))
    assert "runs of task point_nav adapted under different protocols" in str(err.value)
    assert expected in str(err.value) and "--runs 1 2 or --runs 3" in str(err.value)

    from iwx.report import main

    assert main([str(store), "--out", str(tmp_path / "out")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # one protocol selected: reported
    assert [line.run_ids for line in build(request(store, runs=("1", "2", "4"))).adapt] == \
        [[1, 2], [4]]


# --------------------------------------------------------------------------- sweeps

def sweep_store(tmp_path: Path, pretrain_meta: dict) -> Path:
    """Run 1: the sweep's shared pretraining (IWPA.alpha left at the gin file's 0.03,
    trained, no adaptation); runs 2-5: grid trials IWPA.alpha 0.1 and 1 (adapt only)."""
    store = tmp_path / "runs"
    write_run(store, 1, task="point_nav", adapt=False, train=300, tags=("sw", "pretrain"),
              sweep={"id": "sw", **pretrain_meta}, bindings={"IWPA": {"alpha": 0.03}})
    for run_id, alpha in ((2, 0.1), (3, 0.1), (4, 1.0), (5, 1.0)):
        write_run(store, run_id, task="point_nav", tags=("sw",),
                  bindings={"IWPA": {"alpha": alpha}},
                  sweep={"id": "sw", "trial": f"trial_{run_id}", "params": {"IWPA.alpha": alpha}})
    return store


@pytest.mark.parametrize("pretrain_meta", [
    {"trial": "pretrain", "params": {}},          # what iwx.sweep records
    {},                                           # no trial / params while the trials have them
    {"trial": "trial_0", "params": {"IWPA.alpha": 0.03}},   # only: did no adaptation
], ids=["marked", "no-params", "no-adaptation"])
def test_a_sweeps_shared_pretraining_is_no_group(tmp_path, pretrain_meta):
    store = sweep_store(tmp_path, pretrain_meta)
    rep, out, text, _ = write_report(request(store, sweep="sw", group_by="IWPA.alpha",
                                             out=str(tmp_path / "out")))
    assert [r.id for r in rep.pretraining] == [1]
    assert [g for _, g in rep.groups] == ["IWPA.alpha=0.1", "IWPA.alpha=1"]
    assert [(line.label, line.run_ids) for line in rep.adapt] == \
        [("IWPA.alpha=0.1 · IW", [2, 3]), ("IWPA.alpha=1 · IW", [4, 5])]
    assert [(line.label, line.run_ids) for line in rep.train] == \
        [("shared pretraining (run 1)", [1])]
    assert "0.03" not in text and "| point_nav | shared pretraining (run 1) |" in text
    data = read_json(out / "report.json")
    assert data["shared_pretraining"] == [1]
    assert all("0.03" not in line["label"] for line in data["adaptation"] + data["training"])


def test_a_multitask_sweep_has_no_shared_pretraining(tmp_path):
    """Every trial of a multi-task sweep trains and none adapts: all are grid points."""
    from iwx.experiment.store import load_runs
    from iwx.results.groups import sweep_pretraining

    store = tmp_path / "runs"
    for run_id, lr in ((1, 0.001), (2, 0.003)):
        write_run(store, run_id, task="point_nav", adapt=False, train=120,
                  sweep={"id": "mt", "trial": f"t{run_id}", "params": {"IWPL.critic_lr": lr}})
    assert sweep_pretraining(load_runs(store)) == []


# --------------------------------------------------------------------------- lengths

def test_training_curves_of_different_lengths_each_reach_their_own_end(tmp_path):
    store = tmp_path / "runs"
    for run_id, updates in ((1, 300), (2, 600), (3, 3000)):
        write_run(store, run_id, task="point_nav", adapt=False, train=updates)
    (line,) = build(request(store, train_window=1)).train
    chunks = [training_of(i, u)[2] for i, u in ((1, 300), (2, 600), (3, 3000))]
    assert line.bin == 300 and line.x == [300.0 * k for k in range(1, 101)]   # never cut
    assert line.n == [3] * 10 + [2] * 10 + [1] * 80
    assert line.ends == [{"run": 1, "x": 3000.0}, {"run": 2, "x": 6000.0}]
    for k in (0, 9, 10, 19, 20, 99):
        present = np.array([c[k] for c in chunks if k < len(c)])
        assert line.mean[k] == pytest.approx(present.mean())
        if len(present) > 1:
            from scipy import stats

            half = stats.t.ppf(0.975, len(present) - 1) * present.std(ddof=1) / \
                np.sqrt(len(present))
            assert line.ci95[k] == pytest.approx(half)
        else:
            assert line.ci95[k] == 0
    # the default window (a tenth of the line's 100 chunks) smooths each run along its own
    (smooth,) = build(request(store)).train
    assert smooth.window == 10
    assert smooth.mean[9] == pytest.approx(np.mean([np.mean(c[:10]) for c in chunks]))
    assert smooth.mean[99] == pytest.approx(np.mean(chunks[2][90:]))

    rep, out, _, _ = write_report(request(store, out=str(tmp_path / "out"), train_window=1))
    md = (out / "report.md").read_text()
    assert "iwpl: 3 runs up to 3000 env steps, 2 up to 6000, 1 up to 30000" in md
    series = read_json(out / "report.json")["training"][0]
    assert series["n"] == line.n and series["ends"] == line.ends


# --------------------------------------------------------------------------- iwx.compare

def test_compare_folder_is_the_recorded_task():
    from iwx.results.comparison import task_folder

    def run(file, task, ok=True):
        return {"file": file, "ok": ok, "identity": {"task": task, "method": "iwpl"}}

    files = ["gin/point_nav_iwpl.gin", "gin/point_nav_scratch.gin"]
    assert task_folder([run(files[0], "point_nav"), run(files[1], "point_nav")], files) == \
        ("point_nav", None)
    assert task_folder([run("gin/cheetah_vel_rl2.gin", "cheetah_vel")], files) == \
        ("cheetah_vel", None)
    assert task_folder([run(files[0], None)], files) == ("point_nav_iwpl", None)
    name, problem = task_folder([run(files[0], "point_nav"), run("x.gin", "reach"),
                                 run("y.gin", "gtt", ok=False)], files)
    assert name is None and "point_nav_iwpl.gin: point_nav, x.gin: reach" in problem


def fake_completed_runs(runs_dir: Path, jobs: list[tuple[str, str]]) -> None:
    """For each (gin file, task): a COMPLETED run of the key ``iwx.compare`` derives for it
    (seed 0, TINY), so the command reuses it instead of training."""
    code = ("import json, sys\nfrom iwx.experiment.runner import RunSpec, prepare\n"
            "print(json.dumps([prepare(RunSpec(gin_files=(f,), bindings=tuple(sys.argv[2:]), "
            "seed=0)).key for f in json.loads(sys.argv[1])]))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps([f for f, _ in jobs]), *TINY],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run_id, ((_, task), key) in enumerate(zip(jobs, json.loads(proc.stdout)), 1):
        write_run(runs_dir, run_id, task=task, episodes=3)
        (runs_dir / str(run_id) / "info.json").write_text(json.dumps({"checkpoint_key": key}))


def test_compare_writes_to_compare_task(tmp_path):
    nav = [str(ROOT / "gin/point_nav_iwpl.gin"), str(ROOT / "gin/point_nav_scratch.gin")]
    other = tmp_path / "other_task.gin"
    other.write_text(f"include '{nav[0]}'\nrun_identity.task = 'other_task'\n")
    fake_completed_runs(tmp_path / "runs", [(nav[0], "point_nav"), (nav[1], "point_nav"),
                                            (str(other), "other_task")])
    common = ["--seeds", "0", "--jobs", "2", "--runs-dir", str(tmp_path / "runs")]
    for p in TINY:
        common += ["--gin_param", p]
    proc = run_cli("iwx.compare", [*nav, *common], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("reused") == 2
    assert (tmp_path / "compare" / "point_nav" / "table.md").is_file()
    assert sorted(p.name for p in (tmp_path / "compare").iterdir()) == ["point_nav"]

    proc = run_cli("iwx.compare", [nav[0], str(other), *common], cwd=tmp_path)
    assert proc.returncode == 2
    assert "point_nav_iwpl.gin: point_nav, other_task.gin: other_task" in proc.stderr
    assert sorted(p.name for p in (tmp_path / "compare").iterdir()) == ["point_nav"]
