"""Two figure commands on one runs folder share out the runs: a run whose lock another
live process holds is left to it ("not started", exit 3), not failed, and the same
command later reuses what that process recorded (iwx/figures/execute.py)."""

from __future__ import annotations

import os

import gin
import pytest

from cli import ROOT, planned_figure_run, read_json, run_cli
from iwx.experiment.run_lock import RunLock, lock_path

PICK = ["--scale", "smoke", "--panels", "reach_cpu", "--runs", "From Scratch"]


def figure(args):
    return run_cli("iwx.figure", [str(a) for a in args], timeout=900)


def planned(runs_dir):
    """Figure 3's smoke From Scratch run on Reach (cpu), as the command plans it."""
    return planned_figure_run(3, "smoke", runs_dir, "reach_cpu", "From Scratch")


def test_a_run_another_process_is_running_is_left_to_it(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    run = planned(runs)
    (runs / "_checkpoints").mkdir(parents=True)
    lock = RunLock(lock_path(runs, run.key), key=run.key).acquire()    # "another process"
    try:
        dry = figure([3, *PICK, "--runs-dir", runs, "--dry-run", "--until", "3h"])
        proc = figure([3, *PICK, "--runs-dir", runs, "--out", out])
    finally:
        lock.release()
    assert dry.returncode == 0, dry.stdout[-3000:] + dry.stderr[-3000:]
    assert "0 of 1 would start" in dry.stdout, dry.stdout[-3000:]
    assert (f"left to the process running it: run 1/1, reach_cpu · gin/reach_scratch.gin · "
            f"seed 0 (running in another process (pid {os.getpid()} since") in dry.stdout
    assert "running now (pid" in dry.stdout                   # the dry run's table says so
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (f"run 1/1 not started: reach_cpu · gin/reach_scratch.gin · seed 0 (running in "
            f"another process (pid {os.getpid()} since") in proc.stdout
    assert "1 run(s) left to the process running them: 1/1" in proc.stderr
    assert "failed" not in proc.stdout + proc.stderr
    assert not list(runs.glob("[0-9]*"))                    # nothing recorded: not started

    again = figure([3, *PICK, "--runs-dir", runs, "--out", out])   # the lock is free now
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert read_json(out / "figure.json")["runs"][0]["status"] == "ran"


def test_a_run_that_finds_its_key_locked_says_so_to_the_figure(tmp_path):
    """The race: the other process takes the lock between the figure's look and the
    run's start; the run refuses (exit 2, as iwx.run) and says it was locked."""
    from iwx.experiment.runner import RunStopped, run as run_one

    runs = tmp_path / "runs"
    run = planned(runs)
    (runs / "_checkpoints").mkdir(parents=True)
    lock = RunLock(lock_path(runs, run.key), key=run.key).acquire()
    try:
        with pytest.raises(RunStopped) as stopped:
            cwd = os.getcwd()
            os.chdir(ROOT)
            try:
                run_one(run.spec)
            finally:
                gin.clear_config()
                os.chdir(cwd)
    finally:
        lock.release()
    assert stopped.value.locked is True and stopped.value.exit_code == 2
