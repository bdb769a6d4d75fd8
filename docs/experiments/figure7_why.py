"""Why ψ without π0 transfers at the cpu scale (figure 7), and why it would not on the paper's tasks.

Two measurements, each a subcommand:

    .venv/bin/python docs/experiments/figure7_why.py records RUN [RUN ...]
    MUJOCO_GL=disable .venv/bin/python docs/experiments/figure7_why.py explore

``records`` reads figure 7's adaptation-only runs (their ``results.json``: returns per
held-out task × adaptation seed × episode, for each variant) and splits every
adaptation by whether its exploration episodes (which act from the proposal alone:
π0 for Shared Q + IW and IW, the uniform proposal for ψ without π0) scored any
positive reward. A held-out task's w̃ (or, for IW, its fresh critic) learns only
from rewards it has seen, so an adaptation whose exploration found nothing has
little to fit. Printed per variant: the fraction of adaptations whose exploration
found a reward and the mean return of the last 3 episodes over all adaptations,
over those that found one and over those that did not; then every variant's mean on the adaptations
(same task, same adaptation seed) where both Shared Q + IW's and ψ without π0's
exploration found a reward.

``explore`` measures, on the held-out tasks of the paper's distribution and of the
cpu variant (the knobs of gin/tasks/<task>_cpu.gin; navigation has none), how often
5 exploration episodes of uniform actions on the action box (what ψ without π0
explores with) score a positive reward: 30 held-out tasks (run seed 0's split) × 3 adaptation seeds
× 5 episodes, the protocol of figure 7's cpu scale. Seeded (seed 0).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

LAST = 3
PAIR = ("Shared Q + IW", "ψ without π0")   # the matched comparison


def mean(values: np.ndarray) -> str:
    """The mean to 2 decimals, or '—' for no values (no adaptation in that group)."""
    return f"{values.mean():.2f}" if values.size else "—"


def records(run_dirs: list[str]) -> None:
    for run in run_dirs:
        results = json.loads((Path(run) / "results.json").read_text())
        explore = results["exploration_episodes"]
        print(f"{run} ({results['adapt_on']} tasks, {explore} exploration episodes):")
        print(f"  {'variant':16s} {'found':>6s} {'last 3, all':>12s} "
              f"{'found':>14s} {'not found':>14s}")
        for variant, returns in results["returns"].items():
            r = np.asarray(returns, dtype=float)          # [tasks, seeds, episodes]
            found = (r[..., :explore] > 0).any(axis=-1)
            last = r[..., -LAST:].mean(axis=-1)
            print(f"  {variant:16s} {found.mean():6.2f} {last.mean():12.2f} "
                  f"{mean(last[found]):>8s} (n={found.sum():2d}) {mean(last[~found]):>7s} "
                  f"(n={(~found).sum():2d})")
        if all(v in results["returns"] for v in PAIR):
            both = np.ones_like(found)
            for v in PAIR:
                both &= (np.asarray(results["returns"][v], float)[..., :explore] > 0).any(-1)
            means = {v: mean(np.asarray(r, float)[..., -LAST:].mean(-1)[both])
                     for v, r in results["returns"].items()}
            print(f"  where both {' and '.join(PAIR)} found a reward (n={both.sum()}): "
                  + ", ".join(f"{v} {m}" for v, m in means.items()))


CONFIGS = {
    "reach": [("paper", {}, {}),
              ("cpu", {"radius": 0.1}, {"num_train": 50})],
    "go_to_ring": [("paper", {}, {}),
                   ("cpu", {"spawn_half_size": 0.25},
                    {"min_radius": 1.25, "max_radius": 2.0, "num_train": 20})],
    "point_nav": [("paper, as figure 7 runs it", {}, {})],
}


def found_rate(task: str, env_knobs: dict, task_knobs: dict, seeds: int = 3,
               episodes: int = 5, seed: int = 0) -> tuple[float, float, int, float]:
    """Fraction of (held-out task, adaptation seed) whose ``episodes`` episodes of
    uniform actions score a positive reward; also the per-episode rate, the number of
    held-out tasks and env steps/s."""
    import gin

    from iwx.envs import go_to_ring, point_nav, reach
    vec_cls, tasks_cls, env_name = {
        "reach": (reach.ReachVec, reach.ReachTasks, "ReachEnv"),
        "go_to_ring": (go_to_ring.GoToRingVec, go_to_ring.GoToRingTasks, "GoToRingEnv"),
        "point_nav": (point_nav.PointNavVec, point_nav.PointNavTasks, "PointNavVec")}[task]
    gin.clear_config()
    gin.parse_config([f"{env_name}.{k} = {v!r}" for k, v in env_knobs.items()])
    goals = tasks_cls(**task_knobs).split(seed).test
    rows = np.repeat(goals, seeds, axis=0)                 # row = task * seeds + seed
    vec = vec_cls(rows, None)
    rng = np.random.default_rng(seed)
    found = np.zeros(len(rows), bool)
    per_episode, steps, start = [], 0, time.time()
    low, high = vec.action_low, vec.action_high
    for episode in range(episodes):
        vec.reset(seed=[seed, 2, episode])
        got = np.zeros(len(rows), bool)
        for _ in range(vec.episode_length):
            unit = rng.uniform(-1.0, 1.0, (len(rows), vec.action_dim))
            _, reward, terminated, truncated = vec.step(low + (unit + 1) / 2 * (high - low))
            steps += len(rows)
            got |= reward > 0
            if np.all(terminated | truncated):
                break
        per_episode.append(got.mean())
        found |= got
    return float(found.mean()), float(np.mean(per_episode)), len(goals), \
        steps / (time.time() - start)


def explore() -> None:
    for task, configs in CONFIGS.items():
        for name, env_knobs, task_knobs in configs:
            found, rate, tasks, speed = found_rate(task, env_knobs, task_knobs)
            print(f"{task} ({name}: env {env_knobs}, tasks {task_knobs}): {tasks} held-out "
                  f"tasks × 3 seeds, uniform actions: found in 5 episodes {found:.3f}, "
                  f"per episode {rate:.3f} ({speed:.0f} env steps/s)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "records":
        records(sys.argv[2:])
    elif sys.argv[1:] == ["explore"]:
        explore()
    else:
        sys.exit(__doc__)
