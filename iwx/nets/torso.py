"""The paper's MLP torso (appendix A) and a stacked "ensemble" version of it.

Appendix A: two-layer ELU MLPs with "a layer normalizing inputs". LayerNorm
applied straight to a 2-D input maps (x, y) to about ±(1, −1) and destroys
it, so the normalising layer sits after a first linear map:

    Linear(in, norm_width) → LayerNorm → tanh → [Linear → ELU] × len(hidden)

The ensemble version holds ``members`` independent copies with stacked
weights and evaluates them with batched matmuls: one member per task (a
per-task critic in training) or per adaptation problem (a fresh critic for
each held-out task, evaluated all at once).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gin
import torch
from torch import nn
from torch.nn import functional as F


def sigmoid_tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh(x) = 2σ(2x) − 1, differentiable. [...] -> [...].

    torch's float32 tanh kernel is several times slower than its sigmoid on this
    project's CPUs (STACK-NOTES); the two differ by a few 1e-8 in absolute value.
    """
    return torch.sigmoid(x * 2.0) * 2.0 - 1.0


def sigmoid_tanh_(x: torch.Tensor) -> torch.Tensor:
    """:func:`sigmoid_tanh` in place (no gradient). [...] -> the same tensor."""
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


def tanh(x: torch.Tensor, fast: bool, inplace: bool = False) -> torch.Tensor:
    """tanh as :func:`sigmoid_tanh` (``fast``) or torch.tanh, in place on ``x`` when
    ``inplace`` (no gradient). [...] -> [...]."""
    if inplace:
        return sigmoid_tanh_(x) if fast else x.tanh_()
    return sigmoid_tanh(x) if fast else torch.tanh(x)


class Tanh(nn.Tanh):
    """nn.Tanh computed as :func:`sigmoid_tanh` when ``fast`` (no parameters: checkpoints
    and the layer layout are those of nn.Tanh)."""

    def __init__(self, fast: bool = True):
        super().__init__()
        self.fast = fast

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return tanh(x, self.fast)


@gin.configurable
class Torso(nn.Module):
    """``fast_tanh``: the tanh after the LayerNorm as 2σ(2x) − 1 (:class:`Tanh`); False is
    torch.tanh (tests/test_fast_paths.py checks that the two agree)."""

    def __init__(self, in_dim: int, norm_width: int = 64, hidden: Sequence[int] = (64, 64),
                 fast_tanh: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(in_dim, norm_width), nn.LayerNorm(norm_width),
                                   Tanh(fast_tanh)]
        width = norm_width
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ELU()]
            width = h
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layers of ``self.net`` called as the functions they call (no per-module call
        overhead), activations in place when nothing is differentiated. [..., in] -> [..., out]."""
        first, norm, hidden = self.parts()
        inplace = not torch.is_grad_enabled()
        h = F.layer_norm(F.linear(x, first.weight, first.bias), norm.normalized_shape,
                         norm.weight, norm.bias, norm.eps)
        h = tanh(h, self.fast_tanh, inplace)
        for layer in hidden:
            h = F.elu(F.linear(h, layer.weight, layer.bias), inplace=inplace)
        return h

    @property
    def fast_tanh(self) -> bool:
        """Whether the tanh layer computes 2σ(2x) − 1 (the flag lives on that layer)."""
        return self.net[2].fast

    def parts(self) -> tuple[nn.Linear, nn.LayerNorm, list[nn.Linear]]:
        """(first Linear, LayerNorm, [hidden Linear, each followed by ELU]) — the layers
        :mod:`iwx.nets.fused` evaluates without the Sequential (its state-dict keys stay)."""
        layers = list(self.net)
        return layers[0], layers[1], layers[3::2]


class EnsembleLinear(nn.Module):
    """``members`` independent linear maps. x [M, N, in] -> [M, N, out]."""

    def __init__(self, members: int, in_dim: int, out_dim: int):
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # the init of nn.Linear, per member
        self.weight = nn.Parameter(torch.empty(members, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(members, 1, out_dim).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        w, b = self.weight, self.bias
        if members is not None:  # pick one member per leading row
            w, b = w[members], b[members]
        return torch.baddbmm(b, x, w)


class EnsembleLayerNorm(nn.Module):
    def __init__(self, members: int, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(members, 1, width))
        self.bias = nn.Parameter(torch.zeros(members, 1, width))
        self.width = width

    def forward(self, x, members=None):
        w, b = self.weight, self.bias
        if members is not None:
            w, b = w[members], b[members]
        return torch.nn.functional.layer_norm(x, (self.width,)) * w + b


@gin.configurable
class EnsembleTorso(nn.Module):
    """``members`` copies of :class:`Torso`. x [M, N, in] -> [M, N, out]. ``fast_tanh``: as
    :class:`Torso`'s."""

    def __init__(self, members: int, in_dim: int, norm_width: int = 64,
                 hidden: Sequence[int] = (64, 64), fast_tanh: bool = True):
        super().__init__()
        self.fast_tanh = fast_tanh
        self.first = EnsembleLinear(members, in_dim, norm_width)
        self.norm = EnsembleLayerNorm(members, norm_width)
        widths = [norm_width, *hidden]
        self.layers = nn.ModuleList(EnsembleLinear(members, a, b)
                                    for a, b in zip(widths[:-1], widths[1:]))
        self.out_dim = widths[-1]

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        h = tanh(self.norm(self.first(x, members), members), self.fast_tanh)
        for layer in self.layers:
            h = torch.nn.functional.elu(layer(h, members))
        return h
