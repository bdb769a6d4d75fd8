"""Masked reductions over padded batches: the one home of every mean the losses take.

Pure functions of tensors. ``mask`` is 1 where a step exists and 0 on padding
(a chunk that runs past its episode's end, an empty replay row).
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``x`` over all elements, or Σ mask·x / max(Σ mask, 1) with a mask.

    ``mask`` has the shape of ``x`` or broadcasts to it. Masked entries are
    selected out with ``torch.where``, so a NaN or inf there does not leak
    into the mean. Returns a scalar.
    """
    if mask is None:
        return x.mean()
    mask = torch.broadcast_to(mask.to(x.dtype), x.shape)
    picked = torch.where(mask > 0, x * mask, torch.zeros_like(x))
    return picked.sum() / mask.sum().clamp(min=1.0)


def per_problem_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_p [Σ mask_p x_p / max(Σ mask_p, 1)]: the sum over problems of each one's masked mean.

    x, mask [P, ...] -> scalar. Adaptation sums its P problems' losses this way so
    that Adam, whose steps are scale-free per parameter, treats each problem's
    parameters as if it were trained alone. Masked entries cannot leak NaN.
    """
    dims = tuple(range(1, x.dim()))
    mask = torch.broadcast_to(mask.to(x.dtype), x.shape)
    picked = torch.where(mask > 0, x * mask, torch.zeros_like(x))
    return (picked.sum(dims) / mask.sum(dims).clamp_min(1.0)).sum()
