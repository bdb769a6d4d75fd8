"""MPO (Abdolmaleki et al., "Maximum a Posteriori Policy Optimisation", ICLR 2018;
decoupled trust region from Abdolmaleki et al. 2018, "Relative Entropy Regularized
Policy Iteration"), the paper's MPO and MPO + DISTRAL baselines (§6, ref. [3]).

Shapes: ``q`` [B, K] holds Q(s_b, a_bk) for K actions a_bk sampled per state
from the *target* (old) policy; reductions over K are over the last axis and
over B a (masked) mean.  All ``*_loss`` values are minimised.

One MPO update, with these functions:
    E-step   η ← minimise ``iwx.ops.temperature.temperature_dual(q, η, ε)``, the
             one temperature dual (IWPL's eq. (8) dual is the same function;
             η > 0: pass η = exp(log η)); w = ``estep_weights(q, η)``.
    M-step   with π_μ = N(μ_θ, σ_old) and π_Σ = N(μ_old, σ_θ) (decoupling),
             ``mstep_loss(log π_μ(a_k), w) + mstep_loss(log π_Σ(a_k), w)``
             + ``lagrangian_terms`` of each part of ``decoupled_gaussian_kl``
             with its own bound ε_μ, ε_Σ and multiplier.
MPO + DISTRAL (paper §6) adds α · KL(π ‖ π0) (``iwx.ops.policy.gaussian_kl``)
to the M-step as a soft penalty, and bootstraps the critic from the soft value
``iwx.ops.policy.distral_soft_value``.
"""

from __future__ import annotations

import torch

from iwx.ops.reduce import masked_mean


def estep_weights(q: torch.Tensor, eta) -> torch.Tensor:
    """Non-parametric E-step policy q(a_k|s) ∝ exp(Q(s, a_k)/η): softmax(q/η) over K.

    [B, K] -> [B, K]. Returned *detached* (constants for the M-step; η gets its
    gradient only from :func:`iwx.ops.temperature.temperature_dual`).
    """
    eta = eta.detach() if torch.is_tensor(eta) else eta
    return torch.softmax(q.detach() / eta, dim=-1)


def mstep_loss(log_pi_of_samples: torch.Tensor, weights: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted maximum likelihood: −mean_B Σ_k w_bk log π(a_bk|s_b).

    [B, K], [B, K] -> scalar; ``weights`` are detached; ``mask`` [B].
    """
    return -masked_mean((weights.detach() * log_pi_of_samples).sum(-1), mask)


def decoupled_gaussian_kl(mean_old: torch.Tensor, std_old: torch.Tensor,
                          mean: torch.Tensor, std: torch.Tensor
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """MPO's decoupled KL(π_old ‖ π) for diagonal Gaussians, each [..., A] -> [...]:

        kl_mean = KL(N(μ_old, σ_old²) ‖ N(μ, σ_old²)) = ½ Σ_d (μ − μ_old)² / σ_old²
        kl_cov  = KL(N(μ_old, σ_old²) ‖ N(μ_old, σ²))
                = ½ Σ_d [ σ_old²/σ² − 1 + log(σ²/σ_old²) ]

    When σ = σ_old their sum is the full KL(π_old ‖ π). The old parameters are
    detached (the target policy never moves here).
    """
    mean_old, std_old = mean_old.detach(), std_old.detach()
    kl_mean = 0.5 * (((mean - mean_old) / std_old) ** 2).sum(-1)
    var_ratio = (std_old / std) ** 2
    kl_cov = 0.5 * (var_ratio - 1.0 - torch.log(var_ratio)).sum(-1)
    return kl_mean, kl_cov


def lagrangian_terms(kl: torch.Tensor, epsilon_kl: float, log_multiplier: torch.Tensor,
                     mask: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The M-step trust region E_s[KL] ≤ ε as a Lagrangian with β = exp(log_multiplier) > 0.

    Returns ``(policy_loss, multiplier_loss)``, both scalars to minimise:
        policy_loss     = sg(β) · mean KL           (gradient to the policy only)
        multiplier_loss = β · (ε − sg(mean KL))     (gradient to log β only)
    so β grows while the mean KL exceeds ε and shrinks otherwise.
    ``kl`` [...] is per state (e.g. one part of :func:`decoupled_gaussian_kl`).
    """
    mean_kl = masked_mean(kl, mask)
    beta = log_multiplier.exp()
    return beta.detach() * mean_kl, beta * (epsilon_kl - mean_kl.detach())
