"""GTT (Go To Target): a humanoid must find an unknown target in a room (paper §6, appendix B).

Walker: ``dm_control.locomotion.walkers.cmu_humanoid.CMUHumanoidPositionControlledV2020``
(the 2020 CMU humanoid, scaled to 1.2x, 56 position-controlled joints with
first-order filtered actuators; actions in [-1, 1]^56 map linearly onto each
joint's range, so the all-zero action asks every joint for the middle of its
range, which makes the humanoid sit down and fall within about a second).

Task distribution (``GTTTasks``, P = 4 parameters per task):
[target_x, target_y, start_x, start_y]. The target is uniform on the 8 x 8 m
room [-4, 4]^2 centred at the origin. The start is uniform on the same room,
redrawn (from the same generator) while it lies within ``min_start_distance``
= 2 m of the target (see decisions). The start is used only where the start is
fixed (held-out tasks). 100 training, 3 validation and 30 held-out tasks from
one seeded draw, split in that order.

Episode (``GTTEnv``):
- Start: the humanoid in dm_control's upright pose (feet ~2 mm above the
  floor, no contact), with yaw ~ U[0, 2π) drawn from the reset's seed at every
  reset. Its root (pelvis) position:
    * training (``privileged=True``): uniform on the room at every reset, from
      the reset's seed;
    * held-out (``privileged=False``): the task's (start_x, start_y) at every
      reset, whatever the seed (the paper keeps the initial position fixed for
      the whole meta-episode). ``fixed_start`` overrides this choice.
- Control: 20 steps per second (0.05 s = 10 physics steps of 5 ms).
- Reward per step: -0.005 (``step_penalty``, the immobility penalty, every step)
  plus +1.0 (``reach_reward``) on the step on which the pelvis's horizontal
  distance to the target is <= ``distance_tolerance`` = 1.0 m (terminates),
  plus -1.0 (``fall_penalty``) on the step on which a fall geom touches the
  floor (terminates). Both on the same step: both are paid (1 - 1 - 0.005).
- Otherwise truncated after 10 s = 200 steps.

Fall geoms (contact with the floor's ground plane ends the episode):
  every geom of the humanoid except the feet, i.e. exactly the rule of
  dm_control's ``GoToTarget`` (the feet are ``walker.ground_contact_geoms``:
  ``lfoot``, ``lfoot_ch``, ``ltoes0-2`` and the right-side ones). That is the
  paper's "upper body or knees":
    * upper body: pelvis (``root_geom``, and the small ``{l,r}hipjoint``
      capsules inside it), ``lowerback``, ``upperback``, ``thorax``,
      ``lowerneck``, ``upperneck``, ``head`` (and the collision-free
      ``face``/``nose``), and for each side ``clavicle``, ``humerus`` (upper
      arm), ``radius`` (forearm), ``wrist``, ``hand``, ``finger0-3``, ``thumb``;
    * knees: the ``{l,r}tibia`` (lower leg) geoms and the ``{l,r}femur`` /
      ``{l,r}femur_upper`` (thigh) geoms. The knee is where the femur capsule
      (radius 8.4 cm) meets the thinner tibia capsule (4.8 cm), so a kneeling
      humanoid touches the floor with the femur's lower end first (tested);
      a thigh cannot reach a flat floor anywhere else without the knee, the
      pelvis or a hand touching too, so counting the whole thigh changes nothing.

Observations (see :mod:`iwx.envs.go_to_target`): ``proprio`` (the humanoid's
egocentric proprioception including actuator activations, 224 floats),
``position`` (pelvis xyz), ``orientation`` (pelvis rotation matrix, 9) for
every network; ``task_id`` only when ``privileged``, for the critic.

Decisions where the paper is silent:
- ``distance_tolerance`` = 1.0 m: dm_control's ``GoToTarget`` default (the
  task the paper's "Go to Target, Humanoid" is named after).
- The pelvis counts as upper body: a humanoid sitting on the floor has fallen.
- A touch is detected after every physics step (5 ms), not only at the end
  of the 50 ms control step, so a brief touch (a hand brushing the floor, a
  bounce) is not missed.
- Held-out orientation: the yaw stays seeded-random at every episode; only
  the position is fixed, which is all the paper says. Every held-out start is
  then a start the training distribution also produces (the yaw is drawn the
  same way), and the seed still varies the episodes.
- ``min_start_distance`` = 2 m (2 x the tolerance): a held-out task whose start
  lies inside the target region would be solved by standing still in every
  adaptation episode (with plain uniform draws about 5% of tasks, i.e. ~1.5 of
  30, would start within 1 m). Set it to 0 for plain uniform starts.
- Training starts are independent of the target (the start reveals nothing);
  about π·1²/64 ≈ 5% of training episodes start within the tolerance and are
  rewarded on their first step.
- The room has no walls (a ``Floor`` with half-size 8 m; the plane collides
  everywhere, its size only matters for rendering); the humanoid may leave
  the 8 x 8 rectangle.
- A diverged physics step ends the episode as truncated with reward 0
  (``info["physics_error"]``).
"""

from __future__ import annotations

import dataclasses

import gin
import numpy as np
from dm_control.locomotion.arenas import floors
from dm_control.locomotion.walkers import cmu_humanoid

from iwx.envs.go_to_target import (DEFAULT_DISTANCE_TOLERANCE, DEFAULT_PHYSICS_TIMESTEP,
                                   WalkerTargetEnv)
from iwx.envs.tasks import TaskSplit, split_in_order, task_generator
from iwx.envs.vector import TaskVec

def humanoid_fall_geoms(walker) -> list:
    """The CMU humanoid's geoms whose contact with the floor is a fall: all but the feet.

    The feet are ``walker.ground_contact_geoms`` (the geoms of the ``lfoot`` and
    ``rfoot`` bodies and their ``ltoes``/``rtoes`` children); module docstring.
    """
    feet = set(walker.ground_contact_geoms)
    return [geom for geom in walker.mjcf_model.find_all("geom") if geom not in feet]


@gin.configurable
@dataclasses.dataclass(frozen=True)
class GTTTasks:
    """[target_x, target_y, start_x, start_y], both uniform on [-room/2, room/2]^2, the start
    redrawn while within ``min_start_distance`` of the target; one seeded draw, split in order."""

    num_train: int = 100
    num_validation: int = 3
    num_test: int = 30
    room_size: float = 8.0
    min_start_distance: float = 2.0
    seed: int | None = None

    def split(self, run_seed: int) -> TaskSplit:
        rng = task_generator(run_seed, self.seed, 0x6772)
        total = self.num_train + self.num_validation + self.num_test
        half = self.room_size / 2
        target = rng.uniform(-half, half, size=(total, 2))
        start = rng.uniform(-half, half, size=(total, 2))
        for _ in range(10_000):
            close = np.linalg.norm(start - target, axis=1) < self.min_start_distance
            if not close.any():
                break
            start[close] = rng.uniform(-half, half, size=(int(close.sum()), 2))
        else:
            raise ValueError(f"min_start_distance={self.min_start_distance} is too large "
                             f"for a room of size {self.room_size}")
        params = np.concatenate([target, start], axis=1)
        return split_in_order(params, self.num_train, self.num_validation)


@gin.configurable
class GTTEnv(WalkerTargetEnv):
    """One GTT task. ``params``: [target_x, target_y, start_x, start_y].

    ``fixed_start`` (default: ``not privileged``): start every episode at the
    task's (start_x, start_y) instead of a seeded uniform point of the room.
    """

    num_params = 4

    def __init__(self, *, privileged: bool,
                 distance_tolerance: float = DEFAULT_DISTANCE_TOLERANCE,
                 reach_reward: float = 1.0, step_penalty: float = -0.005,
                 fall_penalty: float = -1.0, episode_seconds: float = 10.0,
                 steps_per_second: float = 20.0, room_size: float = 8.0,
                 fixed_start: bool | None = None, floor_half_size: float = 8.0,
                 physics_timestep: float = DEFAULT_PHYSICS_TIMESTEP):
        self.room_size = float(room_size)
        self.fixed_start = (not privileged) if fixed_start is None else bool(fixed_start)
        walker = cmu_humanoid.CMUHumanoidPositionControlledV2020()
        super().__init__(privileged=privileged, walker=walker,
                         arena=floors.Floor(size=(floor_half_size, floor_half_size)),
                         distance_tolerance=distance_tolerance, reach_reward=reach_reward,
                         step_penalty=step_penalty, fall_penalty=fall_penalty,
                         fall_geoms=humanoid_fall_geoms(walker),
                         episode_seconds=episode_seconds, steps_per_second=steps_per_second,
                         physics_timestep=physics_timestep)

    def _target_xy(self, params):
        return np.array(params[:2], np.float64)

    def _spawn_xy(self, u):
        if self.fixed_start:
            return np.array(self.params[2:4], np.float64)
        return self.room_size / 2 * u


@gin.configurable
class GTTVec(TaskVec):
    """B GTT tasks stepped together (the task-vector interface, iwx.envs.vector).

    The rows are :class:`GTTEnv` instances; bind their settings on ``GTTEnv``
    (e.g. ``GTTEnv.<setting> = ...``), which gin applies to every row.
    """

    def __init__(self, params, task_ids=None):
        super().__init__(GTTEnv, params, task_ids)
