"""An uninformed proposal for importance-weighted acting: uniform over the action box.

Figure 7 of the paper (its ablation) adapts with ψ reloaded but *without* the
pretrained prior π0, to show that ψ alone does not transfer. IWPA then still acts
through K samples re-weighted by softmax(Q/α) (eq. 4), but the samples come from
this proposal instead of π0:

    π_u(a|s) = U([-1, 1]^A),   log π_u(a|s) = −A log 2 inside the box.

Decision (the paper names no proposal for the ablation): uniform over the box the
agents act in (iwx.nets.prior: actions live in [-1, 1]^A) rather than an untrained
Gaussian, whose state-dependent mean and width are an arbitrary function of its
initialisation. It sees no observation and has no parameters, so nothing about
the training tasks reaches it. Samples never need clipping; their density is the
constant above, so the importance weights are softmax(Q/α) exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn


@gin.configurable
class UniformProposal(nn.Module):
    """U([-1, 1]^A) with the sampling interface of a behaviour prior (``sample``,
    ``log_prob``). ``obs_spec`` gives the batch shape of an observation: the leading
    dimensions of any of its parts beyond the part's own shape."""

    inputs: tuple[str, ...] = ()

    def __init__(self, obs_spec: Mapping[str, Sequence[int]], action_dim: int):
        super().__init__()
        if action_dim < 1:
            raise ValueError(f"UniformProposal needs action_dim >= 1, got {action_dim}")
        self.obs_spec = {k: tuple(v) for k, v in obs_spec.items()}
        self.action_dim = action_dim
        self.log_density = -action_dim * math.log(2.0)

    def _batch_shape(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Size, torch.device]:
        key = next(k for k in obs if k in self.obs_spec)
        value = obs[key]
        own = len(self.obs_spec[key])
        return value.shape[:value.dim() - own], value.device

    def sample(self, obs: Mapping[str, torch.Tensor], num_samples: int):
        """K actions per state, uniform on the box, from torch's global RNG.
        Returns actions [..., K, A] and log π_u(a_k|s) [..., K] (= −A log 2)."""
        batch, device = self._batch_shape(obs)
        actions = torch.rand((*batch, num_samples, self.action_dim), device=device)
        actions = actions.mul_(2.0).sub_(1.0)
        return actions, torch.full(actions.shape[:-1], self.log_density, device=device)

    def log_prob(self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """log π_u(a|s) for actions [..., K, A]: −A log 2 inside the box, −inf outside."""
        del obs
        inside = (actions.abs() <= 1.0).all(dim=-1)
        return torch.where(inside, torch.full(inside.shape, self.log_density,
                                              device=actions.device),
                           torch.full(inside.shape, -math.inf, device=actions.device))
