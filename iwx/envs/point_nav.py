"""Sparse 2D navigation, as PEARL defines it (paper §6, "Sparse 2D navigation").

A point starts at the origin; every task is a goal on the upper half of the
unit circle. Actions are clipped to [-0.1, 0.1] per dimension and added to the
position (s <- s + a). Episodes last 20 steps and are only ever truncated.

Rewards (per step, after the move):
    sparse: 1 - ||s - g||  if ||s - g|| <= goal_radius (0.2), else 0
    dense:  -||s - g||

Observations are dicts. ``position`` is what every network may see;
``task_id`` (training tasks only) is a privileged input for the critic; the
goal itself is exposed as ``goal`` only when ``expose_goal`` is set (a
training-time goal descriptor for the ψᵀf(g) critic). Held-out tasks never
carry privileged keys.
"""

from __future__ import annotations

import dataclasses

import gin
import gymnasium as gym
import numpy as np

from iwx.envs.guards import check_action, check_running
from iwx.envs.tasks import TaskSplit, split_in_order, task_generator

MAX_STEP = 0.1


def point_step(position: np.ndarray, action: np.ndarray) -> np.ndarray:
    """s' = s + clip(a, -0.1, 0.1). position, action: [..., 2]."""
    return position + np.clip(action, -MAX_STEP, MAX_STEP)


def point_reward(position: np.ndarray, goal: np.ndarray, *, sparse: bool,
                 goal_radius: float = 0.2) -> np.ndarray:
    """Reward at ``position`` for ``goal``; both [..., 2] -> [...]."""
    distance = np.linalg.norm(position - goal, axis=-1)
    if not sparse:
        return -distance
    return np.where(distance <= goal_radius, 1.0 - distance, 0.0)


def oracle_action(position: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """A goal-knowing policy: head straight for the goal as fast as allowed."""
    return np.clip(goal - position, -MAX_STEP, MAX_STEP)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class PointNavTasks:
    """The task distribution: goals at angles ~ U[0, π] on a circle of radius 1.

    One seeded draw of ``num_train + num_validation + num_test`` goals, split
    in that order, so that held-out goals can never appear in training.
    ``seed=None`` means: derive it from the run's seed.
    """

    num_train: int = 80
    num_validation: int = 3
    num_test: int = 30
    radius: float = 1.0
    seed: int | None = None

    def split(self, run_seed: int) -> TaskSplit:
        rng = task_generator(run_seed, self.seed, 0x7A5C)
        total = self.num_train + self.num_validation + self.num_test
        angles = rng.uniform(0.0, np.pi, size=total)
        goals = self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
        return split_in_order(goals, self.num_train, self.num_validation)


@gin.configurable
class PointNavVec:
    """Many point-navigation tasks stepped together (one row per task).

    The same dynamics and rewards as :class:`PointNavEnv`, vectorised with
    numpy, because the agent acts in hundreds of tasks at once.
    ``goals``: [B, 2]. ``task_ids``: [B] ints for training tasks, or None for
    held-out tasks (then no privileged key is emitted). Every row's episode
    ends (truncated) at the same step; stepping on after that repeats the last
    observation with reward 0, as every task vector does (iwx.envs.vector).
    ``emit_sparse_reward``: every row also observes ``sparse_reward`` [()], the sparse
    reward of the step that led to this observation (0 after a reset), whichever reward
    the vector pays. PEARL's context encoder reads it (``ContextEncoder.reward_key``)
    when meta-training on the dense reward: in PEARL's code the encoder sees the sparse
    reward while the actor and critic learn from the dense one (paper §6).
    """

    observation_keys = ("position",)

    def __init__(self, goals: np.ndarray, task_ids: np.ndarray | None = None, *,
                 sparse: bool = True, episode_length: int = 20,
                 goal_radius: float = 0.2, expose_goal: bool = False,
                 emit_sparse_reward: bool = False):
        self.goals = np.asarray(goals, dtype=np.float64).reshape(-1, 2)
        self.task_ids = None if task_ids is None else np.asarray(task_ids, np.int64)
        self.sparse = sparse
        self.episode_length = episode_length
        self.goal_radius = goal_radius
        self.expose_goal = expose_goal
        self.emit_sparse_reward = emit_sparse_reward
        self.num_envs = len(self.goals)
        self.action_low = np.full(2, -MAX_STEP)
        self.action_high = np.full(2, MAX_STEP)
        self._position = np.zeros((self.num_envs, 2))
        self._sparse_reward = np.zeros(self.num_envs, np.float32)
        self._t = 0
        self._started = False

    @property
    def action_dim(self) -> int:
        return 2

    def observation_spec(self) -> dict[str, tuple[int, ...]]:
        spec = {"position": (2,)}
        if self.emit_sparse_reward:
            spec["sparse_reward"] = ()
        if self.task_ids is not None:
            spec["task_id"] = ()
            if self.expose_goal:
                spec["goal"] = (2,)
        return spec

    def _obs(self) -> dict[str, np.ndarray]:
        obs = {"position": self._position.astype(np.float32)}
        if self.emit_sparse_reward:
            obs["sparse_reward"] = self._sparse_reward.copy()
        if self.task_ids is not None:
            obs["task_id"] = self.task_ids.copy()
            if self.expose_goal:
                obs["goal"] = self.goals.astype(np.float32)
        return obs

    def set_tasks(self, goals: np.ndarray, task_ids: np.ndarray | None = None) -> None:
        """Re-point the rows at other goals (the task-vector interface, iwx.envs.vector)."""
        goals = np.asarray(goals, dtype=np.float64).reshape(-1, 2)
        if len(goals) != self.num_envs:
            raise ValueError(f"PointNavVec has {self.num_envs} rows, got {len(goals)} goals")
        self.goals = goals
        self.task_ids = None if task_ids is None else np.asarray(task_ids, np.int64)
        self._started = False        # new tasks: step only after a reset

    def reset(self, seed=None) -> dict[str, np.ndarray]:
        """Every row back to the origin; ``seed`` is accepted and unused (no randomness)."""
        self._position = np.zeros((self.num_envs, 2))
        self._sparse_reward = np.zeros(self.num_envs, np.float32)
        self._t = 0
        self._started = True
        return self._obs()

    def step(self, action: np.ndarray):
        """action [B, 2] in env units -> obs, reward [B], terminated [B], truncated [B]."""
        owner = type(self).__name__
        check_running(owner, started=self._started,
                      hint=" (a new vector, or new tasks from set_tasks)")
        action = check_action(action, (self.num_envs, 2), owner)
        terminated = np.zeros(self.num_envs, dtype=bool)
        if self._t >= self.episode_length:      # every row has ended: repeat, reward 0
            self._sparse_reward = np.zeros(self.num_envs, np.float32)
            return self._obs(), np.zeros(self.num_envs), terminated, np.ones(self.num_envs, bool)
        self._position = point_step(self._position, action)
        self._t += 1
        reward = point_reward(self._position, self.goals, sparse=self.sparse,
                              goal_radius=self.goal_radius)
        if self.emit_sparse_reward:
            self._sparse_reward = (reward if self.sparse else point_reward(
                self._position, self.goals, sparse=True,
                goal_radius=self.goal_radius)).astype(np.float32)
        truncated = np.full(self.num_envs, self._t >= self.episode_length)
        return self._obs(), reward, terminated, truncated


class PointNavEnv(gym.Env):
    """One point-navigation task with the gymnasium API.

    ``reset(seed=)`` is accepted for API compatibility: the start state is
    deterministic (the origin), so the seed changes nothing. Stepping after the
    episode was truncated is a RuntimeError (iwx.envs.vector lists what every
    env refuses).
    """

    metadata = {"render_modes": []}

    def __init__(self, goal, task_id: int | None = None, *, sparse: bool = True,
                 episode_length: int = 20, goal_radius: float = 0.2,
                 expose_goal: bool = False):
        ids = None if task_id is None else np.array([task_id])
        self._vec = PointNavVec(np.asarray(goal)[None], ids, sparse=sparse,
                                episode_length=episode_length,
                                goal_radius=goal_radius, expose_goal=expose_goal)
        self.action_space = gym.spaces.Box(-MAX_STEP, MAX_STEP, (2,), np.float64)
        spaces = {"position": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)}
        if task_id is not None:
            spaces["task_id"] = gym.spaces.Discrete(task_id + 1)
            if expose_goal:
                spaces["goal"] = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)
        self._started = self._ended = False

    @staticmethod
    def _single(obs):
        return {k: v[0] for k, v in obs.items()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs = self._single(self._vec.reset())
        self._started, self._ended = True, False
        return obs, {}

    def step(self, action):
        owner = type(self).__name__
        check_running(owner, started=self._started, ended=self._ended)
        action = check_action(action, (2,), owner)
        obs, reward, terminated, truncated = self._vec.step(action[None])
        self._ended = bool(terminated[0] or truncated[0])
        return (self._single(obs), float(reward[0]), bool(terminated[0]),
                bool(truncated[0]), {})


@gin.configurable
def point_nav_oracle(goals: np.ndarray, make_env=PointNavVec) -> np.ndarray:
    """Per-goal return of the goal-knowing policy :func:`oracle_action` (one episode)."""
    env = make_env(goals, None)
    env.reset()
    position = np.zeros((len(goals), 2))
    total = np.zeros(len(goals))
    for _ in range(env.episode_length):
        obs, reward, terminated, truncated = env.step(oracle_action(position, env.goals))
        position = obs["position"].astype(np.float64)
        total += reward
        if np.all(terminated | truncated):
            break
    return total
