"""Gaussian densities of K samples, and the losses of the parametric policies:
SVG(0) (RS(0)) and DISTRAL.

Pure functions of tensors. Sources: SVG(0) from Heess et al. 2015, "Learning
Continuous Control Policies by Stochastic Value Gradients" (the paper's RS(0),
§6, ref. [35]); DISTRAL from Teh et al. 2017 (ref. [15]) in the continuous-action
form of Galashov et al. 2019 (ref. [16]); eq. numbers are the IWPL paper's.

Sign convention: every ``*_loss`` is a quantity to *minimise*. Reduction: a
(masked) mean over every element; ``mask`` (same shape as the per-sample term,
or broadcastable to it) excludes padded steps of a chunk.
"""

from __future__ import annotations

import math

import torch

from iwx.ops.reduce import masked_mean


def svg0_policy_loss(q_of_reparam_action: torch.Tensor, *, kl: torch.Tensor | None = None,
                     kl_cost: float = 0.0, entropy: torch.Tensor | None = None,
                     entropy_cost: float = 0.0,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """SVG(0): −mean Q(s, a) with a = μ(s) + σ(s) ε, ε ~ N(0, I) held fixed.

    ``q_of_reparam_action`` [...] must be computed *through* the reparameterised
    sample (``rsample``) so that ∂loss/∂θ = −E[∂Q/∂a · ∂a/∂θ]; the critic's
    parameters should be frozen (or not stepped) for this loss.
    Optional regularisers, each a per-sample tensor broadcastable to Q:
        + kl_cost · mean(kl)          (e.g. KL(π ‖ π0) for DISTRAL, or a trust region)
        − entropy_cost · mean(entropy)
    """
    loss = -masked_mean(q_of_reparam_action, mask)
    if kl is not None:
        loss = loss + kl_cost * masked_mean(torch.broadcast_to(kl, q_of_reparam_action.shape),
                                            mask)
    if entropy is not None:
        loss = loss - entropy_cost * masked_mean(
            torch.broadcast_to(entropy, q_of_reparam_action.shape), mask)
    return loss


def samples_log_prob(mean: torch.Tensor, std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log N(a_k; μ, diag σ²) of K actions per state, summed over the A action dims:
    Σ_d [−(a_kd − μ_d)²/(2σ_d²) − log σ_d − ½ log 2π].

    μ, σ [..., A], a [..., K, A] -> [..., K] (the density of every sample under
    its state's Gaussian; the π0 densities of eqs. (10), (11) and MPO's M-step).
    Gradients flow into all three arguments.
    """
    loc, scale = mean.unsqueeze(-2), std.unsqueeze(-2)
    # torch.distributions.Normal.log_prob's expression, without building (and validating)
    # a distribution object at every call: the same float32 numbers.
    return (-((actions - loc) ** 2) / (2 * scale ** 2) - scale.log()
            - math.log(math.sqrt(2 * math.pi))).sum(-1)


def gaussian_kl(mean_p: torch.Tensor, std_p: torch.Tensor, mean_q: torch.Tensor,
                std_q: torch.Tensor) -> torch.Tensor:
    """KL(N(μp, diag σp²) ‖ N(μq, diag σq²)), summed over the last (action) axis.

    Σ_d [ log(σq/σp) + (σp² + (μp − μq)²) / (2 σq²) − 1/2 ].  [..., A] -> [...].
    Gradients flow into all four arguments; detach the side that must not move.
    """
    var_ratio = (std_p / std_q) ** 2
    mahalanobis = ((mean_p - mean_q) / std_q) ** 2
    return 0.5 * (var_ratio + mahalanobis - 1.0 - torch.log(var_ratio)).sum(-1)


def kl_regularised_policy_loss(q: torch.Tensor, log_pi: torch.Tensor,
                               log_prior: torch.Tensor, alpha: float,
                               mask: torch.Tensor | None = None) -> torch.Tensor:
    """DISTRAL's policy loss: −E_{a~π}[ Q(s, a) − α (log π(a|s) − log π0(a|s)) ] (eq. (1)).

    All three [...] tensors are evaluated at the *same* reparameterised samples
    a = μ + σ ε from π, so the KL term is the one-sample estimate of
    KL(π ‖ π0) and gradients reach π through a and through log π's parameters.
    No argument is detached here: the gradient through ``log_prior`` into π0's
    own parameters equals α × the distillation gradient; pass a ``log_prior``
    computed with π0's parameters frozen if π0 must be trained by
    :func:`distillation_loss` alone.
    """
    return -masked_mean(q - alpha * (log_pi - log_prior), mask)


def distral_soft_value(q_next: torch.Tensor, log_pi_next: torch.Tensor,
                       log_prior_next: torch.Tensor, alpha: float) -> torch.Tensor:
    """Soft value of eq. (3): V(s') = E_{a'~π}[ Q(s', a') − α (log π(a'|s') − log π0(a'|s')) ].

    Arguments are [..., K]: K samples a'_k ~ π(·|s') (K = 1 is fine); the
    expectation is the mean over the last axis.  [..., K] -> [...].
    Used as ``v_next`` of :func:`iwx.ops.retrace.retrace_targets`, where the
    soft Q of eq. (3) puts the KL penalty of s' into the bootstrap value.
    Computed under ``torch.no_grad`` (a critic target).
    """
    with torch.no_grad():
        return (q_next - alpha * (log_pi_next - log_prior_next)).mean(-1)


def distillation_loss(log_prior_of_policy_actions: torch.Tensor,
                      mask: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (2) for π0, sample form: −mean log π0(a|s) over actions a ~ π(·|s).

    KL(π ‖ π0) = E_π[log π] − E_π[log π0] and the first term does not depend on
    π0, so this has the same gradient in π0's parameters as the KL (the value
    differs by the entropy of π). The actions must be *detached* samples of π
    (``sample()``, or ``rsample().detach()``) so that the policy is not pulled
    towards π0 by this loss. The analytic alternative for Gaussians is
    ``gaussian_kl(mean_pi.detach(), std_pi.detach(), mean_0, std_0)``.
    """
    return -masked_mean(log_prior_of_policy_actions, mask)

