"""Helpers to run the real command lines on tiny budgets and read Sacred's file store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def iwx_run(runs_dir: Path, gin_file: str = "gin/point_nav_iwpl.gin", params=(), *,
            seed: int = 0, env: dict | None = None, extra=()) -> subprocess.CompletedProcess:
    args = ["--gin", str(ROOT / gin_file), "--runs-dir", str(runs_dir), "--seed", str(seed),
            "--no-progress", *extra]
    for p in [*TINY, *params]:
        args += ["--gin_param", p]
    return run_cli("iwx.run", args, env=env)


def run_dirs(runs_dir: Path) -> list[Path]:
    return sorted((p for p in runs_dir.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def read_json(path: Path):
    return json.loads(Path(path).read_text())
