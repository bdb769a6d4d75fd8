"""Many single-task environments stepped in lockstep, one row per task.

The loops talk to a *task vector*: an object with

    num_envs, episode_length, action_dim, action_low, action_high
    observation_spec() -> {key: shape}          (task_id has shape ())
    set_tasks(params [B, P], task_ids [B] | None)
    reset(seed=None) -> obs {key: [B, ...]}
    step(actions [B, A] in env units) -> obs, reward [B], terminated [B], truncated [B]

:class:`~iwx.envs.point_nav.PointNavVec` implements it with numpy directly.
:class:`TaskVec` implements it over B physics-based single-task environments
(:class:`TaskEnv`: the gymnasium API plus ``set_task``), which are built once
and re-pointed at new tasks, because building a MuJoCo model takes far longer
than an episode's reset.

``reset(seed)`` takes an int or a sequence of ints (e.g. ``[run_seed, phase,
episode]``); row i is reset with a seed spawned from it, so one seed fixes
every row's start state and the rows differ from each other.

A row whose episode has ended is not stepped again until the next reset: it
repeats its last observation with reward 0 and keeps its end flags.

What every env refuses (task vectors and single-task envs alike, through
:mod:`iwx.envs.guards`, checked before any state changes, so that a refused
step leaves the episode exactly as it was):

- actions of any shape but exactly ``(B, A)`` for a task vector and ``(A,)``
  for a single-task env (no broadcasting of a scalar, a ``[B]`` vector or a
  ``(1, A)`` row), and actions that are not real numbers: ValueError;
- actions with a NaN or an infinity anywhere (also in a row whose episode
  has ended): ValueError naming the rows and entries; they are never clipped;
- ``step()`` before the first ``reset()``, or after ``set_tasks`` (which
  starts new tasks: reset them first): RuntimeError;
- a single-task env stepped after its episode ended (terminated or
  truncated): RuntimeError "episode ended; call reset()". A task vector
  instead repeats the ended rows as described above.

Finite actions outside the action box are clipped to it by every env (point
navigation to [-0.1, 0.1] per dimension, the others to their
``action_space``); the half-cheetah's control cost is paid on the clipped
action.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import gymnasium as gym
import numpy as np

from iwx.envs.guards import check_action, check_running

PRIVILEGED_KEYS = ("task_id", "goal")   # what the critic may see in training, never the prior


class TaskEnv(gym.Env):
    """One task of a distribution, with the gymnasium API.

    Subclasses build their physics in ``__init__(privileged=...)`` and define
    ``episode_length`` (control steps) and a Dict ``observation_space`` that
    holds the privileged keys (``task_id``, and ``goal`` where the task has a
    goal descriptor) exactly when ``privileged`` is true. ``set_task(params,
    task_id)`` re-points the env at another task without rebuilding it.
    """

    metadata = {"render_modes": ["rgb_array"]}
    episode_length: int

    def set_task(self, params: np.ndarray, task_id: int | None) -> None:
        raise NotImplementedError


def seed_sequence(seed: int | Sequence[int] | None) -> np.random.SeedSequence | None:
    if seed is None:
        return None
    entropy = [int(seed)] if np.isscalar(seed) else [int(s) for s in seed]
    return np.random.SeedSequence(entropy)


def space_shape(space: gym.Space) -> tuple[int, ...]:
    return () if isinstance(space, gym.spaces.Discrete) else tuple(space.shape)


class TaskVec:
    """B :class:`TaskEnv` rows behind the task-vector interface (see module doc).

    ``make_env(privileged=bool) -> TaskEnv``. Rows are built lazily and kept:
    ``set_tasks`` with more rows builds the missing ones, with fewer uses the
    first ones.
    """

    def __init__(self, make_env: Callable[..., TaskEnv], params: np.ndarray,
                 task_ids: np.ndarray | None = None):
        self._make_env = make_env
        self.privileged = task_ids is not None
        self._envs: list[TaskEnv] = []
        self.set_tasks(params, task_ids)
        first = self._envs[0]
        self.episode_length = int(first.episode_length)
        self.action_low = np.asarray(first.action_space.low, np.float64)
        self.action_high = np.asarray(first.action_space.high, np.float64)
        self._spec = {k: space_shape(s) for k, s in first.observation_space.spaces.items()}
        self._last = None

    @property
    def action_dim(self) -> int:
        return int(self.action_low.shape[0])

    @property
    def envs(self) -> list[TaskEnv]:
        return self._envs[:self.num_envs]

    def observation_spec(self) -> dict[str, tuple[int, ...]]:
        return dict(self._spec)

    def set_tasks(self, params: np.ndarray, task_ids: np.ndarray | None = None) -> None:
        if (task_ids is not None) != self.privileged:
            raise ValueError("a TaskVec built for training tasks (with ids) cannot take held-out "
                             "tasks (without) or vice versa; build another one")
        params = np.asarray(params, np.float64)
        params = params.reshape(len(params), -1)
        self.num_envs = len(params)
        while len(self._envs) < self.num_envs:
            self._envs.append(self._make_env(privileged=self.privileged))
        self.params = params
        self.task_ids = None if task_ids is None else np.asarray(task_ids, np.int64)
        for i, env in enumerate(self.envs):
            env.set_task(params[i], None if task_ids is None else int(task_ids[i]))
        self._last = None        # new tasks (maybe new rows): step only after a reset

    def _stack(self, rows: list[dict]) -> dict[str, np.ndarray]:
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

    def reset(self, seed: int | Sequence[int] | None = None) -> dict[str, np.ndarray]:
        seq = seed_sequence(seed)
        seeds = ([None] * self.num_envs if seq is None else
                 [int(s.generate_state(1)[0]) for s in seq.spawn(self.num_envs)])
        self._last = [env.reset(seed=s)[0] for env, s in zip(self.envs, seeds)]
        self._done = np.zeros(self.num_envs, bool)
        self._terminated = np.zeros(self.num_envs, bool)
        self._truncated = np.zeros(self.num_envs, bool)
        return self._stack(self._last)

    def step(self, actions: np.ndarray):
        owner = type(self).__name__
        check_running(owner, started=self._last is not None,
                      hint=" (a new vector, or new tasks from set_tasks)")
        actions = check_action(actions, (self.num_envs, self.action_dim), owner)
        reward = np.zeros(self.num_envs)
        for i, env in enumerate(self.envs):
            if self._done[i]:
                continue
            obs, r, term, trunc, _ = env.step(actions[i])
            self._last[i], reward[i] = obs, r
            self._terminated[i], self._truncated[i] = term, trunc
            self._done[i] = term or trunc
        return (self._stack(self._last), reward, self._terminated.copy(),
                self._truncated.copy())

    @property
    def done(self) -> np.ndarray:
        """[B] rows whose episode has ended since the last reset."""
        return self._done.copy()

    def render(self, row: int = 0, **kwargs) -> np.ndarray:
        return self.envs[row].render(**kwargs)

    def close(self) -> None:
        for env in self._envs:
            env.close()
