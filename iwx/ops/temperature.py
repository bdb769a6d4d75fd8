"""The temperature dual, eq. (8): the one dual of IWPL's ConstrainedTemperature and MPO's E-step.

What ε bounds (a decision the paper leaves open, see docs/DECISIONS.md):
the *mean over states* of KL(q̂(·|s) ‖ uniform over the K prior samples), in
nats. That KL lies in [0, log K], so ε must be below log K to bind at all. The
paper's ε (30–100) is stated as a sum over its 100+ training tasks; per task
and state that is 0.3–1 nat.

Minimising the convex dual
    g(α) = α ε + α · E_s[ log (1/K) Σ_k exp(Q(s, a_k) / α) ]
over α > 0 gives g'(α) = ε − E_s[KL(q̂_α ‖ uniform)], so at the optimum the
average KL equals ε (REPS; MPO's E-step dual with η in the place of α, where
the K samples come from the old policy instead of π0).
"""

from __future__ import annotations

import math

import torch

from iwx.ops.reduce import masked_mean


def temperature_dual(q_values: torch.Tensor, alpha: torch.Tensor, epsilon: float,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """g(α) = α ε + α · masked_mean_N log (1/K) Σ_k exp(Q_nk / α)  (eq. (8) dual). -> scalar.

    ``q_values`` [N, K] are constants (detached here): the gradient goes to
    ``alpha`` only (a positive tensor; callers pass ``log_alpha.exp()``), and
    is g'(α) = ε − masked_mean_N KL(softmax(Q_n/α) ‖ uniform over K).
    ``mask`` [N] (1 = real state, 0 = padding) drops rows from the mean.

    Float32 at large |Q|/α: with m_n = max_k Q_nk (detached),
        α · log (1/K) Σ_k exp(Q_nk/α) = m_n + α · log (1/K) Σ_k exp((Q_nk − m_n)/α),
    so g is computed as masked_mean(m) + α (ε + masked_mean(shifted log-mean-exp)).
    The logsumexp then sees arguments in (−∞, 0] and returns a value in
    [0, log K], so the weights its backward implies, exp(x − rounded result),
    sum to 1 within float32 precision. Unshifted, at Q/α ~ −10⁵ the rounding of
    the result (an ulp of ~0.008) made them sum to ≠ 1 and gave g' the wrong sign.
    """
    q = q_values.detach()
    if mask is not None:  # padded rows may hold anything (NaN): keep them out of the gradient too
        q = torch.where(mask[:, None] > 0, q, torch.zeros_like(q))
    top = q.max(dim=-1, keepdim=True).values                                  # m [N, 1]
    shifted = torch.logsumexp((q - top) / alpha, dim=-1) - math.log(q.shape[-1])  # [N]
    return masked_mean(top.squeeze(-1), mask) + alpha * (epsilon + masked_mean(shifted, mask))
