"""Importing this module registers every gin configurable of iwx.

Gin only knows a name once its module is imported, and only then can it check
a binding's parameter names at parse time; the command lines import this first.
"""

import iwx.agents.iwpa  # noqa: F401
import iwx.agents.iwpl  # noqa: F401
import iwx.agents.temperature  # noqa: F401
import iwx.envs.cheetah_vel  # noqa: F401
import iwx.envs.go_to_ring  # noqa: F401
import iwx.envs.gtt  # noqa: F401
import iwx.envs.move_box  # noqa: F401
import iwx.envs.point_nav  # noqa: F401
import iwx.envs.reach  # noqa: F401
import iwx.loops.adaptation  # noqa: F401
import iwx.loops.pipeline  # noqa: F401
import iwx.loops.training  # noqa: F401
import iwx.nets.critics  # noqa: F401
import iwx.nets.prior  # noqa: F401
import iwx.nets.torso  # noqa: F401
import iwx.ops.importance  # noqa: F401
import iwx.replay.task_replay  # noqa: F401
