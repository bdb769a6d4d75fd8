"""The diagonal-Gaussian head shared by π0, the parametric policies and RL²'s actor.

A head outputs (μ, raw) per action dimension; log σ is squashed smoothly into
[log_std_min, log_std_max] by a sigmoid of raw, and the bias of raw can be set
so that σ starts at ``init_std`` (wide first episodes explore; a policy built
this way can start as an exact copy of π0).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def squashed_std(raw_std: torch.Tensor, log_std_min: float, log_std_max: float) -> torch.Tensor:
    """σ = exp(min + (max − min)·sigmoid(raw)). [..., A] -> [..., A].

    The acting paths use it without building a Distribution (whose argument checks cost
    more than the arithmetic at acting batch sizes)."""
    log_std = log_std_min + (log_std_max - log_std_min) * torch.sigmoid(raw_std)
    return log_std.exp()


def squashed_gaussian(mean: torch.Tensor, raw_std: torch.Tensor, log_std_min: float,
                      log_std_max: float) -> torch.distributions.Normal:
    """N(μ, diag σ²) with log σ = min + (max − min)·sigmoid(raw). [..., A] -> Normal [..., A]."""
    return torch.distributions.Normal(mean, squashed_std(raw_std, log_std_min, log_std_max))


def init_std_bias(head: nn.Linear, action_dim: int, init_std: float | None, log_std_min: float,
                  log_std_max: float, owner: str) -> None:
    """Set the raw-σ half of ``head``'s bias so that σ = ``init_std`` at zero features.

    ``None`` leaves the default init. ``owner`` names the class in the error.
    """
    if init_std is None:
        return
    with torch.no_grad():
        head.bias[action_dim:] = raw_std_for(init_std, log_std_min, log_std_max, owner)


def raw_std_for(init_std: float, log_std_min: float, log_std_max: float, owner: str) -> float:
    """The raw value r with :func:`squashed_std` (r) = ``init_std``:
    r = logit((log init_std − min) / (max − min)). ``owner`` names the class in the error."""
    if not np.exp(log_std_min) < init_std < np.exp(log_std_max):
        raise ValueError(f"{owner}.init_std={init_std} must lie strictly inside "
                         f"[exp(log_std_min), exp(log_std_max)]")
    frac = (np.log(init_std) - log_std_min) / (log_std_max - log_std_min)
    return float(np.log(frac / (1 - frac)))
