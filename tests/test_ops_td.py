"""Hand-checked tests of iwx.ops.td: the TD target (eqs. 10, 14), eq. (7)'s K-sample
soft operator in sample form, and the critic losses of eqs. (9) and (13).

Float32 throughout (the learners' dtype); every expected number is worked out in
the docstrings or with ``math``, never by re-calling the function under test.
"""

from __future__ import annotations

import math

import pytest
import torch

from iwx.ops.importance import soft_value_literal, soft_value_logmeanexp
from iwx.ops.td import adaptation_critic_loss, critic_loss, soft_td_target, td_target

torch.set_num_threads(1)


def f32(x):
    return torch.tensor(x, dtype=torch.float32)


# --------------------------------------------------------------------------- TD target
def test_td_target_matches_hand_including_terminal():
    """Q̂ = r + γ d V; d = 0 drops the bootstrap."""
    r = f32([1.0, 0.5, -0.2])
    d = f32([1.0, 0.0, 1.0])
    v = f32([2.0, 3.0, -1.0])
    got = td_target(r, d, v, 0.9)
    assert got.dtype == torch.float32
    assert got.tolist() == pytest.approx([1.0 + 0.9 * 2.0, 0.5, -0.2 - 0.9], abs=1e-6)


# --------------------------------------------------------------------------- eq. (7)
Q_NEXT = [[1.0, 2.0, 0.5], [5.0, 5.0, 5.0]]        # Q(s', a_k), K = 3, two steps
LOG_PI0_NEXT = [[-0.3, -1.2, -2.0], [0.0, 0.0, 0.0]]


def test_soft_td_target_with_the_empirical_prior_by_hand():
    """α = 0.5, γ = 0.9, r = [1, 0.5], d = [1, 0] (step 1 terminal):
    V(s'_0) = 0.5 log((e² + e⁴ + e)/3) = 0.5 · 3.0712337 = 1.5356169
    Q̂ = [1 + 0.9 · 1.5356169, 0.5] = [2.3820552, 0.5]."""
    v0 = 0.5 * math.log((math.exp(2.0) + math.exp(4.0) + math.exp(1.0)) / 3)
    assert v0 == pytest.approx(1.5356169, abs=1e-6)
    got = soft_td_target(f32([1.0, 0.5]), f32([1.0, 0.0]), f32(Q_NEXT), f32(LOG_PI0_NEXT),
                         0.5, 0.9, soft_value_logmeanexp)
    assert got.tolist() == pytest.approx([1.0 + 0.9 * v0, 0.5], abs=1e-6)
    assert got[0].item() == pytest.approx(2.3820552, abs=1e-5)


def test_soft_td_target_with_the_literal_bracket_by_hand():
    """Eq. (7)/(10) as written, with π0 densities: V(s'_0) = Σ_k q̂_k (Q_k − α log(q̂_k/π0_k))
    = 1.5195068 (q̂ = softmax([2, 4, 1]) = [0.1141952, 0.8437947, 0.0420101]);
    Q̂_0 = 1 + 0.9 · 1.5195068 = 2.3675561."""
    e = [math.exp(x / 0.5) for x in Q_NEXT[0]]
    w = [x / sum(e) for x in e]
    v0 = sum(wk * (qk - 0.5 * (math.log(wk) - lp))
             for wk, qk, lp in zip(w, Q_NEXT[0], LOG_PI0_NEXT[0]))
    assert v0 == pytest.approx(1.5195068, abs=1e-6)
    got = soft_td_target(f32([1.0, 0.5]), f32([1.0, 0.0]), f32(Q_NEXT), f32(LOG_PI0_NEXT),
                         0.5, 0.9, soft_value_literal)
    assert got.tolist() == pytest.approx([2.3675561, 0.5], abs=1e-5)


def test_soft_td_target_passes_q_log_prior_and_alpha_in_that_order():
    """A stand-in soft value α · Σ_k (Q_k + 10 · log π0_k): row 0 = 2 · (3.5 − 35) = −63,
    row 1 = 2 · 15 = 30; Q̂ = r + γ d V with r = 0, d = 1, γ = 0.5 → [−31.5, 15]."""
    def soft_value(q, log_prior, alpha):
        return alpha * (q + 10.0 * log_prior).sum(-1)

    got = soft_td_target(f32([0.0, 0.0]), f32([1.0, 1.0]), f32(Q_NEXT), f32(LOG_PI0_NEXT),
                         2.0, 0.5, soft_value)
    assert got.tolist() == pytest.approx([-31.5, 15.0], abs=1e-5)


# --------------------------------------------------------------------------- eq. (9)
def test_critic_loss_by_hand_with_padding():
    """½(Q − Q̂)² over the real steps: q = [1, 2, 3, 4], Q̂ = [0, 0, 5, NaN], mask [1, 1, 1, 0]:
    ½[1, 4, 4] → 4.5 / 3 = 1.5; ∂/∂q = (q − Q̂) mask / 3 = [1/3, 2/3, −2/3, 0].
    The NaN target of the padded step does not leak."""
    q = f32([1.0, 2.0, 3.0, 4.0]).requires_grad_()
    loss = critic_loss(q, f32([0.0, 0.0, 5.0, float("nan")]), f32([1.0, 1.0, 1.0, 0.0]))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(1.5, abs=1e-6)
    loss.backward()
    assert q.grad.tolist() == pytest.approx([1 / 3, 2 / 3, -2 / 3, 0.0], abs=1e-6)


def test_critic_loss_pools_steps_of_every_task():
    """Rows of two tasks [2, 2]: ½[1, 0; 4, 16] all real → (0.5 + 0 + 2 + 8) / 4 = 2.625."""
    loss = critic_loss(f32([[1.0, 0.0], [2.0, 4.0]]), f32([[0.0, 0.0], [0.0, 0.0]]),
                       f32([[1.0, 1.0], [1.0, 1.0]]))
    assert loss.item() == pytest.approx(2.625, abs=1e-6)


# --------------------------------------------------------------------------- eq. (13)
def test_adaptation_critic_loss_sums_each_problems_mean():
    """P = 3 problems of [3, 1] transitions:
    p0: q = [1, 2, 3], Q̂ = 0, mask [1, 1, 0] → ½(1 + 4)/2 = 1.25
    p1: q = [1, 1, 1], Q̂ = [3, 1, 1], mask [1, 1, 1] → ½(4 + 0 + 0)/3 = 2/3
    p2: all padding (mask 0, Q̂ NaN) → 0
    loss = 1.25 + 2/3 = 1.9166667 (the pooled mean would be ½·9/5 = 0.9);
    ∂/∂q = (q − Q̂) mask / n_p: p0 [1/2, 1, 0], p1 [−2/3, 0, 0], p2 [0, 0, 0]."""
    q = f32([[[1.0], [2.0], [3.0]], [[1.0], [1.0], [1.0]], [[7.0], [7.0], [7.0]]])
    q.requires_grad_()
    nan = float("nan")
    target = f32([[[0.0], [0.0], [0.0]], [[3.0], [1.0], [1.0]], [[nan], [nan], [nan]]])
    mask = f32([[[1.0], [1.0], [0.0]], [[1.0], [1.0], [1.0]], [[0.0], [0.0], [0.0]]])
    loss = adaptation_critic_loss(q, target, mask)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(1.25 + 2 / 3, abs=1e-6)
    assert loss.item() != pytest.approx(critic_loss(q, target, mask).item(), abs=1e-3)
    loss.backward()
    assert q.grad.flatten().tolist() == pytest.approx(
        [0.5, 1.0, 0.0, -2 / 3, 0.0, 0.0, 0.0, 0.0, 0.0], abs=1e-6)
