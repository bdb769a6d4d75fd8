"""Hand-checked tests of the maths of the paper's baselines (§6, appendix A):
Retrace (RS(0)'s critic), SVG(0), DISTRAL, MPO (+ DISTRAL) and PEARL*'s bottleneck.

Every expected number is written out here, worked by hand (the arithmetic is in
the comments) or by an explicit ``math`` formula, never by re-calling the
function under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from iwx.ops.bottleneck import gaussian_latent_kl, reparameterised_latent
from iwx.ops.mpo import decoupled_gaussian_kl, estep_weights, lagrangian_terms, mstep_loss
from iwx.ops.policy import (
    distillation_loss,
    distral_soft_value,
    gaussian_kl,
    kl_regularised_policy_loss,
    samples_log_prob,
    svg0_policy_loss,
)
from iwx.ops.reduce import masked_mean
from iwx.ops.retrace import retrace_targets, truncated_importance_weights

torch.set_num_threads(1)


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


# --------------------------------------------------------------------------- Retrace
# A chunk of T = 3 steps, γ = 0.9.
GAMMA = 0.9
Q_TAKEN = [1.0, 2.0, 3.0]    # Q(s_t, a_t)
V_NEXT = [1.5, 2.5, 4.0]     # V(s_{t+1})
REWARDS = [0.5, -1.0, 2.0]


def _retrace(log_ratio=(0.0, 0.0, 0.0), discounts=(1.0, 1.0, 1.0), mask=(1.0, 1.0, 1.0),
             lam=1.0, q=Q_TAKEN, v=V_NEXT, r=REWARDS):
    return retrace_targets(t64(q), t64(v), t64(r), t64(list(discounts)), t64(list(log_ratio)),
                           t64(list(mask)), GAMMA, lam)


def test_truncated_importance_weights_by_hand():
    """c = λ min(1, π/μ): ratio 2 → λ, ratio 0.5 → λ/2, ratio 1 → λ, e^100 → λ (no overflow)."""
    c = truncated_importance_weights(t64([math.log(2.0), math.log(0.5), 0.0, 100.0]), 0.8)
    assert c.tolist() == pytest.approx([0.8, 0.4, 0.8, 0.8], abs=1e-12)
    assert truncated_importance_weights(t64([-1.0]), 1.0).item() == pytest.approx(math.exp(-1))


def test_retrace_on_policy_by_hand():
    """log_ratio = 0, λ = 1: c = 1, Q_ret(t) = r_t + γ[V_{t+1} + Q_ret(t+1) − Q_{t+1}].

    Q_ret(2) = 2 + 0.9·4                       = 5.6
    Q_ret(1) = −1 + 0.9·(2.5 + (5.6 − 3))      = 3.59
    Q_ret(0) = 0.5 + 0.9·(1.5 + (3.59 − 2))    = 3.281
    Unrolled: Σ γ^k r_k + γ³ V_3 + Σ_{k≥1} γ^k (V_k − Q_k)
            = 0.5 − 0.9 + 1.62 + 2.916 + 0.9(1.5 − 2) + 0.81(2.5 − 3) = 3.281.
    """
    got = _retrace()
    assert got.tolist() == pytest.approx([3.281, 3.59, 5.6], abs=1e-12)
    unrolled = (0.5 - 0.9 * 1.0 + 0.81 * 2.0 + 0.729 * 4.0
                + 0.9 * (1.5 - 2.0) + 0.81 * (2.5 - 3.0))
    assert got[0].item() == pytest.approx(unrolled, abs=1e-12)
    # λ = 0: one-step targets r_t + γ V(s_{t+1}) = [0.5 + 1.35, −1 + 2.25, 2 + 3.6]
    assert _retrace(lam=0.0).tolist() == pytest.approx([1.85, 1.25, 5.6], abs=1e-12)


def test_retrace_on_policy_is_n_step_return_when_v_equals_q():
    """With V(s_{t+1}) = Q(s_{t+1}, a_{t+1}) the corrections vanish: the n-step return.

    Q_ret(0) = 0.5 + 0.9·(−1) + 0.81·2 + 0.729·4 = 4.136
    Q_ret(1) = −1 + 0.9·2 + 0.81·4              = 4.04
    Q_ret(2) = 2 + 0.9·4                         = 5.6
    """
    got = _retrace(v=[2.0, 3.0, 4.0])
    assert got.tolist() == pytest.approx([4.136, 4.04, 5.6], abs=1e-12)


def test_retrace_truncated_traces_use_the_next_steps_ratio():
    """λ = 0.8, log_ratio = [·, log 2, log 0.5]: c_1 = 0.8·min(1, 2) = 0.8, c_2 = 0.8·0.5 = 0.4.

    Q_ret(2) = 5.6
    Q_ret(1) = −1 + 0.9·(2.5 + 0.4·(5.6 − 3))      = −1 + 0.9·3.54   = 2.186
    Q_ret(0) = 0.5 + 0.9·(1.5 + 0.8·(2.186 − 2))   = 0.5 + 0.9·1.6488 = 1.98392
    log_ratio[0] is never used.
    """
    lr = [0.3, math.log(2.0), math.log(0.5)]
    got = _retrace(log_ratio=lr, lam=0.8)
    assert got.tolist() == pytest.approx([1.98392, 2.186, 5.6], abs=1e-12)
    got2 = _retrace(log_ratio=[-7.0, *lr[1:]], lam=0.8)
    assert torch.equal(got, got2)
    # using the ratio of step t (not t+1) would give Q_ret(1) = −1 + 0.9(2.5 + 0.8·2.6) = 3.122
    assert abs(got[1].item() - 3.122) > 0.5


def test_retrace_episode_end_cuts_the_trace():
    """d_1 = 0 (s_2 terminal): Q_ret(1) = r_1 = −1, and step 2 never reaches steps 0, 1.

    Q_ret(0) = 0.5 + 0.9·(1.5 + 1·(−1 − 2)) = 0.5 − 1.35 = −0.85
    """
    got = _retrace(discounts=[1.0, 0.0, 1.0])
    assert got.tolist() == pytest.approx([-0.85, -1.0, 5.6], abs=1e-12)
    other = _retrace(discounts=[1.0, 0.0, 1.0], q=[1.0, 2.0, -50.0], v=[1.5, 2.5, 70.0],
                     r=[0.5, -1.0, 9.0])
    assert other[:2].tolist() == pytest.approx([-0.85, -1.0], abs=1e-12)
    # a terminal first step: Q_ret(0) = r_0 whatever follows
    assert _retrace(discounts=[0.0, 1.0, 1.0])[0].item() == pytest.approx(0.5, abs=1e-12)


def test_retrace_masked_padding_is_cut_and_cannot_leak():
    """mask = [1, 1, 0] (episode truncated after step 1, step 2 is padding with junk values).

    Q_ret(1) = −1 + 0.9·2.5 = 1.25          (bootstraps from V(s_2) only)
    Q_ret(0) = 0.5 + 0.9·(1.5 + (1.25 − 2)) = 0.5 + 0.675 = 1.175
    Q_ret(2) = 0 (masked)
    """
    nan, inf = float("nan"), float("inf")
    got = _retrace(mask=[1.0, 1.0, 0.0], discounts=[1.0, 1.0, 0.0], q=[1.0, 2.0, nan],
                   v=[1.5, 2.5, inf], r=[0.5, -1.0, nan], log_ratio=[0.0, 0.0, nan])
    assert got.tolist() == pytest.approx([1.175, 1.25, 0.0], abs=1e-12)
    # a masked first step: its target is 0, the others as in the on-policy case
    got = _retrace(mask=[0.0, 1.0, 1.0])
    assert got.tolist() == pytest.approx([0.0, 3.59, 5.6], abs=1e-12)


def test_retrace_batched_rows_and_no_gradient():
    """Leading axes are independent rows; the targets carry no autograd graph."""
    q = t64([Q_TAKEN, Q_TAKEN]).requires_grad_()
    v = t64([V_NEXT, V_NEXT]).requires_grad_()
    r = t64([REWARDS, REWARDS])
    d = t64([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    lr = t64([[0.3, math.log(2.0), math.log(0.5)], [0.0, 0.0, 0.0]])
    m = torch.ones(2, 3, dtype=torch.float64)
    lam = torch.tensor([[0.8], [1.0]], dtype=torch.float64)  # per-row λ broadcasts too
    got = retrace_targets(q, v, r, d, lr, m, GAMMA, lam)
    assert not got.requires_grad
    assert got.tolist()[0] == pytest.approx([1.98392, 2.186, 5.6], abs=1e-12)
    assert got.tolist()[1] == pytest.approx([-0.85, -1.0, 5.6], abs=1e-12)
    with pytest.raises(ValueError, match=r"\[\.\.\., T\]"):
        retrace_targets(q, v, r, d, lr, m[:, :2], GAMMA)


# --------------------------------------------------------------------------- SVG(0)
def test_svg0_gradient_moves_mean_towards_optimum_of_quadratic():
    """Q(a) = −(a − 2)², a = μ + σε, μ = 0.5, σ = 0.3, ε = [0.5, −1] → a = [0.65, 0.2].

    loss = mean (a − 2)² = (1.8225 + 3.24)/2 = 2.53125
    ∂loss/∂μ = mean 2(a − 2) = (−2.7 − 3.6)/2 = −3.15   (descent raises μ towards 2)
    ∂loss/∂σ = mean 2(a − 2)ε = (−1.35 + 3.6)/2 = 1.125
    """
    mu = t64(0.5).requires_grad_()
    sigma = t64(0.3).requires_grad_()
    eps = t64([0.5, -1.0])
    a = mu + sigma * eps
    loss = svg0_policy_loss(-(a - 2.0) ** 2)
    assert loss.item() == pytest.approx(2.53125, abs=1e-12)
    loss.backward()
    assert mu.grad.item() == pytest.approx(-3.15, abs=1e-12)
    assert sigma.grad.item() == pytest.approx(1.125, abs=1e-12)
    # from the other side (μ = 3, a = [3.15, 2.7]): ∂loss/∂μ = (2.3 + 1.4)/2 = 1.85 > 0
    mu3 = t64(3.0).requires_grad_()
    svg0_policy_loss(-(mu3 + 0.3 * eps - 2.0) ** 2).backward()
    assert mu3.grad.item() == pytest.approx(1.85, abs=1e-12)


def test_svg0_optional_terms_and_mask():
    """−mean Q + kl_cost·mean KL − entropy_cost·mean H; mask drops padded samples.

    q = [1, 3], kl = [0.2, 0.6], H = [1, 2], costs 0.5, 0.1:
    −2 + 0.5·0.4 − 0.1·1.5 = −1.95;  mask [1, 0]: −1 + 0.5·0.2 − 0.1·1 = −1.0
    """
    q, kl, h = t64([1.0, 3.0]), t64([0.2, 0.6]), t64([1.0, 2.0])
    got = svg0_policy_loss(q, kl=kl, kl_cost=0.5, entropy=h, entropy_cost=0.1)
    assert got.item() == pytest.approx(-1.95, abs=1e-12)
    got = svg0_policy_loss(t64([1.0, float("nan")]), kl=kl, kl_cost=0.5, entropy=h,
                           entropy_cost=0.1, mask=t64([1.0, 0.0]))
    assert got.item() == pytest.approx(-1.0, abs=1e-12)


def test_masked_mean_by_hand():
    """Σ m x / Σ m; an all-zero mask gives 0 rather than a division by zero."""
    x = t64([1.0, 2.0, float("nan"), 4.0])
    assert masked_mean(x, t64([1.0, 1.0, 0.0, 0.0])).item() == pytest.approx(1.5)
    assert masked_mean(x, t64([0.0, 0.0, 0.0, 0.0])).item() == 0.0
    assert masked_mean(t64([[1.0, 3.0], [5.0, 7.0]]), t64([[1.0], [0.0]])).item() == 2.0
    assert masked_mean(t64([1.0, 2.0, 6.0])).item() == 3.0


# --------------------------------------------------------------------------- Gaussian densities
def test_samples_log_prob_by_hand_float32():
    """log N(a_k; μ, diag σ²) summed over A, per state, in float32 (log 2π = 1.8378771):
    state 0, μ = [0, 1], σ = [1, 0.5]:
        a = [1, 1]: (−½ − ½ log 2π) + (log 2 − ½ log 2π)      = −0.5 + log 2 − log 2π
                                                                = −1.6447299
        a = [0, 2]: (−½ log 2π) + (−1/(2·0.25) + log 2 − ½ log 2π) = −2 + log 2 − log 2π
                                                                = −3.1447299
    state 1, μ = [0, 0], σ = [1, 1]: a = [0, 0] → −log 2π; a = [1, 1] → −1 − log 2π.
    ∂/∂μ of state 0's sum over k: Σ_k (a_k − μ)/σ² = [1 + 0, 0 + 1/0.25] = [1, 4]."""
    mean = torch.tensor([[0.0, 1.0], [0.0, 0.0]], requires_grad=True)
    std = torch.tensor([[1.0, 0.5], [1.0, 1.0]])
    actions = torch.tensor([[[1.0, 1.0], [0.0, 2.0]], [[0.0, 0.0], [1.0, 1.0]]])
    got = samples_log_prob(mean, std, actions)
    assert got.shape == (2, 2) and got.dtype == torch.float32
    log2pi = math.log(2 * math.pi)
    assert got[0].tolist() == pytest.approx([-0.5 + math.log(2) - log2pi,
                                             -2 + math.log(2) - log2pi], abs=1e-6)
    assert got[0].tolist() == pytest.approx([-1.6447299, -3.1447299], abs=1e-6)
    assert got[1].tolist() == pytest.approx([-log2pi, -1 - log2pi], abs=1e-6)
    got[0].sum().backward()
    assert mean.grad.flatten().tolist() == pytest.approx([1.0, 4.0, 0.0, 0.0], abs=1e-6)


# --------------------------------------------------------------------------- Gaussian KL
def test_gaussian_kl_closed_form_1d_and_sum_over_dims():
    """KL(N(1, 0.5²) ‖ N(0, 2²)) = log 4 + (0.25 + 1)/8 − 1/2 = 1.0425444;
    reversed, KL(N(0, 2²) ‖ N(1, 0.5²)) = log(1/4) + (4 + 1)/0.5 − 1/2 = 8.1137056;
    KL(N(0, 1) ‖ N(1, 1)) = 1/2, and dims add."""
    kl = gaussian_kl(t64([1.0]), t64([0.5]), t64([0.0]), t64([2.0]))
    assert kl.item() == pytest.approx(math.log(4) + 1.25 / 8 - 0.5, abs=1e-12)
    assert kl.item() == pytest.approx(1.0425444, abs=1e-6)
    rev = gaussian_kl(t64([0.0]), t64([2.0]), t64([1.0]), t64([0.5]))
    assert rev.item() == pytest.approx(math.log(0.25) + 10 - 0.5, abs=1e-12)
    both = gaussian_kl(t64([[1.0, 0.0]]), t64([[0.5, 1.0]]), t64([[0.0, 1.0]]), t64([[2.0, 1.0]]))
    assert both.shape == (1,)
    assert both.item() == pytest.approx(1.0425444 + 0.5, abs=1e-6)
    assert gaussian_kl(t64([0.3]), t64([0.7]), t64([0.3]), t64([0.7])).item() == 0.0


# --------------------------------------------------------------------------- DISTRAL
def test_kl_regularised_policy_loss_value():
    """−mean[Q − α(log π − log π0)], α = 0.1:
    [1 − 0.1·(−0.5 + 1.5), 2 − 0.1·(−1 + 0.8)] = [0.9, 2.02] → −1.46."""
    got = kl_regularised_policy_loss(t64([1.0, 2.0]), t64([-0.5, -1.0]), t64([-1.5, -0.8]), 0.1)
    assert got.item() == pytest.approx(-1.46, abs=1e-12)


def test_kl_regularised_policy_loss_pulls_policy_to_prior_when_q_is_flat():
    """Q ≡ 3, π = N(μ = 0.7, σ = 0.5), π0 = N(0, 1), ε = [1, −1] → a = [1.2, 0.2], α = 0.1.

    log π(a) − log π0(a) = −ε²/2 − log σ + a²/2 = [0.913147, 0.213147]
    loss = −3 + 0.1·0.563147 = −2.9436853
    ∂loss/∂μ    = α mean(a)               = 0.07    (> 0: descent moves μ to π0's mean 0)
    ∂loss/∂logσ = α(−1 + mean(a σ ε))     = 0.1(−1 + (0.6 − 0.1)/2) = −0.075
                                            (< 0: descent widens σ = 0.5 towards π0's 1)
    """
    mu = t64(0.7).requires_grad_()
    log_sigma = t64(math.log(0.5)).requires_grad_()
    eps = t64([1.0, -1.0])
    a = mu + log_sigma.exp() * eps
    log_pi = torch.distributions.Normal(mu, log_sigma.exp()).log_prob(a)
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(a)
    q = 0.0 * a + 3.0  # flat critic, still a function of a
    loss = kl_regularised_policy_loss(q, log_pi, log_prior, 0.1)
    diffs = [-0.5 + math.log(2) + 0.72, -0.5 + math.log(2) + 0.02]
    assert loss.item() == pytest.approx(-3 + 0.1 * sum(diffs) / 2, abs=1e-12)
    assert loss.item() == pytest.approx(-2.9436853, abs=1e-6)
    loss.backward()
    assert mu.grad.item() == pytest.approx(0.07, abs=1e-12)
    assert log_sigma.grad.item() == pytest.approx(-0.075, abs=1e-12)


def test_distral_soft_value_by_hand_and_without_graph():
    """V = mean_k[Q − α(log π − log π0)], α = 0.5:
    row 0: [1 − 0.5·1, 2 − 0, 3 − 0.5·(−1)] = [0.5, 2, 3.5] → 2.0
    row 1: [0 − 0.5·(−0.5 − 0.5)] = [0.5] → 0.5 (K = 1 on a [..., 1] input)"""
    q = t64([[1.0, 2.0, 3.0]]).requires_grad_()
    got = distral_soft_value(q, t64([[-1.0, -1.0, -2.0]]), t64([[-2.0, -1.0, -1.0]]), 0.5)
    assert got.shape == (1,)
    assert got.item() == pytest.approx(2.0, abs=1e-12)
    assert not got.requires_grad
    one = distral_soft_value(t64([[0.0]]), t64([[-0.5]]), t64([[0.5]]), 0.5)
    assert one.tolist() == pytest.approx([0.5], abs=1e-12)


def test_distillation_loss_value_and_gradient_towards_policy_actions():
    """−mean log π0(a): masked [−1, −2, −0.5, ·] → 3.5/3;
    π0 = N(m0 = 0, 1) on detached actions a = [1.0, 1.4]: ∂/∂m0 = −mean(a − m0) = −1.2
    (descent moves π0's mean towards the policy's actions)."""
    got = distillation_loss(t64([-1.0, -2.0, -0.5, -3.0]), mask=t64([1.0, 1.0, 1.0, 0.0]))
    assert got.item() == pytest.approx(3.5 / 3, abs=1e-12)
    m0 = t64(0.0).requires_grad_()
    a = t64([1.0, 1.4])
    distillation_loss(torch.distributions.Normal(m0, 1.0).log_prob(a)).backward()
    assert m0.grad.item() == pytest.approx(-1.2, abs=1e-12)


# --------------------------------------------------------------------------- MPO
Q_MPO = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]   # 2 states × 3 sampled actions
ETA = 0.5


def test_mpo_estep_weights_by_hand():
    """softmax(q/η), η = 0.5: row 0 ∝ [e², e⁴, e⁶]; row 1 ∝ [1, 1, e²]; detached."""
    z0 = math.exp(2) + math.exp(4) + math.exp(6)
    z1 = 2 + math.exp(2)
    q = t64(Q_MPO).requires_grad_()
    w = estep_weights(q, t64(ETA).requires_grad_())
    assert not w.requires_grad
    assert w[0].tolist() == pytest.approx([math.exp(2) / z0, math.exp(4) / z0,
                                           math.exp(6) / z0], rel=1e-12)
    assert w[1].tolist() == pytest.approx([1 / z1, 1 / z1, math.exp(2) / z1], rel=1e-12)
    assert w[0].tolist() == pytest.approx([0.0158762, 0.1173104, 0.8668133], abs=1e-6)


# (the E-step dual is iwx.ops.temperature.temperature_dual: tests/test_ops_temperature.py)


def test_mpo_mstep_loss_by_hand():
    """−mean_b Σ_k w log π: row 0 −(0.2·−1 + 0.5·−2 + 0.3·−0.5) = 1.35,
    row 1 −(0.6·−0.1 + 0.1·−3 + 0.3·−1) = 0.66 → 1.005; grad into log π = −w/2 only."""
    w = t64([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]]).requires_grad_()
    lp = t64([[-1.0, -2.0, -0.5], [-0.1, -3.0, -1.0]]).requires_grad_()
    loss = mstep_loss(lp, w)
    assert loss.item() == pytest.approx(1.005, abs=1e-12)
    loss.backward()
    assert w.grad is None
    assert lp.grad.tolist()[0] == pytest.approx([-0.1, -0.25, -0.15], abs=1e-12)
    assert mstep_loss(lp, w, mask=t64([0.0, 1.0])).item() == pytest.approx(0.66, abs=1e-12)


def test_mpo_decoupled_kl_by_hand():
    """μ_old = [0, 1], σ_old = [1, 2], μ = [0.5, 0], σ = [2, 0.5]:
    kl_mean = ½(0.5²/1 + 1²/4) = 0.25
    kl_cov  = ½[(1/4 − 1 + log 4) + (16 − 1 + log(1/16))] = ½(14.25 − log 4) = 6.4318528
    (with the ratio the wrong way round it would be ½[(4 − 1 − log 4) + (1/16 − 1 + log 16)])"""
    mean_old = t64([0.0, 1.0]).requires_grad_()
    mean = t64([0.5, 0.0]).requires_grad_()
    std = t64([2.0, 0.5]).requires_grad_()
    kl_mean, kl_cov = decoupled_gaussian_kl(mean_old, t64([1.0, 2.0]), mean, std)
    assert kl_mean.item() == pytest.approx(0.25, abs=1e-12)
    assert kl_cov.item() == pytest.approx(7.125 - math.log(2), abs=1e-12)
    assert kl_cov.item() == pytest.approx(6.4318528, abs=1e-6)
    (kl_mean + kl_cov).backward()
    assert mean_old.grad is None
    assert mean.grad.tolist() == pytest.approx([0.5, -0.25], abs=1e-12)  # (μ − μ_old)/σ_old²
    # σ = σ_old: kl_cov = 0 and kl_mean is the full KL(π_old ‖ π) = ½ Σ (Δμ/σ)²
    km, kc = decoupled_gaussian_kl(t64([[0.0, 1.0]]), t64([[1.0, 2.0]]), t64([[0.5, 0.0]]),
                                   t64([[1.0, 2.0]]))
    assert kc.tolist() == [0.0] and km.tolist() == pytest.approx([0.25], abs=1e-12)


def test_mpo_lagrangian_terms_by_hand():
    """KL = [0.3, 0.1] (mean 0.2), ε = 0.05, β = e^{log 2} = 2:
    policy_loss = sg(β)·0.2 = 0.4 (∂/∂KL_i = β/2 = 1, no gradient to log β);
    multiplier_loss = β(0.05 − 0.2) = −0.3 (∂/∂log β = −0.3 < 0: β grows; none to KL)."""
    kl = t64([0.3, 0.1]).requires_grad_()
    log_beta = t64(math.log(2.0)).requires_grad_()
    policy_loss, multiplier_loss = lagrangian_terms(kl, 0.05, log_beta)
    assert policy_loss.item() == pytest.approx(0.4, abs=1e-12)
    assert multiplier_loss.item() == pytest.approx(-0.3, abs=1e-12)
    g_kl, g_beta = torch.autograd.grad(policy_loss, [kl, log_beta], allow_unused=True)
    assert g_kl.tolist() == pytest.approx([1.0, 1.0], abs=1e-12) and g_beta is None
    g_kl, g_beta = torch.autograd.grad(multiplier_loss, [kl, log_beta], allow_unused=True)
    assert g_kl is None and g_beta.item() == pytest.approx(-0.3, abs=1e-12)
    # KL below the bound: the multiplier's gradient turns positive (β shrinks)
    _, ml = lagrangian_terms(t64([0.01, 0.03]), 0.05, log_beta)
    assert torch.autograd.grad(ml, log_beta)[0].item() == pytest.approx(2 * 0.03, abs=1e-12)


# --------------------------------------------------------------------------- PEARL* bottleneck
def test_bottleneck_kl_by_hand():
    """mean = [1, 0], log σ = [0, log 2]: ½(1 + 1 − 1 − 0) + ½(0 + 4 − 1 − 2 log 2)
    = 0.5 + 1.5 − log 2 = 2 − log 2 ≈ 1.3068528; ∂/∂μ = μ, ∂/∂log σ = σ² − 1 = [0, 3]."""
    mean = t64([1.0, 0.0]).requires_grad_()
    log_std = t64([0.0, math.log(2.0)]).requires_grad_()
    kl = gaussian_latent_kl(mean, log_std)
    assert kl.item() == pytest.approx(2 - math.log(2), abs=1e-12)
    assert kl.item() == pytest.approx(1.3068528, abs=1e-6)
    kl.backward()
    assert mean.grad.tolist() == pytest.approx([1.0, 0.0], abs=1e-12)
    assert log_std.grad.tolist() == pytest.approx([0.0, 3.0], abs=1e-12)
    zero = gaussian_latent_kl(torch.zeros(4, 5), torch.zeros(4, 5))
    assert zero.shape == (4,) and zero.abs().max().item() == 0.0


def test_reparameterised_latent_noise_gradients_and_moments():
    """z = μ + σ ε with ε from the generator; ∂z/∂μ = 1, ∂z/∂log σ = σ ε; moments match."""
    mean = t64([1.0, -2.0]).requires_grad_()
    log_std = t64([0.0, math.log(0.5)]).requires_grad_()
    z = reparameterised_latent(mean, log_std, torch.Generator().manual_seed(3))
    eps = torch.randn(2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert z.tolist() == pytest.approx([1.0 + eps[0].item(), -2.0 + 0.5 * eps[1].item()],
                                       abs=1e-12)
    z.sum().backward()
    assert mean.grad.tolist() == [1.0, 1.0]
    assert log_std.grad.tolist() == pytest.approx([eps[0].item(), 0.5 * eps[1].item()],
                                                  abs=1e-12)
    many = reparameterised_latent(t64([[1.0, -2.0]]).expand(20000, 2),
                                  t64([[0.0, math.log(0.5)]]).expand(20000, 2),
                                  torch.Generator().manual_seed(0))
    assert many.mean(0).tolist() == pytest.approx([1.0, -2.0], abs=0.03)
    assert many.std(0).tolist() == pytest.approx([1.0, 0.5], abs=0.02)
