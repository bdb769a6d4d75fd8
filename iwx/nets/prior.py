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

from iwx.nets.gaussian_head import init_std_bias, squashed_gaussian, squashed_std
from iwx.nets.inputs import observation_dim, select
from iwx.nets.torso import Torso
from iwx.ops.policy import samples_log_prob


def clipped_samples(mean: torch.Tensor, std: torch.Tensor, num_samples: int) -> torch.Tensor:
    """K actions a_k = clip(μ + σ ε_k, -1, 1) per state, ε ~ N(0, I) from torch's global RNG.
    μ, σ [..., A] -> [..., K, A]."""
    mean, std = mean.unsqueeze(-2), std.unsqueeze(-2)                     # [..., 1, A]
    noise = torch.randn((*mean.shape[:-2], num_samples, mean.shape[-1]), device=mean.device)
    return noise.mul_(std).add_(mean).clamp_(-1.0, 1.0)


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

    def mean_std(self, obs: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """μ(s), σ(s) [..., A]: :meth:`distribution`'s parameters without building (and
        validating) a Normal — what the learners' and the acting rule's hot paths use."""
        mean, raw = self.head(self.torso(select(obs, self.inputs))).chunk(2, dim=-1)
        return mean, squashed_std(raw, self.log_std_min, self.log_std_max)

    def sample(self, obs: Mapping[str, torch.Tensor], num_samples: int):
        """K actions per state. Returns actions [..., K, A] and log π0(a_k|s) [..., K]."""
        mean, std = self.mean_std(obs)
        actions = clipped_samples(mean, std, num_samples)
        return actions, samples_log_prob(mean, std, actions)

    def log_prob(self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """log π0(a|s) for actions [..., K, A] given states [...]. -> [..., K]."""
        return self.samples_log_prob(self.distribution(obs), actions)


def is_gaussian_prior(prior) -> bool:
    """Whether ``prior`` is a single diagonal Gaussian π0: a module whose ``distribution(obs)``
    is that Normal, what DISTRAL, MPO and parametric adaptation read (GaussianPrior; not
    :class:`iwx.nets.mixture_prior.MixturePrior`, which has no ``distribution``)."""
    return callable(getattr(prior, "distribution", None))


def require_gaussian_prior(prior, who: str, why: str, fix: str) -> None:
    """Refuse a π0 that is not a single Gaussian where the math needs one (an analytic
    Gaussian KL, a policy started as an exact copy of π0). ``who`` names the consumer,
    ``why`` what it needs the Gaussian for, ``fix`` the binding to change."""
    if prior is not None and not is_gaussian_prior(prior):
        raise ValueError(f"{who} needs a single-Gaussian behaviour prior π0 ({why}), but "
                         f"the prior is a {type(prior).__name__}: {fix}")
