"""Base classes that implement the contract's defaults (iwx.agents.base.contract).

:class:`ActingPart`: what acts — the networks it acts with (``NETWORKS``, their
weights are its ``params``) and the rule; no optimiser, no replay.
:class:`Agent`: a learner or adaptation agent that acts through ``self.acting``
(an ActingPart) and checkpoints the attributes named in ``PARTS``.

Acme's actor / learner split: the learner's own ``act`` goes through the same
acting object that another process rebuilds from :meth:`Agent.acting_params`
(:meth:`Agent.build_acting`), so the two cannot drift apart.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar

import gin
import torch

from iwx.agents.base.contract import Checkpointable
from iwx.agents.base.modules import Targets


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state dict as detached CPU copies (a parameter payload)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def configured_arguments(cls) -> dict[str, Any]:
    """The keyword arguments gin gives ``cls`` under the parsed config: its signature's
    defaults, overridden by its (unscoped) bindings. How another process learns a
    learner's network constructors without building the learner."""
    defaults = {name: p.default for name, p in inspect.signature(cls).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return {**defaults, **gin.get_bindings(cls)}


class ActingPart:
    """Defaults of an acting part: no replay extras, no memory, torch's global RNG.

    ``NETWORKS``: the attributes (modules, None where absent) whose weights it acts
    with; :meth:`params` exports them, :meth:`load_params` loads them.
    """

    replay_extras: ClassVar[Mapping[str, tuple[int, ...]]] = {}
    NETWORKS: ClassVar[tuple[str, ...]] = ()
    device: torch.device

    def act(self, obs, explore: bool = False):
        raise NotImplementedError

    def begin_tasks(self, num_rows: int) -> None:
        del num_rows

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        del obs, actions, rewards, next_obs, done, alive

    def seed(self, seed: int) -> None:
        """Actions are drawn from torch's global RNG (as the single-process run does)."""
        torch.manual_seed(seed)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {name: getattr(self, name) for name in self.NETWORKS
                if getattr(self, name) is not None}

    def params(self) -> dict[str, Any]:
        return {name: cpu_state(module) for name, module in self.networks().items()}

    def load_params(self, params: Mapping[str, Any]) -> None:
        for name, module in self.networks().items():
            module.load_state_dict(params[name])


class Agent:
    """Defaults of the agent contract, acting through ``self.acting``.

    Subclasses set ``self.acting`` (an :class:`ActingPart`), ``self.updates`` and,
    for learners, ``self.targets`` (:class:`~iwx.agents.base.modules.Targets`);
    they declare ``PARTS``, the attributes a checkpoint holds under their names:
    modules / optimisers / anything with a state dict (skipped where None, e.g. an
    absent prior), tensors (saved as detached copies, loaded in place) and plain
    values such as the ``updates`` counter.
    """

    context_length: int = 0
    learns: bool = True
    prior: torch.nn.Module | None = None
    critic: torch.nn.Module | None = None
    updates: int = 0
    targets: Targets | None = None
    acting: ActingPart
    PARTS: ClassVar[tuple[str, ...]] = ()

    # -- acting: everything goes through the acting part --------------------------
    @property
    def replay_extras(self) -> Mapping[str, tuple[int, ...]]:
        return self.acting.replay_extras

    def act(self, obs, explore: bool = False):
        return self.acting.act(obs, explore)

    def begin_tasks(self, num_rows: int) -> None:
        self.acting.begin_tasks(num_rows)

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        self.acting.observe(obs, actions, rewards, next_obs, done, alive)

    def acting_params(self) -> dict[str, Any]:
        return self.acting.params()

    @classmethod
    def build_acting(cls, obs_spec, action_dim: int, num_tasks: int,
                     params: Mapping[str, Any], *, device: str | torch.device = "cpu"):
        """This learner's acting part, rebuilt from ``params`` (:meth:`acting_params`) with
        the network constructors gin binds for ``cls``: parse the run's gin config first."""
        acting = cls.new_acting(obs_spec, action_dim, num_tasks, torch.device(device),
                                **configured_arguments(cls))
        acting.load_params(params)
        return acting

    @classmethod
    def new_acting(cls, obs_spec, action_dim: int, num_tasks: int, device: torch.device,
                   **arguments) -> ActingPart:
        """An acting part with fresh networks from ``arguments`` (the learner's keyword
        arguments): the learner-specific half of :meth:`build_acting`."""
        raise NotImplementedError(f"{cls.__name__} has no separable acting part")

    # -- learning --------------------------------------------------------------------
    def update(self, batch: dict) -> dict[str, float]:
        raise NotImplementedError

    def begin_episode(self, episode: int) -> None:
        """An adaptation episode starts (iwx.agents.base.contract); most agents ignore it."""
        del episode

    def check_fits(self, num_problems: int, slots: int, steps: int) -> None:
        """An adaptation of this size would fit (iwx.agents.base.contract); most agents
        hold nothing that grows with it beyond the replay."""
        del num_problems, slots, steps

    def count_update(self) -> None:
        """One learner step done: the loops' clock moves, due target networks refresh."""
        self.updates += 1
        if self.targets is not None:
            self.targets.refresh(self.updates)

    # -- checkpointing -------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {}
        for name in self.PARTS:
            part = getattr(self, name)
            if part is None:
                continue
            if isinstance(part, torch.Tensor):
                state[name] = part.detach().clone()
            elif isinstance(part, Checkpointable):
                state[name] = part.state_dict()
            else:
                state[name] = part
        return state

    def load_state_dict(self, state: dict) -> None:
        parts = {name: getattr(self, name) for name in self.PARTS}
        for name, part in parts.items():   # check everything before changing anything
            if (part is None) != (name not in state):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: the checkpoint "
                    f"{'has' if part is None else 'lacks'} {name!r}, which this agent "
                    f"{'lacks' if part is None else 'has'} (another configuration, e.g. a "
                    f"behaviour prior in one and not in the other)")
        for name, part in parts.items():
            if part is None:
                continue
            if isinstance(part, torch.Tensor):
                with torch.no_grad():
                    part.copy_(state[name])
            elif isinstance(part, Checkpointable):
                part.load_state_dict(state[name])
            else:
                setattr(self, name, state[name])


class AdaptsWithoutLearning(Agent):
    """An adaptation agent that takes no gradient step (``learns = False``: RL², PEARL*):
    it adapts ``ADAPTS_BY`` alone, and :meth:`update` is an error."""

    learns = False
    ADAPTS_BY: ClassVar[str] = "through its memory"

    def update(self, batch: dict) -> dict[str, float]:
        raise RuntimeError(f"{type(self).__name__}.update was called, but it adapts "
                           f"{self.ADAPTS_BY} without gradient steps (learns = False): the "
                           f"adaptation loop must not call update()")
