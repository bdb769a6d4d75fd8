"""Every iwx.ops function on small hand-checked numbers in float32, the dtype the learners run in.

The derivations are in the float64 tests of tests/test_math.py and
tests/test_baseline_math.py (same inputs, same expected numbers); here each
function is run in float32 and must give those numbers to float32 precision,
and keep the input's dtype. (iwx.ops.temperature, iwx.ops.td, samples_log_prob
and prior_loss have their own float32 tests: tests/test_ops_temperature.py,
tests/test_ops_td.py, tests/test_baseline_math.py, tests/test_math.py.)
"""

from __future__ import annotations

import math

import pytest
import torch

from iwx.ops.bottleneck import gaussian_latent_kl, reparameterised_latent
from iwx.ops.importance import (importance_weights, kl_to_empirical_prior, soft_value_literal,
                                soft_value_logmeanexp)
from iwx.ops.mpo import decoupled_gaussian_kl, estep_weights, lagrangian_terms, mstep_loss
from iwx.ops.policy import (distillation_loss, distral_soft_value, gaussian_kl,
                            kl_regularised_policy_loss, svg0_policy_loss)
from iwx.ops.reduce import masked_mean, per_problem_mean
from iwx.ops.retrace import retrace_targets, truncated_importance_weights

torch.set_num_threads(1)
NAN = float("nan")


def f32(x):
    return torch.tensor(x, dtype=torch.float32)


def close(got: torch.Tensor, expected, tol=2e-6):
    """float32 result, equal to the hand numbers within ``tol`` (relative and absolute)."""
    assert got.dtype == torch.float32
    values = got.flatten().tolist() if got.dim() else [got.item()]
    expected = expected if isinstance(expected, list) else [expected]
    assert values == pytest.approx(expected, rel=tol, abs=tol)


# --------------------------------------------------------------------------- eqs. (6), (10), (11)
Q3, ALPHA, LOG_PI0 = [1.0, 2.0, 0.5], 0.5, [-0.3, -1.2, -2.0]


def test_importance_weights_float32():
    """softmax([2, 4, 1]) = [0.1141952, 0.8437947, 0.0420101]."""
    close(importance_weights(f32(Q3), ALPHA), [0.1141952, 0.8437947, 0.0420101])


def test_soft_values_float32():
    """Eq. (10) as written = 1.5195068;
    with the empirical prior 0.5 log((e² + e⁴ + e)/3) = 1.5356169."""
    close(soft_value_literal(f32(Q3), f32(LOG_PI0), ALPHA), 1.5195068)
    close(soft_value_logmeanexp(f32(Q3), None, ALPHA), 1.5356169)


def test_kl_to_empirical_prior_float32():
    """Σ_k q̂_k log(3 q̂_k) with q̂ = softmax([2, 4, 1]) = 0.5743457."""
    close(kl_to_empirical_prior(f32(Q3), ALPHA), 0.5743457)


# --------------------------------------------------------------------------- reductions
def test_masked_means_float32():
    """masked_mean: (1 + 2)/2 = 1.5 with a NaN on padding, 0 on an empty mask;
    per_problem_mean: rows [1, ·], [5, 7], [·, ·] → 1 + 6 + 0 = 7."""
    x = f32([1.0, 2.0, NAN, 4.0])
    close(masked_mean(x, f32([1.0, 1.0, 0.0, 0.0])), 1.5)
    close(masked_mean(x, f32([0.0, 0.0, 0.0, 0.0])), 0.0)
    close(per_problem_mean(f32([[1.0, 3.0], [5.0, 7.0], [NAN, 2.0]]),
                           f32([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])), 7.0)


# --------------------------------------------------------------------------- Retrace
def _retrace(log_ratio=(0.0, 0.0, 0.0), discounts=(1.0, 1.0, 1.0), mask=(1.0, 1.0, 1.0),
             lam=1.0, q=(1.0, 2.0, 3.0), v=(1.5, 2.5, 4.0), r=(0.5, -1.0, 2.0)):
    return retrace_targets(f32(list(q)), f32(list(v)), f32(list(r)), f32(list(discounts)),
                           f32(list(log_ratio)), f32(list(mask)), 0.9, lam)


def test_truncated_importance_weights_float32():
    """0.8 · min(1, [2, 0.5, 1, e¹⁰⁰]) = [0.8, 0.4, 0.8, 0.8] (no overflow)."""
    close(truncated_importance_weights(f32([math.log(2.0), math.log(0.5), 0.0, 100.0]), 0.8),
          [0.8, 0.4, 0.8, 0.8])


def test_retrace_targets_float32():
    """On-policy [3.281, 3.59, 5.6]; λ = 0.8 with ratios [·, 2, 0.5]: [1.98392, 2.186, 5.6];
    padding after step 1 (junk NaN / inf there): [1.175, 1.25, 0]."""
    close(_retrace(), [3.281, 3.59, 5.6])
    close(_retrace(log_ratio=[0.3, math.log(2.0), math.log(0.5)], lam=0.8),
          [1.98392, 2.186, 5.6])
    close(_retrace(mask=[1.0, 1.0, 0.0], discounts=[1.0, 1.0, 0.0], q=[1.0, 2.0, NAN],
                   v=[1.5, 2.5, float("inf")], r=[0.5, -1.0, NAN], log_ratio=[0.0, 0.0, NAN]),
          [1.175, 1.25, 0.0])


# --------------------------------------------------------------------------- SVG(0), DISTRAL
def test_svg0_policy_loss_float32():
    """Q(a) = −(a − 2)², a = 0.5 + 0.3·[0.5, −1]: loss 2.53125, ∂/∂μ = −3.15, ∂/∂σ = 1.125;
    with KL and entropy terms −1.95, and −1.0 with the second sample masked."""
    mu, sigma = f32(0.5).requires_grad_(), f32(0.3).requires_grad_()
    loss = svg0_policy_loss(-(mu + sigma * f32([0.5, -1.0]) - 2.0) ** 2)
    close(loss, 2.53125)
    loss.backward()
    close(mu.grad, -3.15)
    close(sigma.grad, 1.125)
    kl, h = f32([0.2, 0.6]), f32([1.0, 2.0])
    close(svg0_policy_loss(f32([1.0, 3.0]), kl=kl, kl_cost=0.5, entropy=h, entropy_cost=0.1),
          -1.95)
    close(svg0_policy_loss(f32([1.0, NAN]), kl=kl, kl_cost=0.5, entropy=h, entropy_cost=0.1,
                           mask=f32([1.0, 0.0])), -1.0)


def test_gaussian_kl_float32():
    """KL(N(1, 0.5²) ‖ N(0, 2²)) = log 4 + 1.25/8 − 1/2 = 1.0425444."""
    close(gaussian_kl(f32([1.0]), f32([0.5]), f32([0.0]), f32([2.0])), [1.0425444])


def test_distral_losses_and_soft_value_float32():
    """Policy loss −mean[1 − 0.1·1, 2 − 0.1·(−0.2)] = −1.46; soft value mean[0.5, 2, 3.5] = 2;
    distillation −mean(−1, −2, −0.5) = 3.5/3 with the fourth sample masked."""
    close(kl_regularised_policy_loss(f32([1.0, 2.0]), f32([-0.5, -1.0]), f32([-1.5, -0.8]), 0.1),
          -1.46)
    close(distral_soft_value(f32([[1.0, 2.0, 3.0]]), f32([[-1.0, -1.0, -2.0]]),
                             f32([[-2.0, -1.0, -1.0]]), 0.5), [2.0])
    close(distillation_loss(f32([-1.0, -2.0, -0.5, -3.0]), mask=f32([1.0, 1.0, 1.0, 0.0])),
          3.5 / 3)


# --------------------------------------------------------------------------- MPO
def test_mpo_ops_float32():
    """E-step weights softmax([2, 4, 6]) = [0.0158762, 0.1173104, 0.8668133];
    M-step loss mean(1.35, 0.66) = 1.005; decoupled KLs 0.25 and ½(14.25 − log 4) = 6.4318528;
    Lagrangian terms 2·0.2 = 0.4 and 2·(0.05 − 0.2) = −0.3."""
    close(estep_weights(f32([[1.0, 2.0, 3.0]]), f32(0.5)), [0.0158762, 0.1173104, 0.8668133])
    close(mstep_loss(f32([[-1.0, -2.0, -0.5], [-0.1, -3.0, -1.0]]),
                     f32([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])), 1.005)
    kl_mean, kl_cov = decoupled_gaussian_kl(f32([0.0, 1.0]), f32([1.0, 2.0]), f32([0.5, 0.0]),
                                            f32([2.0, 0.5]))
    close(kl_mean, 0.25)
    close(kl_cov, 6.4318528)
    policy_loss, multiplier_loss = lagrangian_terms(f32([0.3, 0.1]), 0.05, f32(math.log(2.0)))
    close(policy_loss, 0.4)
    close(multiplier_loss, -0.3)


# --------------------------------------------------------------------------- PEARL* bottleneck
def test_bottleneck_float32():
    """KL(N([1, 0], diag[1, 4]) ‖ N(0, I)) = 2 − log 2 = 1.3068528;
    z = μ + σ ε with the generator's ε: [1 + ε₀, −2 + 0.5 ε₁]."""
    close(gaussian_latent_kl(f32([1.0, 0.0]), f32([0.0, math.log(2.0)])), 1.3068528)
    z = reparameterised_latent(f32([1.0, -2.0]), f32([0.0, math.log(0.5)]),
                               torch.Generator().manual_seed(3))
    eps = torch.randn(2, generator=torch.Generator().manual_seed(3)).tolist()
    close(z, [1.0 + eps[0], -2.0 + 0.5 * eps[1]])
