"""What learners do with their networks: frozen evaluation, target copies, optimiser steps."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator, Sequence

import gin
import torch
from torch import nn

from iwx.agents.base.adam import Adam


@gin.configurable
def adam(params: Iterable[torch.Tensor], lr: float, *, fused: bool = True) -> Adam:
    """The optimiser of every learner: Adam at learning rate ``lr`` (iwx.agents.base.adam:
    torch's update, without importing torch's compiler).

    ``fused`` (the default) updates each parameter in one kernel (torch's fused Adam, on
    the CPU and on CUDA) instead of a loop of small element-wise ops per parameter,
    the same update up to float rounding; ``adam.fused = False`` is the plain
    per-tensor loop (tests/test_fast_paths.py checks that the two agree).
    """
    params = list(params)
    fused = fused and bool(params) and all(p.dtype.is_floating_point for p in params)
    return Adam(params, lr=lr, fused=fused)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Evaluate ``module`` without gradients into its parameters (its inputs still get them:
    SVG(0) differentiates Q in the action only). Every flag is restored afterwards."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


class Targets:
    """Target networks θ' of online networks θ, θ' := θ every ``period`` learner updates.

    ``copy(online)`` makes a frozen copy and remembers the pair; ``refresh(updates)``
    copies every pair when ``updates`` is a multiple of the period. ``owner`` names
    the agent class in the error for a bad period.
    """

    def __init__(self, period: int, owner: str):
        if period < 1:
            raise ValueError(f"{owner}.target_period must be >= 1, got {period}")
        self.period = period
        self.pairs: list[tuple[nn.Module, nn.Module]] = []

    def copy(self, online: nn.Module | None) -> nn.Module | None:
        """A frozen deep copy of ``online`` kept in step by :meth:`refresh` (None stays None)."""
        if online is None:
            return None
        target = copy.deepcopy(online).requires_grad_(False)
        self.pairs.append((online, target))
        return target

    def refresh(self, updates: int) -> None:
        if updates % self.period == 0:
            for online, target in self.pairs:
                target.load_state_dict(online.state_dict())


def optimise(losses: torch.Tensor | Sequence[torch.Tensor],
             *optimizers: Adam | None) -> None:
    """One gradient step: zero every optimiser's gradients, backpropagate each loss (in
    order: gradients of losses on shared parameters add up), step every optimiser.
    ``None`` optimisers (an absent part) are skipped."""
    optimizers = tuple(o for o in optimizers if o is not None)
    for opt in optimizers:
        opt.zero_grad()
    for loss in (losses,) if isinstance(losses, torch.Tensor) else losses:
        loss.backward()
    for opt in optimizers:
        opt.step()
