"""``python -m iwx.figure N --draw-only``: the figure from the runs recorded so far, nothing
run, the others listed with where they stand (iwx/figure.py)."""

from __future__ import annotations

import os

import pytest

from cli import planned_figure_run, read_json, run_cli
from iwx.experiment.run_lock import RunLock, lock_path

PICK = ["--scale", "smoke", "--panels", "reach_cpu"]


def figure(args):
    return run_cli("iwx.figure", [str(a) for a in args], timeout=900)


def rl2_key(runs_dir) -> str:
    """The configuration key of figure 3's smoke RL² run on Reach (cpu), as planned."""
    return planned_figure_run(3, "smoke", runs_dir, "reach_cpu", "RL²").key


@pytest.mark.parametrize("extra", [["--dry-run"], ["--until", "1h"]])
def test_draw_only_is_refused_beside_options_that_contradict_it(tmp_path, extra):
    proc = figure([3, *PICK, "--runs-dir", tmp_path, "--draw-only", *extra])
    assert proc.returncode == 2
    assert "--draw-only runs nothing and draws" in proc.stderr


def test_draw_only_draws_what_is_recorded_and_runs_nothing(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    nothing = figure([3, *PICK, "--runs-dir", runs, "--out", out, "--draw-only"])
    assert nothing.returncode == 3, nothing.stdout[-3000:] + nothing.stderr[-3000:]
    assert "no completed run to draw from" in nothing.stderr
    assert not list(runs.glob("[0-9]*"))

    first = figure([3, *PICK, "--runs", "From Scratch", "--runs-dir", runs, "--out", out])
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    recorded = sorted(runs.glob("[0-9]*"))

    (runs / "_checkpoints").mkdir(exist_ok=True)
    key = rl2_key(runs)
    lock = RunLock(lock_path(runs, key), key=key).acquire()      # RL² "running elsewhere"
    try:
        proc = figure([3, *PICK, "--runs", "From Scratch", "RL²", "--runs-dir", runs,
                       "--out", out, "--draw-only"])
    finally:
        lock.release()
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(runs.glob("[0-9]*")) == recorded                 # nothing new recorded
    assert "run 2/2 reused" in proc.stdout
    assert (f"run 1/2 not run: reach_cpu · gin/reach_rl2.gin · seed 0 (--draw-only; "
            f"running now (pid {os.getpid()} since") in proc.stdout
    assert "1 run(s) not recorded yet, not run (--draw-only): 1/2" in proc.stderr
    record = read_json(out / "figure.json")
    rows = {r["label"]: r for r in record["runs"]}
    assert rows["From Scratch"]["status"] == "reused"
    assert rows["RL²"]["status"] == "not started"
    assert rows["RL²"]["not_started"].startswith("--draw-only; running now")
    assert [line["label"] for p in record["panels"] for line in p["lines"]] == ["From Scratch"]
