"""Importance weights over K prior samples and the soft values built from them.

Pure functions of tensors; equation numbers refer to the paper
(Galashov et al., "Importance Weighted Policy Learning and Adaptation").
Shapes: ``q_values`` and ``prior_log_prob`` are [..., K] (K prior samples per
state); reductions are over the last axis. The TD targets and critic losses
built from these soft values are in :mod:`iwx.ops.td`.
"""

from __future__ import annotations

import math

import gin
import torch


def importance_weights(q_values: torch.Tensor, alpha) -> torch.Tensor:
    """q̂_k of eq. (6): exp((Q(s, a_k) - Z(s)) / α), i.e. softmax(Q / α) over K.

    [..., K] -> [..., K].
    """
    return torch.softmax(q_values / alpha, dim=-1)


@gin.configurable
def soft_value_literal(q_values: torch.Tensor, prior_log_prob: torch.Tensor,
                       alpha) -> torch.Tensor:
    """The bracket of eq. (10) as written: Σ_k q̂_k (Q_k − α log(q̂_k / π0(a_k|s))).

    [..., K] -> [...].

    ``prior_log_prob`` is log π0(a_k|s), a *density*; the KL term therefore
    mixes a discrete distribution over K samples with a density (ARCHITECTURE §3).
    """
    log_w = torch.log_softmax(q_values / alpha, dim=-1)
    return (log_w.exp() * (q_values - alpha * (log_w - prior_log_prob))).sum(-1)


@gin.configurable
def soft_value_logmeanexp(q_values: torch.Tensor, prior_log_prob: torch.Tensor | None,
                          alpha) -> torch.Tensor:
    """Self-consistent soft value with the K-sample estimate (eq. (10) variant).  [..., K] -> [...].

    V(s) = α log (1/K) Σ_k exp(Q_k / α)
         = Σ_k q̂_k (Q_k − α log(q̂_k / (1/K))),
    i.e. eq. (10) with π0 replaced by the empirical prior, uniform over the K
    samples. ``prior_log_prob`` is accepted for a common signature and unused.
    """
    del prior_log_prob
    k = q_values.shape[-1]
    return alpha * (torch.logsumexp(q_values / alpha, dim=-1) - math.log(k))


def kl_to_empirical_prior(q_values: torch.Tensor, alpha) -> torch.Tensor:
    """KL(q̂ ‖ uniform over the K samples) = Σ_k q̂_k log(K q̂_k) ∈ [0, log K].  [..., K] -> [...].

    The KL that eq. (8)'s constraint bounds once π0 is replaced by the empirical
    prior over the K samples (iwx.ops.temperature); also MPO's E-step KL.
    """
    log_w = torch.log_softmax(q_values / alpha, dim=-1)
    return (log_w.exp() * (log_w + math.log(q_values.shape[-1]))).sum(-1)


def prior_loss(weights: torch.Tensor, prior_log_prob: torch.Tensor) -> torch.Tensor:
    """J_π0 of eq. (11) per state: −Σ_k q̂'_k log π0(a_k|s; φ).  [..., K] -> [...].

    ``weights`` are treated as constants (they come from the target networks).
    """
    return -(weights.detach() * prior_log_prob).sum(-1)
