"""Training success of an untrained policy on a task distribution and its CPU-scale variant.

    MUJOCO_GL=disable .venv/bin/python docs/experiments/untrained_success.py reach \
        '{}' '{"env": {"radius": 0.1}}'

Each argument after the task is one configuration as JSON: ``env`` (keyword arguments of
the task's env class, bound with gin on every row of its task vector) and ``tasks`` (of
its task distribution). For each, 32 episodes on uniformly drawn training tasks (8 at a
time) with actions ~ N(0, 0.6²) per dimension in [-1, 1] units (the policies' initial
spread, INIT_STD = 0.6), clipped and mapped onto the action box; success = a positive
reward in the episode (what ``train/success`` counts). Seed 0: the task draw, the
actions and the start states. This is the floor a pretraining's success curve starts
from (docs/TASKS.md, "CPU-scale variants").
"""

import json
import sys
import time

import gin
import numpy as np

from iwx.envs import go_to_ring, move_box, reach

TASKS = {"reach": (reach.ReachVec, reach.ReachTasks, "ReachEnv"),
         "move_box": (move_box.MoveBoxVec, move_box.MoveBoxTasks, "MoveBoxEnv"),
         "go_to_ring": (go_to_ring.GoToRingVec, go_to_ring.GoToRingTasks, "GoToRingEnv")}


def success_rate(task: str, config: dict, episodes: int = 32, rows: int = 8, seed: int = 0):
    vec_cls, tasks_cls, env_name = TASKS[task]
    gin.clear_config()
    gin.parse_config([f"{env_name}.{k} = {v!r}" for k, v in config.get("env", {}).items()])
    split = tasks_cls(**config.get("tasks", {})).split(seed)
    rng = np.random.default_rng(seed)
    wins, steps, start, vec = 0, 0, time.time(), None
    for k in range(episodes // rows):
        ids = rng.integers(0, len(split.train), rows)
        if vec is None:
            vec = vec_cls(split.train[ids], ids)
        else:
            vec.set_tasks(split.train[ids], ids)
        vec.reset(seed=[seed, 9, k])
        got = np.zeros(rows, bool)
        low, high = vec.action_low, vec.action_high
        for _ in range(vec.episode_length):
            unit = np.clip(rng.normal(0.0, 0.6, (rows, vec.action_dim)), -1.0, 1.0)
            _, reward, terminated, truncated = vec.step(low + (unit + 1) / 2 * (high - low))
            steps += rows
            got |= reward > 0
            if np.all(terminated | truncated):
                break
        wins += int(got.sum())
    return wins / episodes, steps / (time.time() - start)


if __name__ == "__main__":
    name = sys.argv[1]
    for text in sys.argv[2:] or ["{}"]:
        rate, speed = success_rate(name, json.loads(text))
        print(f"{name} {text}: success {rate:.3f} ({speed:.0f} env steps/s)", flush=True)
