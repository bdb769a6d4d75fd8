"""P independent Gaussian policies evaluated at once: one per adaptation problem.

The parametric adaptation baselines (paper §6: "DISTRAL", "Shared Q", "From
Scratch") learn one policy π_p per problem p (held-out task × adaptation seed),
all problems side by side. The members are stacked like
:class:`iwx.nets.critics.PerTaskCritic`: member p only ever sees row p.

    obs[k]: [M, *rest, ...]   ->   Normal over actions [M, *rest, A]

Each member has the shape of :class:`iwx.nets.prior.GaussianPrior` (and of a
:class:`iwx.nets.policy.GaussianPolicy` without task input): the paper's torso
(Linear → LayerNorm → tanh → [Linear → ELU]*), a linear head giving μ and a raw
log σ squashed into [log_std_min, log_std_max]. :meth:`like` builds the
ensemble with the shapes of such a network and, optionally, its weights in every
member ("DISTRAL" / "Shared Q": π_p starts as a copy of π0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gin
import numpy as np
import torch
from torch import nn

from iwx.nets.gaussian_head import squashed_gaussian
from iwx.nets.inputs import observation_dim, select
from iwx.nets.torso import EnsembleLinear, EnsembleTorso


def torso_widths(torso: nn.Module) -> tuple[int, int, tuple[int, ...]]:
    """(in_dim, norm_width, hidden) of an :class:`iwx.nets.torso.Torso`.

    Raises ValueError for any other layer pattern (the ensemble could not copy it).
    """
    layers = list(getattr(torso, "net", []))
    kinds = [type(m) for m in layers]
    expected = [nn.Linear, nn.LayerNorm, nn.Tanh] + [nn.Linear, nn.ELU] * ((len(layers) - 3) // 2)
    if len(layers) < 3 or len(layers) != len(expected) \
            or not all(isinstance(m, k) for m, k in zip(layers, expected)):
        raise ValueError(f"cannot stack {type(torso).__name__}: expected the paper's torso "
                         f"Linear → LayerNorm → Tanh → [Linear → ELU]*, got "
                         f"{[k.__name__ for k in kinds]}")
    linears = [m for m in layers if isinstance(m, nn.Linear)]
    return (linears[0].in_features, linears[0].out_features,
            tuple(m.out_features for m in linears[1:]))


@gin.configurable
class EnsembleGaussianPolicy(nn.Module):
    """``members`` diagonal Gaussian policies π_p(a|s) on the observation parts ``inputs``."""

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, members: int, *,
                 inputs: Sequence[str] = ("position",), norm_width: int = 64,
                 hidden: Sequence[int] = (64, 64), log_std_min: float = -3.0,
                 log_std_max: float = 0.5, init_std: float | None = 0.8):
        super().__init__()
        if members < 1:
            raise ValueError(f"EnsembleGaussianPolicy needs members >= 1, got {members}")
        self.inputs, self.members, self.action_dim = tuple(inputs), members, action_dim
        self.torso = EnsembleTorso(members, observation_dim(obs_spec, self.inputs),
                                   norm_width=norm_width, hidden=tuple(hidden))
        self.head = EnsembleLinear(members, self.torso.out_dim, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        if init_std is not None:  # the same start width as GaussianPrior / GaussianPolicy
            if not np.exp(log_std_min) < init_std < np.exp(log_std_max):
                raise ValueError(f"EnsembleGaussianPolicy.init_std={init_std} must lie strictly "
                                 f"inside [exp(log_std_min), exp(log_std_max)]")
            frac = (np.log(init_std) - log_std_min) / (log_std_max - log_std_min)
            with torch.no_grad():
                self.head.bias[..., action_dim:] = float(np.log(frac / (1 - frac)))

    @classmethod
    def like(cls, network: nn.Module, obs_spec, members: int, *,
             copy_weights: bool = True) -> EnsembleGaussianPolicy:
        """An ensemble with the shapes, inputs and σ range of ``network`` (a GaussianPrior,
        or a GaussianPolicy without task input); every member a copy of its weights if
        ``copy_weights``, else freshly initialised (its σ bias copied: same start width)."""
        if getattr(network, "task_key", None) is not None or getattr(network, "extra_dim", 0):
            raise ValueError("EnsembleGaussianPolicy.like needs a network on observation parts "
                             "only (no task input, no extra input)")
        in_dim, norm_width, hidden = torso_widths(network.torso)
        if in_dim != observation_dim(obs_spec, network.inputs):
            raise ValueError(f"{type(network).__name__} takes {in_dim} inputs but "
                             f"{list(network.inputs)} has {observation_dim(obs_spec, network.inputs)}"
                             f" in this observation")
        ensemble = cls(obs_spec, network.action_dim, members, inputs=network.inputs,
                       norm_width=norm_width, hidden=hidden, log_std_min=network.log_std_min,
                       log_std_max=network.log_std_max, init_std=None)
        ensemble = ensemble.to(next(network.parameters()).device)
        if copy_weights:
            ensemble.copy_from(network)
        else:
            with torch.no_grad():
                a = network.action_dim
                ensemble.head.bias[..., a:] = network.head.bias[a:].detach()
        return ensemble

    @torch.no_grad()
    def copy_from(self, network: nn.Module) -> None:
        """Every member := ``network``'s torso and head (a GaussianPrior-shaped module)."""
        linears = [m for m in network.torso.net if isinstance(m, nn.Linear)]
        norm = next(m for m in network.torso.net if isinstance(m, nn.LayerNorm))
        targets = [self.torso.first, *self.torso.layers]
        if len(linears) != len(targets):
            raise ValueError(f"{type(network).__name__} has {len(linears)} linear torso layers, "
                             f"this ensemble {len(targets)}")
        for mine, theirs in zip([*targets, self.head], [*linears, network.head]):
            if mine.weight.shape[1:] != theirs.weight.T.shape:
                raise ValueError(f"layer shapes differ: {tuple(mine.weight.shape[1:])} vs "
                                 f"{tuple(theirs.weight.T.shape)}")
            mine.weight.copy_(theirs.weight.T.expand_as(mine.weight))    # [M, in, out]
            mine.bias.copy_(theirs.bias.expand_as(mine.bias))            # [M, 1, out]
        self.torso.norm.weight.copy_(norm.weight.expand_as(self.torso.norm.weight))
        self.torso.norm.bias.copy_(norm.bias.expand_as(self.torso.norm.bias))

    def distribution(self, obs: Mapping[str, torch.Tensor]) -> torch.distributions.Normal:
        """Member p at row p. obs[k] [M, *rest, ...] -> Normal [M, *rest, A]."""
        x = select(obs, self.inputs)                                    # [M, *rest, in]
        if x.shape[0] != self.members:
            raise ValueError(f"expected {self.members} rows (one per member), got {x.shape[0]}")
        flat = x.reshape(self.members, -1, x.shape[-1])                 # [M, N, in]
        out = self.head(self.torso(flat)).reshape(*x.shape[:-1], 2 * self.action_dim)
        mean, raw = out.chunk(2, dim=-1)
        return squashed_gaussian(mean, raw, self.log_std_min, self.log_std_max)
