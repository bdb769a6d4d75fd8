"""The one temperature dual (iwx.ops.temperature, eq. (8)): IWPL's ConstrainedTemperature
and MPO's E-step dual.

    g(α) = α ε + α · mean_n log (1/K) Σ_k exp(Q_nk/α),   g'(α) = ε − mean_n KL(softmax(Q_n/α) ‖ U_K)

Expected numbers are computed here by hand (``math``) or in float64 from the
definitions, never by re-calling the function under test. The code runs in
float32, so the large-|Q| tests run in float32 against a float64 reference.
"""

from __future__ import annotations

import math

import pytest
import torch

from iwx.agents.temperature import ConstrainedTemperature
from iwx.ops.temperature import temperature_dual

torch.set_num_threads(1)


def t64(x):
    return torch.tensor(x, dtype=torch.float64)


def hand_lme_and_kl(row, alpha):
    """log (1/K) Σ exp(q/α) and KL(softmax(q/α) ‖ uniform) of one row, with math."""
    e = [math.exp(x / alpha) for x in row]
    w = [x / sum(e) for x in e]
    return math.log(sum(e) / len(row)), sum(wk * math.log(len(row) * wk) for wk in w)


def kl64(q: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-row KL(softmax(Q/α) ‖ uniform over K) in float64 (a reference, not the module)."""
    lw = torch.log_softmax(q.double() / alpha, dim=-1)
    return (lw.exp() * (lw + math.log(q.shape[-1]))).sum(-1)


def minimiser(q: torch.Tensor, epsilon: float) -> float:
    """α* with mean KL(softmax(Q/α*) ‖ U_K) = ε, i.e. g'(α*) = 0, by bisection in log α (float64).

    The mean KL falls monotonically from log K (α → 0) to 0 (α → ∞)."""
    lo, hi = 1e-8, 1e4
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if float(kl64(q, mid).mean()) > epsilon else (lo, mid)
    return math.sqrt(lo * hi)


# --------------------------------------------------------------------------- by hand
Q_ROWS = [[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]]


def test_temperature_dual_value_and_gradient_by_hand_float64():
    """g(α) = αε + α·mean_s log((1/K)Σ exp(Q/α)); dg/dlogα = α(ε − mean KL)."""
    alpha, eps = 0.5, 0.3
    parts = [hand_lme_and_kl(row, alpha) for row in Q_ROWS]
    expected = alpha * eps + alpha * sum(p[0] for p in parts) / 2
    expected_grad = alpha * (eps - sum(p[1] for p in parts) / 2)

    log_alpha = t64(math.log(alpha)).requires_grad_()
    g = temperature_dual(t64(Q_ROWS), log_alpha.exp(), eps)
    assert float(g.detach()) == pytest.approx(expected, rel=1e-12)
    g.backward()
    assert float(log_alpha.grad) == pytest.approx(expected_grad, rel=1e-9)


def test_temperature_dual_value_and_gradient_by_hand_float32():
    """The same numbers in float32, the dtype the learners run in:
    log-mean-exps = [log((e² + e⁴ + e)/3), log((2 + e⁶)/3)] = [3.071234, 4.906333];
    g = 0.15 + 0.5·(3.071234 + 4.906333)/2 = 2.144392."""
    alpha, eps = 0.5, 0.3
    parts = [hand_lme_and_kl(row, alpha) for row in Q_ROWS]
    expected = alpha * eps + alpha * sum(p[0] for p in parts) / 2
    expected_grad = alpha * (eps - sum(p[1] for p in parts) / 2)
    assert expected == pytest.approx(2.144392, abs=1e-6)

    log_alpha = torch.tensor(math.log(alpha), requires_grad=True)
    g = temperature_dual(torch.tensor(Q_ROWS), log_alpha.exp(), eps)
    assert g.dtype == torch.float32
    assert float(g.detach()) == pytest.approx(expected, rel=1e-6)
    g.backward()
    assert float(log_alpha.grad) == pytest.approx(expected_grad, rel=1e-5)


Q_MPO = [[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]]   # 2 states × 3 sampled actions
ETA = 0.5


def test_mpo_temperature_dual_value_and_gradient_by_hand():
    """MPO's E-step dual is the same function, with η for α:
    g'(η) = ε + mean_b[ log((1/3) Σ e^{q/η}) − Σ_k w_bk q_bk / η ] = ε − mean KL(w ‖ uniform);
    the gradient reaches η only, and the mask drops a state."""
    eps = 0.1
    lme, wq = [], []
    for row in Q_MPO:
        e = [math.exp(x / ETA) for x in row]
        lme.append(math.log(sum(e) / 3))
        wq.append(sum(ek / sum(e) * x for ek, x in zip(e, row)) / ETA)
    expected = ETA * eps + ETA * sum(lme) / 2
    expected_grad = eps + sum(a - b for a, b in zip(lme, wq)) / 2
    eta = t64(ETA).requires_grad_()
    q = t64(Q_MPO).requires_grad_()
    g = temperature_dual(q, eta, eps)
    assert g.item() == pytest.approx(expected, rel=1e-12)
    g.backward()
    assert eta.grad.item() == pytest.approx(expected_grad, rel=1e-10)
    assert q.grad is None
    # numbers: log-mean-exps = [log(465.416/3), log((2 + e²)/3)] = [5.044319, 1.140932]
    # → g = 0.05 + 0.5·(5.044319 + 1.140932)/2 = 1.596313
    assert expected == pytest.approx(1.596313, abs=1e-6)
    # the mask drops state 1
    g0 = temperature_dual(t64(Q_MPO), t64(ETA), eps, mask=t64([1.0, 0.0]))
    assert g0.item() == pytest.approx(ETA * eps + ETA * lme[0], rel=1e-12)


def test_temperature_dual_mask_keeps_padding_nan_out():
    """A padded row of NaN (masked out) changes neither the value nor the gradient."""
    eta = torch.tensor(ETA, requires_grad=True)
    g = temperature_dual(torch.tensor([Q_MPO[0], [float("nan")] * 3]), eta, 0.1,
                         mask=torch.tensor([1.0, 0.0]))
    g.backward()
    lme0, kl0 = hand_lme_and_kl(Q_MPO[0], ETA)
    assert g.item() == pytest.approx(ETA * 0.1 + ETA * lme0, rel=1e-6)
    assert eta.grad.item() == pytest.approx(0.1 - kl0, rel=1e-5)


# --------------------------------------------------------------------------- float32 at large |Q|/α
def test_temperature_dual_gradient_in_float32_at_large_q_over_alpha():
    """Q = −300 + 0.1·N(0, 1) over K = 16, α = 0.003 (Q/α ≈ −10⁵), float32:
    dg/dlogα = α (ε − mean KL(softmax(Q/α) ‖ U_K)) ≈ −0.00505, computed in float64.

    An unshifted logsumexp gives +0.0219 here (the weights its backward implies,
    exp(Q/α − rounded logsumexp), do not sum to 1): the wrong sign."""
    gen = torch.Generator().manual_seed(0)
    q = -300.0 + 0.1 * torch.randn(256, 16, generator=gen)            # float32
    alpha, eps = 0.003, 1.0
    log_alpha = torch.tensor(math.log(alpha), requires_grad=True)       # float32
    g = temperature_dual(q, log_alpha.exp(), eps)
    g.backward()

    a64 = float(log_alpha.detach().double().exp())
    exact_grad = a64 * (eps - float(kl64(q, a64).mean()))
    assert exact_grad == pytest.approx(-0.00505, abs=1e-4)              # the case is the issue's
    assert float(log_alpha.grad) == pytest.approx(exact_grad, abs=1e-7)
    q64 = q.double()
    exact_value = a64 * eps + a64 * float((torch.logsumexp(q64 / a64, -1) - math.log(16)).mean())
    assert float(g.detach()) == pytest.approx(exact_value, rel=1e-6)


def test_constrained_temperature_converges_from_30x_below_its_minimiser():
    """ConstrainedTemperature (float32) on a fixed batch Q = −300 + N(0, 1), ε = 2:
    α* = 0.2313 from bisection on g'(α) = 0 in float64. Started at α*/30 (Q/α ≈ −4·10⁴),
    1000 Adam steps end within 2% of α*. (With an unshifted logsumexp α sinks to ≈ 0.024 α*.)"""
    gen = torch.Generator().manual_seed(0)
    q = -300.0 + torch.randn(128, 16, generator=gen)
    epsilon = 2.0
    alpha_star = minimiser(q, epsilon)
    assert alpha_star == pytest.approx(0.2313, abs=1e-3)
    temp = ConstrainedTemperature(epsilon=epsilon, initial_alpha=alpha_star / 30,
                                  learning_rate=0.05)
    temp.check(16)
    for _ in range(1000):
        temp.update(q)
    assert temp.alpha == pytest.approx(alpha_star, rel=0.02)


@pytest.mark.parametrize("epsilon", [0.1, 0.5])
def test_mpo_dual_descent_meets_the_estep_kl_bound(epsilon):
    """A few hundred Adam steps on log η drive mean_b KL(softmax(q/η) ‖ uniform) to ε."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(256, 16, generator=gen, dtype=torch.float64) * 3

    def mean_kl(eta):
        return float(kl64(q, eta).mean())                # explicit KL, not via the module

    log_eta = t64(0.0).requires_grad_()
    assert abs(mean_kl(1.0) - epsilon) > 0.1  # η = 1 does not already satisfy it
    opt = torch.optim.Adam([log_eta], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        temperature_dual(q, log_eta.exp(), epsilon).backward()
        opt.step()
    assert mean_kl(float(log_eta.detach().exp())) == pytest.approx(epsilon, abs=0.02)
