"""The temperature dual for the KL-constrained objective, eq. (8).

What ε bounds (a decision the paper leaves open, see docs/DECISIONS.md):
the *mean over states* of KL(q̂(·|s) ‖ uniform over the K prior samples), in
nats. That KL lies in [0, log K], so ε must be below log K to bind at all. The
paper's ε (30–100) is stated as a sum over its 100+ training tasks; per task
and state that is 0.3–1 nat.

Minimising the convex dual
    g(α) = α ε + α · E_s[ log (1/K) Σ_k exp(Q(s, a_k) / α) ]
over α > 0 gives g'(α) = ε − E_s[KL(q̂_α ‖ uniform)], so at the optimum the
average KL equals ε (REPS / MPO E-step dual).
"""

from __future__ import annotations

import math

import torch


def temperature_dual(log_alpha: torch.Tensor, q_values: torch.Tensor,
                     epsilon: float) -> torch.Tensor:
    """g(α) of the module docstring with α = exp(log_alpha); ``q_values`` [N, K] are constants."""
    alpha = log_alpha.exp()
    q = q_values.detach()
    log_mean_exp = torch.logsumexp(q / alpha, dim=-1) - math.log(q.shape[-1])
    return alpha * epsilon + alpha * log_mean_exp.mean()
