"""Helpers to run the real command lines on tiny budgets and read Sacred's file store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import forked

ROOT = Path(__file__).resolve().parents[1]

# A tiny but complete point-navigation experiment: every phase runs, in seconds.
TINY = [
    "PointNavTasks.num_train = 6",
    "PointNavTasks.num_test = 3",
    "MultiTaskTraining.updates = 48",
    "MultiTaskTraining.envs_per_iteration = 4",
    "MultiTaskTraining.updates_per_iteration = 8",
    "MultiTaskTraining.batch_size = 8",
    "MultiTaskTraining.log_period = 8",
    "MultiTaskTraining.checkpoint_period = 16",
    "Adaptation.episodes = 3",
    "Adaptation.exploration_episodes = 1",
    "Adaptation.seeds = 2",
    "Adaptation.updates_per_episode = 3",
    "Adaptation.batch_size = 16",
]


def run_cli(module: str, args: list[str], *, env: dict | None = None, timeout: float = 300,
            cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """``python -m module *args``, run to its end: in a process forked from a template
    that has imported torch and the other heavy libraries once (tests/forked.py), or
    in a fresh interpreter where the environment asks for one."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return forked.run(module, args, env=full_env, cwd=cwd, timeout=timeout)


def iwx_run(runs_dir: Path, gin_file: str = "gin/point_nav_iwpl.gin", params=(), *,
            seed: int = 0, env: dict | None = None, extra=()) -> subprocess.CompletedProcess:
    args = ["--gin", str(ROOT / gin_file), "--runs-dir", str(runs_dir), "--seed", str(seed),
            "--no-progress", *extra]
    for p in [*TINY, *params]:
        args += ["--gin_param", p]
    return run_cli("iwx.run", args, env=env)


HANG_GUARD_S = 300   # polling deadlines only catch hangs; they assert no speed


def run_command(runs_dir: Path, params=(), gin_file: str = "gin/point_nav_iwpl.gin") -> list[str]:
    """``python -m iwx.run`` on the TINY budget plus ``params``, as a process's argv."""
    args = [sys.executable, "-m", "iwx.run", "--gin", str(ROOT / gin_file),
            "--runs-dir", str(runs_dir), "--no-progress"]
    for p in [*TINY, *params]:
        args += ["--gin_param", p]
    return args


def default_sigint():
    """In the child: SIGINT's default action, whatever this process inherited (a test
    run started in the background by a shell without job control ignores SIGINT, and
    the run under test would inherit that and never see Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_run(runs_dir: Path, params=(), env: dict | None = None) -> subprocess.Popen:
    """:func:`run_command` started in the background (to signal it mid-run)."""
    return subprocess.Popen(run_command(runs_dir, params), cwd=ROOT, text=True,
                            preexec_fn=default_sigint,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def wait_for(predicate, proc: subprocess.Popen | None = None, poll_s: float = 0.02) -> None:
    """Poll until ``predicate()``; fail if ``proc`` ends first or nothing happens within
    :data:`HANG_GUARD_S`."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not predicate():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended first ({proc.returncode}):\n{err[-3000:]}")
        assert time.monotonic() < deadline, "hung"
        time.sleep(poll_s)


def checkpoints(runs_dir: Path) -> list[Path]:
    return list((Path(runs_dir) / "_checkpoints").glob("*/state.pt"))


def run_dirs(runs_dir: Path) -> list[Path]:
    return sorted((p for p in runs_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def read_json(path: Path):
    return json.loads(Path(path).read_text())


def ran_figure_run(row: dict) -> Path:
    """A run row of a figure's figure.json that ran now: its folder, after checking that
    it is a COMPLETED record of the row's configuration key and panel's task."""
    folder = Path(row["dir"])
    assert row["status"] == "ran"
    assert read_json(folder / "run.json")["status"] == "COMPLETED"
    assert read_json(folder / "info.json")["checkpoint_key"] == row["key"]
    assert read_json(folder / "config.json")["identity"]["task"] == row["panel"]
    return folder


def planned_figure_runs(figure, scale: str, runs_dir: Path = Path("runs-not-read"), *,
                        tasks=(), names=(), extra=()) -> list:
    """The runs of ``figure`` at ``scale`` (of ``tasks``' panels, the runs ``names`` pick,
    with ``extra`` bindings appended as ``--gin_param``), as ``python -m iwx.figure``
    plans them (iwx.figures.plan.Planned: key, spec, seed, flat gin bindings, estimate)."""
    import gin

    from iwx.figures.plan import make_plan
    from iwx.figures.spec import find, load

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        plan = make_plan(load(find(figure)), scale, runs_dir=str(runs_dir), tasks=list(tasks),
                         names=list(names), extra=list(extra))
    finally:
        gin.clear_config()
        os.chdir(cwd)
    return plan.runs


def planned_figure_run(figure, scale: str, runs_dir: Path, task: str, name: str):
    """The one run ``name`` of ``figure``'s ``task`` panel at ``scale``
    (:func:`planned_figure_runs`)."""
    (run,) = planned_figure_runs(figure, scale, runs_dir, tasks=[task], names=[name])
    return run
