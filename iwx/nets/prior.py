"""The behaviour prior π0: a Gaussian on a restricted observation.

Actions live in [-1, 1]^A (the acting loop maps them to the environment's
bounds). Samples are clipped to that box; log-densities are evaluated at the
clipped points, which is what the importance weights and eq. (11) use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn
from torch.nn import functional as F

from iwx.nets.gaussian_head import init_std_bias, squashed_gaussian, squashed_std
from iwx.nets.inputs import observation_dim, select
from iwx.nets.torso import Torso
from iwx.ops.policy import samples_log_prob


@gin.configurable
class GaussianPrior(nn.Module):
    """π0(a|s) = N(μ(s), diag σ(s)²), log σ squashed into [log_std_min, log_std_max].

    ``inputs``: the observation keys the prior may see (never a task id or goal).
    """

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, *,
                 inputs: Sequence[str] = ("position",), torso=Torso,
                 log_std_min: float = -3.0, log_std_max: float = 0.5,
                 init_std: float | None = 0.8):
        super().__init__()
        self.inputs = tuple(inputs)
        self.torso = torso(observation_dim(obs_spec, self.inputs))
        self.head = nn.Linear(self.torso.out_dim, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.action_dim = action_dim
        # Start wide: the first episodes explore with π0 alone (sparse rewards).
        init_std_bias(self.head, action_dim, init_std, log_std_min, log_std_max, "GaussianPrior")

    def distribution(self, obs: Mapping[str, torch.Tensor]) -> torch.distributions.Normal:
        mean, raw = self.head(self.torso(select(obs, self.inputs))).chunk(2, dim=-1)
        return squashed_gaussian(mean, raw, self.log_std_min, self.log_std_max)

    @staticmethod
    def samples_log_prob(dist: torch.distributions.Normal, actions: torch.Tensor) -> torch.Tensor:
        """log density of K actions per state [..., K, A] under ``dist`` [..., A]. -> [..., K]."""
        return samples_log_prob(dist.loc, dist.scale, actions)

    def sample(self, obs: Mapping[str, torch.Tensor], num_samples: int):
        """K actions per state. Returns actions [..., K, A] and log π0(a_k|s) [..., K]."""
        dist = self.distribution(obs)
        mean, std = dist.loc.unsqueeze(-2), dist.scale.unsqueeze(-2)  # [..., 1, A]
        shape = (*mean.shape[:-2], num_samples, mean.shape[-1])
        actions = (mean + std * torch.randn(shape, device=mean.device)).clamp(-1.0, 1.0)
        return actions, self.samples_log_prob(dist, actions)

    def log_prob(self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """log π0(a|s) for actions [..., K, A] given states [...]. -> [..., K]."""
        return self.samples_log_prob(self.distribution(obs), actions)

    def mean_std(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """π0's μ(s) and σ(s) as plain tensors, no Distribution (the acting path).
        obs [..., ...] -> ([..., A], [..., A]); the same numbers as ``distribution(obs)``.

        Under no_grad the torso runs through :meth:`_torso_no_grad` (same operations,
        without per-module call overhead or fresh buffers for the activations)."""
        x = select(obs, self.inputs)
        if torch.is_grad_enabled():
            mean, raw = self.head(self.torso(x)).chunk(2, dim=-1)
            return mean, squashed_std(raw, self.log_std_min, self.log_std_max)
        mean, raw = self.head(self._torso_no_grad(x)).chunk(2, dim=-1)
        span = self.log_std_max - self.log_std_min    # squashed_std's arithmetic, in place
        return mean, torch.sigmoid(raw).mul_(span).add_(self.log_std_min).exp_()

    def _torso_no_grad(self, x: torch.Tensor) -> torch.Tensor:
        """``self.torso(x)`` for a :class:`Torso` (Linear, LayerNorm, Tanh, ELU layers in
        ``.net``) called as the functions its layers call, activations in place on
        tensors made here (acting batches of a few rows are overhead-bound). Any other
        torso, or a layer of another kind, runs through its own forward. [..., in] -> [..., out]."""
        net = getattr(self.torso, "net", None)
        if type(self.torso) is not Torso or not isinstance(net, nn.Sequential):
            return self.torso(x)
        fresh = False                                 # never write into the caller's x
        for layer in net:
            kind = type(layer)
            if kind is nn.Linear:
                x, fresh = F.linear(x, layer.weight, layer.bias), True
            elif kind is nn.LayerNorm:
                x, fresh = F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias,
                                        layer.eps), True
            elif kind is nn.Tanh and fresh:
                x = x.tanh_()
            elif kind is nn.ELU and fresh and not layer.inplace:
                x = F.elu_(x, layer.alpha)
            else:
                x, fresh = layer(x), False         # its output may be its input
        return x
