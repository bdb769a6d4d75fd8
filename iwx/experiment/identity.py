"""What a run *is* — its task and its method — as recorded facts, not guessed from file names.

Task files bind ``run_identity.task`` and method files ``run_identity.method``
(gin/tasks/*.gin, gin/methods/*.gin). The run records the pair in its Sacred
config and info (``identity``), and ``iwx.report`` / ``iwx.compare`` read it back
from the record (:func:`recorded_identity`). Where a configuration leaves one
unbound, the run records the name of the class bound in its place
(``pretrain_and_adapt.tasks`` for the task, ``pretrain_and_adapt.agent`` for the
method; ``"none"`` for ``agent = None``); records made before runs carried an
identity are read the same way from their recorded bindings.
"""

from __future__ import annotations

import gin

#: Task-distribution classes of the paper's suite and the task each one is (records
#: whose task is a class name, made before task files bound ``run_identity.task``).
TASK_CLASSES = {"PointNavTasks": "point_nav", "CheetahVelTasks": "cheetah_vel",
                "GoToRingTasks": "go_to_ring", "MoveBoxTasks": "move_box",
                "ReachTasks": "reach", "GTTTasks": "gtt"}


@gin.configurable
def run_identity(task: str | None = None, method: str | None = None) -> dict:
    """{"task": ..., "method": ...} as bound in the configuration (None where unbound)."""
    return {"task": task, "method": method}


def _class_name(value) -> str | None:
    """'@PointNavTasks()' / '@scope/iwx.agents.iwpl.IWPL' -> the class's name."""
    if not isinstance(value, str) or not value.startswith("@"):
        return None
    name = value[1:].removesuffix("()").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1] or None


def identity_from_bindings(bindings: dict) -> dict:
    """{"task", "method"} from flattened bindings (``{"Name": {"param": value}}``, as
    ``gin_config.flat_bindings`` gives them and a run records them under
    ``config.bindings``): ``run_identity``'s values, else the bound classes' names."""
    bound = bindings.get("run_identity") or {}
    pipeline = bindings.get("pretrain_and_adapt") or {}
    task = bound.get("task") or _class_name(pipeline.get("tasks"))
    method = bound.get("method")
    if method is None and "agent" in pipeline:
        agent = pipeline["agent"]
        method = "none" if agent is None else _class_name(agent)
    return {"task": task, "method": method}


def recorded_identity(config: dict | None, info: dict | None = None) -> dict:
    """The identity a run recorded (config, then info), else what its recorded bindings
    say (:func:`identity_from_bindings`). Task class names of the suite read as the
    task (``TASK_CLASSES``)."""
    config, info = config or {}, info or {}
    found = config.get("identity") or info.get("identity")
    if not isinstance(found, dict):
        found = identity_from_bindings(config.get("bindings") or {})
    task = found.get("task")
    return {"task": TASK_CLASSES.get(task, task), "method": found.get("method")}
