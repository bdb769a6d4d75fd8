"""PEARL*'s acting: posterior sampling with a per-row context memory (Rakelly et al. 2019).

Per environment row, the transitions of the current trial (since ``begin_tasks``)
are kept, the last ``context_length`` of them. At the start of each episode (the
first act after ``begin_tasks`` or after the row's episode ended) z ~ q(z | the
row's context) is drawn — the prior N(0, I) when the context is empty — and held
for the whole episode. Acting draws (z and actions) come from the acting part's own
torch generator, which is checkpointed, so a killed run resumes to the same numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch

from iwx.agents.base import ActingPart, to_torch
from iwx.nets.context import ContextEncoder
from iwx.nets.policy import GaussianPolicy
from iwx.ops.bottleneck import reparameterised_latent


class ContextMemory:
    """Per-row context of the current trial and the latent each row acts with.

    Holds, for B rows, the last ``context_length`` transitions (oldest first) of
    the observation parts ``shapes``, and z [B, Z] with a flag saying which rows
    must draw a new z before their next action (start of an episode).
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], action_dim: int,
                 latent_dim: int, context_length: int):
        self.shapes, self.action_dim = dict(shapes), action_dim
        self.latent_dim, self.length_max = latent_dim, context_length
        self.rows = -1
        self.begin(0)

    def begin(self, rows: int) -> None:
        """Forget everything: ``rows`` empty contexts, every row draws z at its next act."""
        n, L = rows, self.length_max
        self.rows = rows
        self.obs = {k: np.zeros((n, L, *s), np.float32) for k, s in self.shapes.items()}
        self.next_obs = {k: np.zeros((n, L, *s), np.float32) for k, s in self.shapes.items()}
        self.actions = np.zeros((n, L, self.action_dim), np.float32)
        self.rewards = np.zeros((n, L), np.float32)
        self.length = np.zeros(n, np.int64)
        self.z = np.zeros((n, self.latent_dim), np.float32)
        self.needs_z = np.ones(n, bool)

    def add(self, obs, actions, rewards, next_obs, done, alive) -> None:
        """Append one transition to every alive row (dropping its oldest when full)."""
        alive = np.asarray(alive, bool)
        if alive.shape != (self.rows,):
            raise ValueError(f"observe() got {alive.shape[0]} rows, the memory holds {self.rows} "
                             f"(call begin_tasks with the number of environment rows)")
        full = alive & (self.length == self.length_max)
        arrays = [*self.obs.values(), *self.next_obs.values(), self.actions, self.rewards]
        if full.any():
            for a in arrays:
                a[full] = np.roll(a[full], -1, axis=1)
        rows = np.flatnonzero(alive)
        at = np.minimum(self.length[rows], self.length_max - 1)
        for k in self.shapes:
            self.obs[k][rows, at] = np.asarray(obs[k])[rows]
            self.next_obs[k][rows, at] = np.asarray(next_obs[k])[rows]
        self.actions[rows, at] = np.asarray(actions)[rows]
        self.rewards[rows, at] = np.asarray(rewards)[rows]
        self.length[rows] = np.minimum(self.length[rows] + 1, self.length_max)
        self.needs_z |= alive & np.asarray(done, bool)

    def context(self, rows: np.ndarray, device) -> tuple:
        """The encoder's arguments for ``rows``: obs, actions, rewards, next_obs, mask [n, L, ...]."""
        mask = (np.arange(self.length_max) < self.length[rows, None]).astype(np.float32)

        def t(x):
            return torch.as_tensor(x, device=device)

        return ({k: t(v[rows]) for k, v in self.obs.items()}, t(self.actions[rows]),
                t(self.rewards[rows]), {k: t(v[rows]) for k, v in self.next_obs.items()},
                t(mask))

    def state_dict(self) -> dict:
        return copy.deepcopy({"obs": self.obs, "next_obs": self.next_obs,
                              "actions": self.actions, "rewards": self.rewards,
                              "length": self.length, "z": self.z, "needs_z": self.needs_z})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.obs, self.next_obs = state["obs"], state["next_obs"]
        self.actions, self.rewards, self.length = state["actions"], state["rewards"], state["length"]
        self.z, self.needs_z = state["z"], state["needs_z"]
        self.rows = len(self.length)


class PosteriorSampling(ActingPart):
    """Acting of PEARL*: z ~ q(z | context) drawn per row at each episode start, held for the
    episode; a ~ π(·|s, z) unclipped, returned with log π(a|s, z) (the behaviour density).
    ``explore`` is ignored: PEARL* has no prior, a trial's first episode acts from N(0, I)."""

    NETWORKS = ("encoder", "actor")
    replay_extras = {"log_prob": ()}

    def __init__(self, encoder: ContextEncoder, actor: GaussianPolicy, obs_spec,
                 action_dim: int, context_length: int, device: torch.device):
        self.encoder, self.actor, self.device = encoder, actor, device
        keys = sorted(set(encoder.context_keys))
        self.memory = ContextMemory({k: tuple(obs_spec[k]) for k in keys}, action_dim,
                                    encoder.latent_dim, context_length)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(torch.randint(2 ** 62, ()).item()))  # from the run seed

    def seed(self, seed: int) -> None:
        """Its own generator draws z and the actions."""
        self.generator.manual_seed(seed)

    def begin_tasks(self, num_rows: int) -> None:
        self.memory.begin(num_rows)

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        self.memory.add(obs, actions, rewards, next_obs, done, alive)

    @torch.no_grad()
    def act(self, obs: dict, explore: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        del explore
        rows = len(next(iter(obs.values())))
        if self.memory.rows != rows:   # a loop that never called begin_tasks: a fresh trial
            self.memory.begin(rows)
        draw = np.flatnonzero(self.memory.needs_z)
        if len(draw):
            mean, log_std = self.encoder(*self.memory.context(draw, self.device))
            z = reparameterised_latent(mean, log_std, generator=self.generator)
            self.memory.z[draw] = z.cpu().numpy()
            self.memory.needs_z[draw] = False
        z = torch.as_tensor(self.memory.z, device=self.device)                 # [B, Z]
        dist = self.actor.distribution(to_torch(obs, self.device), z)          # [B, A]
        eps = torch.randn(dist.loc.shape, generator=self.generator, device=self.device)
        actions = dist.loc + dist.scale * eps
        log_prob = dist.log_prob(actions).sum(-1)
        return actions.cpu().numpy(), {"log_prob": log_prob.cpu().numpy()}

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.generator.set_state(state["generator"].cpu())
