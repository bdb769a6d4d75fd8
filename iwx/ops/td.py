"""TD targets and critic losses of IWPL (eqs. 7, 9, 10) and IWPA (eqs. 13, 14).

Pure functions of tensors; equation numbers refer to the paper (Galashov et
al., "Importance Weighted Policy Learning and Adaptation"). Layout: a step's
tensors (``reward``, ``discount``, ``q``, ``target``, ``mask``) share one shape
[...] (e.g. [nb, c, L] chunks in learning, [P, c, 1] transitions in adaptation);
the K-sample tensors at s' are [..., K]. ``mask`` is 1 for a real step and 0 on
padding; every loss is a scalar to minimise.
"""

from __future__ import annotations

import torch

from iwx.ops.reduce import masked_mean, per_problem_mean


def td_target(reward: torch.Tensor, discount: torch.Tensor, next_value: torch.Tensor,
              gamma: float) -> torch.Tensor:
    """Q̂(s, a) = r + γ · d · V(s') of eqs. (10) and (14); d = 0 at a terminal step.

    reward, discount, next_value [...] -> [...].
    """
    return reward + gamma * discount * next_value


def soft_td_target(rewards: torch.Tensor, discounts: torch.Tensor, next_q: torch.Tensor,
                   next_prior_log_prob: torch.Tensor, alpha, gamma: float,
                   soft_value) -> torch.Tensor:
    """Eq. (7)'s K-sample soft Bellman operator T_K^q in sample form (targets of eqs. 10, 14).

        Q̂(s, a) = r + γ d V_K(s'),
        V_K(s') = Σ_k q̂(a_k|s') (Q(s', a_k) − α log(q̂(a_k|s') / π0(a_k|s')))

    with a_k ~ π0(·|s') and the expectation over s' replaced by the replayed
    s'. ``soft_value`` computes V_K from ``next_q`` [..., K] = Q(s', a_k) and
    ``next_prior_log_prob`` [..., K] = log π0(a_k|s') at temperature α:
    ``iwx.ops.importance.soft_value_literal`` (the bracket as written) or
    ``soft_value_logmeanexp`` (π0 replaced by the empirical prior, uniform over
    the K samples). rewards, discounts [...] -> [...]. Not detached here: call
    it under ``torch.no_grad`` with target networks' values.
    """
    return td_target(rewards, discounts, soft_value(next_q, next_prior_log_prob, alpha), gamma)


def critic_loss(q: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """J_Q of eq. (9): the masked mean over all replayed steps of ½ (Q(s, a) − Q̂(s, a))².

    q, target, mask [...] -> scalar. The steps of every task are pooled in one
    mean: with each task sampled equally often (the task replay) that is eq.
    (9)'s sum over tasks of per-task expectations divided by the number of
    tasks. ``target`` should be a constant (computed without gradient).
    Padded steps cannot leak a non-finite target into the value or the gradient.
    """
    return masked_mean(0.5 * _masked_error(q, target, mask) ** 2, mask)


def adaptation_critic_loss(q: torch.Tensor, target: torch.Tensor,
                           mask: torch.Tensor) -> torch.Tensor:
    """Eq. (13) for P adaptation problems at once: Σ_p masked_mean_p ½ (Q_p − Q̂_p)².

    q, target, mask [P, ...] -> scalar. Each problem p (held-out task ×
    adaptation seed) contributes its own mean, so that Adam treats the
    problems' parameters as if each were trained alone
    (:func:`iwx.ops.reduce.per_problem_mean`). Padded steps cannot leak a
    non-finite target into the value or the gradient.
    """
    return per_problem_mean(0.5 * _masked_error(q, target, mask) ** 2, mask)


def _masked_error(q: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Q − Q̂ on real steps, 0 on padding.  [...] -> [...].

    A masked mean alone keeps a NaN target out of the loss's value but not out
    of its gradient (d/dQ ½(Q − NaN)² · 0 is NaN); selecting here does both. On
    real steps this is exactly Q − Q̂, so values and gradients there are unchanged."""
    return torch.where(torch.broadcast_to(mask, q.shape) > 0, q - target, torch.zeros_like(q))
