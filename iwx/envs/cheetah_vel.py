"""Half-cheetah velocity, as PEARL defines it (paper §6).

The MuJoCo half-cheetah (gymnasium's ``HalfCheetah-v5`` model and physics:
frame skip 5, dt = 0.05 s, actions in [-1, 1]^6, start state perturbed by
U(±0.1) on positions and 0.1·N(0, 1) on velocities) must run forward at a
task's goal velocity:

    reward = -|v - v_goal| - 0.05 ‖a‖²          (v: forward velocity of the torso)

v_goal ~ U(0, 3); episodes last 200 steps and are only ever truncated.
100 training and 30 held-out tasks (plus 3 validation tasks for choosing
adaptation settings, appendix A.2).

Observations: ``proprio`` (17: joint angles without the global x, and all
velocities: gymnasium's default) for every network; ``task_id`` (training tasks
only) for the critic. Decision: PEARL also appends the torso's centre of mass;
its x grows without bound and says nothing about the velocity task, so it is
left out. A policy that stands still scores about -200·E[v_goal] ≈ -300 per
episode (:func:`standing_still_returns`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings

import gin
import gymnasium as gym
import numpy as np

from iwx.envs.guards import check_action, check_running
from iwx.envs.tasks import TaskSplit, split_in_order, task_generator
from iwx.envs.vector import TaskEnv, TaskVec


def velocity_reward(velocity, goal_velocity, action, *, ctrl_cost: float = 0.05):
    """-|v - v_goal| - ctrl_cost ‖a‖²; action [..., 6] -> [...]."""
    action = np.asarray(action)
    return -np.abs(np.asarray(velocity) - goal_velocity) - ctrl_cost * np.sum(action ** 2, -1)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class CheetahVelTasks:
    """Goal velocities ~ U[low, high]: one seeded draw, split train / validation / test."""

    num_train: int = 100
    num_validation: int = 3
    num_test: int = 30
    low: float = 0.0
    high: float = 3.0
    seed: int | None = None

    def split(self, run_seed: int) -> TaskSplit:
        rng = task_generator(run_seed, self.seed, 0xC4EE)
        total = self.num_train + self.num_validation + self.num_test
        goals = rng.uniform(self.low, self.high, size=(total, 1))
        return split_in_order(goals, self.num_train, self.num_validation)


@contextlib.contextmanager
def _quiet_deprecated_compiler_notice():
    """gymnasium's half_cheetah.xml uses ``settotalmass``, which MuJoCo 3.17 flags as
    deprecated by writing MUJOCO_LOG.TXT into the working directory on every build.
    Only that notice is dropped; any other MuJoCo warning still reaches Python's."""
    import mujoco

    previous = mujoco.get_mju_user_warning()

    def handler(message):
        if "settotalmass" not in message:
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


@gin.configurable
class CheetahVelEnv(TaskEnv):
    """One goal velocity. ``params``: [v_goal]."""

    def __init__(self, *, privileged: bool, episode_length: int = 200, ctrl_cost: float = 0.05,
                 reset_noise_scale: float = 0.1):
        from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

        with _quiet_deprecated_compiler_notice():
            self._cheetah = HalfCheetahEnv(reset_noise_scale=reset_noise_scale,
                                           render_mode="rgb_array", width=320, height=240)
        self.privileged = privileged
        self.episode_length = episode_length
        self.ctrl_cost = ctrl_cost
        self.action_space = self._cheetah.action_space
        spaces = {"proprio": gym.spaces.Box(-np.inf, np.inf, (17,), np.float32)}
        if privileged:
            spaces["task_id"] = gym.spaces.Discrete(1_000_000)
        self.observation_space = gym.spaces.Dict(spaces)
        self.goal_velocity = 0.0
        self.task_id = None
        self._t = 0
        self._started = self._ended = False

    def set_task(self, params, task_id):
        self.goal_velocity = float(np.asarray(params).reshape(-1)[0])
        self.task_id = task_id

    def _obs(self, proprio):
        obs = {"proprio": np.asarray(proprio, np.float32)}
        if self.privileged:
            obs["task_id"] = np.int64(self.task_id)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        proprio, _ = self._cheetah.reset(seed=seed)
        self._t = 0
        self._started, self._ended = True, False
        return self._obs(proprio), {}

    def step(self, action):
        owner = type(self).__name__
        check_running(owner, started=self._started, ended=self._ended)
        action = np.clip(check_action(action, self.action_space.shape, owner), -1.0, 1.0)
        proprio, _, _, _, info = self._cheetah.step(action)
        self._t += 1
        velocity = float(info["x_velocity"])
        reward = float(velocity_reward(velocity, self.goal_velocity, action,
                                       ctrl_cost=self.ctrl_cost))
        truncated = self._t >= self.episode_length
        self._ended = truncated
        return self._obs(proprio), reward, False, truncated, {"velocity": velocity}

    @property
    def model_and_data(self):
        """(MjModel, MjData) of the simulated cheetah (what a renderer draws from)."""
        inner = self._cheetah.unwrapped            # gymnasium's HalfCheetahEnv
        return inner.model, inner.data

    def render(self, height=None, width=None, camera_id=None):
        return self._cheetah.render()

    def close(self):
        self._cheetah.close()


@gin.configurable
class CheetahVelVec(TaskVec):
    """B half-cheetah velocity tasks stepped together (the task-vector interface).

    The rows are :class:`CheetahVelEnv` instances; bind their settings on ``CheetahVelEnv``
    (e.g. ``CheetahVelEnv.<setting> = ...``), which gin applies to every row.
    """

    def __init__(self, params, task_ids=None):
        super().__init__(CheetahVelEnv, params, task_ids)


@gin.configurable
def standing_still_returns(params: np.ndarray, make_env=CheetahVelVec, seed=(0, 3)) -> np.ndarray:
    """Per-task return of the all-zero action for one episode (the do-nothing reference)."""
    env = make_env(params, None)
    env.reset(seed=list(seed))
    total = np.zeros(env.num_envs)
    alive = np.ones(env.num_envs, bool)
    zero = np.zeros((env.num_envs, env.action_dim))
    for _ in range(env.episode_length):
        _, reward, terminated, truncated = env.step(zero)
        total += np.where(alive, reward, 0.0)
        alive &= ~(terminated | truncated)
    return total
