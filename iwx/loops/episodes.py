"""Playing whole episodes in a vector of environments, one row per task."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def to_env_units(actions: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Map agent actions in [-1, 1] to the environment's box [low, high]."""
    return low + (np.clip(actions, -1.0, 1.0) + 1.0) * 0.5 * (high - low)


def play_episode(env, policy: Callable[[dict], np.ndarray], *, replay=None,
                 rows: np.ndarray | None = None,
                 after_step: Callable[[int], None] | None = None, seed=None,
                 observe: Callable | None = None):
    """One episode in every row of ``env``; steps are appended to ``replay[rows]``.

    ``policy(obs)`` returns actions [B, A] (clipped to [-1, 1] on the way to the
    environment; stored as returned), or ``(actions, extras)`` with per-step
    arrays [B, ...] that the replay stores next to them (iwx.agents.base.contract).
    Rows that terminate early stop recording (the environment may keep stepping
    them). ``observe(obs, actions, rewards, next_obs, done, alive)`` runs after
    every step (agents with memory). ``after_step(t)`` runs after step t
    (1-based) with the replay already holding it — where adaptation does its
    per-unroll update. ``seed`` (int or ints) fixes every row's start state.
    Returns (returns [B], successes [B]: a positive reward was seen; where the env also
    emits the task's sparse reward in its observation (``sparse_reward``: PEARL*'s dense
    meta-training on navigation), a positive sparse reward, since a dense reward is
    never positive and would make every episode a failure).
    """
    obs = env.reset(seed=seed)
    if replay is not None:
        replay.begin_episodes(rows, obs)
    alive = np.ones(env.num_envs, dtype=bool)
    returns = np.zeros(env.num_envs)
    success = np.zeros(env.num_envs, dtype=bool)
    for t in range(env.episode_length):
        actions = policy(obs)
        extras = None
        if isinstance(actions, tuple):
            actions, extras = actions
        next_obs, reward, terminated, truncated = env.step(
            to_env_units(actions, env.action_low, env.action_high))
        if replay is not None and alive.any():
            replay.append(rows[alive], actions[alive], reward[alive],
                          (~terminated[alive]).astype(np.float32),
                          {k: v[alive] for k, v in next_obs.items()},
                          None if extras is None else {k: v[alive] for k, v in extras.items()})
        if observe is not None:
            last = t == env.episode_length - 1
            observe(obs, actions, reward, next_obs, terminated | truncated | last, alive.copy())
        returns += np.where(alive, reward, 0.0)
        hit = next_obs["sparse_reward"] if "sparse_reward" in next_obs else reward
        success |= alive & (hit > 0)
        alive &= ~(terminated | truncated)
        obs = next_obs
        if after_step is not None:
            after_step(t + 1)
        if not alive.any():
            break
    if replay is not None:
        replay.end_episodes(rows)
    return returns, success
