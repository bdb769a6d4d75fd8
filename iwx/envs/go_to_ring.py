"""Go To Ring: a quadruped must find an unknown target on a ring (paper §6, appendix B).

Walker: ``dm_control.locomotion.walkers.ant.Ant``, the four-legged ant of
dm_control's locomotion library (8 torque motors, actions in [-1, 1]^8). The
paper says "a quadruped body"; the ant is the quadruped that dm_control ships as
a composer walker (the suite's ``quadruped`` domain is not a composer walker),
and STACK-NOTES measured it in a go-to-target task.

Task distribution (``GoToRingTasks``, P = 2 parameters per task): the target
(x, y) = r (cos a, sin a), a ~ U[0, 2π), r ~ U[3, 7] (uniform in r, as the paper
writes it, not uniform in area). 100 training, 3 validation and 30 held-out
tasks from one seeded draw, split in that order.

Episode (``GoToRingEnv``):
- Start: the ant in its upright pose, its root (torso) at (x, y) ~ U[-8, 8]^2
  with yaw ~ U[0, 2π), drawn at every reset, for training and held-out tasks
  alike, from the reset's seed only (never from the task).
- Control: 20 steps per second (control timestep 0.05 s = 10 physics steps of
  5 ms); actions are clipped to [-1, 1].
- Reward per step: -0.005 (``step_penalty``, the paper's immobility penalty,
  paid on every step including the last) plus +10 (``reach_reward``) on the
  step on which the torso's horizontal distance to the target is
  <= ``distance_tolerance`` = 1.0 m. Reaching terminates the episode, so the
  reaching step pays 10 - 0.005.
- Otherwise the episode is truncated after 10 s = 200 steps
  (``episode_seconds`` x ``steps_per_second``).
- No fall termination (the paper names none for the quadruped): the ant may
  flip over and stays in the episode.

Observations (see :mod:`iwx.envs.go_to_target`): ``proprio`` (the ant's
egocentric proprioception, 153 floats), ``position`` (torso xyz),
``orientation`` (torso rotation matrix, 9) for every network (behaviour prior,
policy and critic); ``task_id`` only when ``privileged`` (training tasks), for
the critic. Nothing reveals the target.

Decisions where the paper is silent:
- ``distance_tolerance`` = 1.0 m: dm_control's ``GoToTarget`` default. The ant's
  torso is a 0.25 m sphere with legs reaching ~0.85 m from its centre, so a
  1 m disc around the target is "the body is on the target".
- The spawn is independent of the target (so the start says nothing about the
  task); with probability about π·1²/16² ≈ 1.2% the ant starts within the
  tolerance and is rewarded on its first step.
- Floor: a plane with half-size 10 m (the spawn square plus 2 m margin; MuJoCo
  planes collide everywhere, the size only matters for rendering). No walls.
- Physics timestep 5 ms (dm_control's locomotion default).
"""

from __future__ import annotations

import dataclasses

import gin
import numpy as np
from dm_control.locomotion.arenas import floors
from dm_control.locomotion.walkers import ant

from iwx.envs.go_to_target import (DEFAULT_DISTANCE_TOLERANCE, DEFAULT_PHYSICS_TIMESTEP,
                                   WalkerTargetEnv)
from iwx.envs.tasks import TaskSplit, split_in_order, task_generator
from iwx.envs.vector import TaskVec


@gin.configurable
@dataclasses.dataclass(frozen=True)
class GoToRingTasks:
    """Targets r (cos a, sin a), a ~ U[0, 2π), r ~ U[min_radius, max_radius]: one seeded
    draw of num_train + num_validation + num_test targets, split in that order."""

    num_train: int = 100
    num_validation: int = 3
    num_test: int = 30
    min_radius: float = 3.0
    max_radius: float = 7.0
    seed: int | None = None

    def split(self, run_seed: int) -> TaskSplit:
        rng = task_generator(run_seed, self.seed, 0x6024)
        total = self.num_train + self.num_validation + self.num_test
        angle = rng.uniform(0.0, 2 * np.pi, size=total)
        radius = rng.uniform(self.min_radius, self.max_radius, size=total)
        targets = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        return split_in_order(targets, self.num_train, self.num_validation)


@gin.configurable
class GoToRingEnv(WalkerTargetEnv):
    """One Go To Ring task. ``params``: [target_x, target_y]."""

    num_params = 2

    def __init__(self, *, privileged: bool,
                 distance_tolerance: float = DEFAULT_DISTANCE_TOLERANCE,
                 reach_reward: float = 10.0, step_penalty: float = -0.005,
                 episode_seconds: float = 10.0, steps_per_second: float = 20.0,
                 spawn_half_size: float = 8.0, floor_half_size: float = 10.0,
                 physics_timestep: float = DEFAULT_PHYSICS_TIMESTEP):
        self.spawn_half_size = float(spawn_half_size)
        super().__init__(privileged=privileged, walker=ant.Ant(),
                         arena=floors.Floor(size=(floor_half_size, floor_half_size)),
                         distance_tolerance=distance_tolerance, reach_reward=reach_reward,
                         step_penalty=step_penalty, episode_seconds=episode_seconds,
                         steps_per_second=steps_per_second, physics_timestep=physics_timestep)

    def _target_xy(self, params):
        return np.array(params[:2], np.float64)

    def _spawn_xy(self, u):
        return self.spawn_half_size * u


@gin.configurable
class GoToRingVec(TaskVec):
    """B Go To Ring tasks stepped together (the task-vector interface, iwx.envs.vector).

    The rows are :class:`GoToRingEnv` instances; bind their settings on ``GoToRingEnv``
    (e.g. ``GoToRingEnv.<setting> = ...``), which gin applies to every row.
    """

    def __init__(self, params, task_ids=None):
        super().__init__(GoToRingEnv, params, task_ids)
