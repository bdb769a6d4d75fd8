"""Reach with a simulated Kinova Jaco arm (paper appendix B, "Reach").

The scene is dm_control.manipulation's reach scene, rebuilt as our own
composer task from ``dm_control.manipulation.shared`` pieces: the
``arenas.Standard`` floor (a ground plane at z = 0 that plays the table), a
``kinova.JacoArm`` mounted at ``robots.ARM_OFFSET`` = (0, 0.4, 0) and a
``kinova.JacoHand`` on its wrist whose tool-centre point is the *pinch site*
(as ``robots.make_hand`` configures it). The Jaco meshes ship with dm_control;
nothing is downloaded.

Why our own task and not ``manipulation.load('reach_site_features')``: that
task draws a new target at every reset from the composer random state, pays
per-substep observable updates, adds camera observables and bounding-box
sites, and its reward is shaped (``rewards.tolerance`` with margin 0.05).
Overriding three of its methods and disabling its observables would leave
little of it; a small task that reuses the same entities, the same arm
initialiser and the same workspace numbers is clearer.

Task (one row of the distribution = one target, fixed for the whole task):
    params [P = 3]: the target's global position (x, y, z). ``ReachTasks``
    draws it uniformly from the cube x, y in [-0.2, 0.2], z in [0.02, 0.42]
    (side 0.4, as the paper says; dm_control's reach-site box is the same
    except z in [0.02, 0.40], which is not a cube). The target is a visual-only
    red sphere site of radius ``radius`` attached to the world; ``set_task``
    stores it and the next reset writes it into ``model.site_pos`` through
    ``physics.bind`` (no MJCF edit, no recompile). Sites never collide, so the
    target has no effect on the dynamics.

Reward (per control step, on the state after the step):
    1.0 if || pinch_site_xpos - target || <= radius (0.05, bindable) else 0.0
    (:func:`reach_reward`). No shaping, no action cost.

Termination: none. Episodes are truncated after ``time_limit`` = 10 s at
``control_timestep`` = 0.04 s (25 steps/s), i.e. ``episode_length`` = 250
control steps; both are bindable. The physics step is the arena's 0.002 s, so
one control step is 20 physics steps.

Actions: dm_control's actuators for this arm and hand, in env units: nine
velocity servos (joint-velocity targets, MuJoCo ``velocity`` actuators):
arm joints 1-3 in [-0.628, 0.628] rad/s (36 deg/s), arm joints 4-6 in
[-0.838, 0.838] rad/s (48 deg/s), the three fingers in [-5, 5] rad/s. The
action is clipped to these bounds (MuJoCo would clamp it anyway).

Start state (every reset, drawn from the composer random state, which is
reseeded from ``reset(seed=...)``, exactly as dm_control's Reach does it): all
fingers set to one closure factor ~ U[0, 1]; then
``ToolCenterPointInitializer`` samples a pinch-site position uniformly in
x, y in [-0.2, 0.2], z in [0.02, 0.4] with the hand pointing down and solves
inverse kinematics for the arm joints (up to 10 IK attempts with random joint
restarts per sample, up to 10 samples, rejecting self-collisions and
collisions with the floor); a reset that still fails is retried
(``max_reset_attempts`` = 5) from the same random stream. Joint velocities
start at zero. The start state does not depend on the target.

Observations (float32; what every network may see):
    proprio [24]: arm joint angles as interleaved (sin q1, cos q1, ..., sin q6,
        cos q6) [12] (joints 1, 4, 5, 6 are unlimited hinges), arm joint
        velocities [6], finger joint angles [3] (radians, in [0.15, 1.35]),
        finger joint velocities [3]. These are the arm's and hand's
        ``joints_pos``/``joints_vel`` observables of dm_control's "proprio"
        category. The joint-torque sensors (dm_control's "ftt" category) are
        left out: the paper asks for proprioception, global position and
        orientation only.
    position [3]: global position of the pinch site (dm_control's
        ``pinch_site_pos``).
    orientation [9]: the pinch site's global rotation matrix, row-major
        (dm_control's ``pinch_site_rmat``).
  Privileged (only when ``privileged=True``; the critic's, never the prior's):
    task_id: np.int64 scalar, the id given to ``set_task``.
  There is no ``goal`` key and nothing else reveals the target.
  Observations are read straight from ``physics.data`` once per control step
  instead of through composer observables (which are all disabled here);
  the values equal dm_control's observables with the leading singleton buffer
  dimension removed, and this saves their per-physics-substep updates
  (~20% of the step time).

Seeding: ``reset(seed=s)`` seeds gymnasium's ``np_random`` with ``s`` and
reseeds the composer ``RandomState`` from one draw of it, so the same seed
gives the same start state whatever the target; ``reset()`` without a seed
continues the stream.

The inverse-kinematics solver logs an absl warning for every non-converged
attempt (several per reset are normal: the initialiser just retries); a
logging filter on the absl logger drops exactly those records.
"""

from __future__ import annotations

import dataclasses
import logging

import gymnasium as gym
import numpy as np
from dm_control import composer
from dm_control.composer import initializers
from dm_control.composer.variation import distributions
from dm_control.entities.manipulators import kinova
from dm_control.manipulation.shared import arenas, robots, workspaces

import gin
from iwx.envs.guards import check_action, check_running
from iwx.envs.tasks import TaskSplit, split_in_order, task_generator
from iwx.envs.vector import TaskEnv, TaskVec

TARGET_LOW = (-0.2, -0.2, 0.02)     # the task distribution's cube (side 0.4)
TARGET_HIGH = (0.2, 0.2, 0.42)
TCP_LOW = (-0.2, -0.2, 0.02)        # dm_control reach-site start box of the pinch site
TCP_HIGH = (0.2, 0.2, 0.4)
RADIUS = 0.05
TIME_LIMIT = 10.0
CONTROL_TIMESTEP = 0.04
PROPRIO_DIM = 24
_SPLIT_CONSTANT = 0x4EAC


class _DropIKConvergenceWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.filename == "inverse_kinematics.py"
                    and record.getMessage().startswith("Failed to converge"))


_IK_FILTER = _DropIKConvergenceWarnings()
if not any(isinstance(f, _DropIKConvergenceWarnings) for f in logging.getLogger("absl").filters):
    logging.getLogger("absl").addFilter(_IK_FILTER)


def reach_reward(pinch_position: np.ndarray, target: np.ndarray,
                 radius: float = RADIUS) -> np.ndarray:
    """1.0 where ||pinch - target|| <= radius, else 0.0. [..., 3] -> [...]."""
    distance = np.linalg.norm(np.asarray(pinch_position) - np.asarray(target), axis=-1)
    return np.where(distance <= radius, 1.0, 0.0)


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ReachTasks:
    """Targets uniform in the box [low, high] (default: the side-0.4 cube above).

    One seeded draw of ``num_train + num_validation + num_test`` targets, split
    in that order, so held-out targets never appear in training.
    ``seed=None`` means: derive it from the run's seed.
    """

    num_train: int = 300
    num_validation: int = 3
    num_test: int = 30
    low: tuple[float, float, float] = TARGET_LOW
    high: tuple[float, float, float] = TARGET_HIGH
    seed: int | None = None

    def split(self, run_seed: int) -> TaskSplit:
        rng = task_generator(run_seed, self.seed, _SPLIT_CONSTANT)
        total = self.num_train + self.num_validation + self.num_test
        targets = rng.uniform(np.asarray(self.low, np.float64),
                              np.asarray(self.high, np.float64), size=(total, 3))
        return split_in_order(targets, self.num_train, self.num_validation)


class _ReachTask(composer.Task):
    """The composer task: Jaco arm + hand on the standard arena, one target site."""

    def __init__(self, radius: float, control_timestep: float):
        self._arena = arenas.Standard()
        self._arm = kinova.JacoArm()                         # observables stay disabled
        self._hand = kinova.JacoHand(use_pinch_site_as_tcp=True)
        self._arm.attach(self._hand)
        self._arena.attach_offset(self._arm, offset=robots.ARM_OFFSET)
        self.control_timestep = control_timestep
        self.radius = float(radius)
        self._tcp_initializer = initializers.ToolCenterPointInitializer(
            self._hand, self._arm,
            position=distributions.Uniform(TCP_LOW, TCP_HIGH),
            quaternion=workspaces.DOWN_QUATERNION)
        self.target_site = self._arena.mjcf_model.worldbody.add(
            "site", name="target", type="sphere", size=[self.radius],
            rgba=(1.0, 0.0, 0.0, 0.3))
        self.target = np.zeros(3)

    @property
    def root_entity(self):
        return self._arena

    @property
    def arm(self):
        return self._arm

    @property
    def hand(self):
        return self._hand

    def initialize_episode(self, physics, random_state):
        # Same draws in the same order as dm_control's Reach: grasp, then the arm.
        self._hand.set_grasp(physics, close_factors=random_state.uniform())
        self._tcp_initializer(physics, random_state)
        physics.bind(self.target_site).pos = self.target

    def get_reward(self, physics):
        pinch = physics.bind(self._hand.tool_center_point).xpos
        target = physics.bind(self.target_site).xpos
        return float(reach_reward(pinch, target, self.radius))


@gin.configurable
class ReachEnv(TaskEnv):
    """One Reach task (one target) with the gymnasium API; see the module doc."""

    def __init__(self, *, privileged: bool, radius: float = RADIUS,
                 time_limit: float = TIME_LIMIT, control_timestep: float = CONTROL_TIMESTEP,
                 max_reset_attempts: int = 5):
        self.privileged = bool(privileged)
        self.radius = float(radius)
        self.control_timestep = float(control_timestep)
        self.episode_length = round(time_limit / control_timestep)
        self._task = _ReachTask(radius, control_timestep)
        # We count steps ourselves, so composer never ends an episode on time.
        self._env = composer.Environment(
            self._task, time_limit=float("inf"), random_state=0,
            recompile_mjcf_every_episode=False, max_reset_attempts=max_reset_attempts)
        physics = self._env.physics
        arm, hand = self._task.arm, self._task.hand
        self._arm_qpos = np.asarray(physics.bind(arm.joints).qposadr).ravel()
        self._arm_qvel = np.asarray(physics.bind(arm.joints).dofadr).ravel()
        self._hand_qpos = np.asarray(physics.bind(hand.joints).qposadr).ravel()
        self._hand_qvel = np.asarray(physics.bind(hand.joints).dofadr).ravel()
        self._pinch = int(physics.bind(hand.tool_center_point).element_id)
        self._target_id = int(physics.bind(self._task.target_site).element_id)
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(np.asarray(spec.minimum, np.float64),
                                           np.asarray(spec.maximum, np.float64),
                                           dtype=np.float64)
        spaces = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (PROPRIO_DIM,), np.float32),
            "position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            "orientation": gym.spaces.Box(-1.0, 1.0, (9,), np.float32),
        }
        if self.privileged:
            spaces["task_id"] = gym.spaces.Discrete(1_000_000)
        self.observation_space = gym.spaces.Dict(spaces)
        self._task_id: int | None = None
        self._has_task = False
        self._t = 0
        self._started = self._ended = False

    # --- task -----------------------------------------------------------------
    def set_task(self, params: np.ndarray, task_id: int | None) -> None:
        """Target := params (x, y, z); the next reset writes it into the physics."""
        target = np.asarray(params, np.float64).reshape(3)
        if self.privileged and task_id is None:
            raise ValueError("a privileged ReachEnv needs a task_id")
        self._task.target = target.copy()
        self._task_id = None if task_id is None else int(task_id)
        self._has_task = True

    # --- helpers for tests and analysis ------------------------------------------
    @property
    def physics(self):
        """The composer physics (a weak proxy; do not keep it across resets)."""
        return self._env.physics

    def pinch_position(self) -> np.ndarray:
        """Global position of the pinch site (the tool-centre point) now."""
        return self._env.physics.data.site_xpos[self._pinch].copy()

    def target_position(self) -> np.ndarray:
        """The target's global position in the physics (what the reward uses; valid after reset)."""
        return self._env.physics.data.site_xpos[self._target_id].copy()

    def current_reward(self) -> float:
        """The reward the current physics state earns (what step() returns after stepping)."""
        target = self._env.physics.data.site_xpos[self._target_id]
        return float(reach_reward(self.pinch_position(), target, self.radius))

    # --- gymnasium API ------------------------------------------------------------
    def _observation(self) -> dict:
        data = self._env.physics.data
        q = data.qpos[self._arm_qpos]
        proprio = np.concatenate([
            np.stack([np.sin(q), np.cos(q)], axis=-1).ravel(),
            data.qvel[self._arm_qvel],
            data.qpos[self._hand_qpos],
            data.qvel[self._hand_qvel],
        ]).astype(np.float32)
        obs = {
            "proprio": proprio,
            "position": data.site_xpos[self._pinch].astype(np.float32),
            "orientation": data.site_xmat[self._pinch].astype(np.float32),
        }
        if self.privileged:
            obs["task_id"] = np.int64(self._task_id)
        return obs

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if not self._has_task:
            raise RuntimeError("set_task() before reset()")
        self._env.random_state.seed(int(self.np_random.integers(2**32)))
        self._env.reset()
        self._t = 0
        self._started, self._ended = True, False
        return self._observation(), {}

    def step(self, action):
        owner = type(self).__name__
        check_running(owner, started=self._started, ended=self._ended)
        action = np.clip(check_action(action, self.action_space.shape, owner),
                         self.action_space.low, self.action_space.high)
        timestep = self._env.step(action)
        self._t += 1
        reward = float(timestep.reward)
        truncated = self._t >= self.episode_length
        self._ended = truncated
        return self._observation(), reward, False, truncated, {}

    def render(self, height: int = 240, width: int = 320, camera_id: int | str = -1) -> np.ndarray:
        """uint8 [H, W, 3] from the free camera (needs MUJOCO_GL=egl or osmesa)."""
        return self._env.physics.render(height=height, width=width, camera_id=camera_id)

    def close(self) -> None:
        self._env.close()


@gin.configurable
class ReachVec(TaskVec):
    """B Reach rows behind the task-vector interface (iwx.envs.vector).

    The rows are :class:`ReachEnv` instances; bind their settings on ``ReachEnv``
    (e.g. ``ReachEnv.<setting> = ...``), which gin applies to every row.
    """

    def __init__(self, params, task_ids=None):
        super().__init__(ReachEnv, params, task_ids)
