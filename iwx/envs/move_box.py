"""Move Box: a jumping ball must push a box onto an unseen target pad (paper appendix B).

The task
--------
A ``JumpingBallWithHead`` walker (dm_control.locomotion, built with
dm_control.composer; no downloaded assets) rolls, steers and hops in a walled
8 m x 8 m room. A free-jointed box (dm_control.manipulation ``primitive.Box``)
and a flat target pad lie in the room.

* **Reward**: +10 on the control step after which the box's centre is within
  ``success_radius`` (default 0.5 m, *horizontal* distance, ``<=``) of the
  target's (x, y); 0 on every other step. There is no shaping.
* **Termination**: ``terminated=True`` on that same step (the box is on the
  target). Otherwise the episode is ``truncated`` after ``time_limit`` = 20 s
  at 20 control steps per second (``control_timestep`` 0.05 s), i.e. exactly at
  step ``episode_length`` = 400. Physics timestep 0.005 s (10 substeps per
  control step).
* **Actions**: 3 numbers in [-1, 1], the walker's actuators in order
  ``roll`` (-1 rolls forward, i.e. towards the face; +1 backwards), ``steer``
  (yaw torque) and ``kick`` (hop). Actions outside [-1, 1] are clipped.
* **Task parameters** [P = 4]: ``(box_x, box_y, target_x, target_y)``, drawn by
  :class:`MoveBoxTasks`: box and target each uniform in the square
  ``[-(room/2 - margin), room/2 - margin]^2`` = [-3, 3]^2, kept only when
  ``min_distance < |box - target| <= max_distance`` (0.5 < d <= 2; rejection
  sampling of the *pair*, so the pair is uniform on that set). Both are fixed
  for the task: the box is put back at its task position (upright, axis
  aligned, at rest) at every reset.
* **Start state** (every reset, drawn from ``reset(seed=...)`` only): the
  walker's (x, y) uniform in the room minus 0.3 m at the walls, re-drawn until
  it is at least ``spawn_clearance`` (0.8 m, > box half-diagonal 0.42 + ball
  radius 0.2) from the box centre; heading uniform in [-pi, pi); all
  velocities zero.

Observations (dict, float32 unless said)
----------------------------------------
Seen by every network (behaviour prior, policy, critic):

* ``proprio`` [10], egocentric: kick slide position and velocity, roll and
  steer joint velocities, the torso velocimeter (3, head frame) and gyro (3,
  head frame). The roll angle is left out (the ball is symmetric) and so is the
  accelerometer (contact spikes of hundreds of m/s^2).
* ``position`` [3]: global position of the walker's root body (the head; its
  z is 0.6 m when resting on the floor).
* ``orientation`` [9]: the head's global rotation matrix, row-major; its
  second column is the facing direction.
* ``box_position`` [3]: the box centre's global position. Decision (the paper
  is silent): the box moves during an episode, so the prior and the critic
  must see where it is; it says nothing about where the target is.

Only when ``privileged=True`` (training tasks; what the critic may see):

* ``task_id``: np.int64 scalar, the id given to ``set_task``
  (gym.spaces.Discrete(1_000_000)).
* ``goal`` [2]: the target's global (x, y); the paper gives the critic the
  target's global position during training ("task description", app. C).

No non-privileged key depends on the target: it only exists in the reward,
the privileged ``goal`` and the (visual-only) pad.

Decisions where the paper is silent
-----------------------------------
* Room: 8 x 8 m (x, y in [-4, 4]) closed by four walls 2.5 m high (a hop lifts
  the head ~1.3 m), 0.2 m thick, on a 10 x 10 m floor, so neither the ball nor the
  box can leave the room.
* Box: a 0.6 m cube (half-size 0.3), 5 kg, sliding friction 0.5 with contact
  priority 1 (so both box-floor and box-ball contacts use 0.5; MuJoCo would
  otherwise take the larger of the two geoms' values). Measured: a ball starting
  1 m behind the box and rolling at it at full power for 1.5 s pushes it ~3.2 m
  (~2.1 m for a 10 kg box), but only ~0.3 m with box friction 1.0 (the
  primitive's default): the spinning shell's friction on the box face then
  lifts the ball off the floor and it loses traction.
* Target pad: a site (never collides) of radius ``success_radius``.
* Task margin 1 m from the walls: the gap between a box at its task position
  and a wall is >= 0.7 m, more than the ball's 0.4 m diameter, so the ball can
  always get behind the box at the start. Minimum distance 0.5 (= default
  ``success_radius``; bind both together) so no task starts solved.
* ``set_task`` takes effect at the next ``reset`` (box, pad, ``goal``).
* The MJCF is compiled once, in ``__init__``; resets move the walker, box and
  pad through ``physics`` (no recompilation).

The composer task below holds the physics logic (``initialize_episode``,
``before_step``, ``get_reward``, ``should_terminate_episode``) and is stepped
by a ``composer.Environment``; :class:`MoveBoxEnv` wraps it in the gymnasium
API, reads the observations straight from MuJoCo's arrays and counts the time
limit.
"""

from __future__ import annotations

import dataclasses

import gin
import gymnasium as gym
import numpy as np
from dm_control import composer
from dm_control.locomotion.arenas import floors
from dm_control.locomotion.walkers import jumping_ball
from dm_control.manipulation.props import primitive

from iwx.envs.guards import check_action, check_running
from iwx.envs.tasks import TaskSplit, split_in_order, task_generator
from iwx.envs.vector import TaskEnv, TaskVec

TASK_SEED_CONSTANT = 0xB0C5           # SeedSequence([seed, this]) draws the task parameters
SUCCESS_REWARD = 10.0
BALL_RADIUS = 0.2                     # the walker's shell
SPAWN_WALL_MARGIN = 0.3               # walker spawn keeps this far from the walls
WALL_HEIGHT = 2.5
WALL_THICKNESS = 0.2


@gin.configurable
@dataclasses.dataclass(frozen=True)
class MoveBoxTasks:
    """Box and target positions: each uniform in the room, 0.5 < distance <= 2.

    Rows are ``(box_x, box_y, target_x, target_y)``. Both points are uniform in
    ``[-(room_size/2 - margin), room_size/2 - margin]^2``; a pair is kept only
    when ``min_distance < |box - target| <= max_distance`` (rejection sampling).
    All ``num_train + num_validation + num_test`` rows come from one generator
    and are split in that order, so held-out tasks are never training tasks.
    ``seed=None`` means: derive it from the run's seed.
    """

    num_train: int = 100
    num_validation: int = 3
    num_test: int = 30
    seed: int | None = None
    room_size: float = 8.0
    margin: float = 1.0
    max_distance: float = 2.0
    min_distance: float = 0.5

    def split(self, run_seed: int) -> TaskSplit:
        rng = task_generator(run_seed, self.seed, TASK_SEED_CONSTANT)
        total = self.num_train + self.num_validation + self.num_test
        params = sample_tasks(rng, total, half_extent=self.room_size / 2 - self.margin,
                              min_distance=self.min_distance, max_distance=self.max_distance)
        return split_in_order(params, self.num_train, self.num_validation)


def sample_tasks(rng: np.random.Generator, n: int, *, half_extent: float,
                 min_distance: float, max_distance: float) -> np.ndarray:
    """n rows (box_x, box_y, target_x, target_y), by rejection sampling of pairs."""
    if not 0 <= min_distance < max_distance:
        raise ValueError("need 0 <= min_distance < max_distance")
    rows: list[np.ndarray] = []
    count = 0
    while count < n:
        cand = rng.uniform(-half_extent, half_extent, size=(4 * n + 16, 4))
        d = np.linalg.norm(cand[:, :2] - cand[:, 2:], axis=1)
        keep = cand[(d > min_distance) & (d <= max_distance)]
        rows.append(keep)
        count += len(keep)
    return np.concatenate(rows)[:n].astype(np.float64)


class _MoveBoxTask(composer.Task):
    """The composer task: arena with walls, jumping ball, box prop, target pad."""

    def __init__(self, *, room_size: float, box_half_size: float, box_mass: float,
                 box_friction: float, success_radius: float, control_timestep: float,
                 physics_timestep: float):
        half = room_size / 2
        self.arena = floors.Floor(size=(half + 1.0, half + 1.0))
        for name, pos, size in (
                ("wall_east", (half + WALL_THICKNESS / 2, 0), (WALL_THICKNESS / 2, half + WALL_THICKNESS)),
                ("wall_west", (-half - WALL_THICKNESS / 2, 0), (WALL_THICKNESS / 2, half + WALL_THICKNESS)),
                ("wall_north", (0, half + WALL_THICKNESS / 2), (half + WALL_THICKNESS, WALL_THICKNESS / 2)),
                ("wall_south", (0, -half - WALL_THICKNESS / 2), (half + WALL_THICKNESS, WALL_THICKNESS / 2))):
            self.arena.mjcf_model.worldbody.add(
                "geom", name=name, type="box", pos=(*pos, WALL_HEIGHT / 2),
                size=(*size, WALL_HEIGHT / 2), rgba=(0.55, 0.55, 0.6, 1.0))

        self.walker = jumping_ball.JumpingBallWithHead()
        frame = self.arena.attach(self.walker)
        self.walker.create_root_joints(frame)        # slide x, y, z in the attachment frame
        self._walker_joints = (frame.find_all("joint", immediate_children_only=True)
                               + self.walker.mjcf_model.find_all("joint"))

        self.box = primitive.Box(half_lengths=[box_half_size] * 3, mass=box_mass, name="box")
        self.box.geom.priority = 1
        self.box.geom.friction = (box_friction, 0.005, 0.0001)
        self.box.geom.rgba = (0.8, 0.5, 0.2, 1.0)
        self.arena.add_free_entity(self.box)

        self.target = self.arena.mjcf_model.worldbody.add(
            "site", name="target", type="cylinder", size=(success_radius, 0.005),
            pos=(0.0, 0.0, 0.005), rgba=(0.2, 0.9, 0.3, 0.5))

        self.box_half_size = box_half_size
        self.success_radius = success_radius
        self.set_timesteps(control_timestep=control_timestep, physics_timestep=physics_timestep)

        # What the next initialize_episode applies (set by MoveBoxEnv).
        self.box_xy = np.zeros(2)
        self.target_xy = np.array([1.0, 0.0])
        self.walker_xy = np.array([-1.0, 0.0])
        self.walker_yaw = 0.0
        self.success = False
        self._box_geom_id = None

    @property
    def root_entity(self):
        return self.arena

    def after_compile(self, physics, random_state):
        self._box_geom_id = int(physics.bind(self.box.geom).element_id)

    def box_xy_now(self, physics) -> np.ndarray:
        return physics.data.geom_xpos[self._box_geom_id, :2]

    def place_walker(self, physics, xy, yaw: float) -> None:
        """Walker at rest at (x, y), facing (cos yaw, sin yaw)."""
        self.walker.set_pose(physics, position=[xy[0], xy[1], 0.0])   # zeroes its joints
        # The steer hinge turns about -z; at angle 0 the face points along +x.
        physics.bind(self.walker.mjcf_model.find("joint", "steer")).qpos = -yaw
        physics.bind(self._walker_joints).qvel = 0.0

    def place_box(self, physics, xy) -> None:
        """Box at rest, upright and axis aligned, resting on the floor at (x, y)."""
        self.box.set_pose(physics, position=[xy[0], xy[1], self.box_half_size],
                          quaternion=[1.0, 0.0, 0.0, 0.0])
        self.box.set_velocity(physics, velocity=np.zeros(3), angular_velocity=np.zeros(3))

    def initialize_episode(self, physics, random_state):
        physics.bind(self.target).pos = [self.target_xy[0], self.target_xy[1], 0.005]
        self.place_box(physics, self.box_xy)
        self.place_walker(physics, self.walker_xy, self.walker_yaw)
        self.success = False

    def before_step(self, physics, action, random_state):
        self.walker.apply_action(physics, action, random_state)

    def after_step(self, physics, random_state):
        distance = np.linalg.norm(self.box_xy_now(physics) - self.target_xy)
        self.success = bool(distance <= self.success_radius)

    def get_reward(self, physics):
        return SUCCESS_REWARD if self.success else 0.0

    def should_terminate_episode(self, physics):
        return self.success

    def get_discount(self, physics):
        return 0.0 if self.success else 1.0


@gin.configurable
class MoveBoxEnv(TaskEnv):
    """One Move Box task (gymnasium API); see the module docstring.

    Test helpers: :meth:`place_walker`, :meth:`place_box`, :meth:`box_position`,
    :meth:`target_position`, :attr:`physics`.
    """

    def __init__(self, *, privileged: bool, success_radius: float = 0.5,
                 time_limit: float = 20.0, control_timestep: float = 0.05,
                 physics_timestep: float = 0.005, room_size: float = 8.0,
                 box_half_size: float = 0.3, box_mass: float = 5.0,
                 box_friction: float = 0.5, spawn_clearance: float = 0.8):
        self.privileged = bool(privileged)
        self.room_size = float(room_size)
        self.box_half_size = float(box_half_size)
        self.spawn_clearance = float(spawn_clearance)
        self.episode_length = int(round(time_limit / control_timestep))
        self._task = _MoveBoxTask(
            room_size=room_size, box_half_size=box_half_size, box_mass=box_mass,
            box_friction=box_friction, success_radius=success_radius,
            control_timestep=control_timestep, physics_timestep=physics_timestep)
        self._env = composer.Environment(
            self._task, time_limit=float("inf"), recompile_mjcf_every_episode=False,
            strip_singleton_obs_buffer_dim=True, random_state=np.random.RandomState(0))
        self._env.reset()          # the one compilation; the physics is kept from here on
        self._index_physics()

        self.action_space = gym.spaces.Box(-1.0, 1.0, (3,), np.float64)
        spaces = {
            "proprio": gym.spaces.Box(-np.inf, np.inf, (10,), np.float32),
            "position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
            "orientation": gym.spaces.Box(-1.0, 1.0, (9,), np.float32),
            "box_position": gym.spaces.Box(-np.inf, np.inf, (3,), np.float32),
        }
        if self.privileged:
            spaces["task_id"] = gym.spaces.Discrete(1_000_000)
            spaces["goal"] = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
        self.observation_space = gym.spaces.Dict(spaces)

        self._params = np.array([0.0, 0.0, 1.0, 0.0])
        self._task_id: int | None = None
        self._t = 0
        self._started = self._over = False

    # -- physics bookkeeping -------------------------------------------------
    @property
    def physics(self):
        return self._env.physics

    @property
    def success_radius(self) -> float:
        """Horizontal distance (m) from the pad's centre within which the box counts."""
        return float(self._task.success_radius)

    def _index_physics(self) -> None:
        physics, walker = self._env.physics, self._task.walker
        model = physics.model
        self._head_id = int(physics.bind(walker.root_body).element_id)
        kick, roll, steer = (walker.mjcf_model.find("joint", n) for n in ("kick", "roll", "steer"))
        self._kick_qpos = int(model.jnt_qposadr[physics.bind(kick).element_id])
        self._dofs = np.array([model.jnt_dofadr[physics.bind(j).element_id]
                               for j in (kick, roll, steer)])
        sensors = walker.mjcf_model.sensor
        velo, gyro = (sensors.find("sensor", n) for n in ("sensor_torso_vel", "sensor_torso_gyro"))
        self._sensor_idx = np.concatenate([
            model.sensor_adr[physics.bind(s).element_id] + np.arange(3) for s in (velo, gyro)])
        self._box_geom_id = int(physics.bind(self._task.box.geom).element_id)

    def _observation(self) -> dict:
        data = self._env.physics.data
        proprio = np.concatenate([
            data.qpos[self._kick_qpos:self._kick_qpos + 1], data.qvel[self._dofs],
            data.sensordata[self._sensor_idx]])
        obs = {
            "proprio": proprio.astype(np.float32),
            "position": data.xpos[self._head_id].astype(np.float32),
            "orientation": data.xmat[self._head_id].astype(np.float32),
            "box_position": data.geom_xpos[self._box_geom_id].astype(np.float32),
        }
        if self.privileged:
            obs["task_id"] = np.int64(self._task_id)
            obs["goal"] = np.asarray(self._params[2:4], np.float32)
        return obs

    # -- TaskEnv API ---------------------------------------------------------
    def set_task(self, params: np.ndarray, task_id: int | None) -> None:
        """Box (x, y) and target (x, y); applied at the next reset."""
        params = np.asarray(params, np.float64).reshape(-1)
        if params.shape != (4,):
            raise ValueError(f"Move Box takes 4 task parameters, got {params.shape}")
        if self.privileged and task_id is None:
            raise ValueError("a privileged MoveBoxEnv needs a task_id")
        inside = self.room_size / 2 - self.box_half_size
        if np.any(np.abs(params) > inside):
            raise ValueError(
                f"Move Box task {params.tolist()} puts the box or the pad outside the "
                f"{self.room_size:g} m room (|x|, |y| <= {inside:g}): bind "
                "MoveBoxTasks.room_size and MoveBoxEnv.room_size together "
                "(gin/tasks/move_box_cpu.gin does)")
        self._params = params.copy()
        self._task_id = None if task_id is None else int(task_id)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        rng = self.np_random
        box_xy = self._params[:2]
        lim = self.room_size / 2 - SPAWN_WALL_MARGIN
        while True:
            xy = rng.uniform(-lim, lim, size=2)
            if np.linalg.norm(xy - box_xy) >= self.spawn_clearance:
                break
        task = self._task
        task.walker_xy, task.walker_yaw = xy, float(rng.uniform(-np.pi, np.pi))
        task.box_xy, task.target_xy = box_xy.copy(), self._params[2:4].copy()
        self._env.random_state.seed(int(rng.integers(2**31)))
        self._env.reset()
        self._t = 0
        self._started, self._over = True, False
        return self._observation(), {}

    def step(self, action):
        owner = type(self).__name__
        check_running(owner, started=self._started, ended=self._over)
        action = np.clip(check_action(action, self.action_space.shape, owner), -1.0, 1.0)
        timestep = self._env.step(action)
        self._t += 1
        terminated = bool(self._task.success)
        truncated = (not terminated) and self._t >= self.episode_length
        self._over = terminated or truncated
        return (self._observation(), float(timestep.reward), terminated, truncated,
                {"success": terminated})

    def render(self, height: int = 240, width: int = 320, camera_id="top_camera"):
        return self._env.physics.render(height=height, width=width, camera_id=camera_id)

    def close(self):
        self._env.close()

    # -- helpers (tests, scripted checks) ------------------------------------
    def place_walker(self, xy, yaw: float = 0.0) -> None:
        """Put the walker at rest at (x, y) facing (cos yaw, sin yaw), mid-episode."""
        self._task.place_walker(self.physics, np.asarray(xy, np.float64), yaw)
        self.physics.forward()

    def place_box(self, xy) -> None:
        """Put the box at rest on the floor at (x, y) through its free joint, mid-episode."""
        self._task.place_box(self.physics, np.asarray(xy, np.float64))
        self.physics.forward()

    def box_position(self) -> np.ndarray:
        return self.physics.data.geom_xpos[self._box_geom_id].copy()

    def target_position(self) -> np.ndarray:
        """The target pad's (x, y) in the physics."""
        return np.array(self.physics.bind(self._task.target).pos[:2])


@gin.configurable
class MoveBoxVec(TaskVec):
    """B Move Box tasks in lockstep (the task-vector interface of iwx.envs.vector).

    The rows are :class:`MoveBoxEnv` instances; bind their settings on ``MoveBoxEnv``
    (e.g. ``MoveBoxEnv.<setting> = ...``), which gin applies to every row.
    """

    def __init__(self, params, task_ids=None):
        super().__init__(MoveBoxEnv, params, task_ids)
