"""The agent contract: what the loops (``iwx.loops``) call, as typed protocols.

The loops call these and nothing else, so a method is an agent class plus gin
files, never another loop. :class:`iwx.agents.base.agent.Agent` and
:class:`~iwx.agents.base.agent.ActingPart` give every implementation the
defaults; docs/AGENTS.md is the short guide.

Arrays: ``obs`` is a dict of numpy arrays [B, ...], one row per environment (one
task per row); actions [B, A], unclipped (the acting loop clips them on the way
to the environment and stores them as returned).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

#: what ``act`` returns: actions [B, A], or (actions, {name: [B, *shape]}) for replay_extras
Actions = np.ndarray | tuple[np.ndarray, dict[str, np.ndarray]]


@runtime_checkable
class Acts(Protocol):
    """Acting. ``replay_extras`` {name: shape}: the per-step arrays ``act`` returns next to
    the actions, which the replay stores (e.g. log μ(a|s) for Retrace); {} for none."""

    @property
    def replay_extras(self) -> Mapping[str, tuple[int, ...]]: ...

    def act(self, obs: Mapping[str, np.ndarray], explore: bool = False) -> Actions:
        """``explore``: an exploration episode (act from the prior π0 where there is one)."""


@runtime_checkable
class HasMemory(Protocol):
    """Memory across steps (RL²'s LSTM, PEARL*'s context); no-ops for agents without."""

    def begin_tasks(self, num_rows: int) -> None:
        """The environment rows start new tasks: forget (training: each draw of tasks;
        adaptation: once, at the start)."""

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        """After every environment step, arrays over all B rows: ``done`` terminated or
        truncated now, ``alive`` the row was still in its episode when it acted."""


@runtime_checkable
class Checkpointable(Protocol):
    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class Learns(Protocol):
    """Learning. ``updates``: learner steps done (the loops' clock). ``context_length`` > 0:
    the loops add ``batch["context"]`` (c = 1, L = context_length, the same tasks)."""

    updates: int

    @property
    def context_length(self) -> int: ...

    def update(self, batch: dict) -> dict[str, float]:
        """One learner step on a replay batch (numpy, iwx.replay.task_replay); returns metrics."""


@runtime_checkable
class MultiTaskAgent(Acts, HasMemory, Learns, Checkpointable, Protocol):
    """A (pre)training agent, bound as ``pretrain_and_adapt.agent``. Built as
    ``cls(obs_spec, action_dim, num_tasks, device=...)``. ``prior`` (π0) and ``critic``
    are what adaptation variants reload (None where the method has none)."""

    @property
    def prior(self) -> torch.nn.Module | None: ...

    @property
    def critic(self) -> torch.nn.Module | None: ...

    def acting_params(self) -> dict[str, Any]:
        """What its acting part acts with, as CPU tensors / state dicts (small: no
        targets, no optimiser state), from which ``build_acting`` rebuilds it elsewhere."""


@runtime_checkable
class AdaptationAgent(Acts, HasMemory, Learns, Checkpointable, Protocol):
    """One row per adaptation problem, built by a variant factory ``make_agent(pretrained,
    obs_spec, action_dim, num_problems, device=...)``. ``learns`` False: adapts without
    gradient steps (RL², PEARL*); the loop then never calls ``update``."""

    @property
    def learns(self) -> bool: ...

    def begin_episode(self, episode: int) -> None:
        """Adaptation episode ``episode`` (0-based) is about to start for every problem:
        where an agent's schedule changes with the episode (IWPA.finetune_after). The
        loop calls it before every episode, a resumed run's first one included."""

    def check_fits(self, num_problems: int, slots: int, steps: int) -> None:
        """Raise now what adapting ``num_problems`` problems with a replay of ``slots``
        episodes × ``steps`` would raise at its first update (IWPA's frozen cache over
        ``cache_max_gb``). The pipeline calls it on a tiny agent before any compute."""


@runtime_checkable
class ActsRemotely(Acts, HasMemory, Protocol):
    """The acting part of a multi-task agent: networks and the acting rule, no optimiser,
    no replay. Rebuilt in another process with ``AgentClass.build_acting(obs_spec,
    action_dim, num_tasks, params)`` after parsing the run's gin config; for the same
    ``params``, the same ``seed`` and the same observations it acts as the learner does."""

    def params(self) -> dict[str, Any]: ...

    def load_params(self, params: Mapping[str, Any]) -> None: ...

    def seed(self, seed: int) -> None:
        """Seed the random source its actions are drawn from."""
