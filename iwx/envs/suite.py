"""The paper's task suite by name: (task distribution, task vector) per task."""

from __future__ import annotations

from iwx.envs.cheetah_vel import CheetahVelTasks, CheetahVelVec
from iwx.envs.go_to_ring import GoToRingTasks, GoToRingVec
from iwx.envs.gtt import GTTTasks, GTTVec
from iwx.envs.move_box import MoveBoxTasks, MoveBoxVec
from iwx.envs.point_nav import PointNavTasks, PointNavVec
from iwx.envs.reach import ReachTasks, ReachVec

SUITE = {
    "point_nav": (PointNavTasks, PointNavVec),
    "cheetah_vel": (CheetahVelTasks, CheetahVelVec),
    "go_to_ring": (GoToRingTasks, GoToRingVec),
    "move_box": (MoveBoxTasks, MoveBoxVec),
    "reach": (ReachTasks, ReachVec),
    "gtt": (GTTTasks, GTTVec),
}
