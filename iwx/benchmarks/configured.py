"""What a gin file builds, built the way a run builds it, and a record of its networks.

The bench times nothing it made up: for every row it parses ``gin/<task>_<method>.gin``
(for a scale variant such as ``reach_cpu``, its base task's file and then
``gin/tasks/reach_cpu.gin``), plus the bench's overrides as ordinary bindings (e.g.
``MultiTaskTraining.batch_size = 512``), and calls the configurables bound to
``pretrain_and_adapt.tasks`` / ``env`` / ``agent`` exactly as
:func:`iwx.loops.pipeline.pretrain_and_adapt` does. Each object is built while its
file's bindings are in force; gin applies bindings when a configurable is called, so
the built networks keep them when the bench parses the next file. (The only
configurable an update calls later, the soft value function ``soft_value_*``, is bound
by no gin file.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import gin
import numpy as np
from torch import nn

from iwx.agents.base import configured_arguments
from iwx.agents.iwpl import IWPL
from iwx.experiment.gin_config import parse
from iwx.loops.training import MultiTaskTraining
from iwx.nets.torso import EnsembleLayerNorm, EnsembleLinear

GIN = Path(__file__).resolve().parents[2] / "gin"


def task_names() -> list[str]:
    """Every task of the suite, by its task file (gin/tasks/<task>.gin)."""
    return sorted(p.stem for p in (GIN / "tasks").glob("*.gin"))


def gin_files(task: str, method: str) -> list[Path]:
    """The files a run of ``method`` on ``task`` parses, in order: ``gin/<task>_<method>.gin``;
    for a scale variant, a task file with no experiment files of its own that is used after
    its base task's (``gin/tasks/go_to_ring_cpu.gin`` after ``gin/go_to_ring_<method>.gin``,
    as figures 1, 3 and 6 run it), the base task's file and then the variant's."""
    own = GIN / f"{task}_{method}.gin"
    base, _, scale = task.rpartition("_")
    if not own.exists() and base and scale == "cpu" and (GIN / "tasks" / f"{task}.gin").exists():
        return [GIN / f"{base}_{method}.gin", GIN / "tasks" / f"{task}.gin"]
    return [own]


@dataclasses.dataclass
class Configured:
    """One gin file's pieces, as ``pretrain_and_adapt`` receives them."""

    gin_file: str                  # relative to the repository, as the record names it ("a + b"
                                   # for a scale variant after its base task's file)
    train: np.ndarray              # the training tasks' parameters of split(seed)
    env: Callable                  # (task parameters, rows) -> task vector
    agent: Callable | None         # (obs_spec, action_dim, num_tasks, device=) -> agent
    batch_size: int                # MultiTaskTraining's, overrides applied
    chunk_length: int
    num_samples: int | None        # the agent's K where its configurable has one


def configure(task: str, method: str, seed: int, params: Sequence[str] = (),
              num_train: int | None = None) -> Configured:
    """Parse :func:`gin_files` (``gin/<task>_<method>.gin``) with ``params`` and resolve what
    a run would get.

    ``num_train`` rebinds the task distribution's ``num_train`` (whatever its class).
    The bindings stay parsed until the next ``configure``: build with them right away.
    """
    paths = gin_files(task, method)
    parse([str(p) for p in paths], list(params))
    if num_train is not None:
        tasks_class = gin.query_parameter("pretrain_and_adapt.tasks").configurable.name
        gin.bind_parameter(f"{tasks_class}.num_train", num_train)
    bound = gin.get_bindings("pretrain_and_adapt")   # references resolved as in a call
    agent = bound.get("agent", IWPL)                    # pretrain_and_adapt's default
    return Configured(gin_file=" + ".join(str(p.relative_to(GIN.parent)) for p in paths),
                      train=bound["tasks"].split(seed).train, env=bound["env"], agent=agent,
                      batch_size=configured_value(MultiTaskTraining, "batch_size"),
                      chunk_length=configured_value(MultiTaskTraining, "chunk_length"),
                      num_samples=None if agent is None else configured_value(agent, "num_samples"))


def configured_value(configurable, name: str):
    """What ``configurable`` gets for parameter ``name`` when called now: its binding, else
    its default (None if it has no such parameter or no default)."""
    return configured_arguments(configurable).get(name)


def layer_widths(module: nn.Module) -> dict:
    """{"parameters": n, "norm": [LayerNorm widths], "linear": [output widths of the
    linear maps], "lstm": [LSTM hidden sizes]} of a network, each list sorted, distinct."""
    norm, linear, lstm = set(), set(), set()
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            norm.add(m.normalized_shape[-1])
        elif isinstance(m, EnsembleLayerNorm):
            norm.add(m.width)
        elif isinstance(m, nn.Linear):
            linear.add(m.out_features)
        elif isinstance(m, EnsembleLinear):
            linear.add(m.weight.shape[-1])
        elif isinstance(m, (nn.LSTM, nn.LSTMCell)):
            lstm.add(m.hidden_size)
    return {"parameters": sum(p.numel() for p in module.parameters()),
            "norm": sorted(norm), "linear": sorted(linear), "lstm": sorted(lstm)}


def networks(agent) -> dict[str, dict]:
    """:func:`layer_widths` of every network an agent (or any object) holds as an attribute:
    what the bench's record says it timed."""
    return {name: layer_widths(value) for name, value in sorted(vars(agent).items())
            if isinstance(value, nn.Module)}
