"""A walker on a flat floor must reach a target: the machinery shared by Go To Ring and GTT.

:class:`WalkToTarget` is a ``dm_control.composer`` task (walker + target site on a
``locomotion.arenas.Floor``); :class:`WalkerTargetEnv` wraps one such task behind
the :class:`~iwx.envs.vector.TaskEnv` (gymnasium) API. The concrete task
distributions (:mod:`iwx.envs.go_to_ring`, :mod:`iwx.envs.gtt`) choose the walker,
the floor, the reward values and where the walker starts.

Per control step (after the physics has advanced):

    reward = step_penalty                         (every step, the paper's "immobility penalty")
           + reach_reward   if the walker has reached the target
           + fall_penalty   if a "fall" geom of the walker touches the floor

*Reached* means: at the end of the control step, the horizontal (x, y)
distance between the walker's root body and the target is <=
``distance_tolerance``. *Fallen* means: after any of the control step's
physics steps, the contact list held a contact between one of the task's fall
geoms and the floor's ground plane (an empty fall set, as for the ant, never
falls). Either ends the episode (``terminated``); both on the same step sum
their rewards. Otherwise the episode is cut (``truncated``) after
``episode_length`` control steps. A diverged
physics step (dm_control's PhysicsError) also ends the episode as
``truncated``, with reward 0, the previous observation and
``info["physics_error"] = True``.

Speed (STACK-NOTES): dm_control's own ``GoToTarget`` moves its target in
``initialize_episode_mjcf``, which recompiles the MJCF at every reset. Here the
model is compiled once (``recompile_mjcf_every_episode=False``) and the target
site and the walker are moved through ``physics.bind`` in
``initialize_episode``; a reset costs 0.3 ms (ant) to 0.8 ms (humanoid).
The walker starts in dm_control's upright pose for it (``walker.upright_pose``,
all joints at their reference angles, at rest) with its root at the spawn
(x, y), turned by the spawn yaw about the vertical. The target is a
site (no collisions, no mass), so it cannot influence the walker's dynamics:
two tasks differing only in the target give identical trajectories.

Observations (every key 1-D float32 unless stated):
    proprio      the walker's egocentric proprioception: dm_control's
                 ``walker.observables.proprioception`` (joint angles and
                 velocities, root height, end effectors relative to the root,
                 the world's z axis in the root frame, ...), plus the root's
                 velocimeter, gyro and accelerometer, and the walker's binary
                 touch sensors (and, where the walker has them, force/torque
                 sensors); concatenated in the sorted order of their names.
    position     [3] global position of the walker's root body.
    orientation  [9] global orientation of the root body (row-major rotation matrix).
    task_id      (privileged only) np.int64 scalar, the id given to set_task.
Nothing in these keys depends on the target (no target-relative vectors).
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
from dm_control import composer, mjcf
from dm_control.rl import control

from iwx.envs.guards import check_action, check_running
from iwx.envs.vector import TaskEnv

# dm_control's GoToTarget (locomotion/tasks/go_to_target.py) uses 1.0 m for
# every walker; both task distributions keep it (see their docstrings).
DEFAULT_DISTANCE_TOLERANCE = 1.0
DEFAULT_PHYSICS_TIMESTEP = 0.005     # dm_control's locomotion default


def yaw_quaternion(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by ``yaw`` radians about the world z axis."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class WalkToTarget(composer.Task):
    """Walker + target site on a floor; sparse reach reward, optional fall termination.

    ``fall_geoms``: MJCF geoms of the walker whose contact with the ground
    plane ends the episode with ``fall_penalty``. Set ``spawn_xy``,
    ``spawn_yaw`` and ``target_xy`` before each reset: ``initialize_episode``
    puts the walker (in its upright pose) there and moves the target site.
    """

    def __init__(self, walker, arena, *, distance_tolerance: float, reach_reward: float,
                 step_penalty: float, fall_penalty: float = 0.0, fall_geoms=(),
                 physics_timestep: float = DEFAULT_PHYSICS_TIMESTEP,
                 control_timestep: float = 0.05):
        self._walker = walker
        self._arena = arena
        walker.create_root_joints(arena.attach(walker))
        self.distance_tolerance = float(distance_tolerance)
        self.reach_reward = float(reach_reward)
        self.step_penalty = float(step_penalty)
        self.fall_penalty = float(fall_penalty)
        self._fall_geoms = tuple(fall_geoms)
        # A flat disc showing the target region (sites never collide).
        self._target = arena.mjcf_model.worldbody.add(
            "site", name="target", type="cylinder", pos=(0.0, 0.0, 0.0),
            size=(self.distance_tolerance, 0.005), rgba=(0.9, 0.6, 0.6, 0.5))
        walker.observables.disable_all()
        for obs in self.proprio_observables():
            obs.enabled = True
        self.set_timesteps(physics_timestep=physics_timestep, control_timestep=control_timestep)
        self.spawn_xy = np.zeros(2)
        self.spawn_yaw = 0.0
        self.target_xy = np.zeros(2)
        self.reached = False
        self.fallen = False
        self._touched = False
        self.distance = np.inf

    def proprio_observables(self) -> list:
        obs = self._walker.observables
        return list(obs.proprioception) + list(obs.kinematic_sensors) + list(obs.dynamic_sensors)

    @property
    def root_entity(self):
        return self._arena

    @property
    def walker(self):
        return self._walker

    @property
    def target_site(self):
        return self._target

    def after_compile(self, physics, random_state):
        self._root_joint = mjcf.get_frame_freejoint(self._walker.mjcf_model)
        upright = self._walker.upright_pose
        if upright.qpos is not None:
            raise ValueError("walkers with a non-default upright joint pose are not supported")
        self._upright_z = float(upright.xpos[2])
        self._upright_quat = np.asarray(upright.xquat, np.float64) / np.linalg.norm(upright.xquat)
        ngeom = physics.model.ngeom
        self._is_fall = np.zeros(ngeom, bool)
        if self._fall_geoms:
            self._is_fall[np.asarray(physics.bind(self._fall_geoms).element_id)] = True
        self._is_ground = np.zeros(ngeom, bool)
        self._is_ground[np.asarray(physics.bind(self._arena.ground_geoms).element_id)] = True

    def initialize_episode(self, physics, random_state):
        # The physics was just reset (mj_resetData: every joint at qpos0, all
        # velocities and actuator activations zero), which is the walker's
        # upright pose apart from its root: put the root frame at the spawn, at
        # the upright height and orientation turned by the spawn yaw. (Same
        # state as walker.reinitialize_pose + shift_pose, without their MJCF
        # tree searches, which cost ~1 ms per reset for the humanoid.)
        quat = np.empty(4)
        mujoco.mju_mulQuat(quat, yaw_quaternion(self.spawn_yaw), self._upright_quat)
        root = physics.bind(self._root_joint)
        root.qpos = [self.spawn_xy[0], self.spawn_xy[1], self._upright_z, *quat]
        root.qvel = np.zeros(6)
        physics.bind(self._target).pos = [self.target_xy[0], self.target_xy[1], 0.0]
        self.reached = False
        self.fallen = False
        self.distance = np.inf

    def before_step(self, physics, action, random_state):
        self._walker.apply_action(physics, action, random_state)
        self._touched = False

    def after_substep(self, physics, random_state):
        # Checked after every physics step, so that a touch in the middle of a
        # control step (a hand brushing the floor, a bounce) is not missed.
        if not self._touched:
            self._touched = self.touching_fall_geoms(physics)

    def root_xy(self, physics) -> np.ndarray:
        return np.array(physics.bind(self._walker.root_body).xpos[:2])

    def touching_fall_geoms(self, physics) -> bool:
        """Whether any fall geom is in contact with the ground plane now."""
        ncon = physics.data.ncon
        if ncon == 0 or not self._is_fall.any():
            return False
        g1 = physics.data.contact.geom1[:ncon]
        g2 = physics.data.contact.geom2[:ncon]
        hit = (self._is_fall[g1] & self._is_ground[g2]) | (self._is_fall[g2] & self._is_ground[g1])
        return bool(hit.any())

    def after_step(self, physics, random_state):
        target = np.array(physics.bind(self._target).pos[:2])
        self.distance = float(np.linalg.norm(self.root_xy(physics) - target))
        self.reached = self.distance <= self.distance_tolerance
        self.fallen = self._touched

    def get_reward(self, physics):
        return (self.step_penalty + (self.reach_reward if self.reached else 0.0)
                + (self.fall_penalty if self.fallen else 0.0))

    def should_terminate_episode(self, physics):
        return self.reached or self.fallen

    def get_discount(self, physics):
        return 0.0 if (self.reached or self.fallen) else 1.0


class WalkerTargetEnv(TaskEnv):
    """One task of a walker-to-target distribution (gymnasium API + ``set_task``).

    Subclasses pass the walker and the arena to ``__init__`` and give the number
    of task parameters (``num_params``), the target of a task
    (:meth:`_target_xy`) and the spawn position (:meth:`_spawn_xy`). Every
    reset draws, from ``self.np_random`` and always in this order: a point
    ``u ~ U[-1, 1]^2`` (mapped to the spawn position by :meth:`_spawn_xy`), a
    yaw ``~ U[0, 2π)``, and a seed for the composer environment's own random
    state; so the seed alone fixes the start state, whatever the task.
    """

    num_params: int

    def __init__(self, *, privileged: bool, walker, arena, distance_tolerance: float,
                 reach_reward: float, step_penalty: float, fall_penalty: float = 0.0,
                 fall_geoms=(), episode_seconds: float = 10.0, steps_per_second: float = 20.0,
                 physics_timestep: float = DEFAULT_PHYSICS_TIMESTEP):
        self.privileged = bool(privileged)
        control_timestep = 1.0 / steps_per_second
        self.episode_length = int(round(episode_seconds * steps_per_second))
        self.task = WalkToTarget(walker, arena, distance_tolerance=distance_tolerance,
                                 reach_reward=reach_reward, step_penalty=step_penalty,
                                 fall_penalty=fall_penalty, fall_geoms=fall_geoms,
                                 physics_timestep=physics_timestep,
                                 control_timestep=control_timestep)
        self._env = composer.Environment(self.task, strip_singleton_obs_buffer_dim=True,
                                         recompile_mjcf_every_episode=False,
                                         raise_exception_on_physics_error=True,
                                         random_state=0)
        self._env.reset()      # compiles the model once; the first real reset needs no compile
        spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(np.asarray(spec.minimum, np.float64),
                                           np.asarray(spec.maximum, np.float64),
                                           dtype=np.float64)
        self._proprio_keys = sorted(self._env.observation_spec())
        proprio_dim = sum(int(np.prod(self._env.observation_spec()[k].shape))
                          for k in self._proprio_keys)
        spaces = {"proprio": gym.spaces.Box(-np.inf, np.inf, (proprio_dim,), np.float32),
                  "position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
                  "orientation": gym.spaces.Box(-np.inf, np.inf, (9,), np.float32)}
        if self.privileged:
            spaces["task_id"] = gym.spaces.Discrete(1_000_000)
        self.observation_space = gym.spaces.Dict(spaces)
        self.params: np.ndarray | None = None
        self.task_id: int | None = None
        self._t = 0
        self._started = False
        self._done = False

    # ---- what subclasses define ---------------------------------------------------------
    def _target_xy(self, params: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _spawn_xy(self, u: np.ndarray) -> np.ndarray:
        """Spawn position from u ~ U[-1, 1]^2 (and/or the task's parameters)."""
        raise NotImplementedError

    # ---- TaskEnv -------------------------------------------------------------------------
    @property
    def physics(self):
        return self._env.physics

    @property
    def walker(self):
        return self.task.walker

    def set_task(self, params: np.ndarray, task_id: int | None) -> None:
        params = np.asarray(params, np.float64).reshape(-1)
        if params.shape != (self.num_params,):
            raise ValueError(f"{type(self).__name__} takes {self.num_params} task parameters, "
                             f"got {params.shape}")
        if self.privileged and task_id is None:
            raise ValueError("a privileged env needs a task id")
        self.params = params
        self.task_id = None if task_id is None else int(task_id)
        self.task.target_xy = self._target_xy(params)      # moved in the physics at reset

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if self.params is None:
            raise RuntimeError("set_task() before reset()")
        rng = self.np_random
        u = rng.uniform(-1.0, 1.0, size=2)
        yaw = rng.uniform(0.0, 2 * np.pi)
        composer_seed = int(rng.integers(2 ** 31))
        self.task.spawn_xy = np.asarray(self._spawn_xy(u), np.float64)
        self.task.spawn_yaw = float(yaw)
        self.task.target_xy = self._target_xy(self.params)
        self._env.random_state.seed(composer_seed)
        timestep = self._env.reset()
        self._t = 0
        self._started, self._done = True, False
        self._last_obs = self._obs(timestep.observation)
        return self._last_obs, {}

    def step(self, action):
        owner = type(self).__name__
        check_running(owner, started=self._started, ended=self._done)
        action = np.clip(check_action(action, self.action_space.shape, owner),
                         self.action_space.low, self.action_space.high)
        self._t += 1
        try:
            timestep = self._env.step(action)
        except control.PhysicsError as error:      # diverged: end the episode, state unusable
            self._done = True
            info = {"reached": False, "fallen": False, "distance": np.nan,
                    "physics_error": True, "error": str(error)}
            return self._last_obs, 0.0, False, True, info
        terminated = bool(self.task.reached or self.task.fallen)
        truncated = (not terminated) and self._t >= self.episode_length
        self._done = terminated or truncated
        info = {"reached": bool(self.task.reached), "fallen": bool(self.task.fallen),
                "distance": float(self.task.distance), "physics_error": False}
        self._last_obs = self._obs(timestep.observation)
        return self._last_obs, float(timestep.reward), terminated, truncated, info

    def render(self, height: int = 240, width: int = 320, camera_id="top_camera"):
        """RGB frame [H, W, 3] uint8 (needs MUJOCO_GL=egl or osmesa)."""
        return np.asarray(self._env.physics.render(height=height, width=width,
                                                   camera_id=camera_id), np.uint8)

    def close(self):
        env, self._env = getattr(self, "_env", None), None
        if env is not None:
            env.close()

    def _obs(self, observation) -> dict[str, np.ndarray]:
        proprio = np.concatenate([np.asarray(observation[k], np.float32).reshape(-1)
                                  for k in self._proprio_keys])
        root = self._env.physics.bind(self.task.walker.root_body)
        obs = {"proprio": proprio,
               "position": np.array(root.xpos, np.float32),
               "orientation": np.array(root.xmat, np.float32).reshape(9)}
        if self.privileged:
            obs["task_id"] = np.int64(self.task_id)
        return obs

    # ---- helpers for tests and diagnostics -------------------------------------------------
    def target_position(self) -> np.ndarray:
        """The target's (x, y) as it is in the physics now."""
        return np.array(self._env.physics.bind(self.task.target_site).pos[:2])

    def root_position(self) -> np.ndarray:
        """The walker's root body (x, y, z) now."""
        return np.array(self._env.physics.bind(self.task.walker.root_body).xpos)

    def place_walker(self, xy, *, z: float | None = None, quaternion=None) -> None:
        """Teleport the walker (mid-episode) so that its root body is at ``xy``.

        Keeps the current pose unless ``quaternion`` (w, x, y, z; world frame of
        the walker's attachment frame) is given; ``z`` sets the attachment
        frame's height. Zeroes the root's velocity and recomputes kinematics
        and contacts (physics.forward).
        """
        physics = self._env.physics
        walker = self.task.walker
        position, quat = walker.get_pose(physics)
        position = np.array(position)
        if quaternion is not None:
            walker.set_pose(physics, quaternion=np.asarray(quaternion, np.float64))
            physics.forward()
        shift = np.asarray(xy, np.float64) - self.root_position()[:2]
        position[:2] += shift
        if z is not None:
            position[2] = z
        walker.set_pose(physics, position=position)
        walker.set_velocity(physics, velocity=np.zeros(3), angular_velocity=np.zeros(3))
        physics.forward()
