"""Every fast path of the learners (issue 12) against its plain path, in float32.

Fast paths and the bindings that turn them off:
- fused K-sample scoring (iwx.nets.fused): ``Features.fused``, ``PerTaskCritic.fused``
- tanh as 2σ(2x) − 1: ``Torso.fast_tanh``, ``EnsembleTorso.fast_tanh``
- fused Adam: ``adam.fused``
Each test compares the two paths on the same inputs (the same random draws), and each
"off" test checks that the binding really selects the plain computation.
"""

from __future__ import annotations

import functools
import math

import gin
import numpy as np
import pytest
import torch

from iwx.agents.base import adam
from iwx.agents.iwpl import IWPL
from iwx.agents.temperature import ConstrainedTemperature
from iwx.nets import fused
from iwx.nets.critics import (FeatureCritic, Features, GoalFeatureCritic, PerTaskCritic,
                              shared_features_critic)
from iwx.nets.inputs import state_action
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import EnsembleTorso, Tanh, Torso, sigmoid_tanh

torch.set_num_threads(1)

SPEC = {"position": (3,), "velocity": (2,), "task_id": (), "goal": (2,)}
INPUTS = ("position", "velocity")
A = 2


def plain_torso(*args, **kw):
    return Torso(*args, fast_tanh=False, **kw)


def observations(gen, *lead):
    return {"position": torch.randn(*lead, 3, generator=gen),
            "velocity": torch.randn(*lead, 2, generator=gen),
            "goal": torch.randn(*lead, 2, generator=gen)}


def samples(gen, *lead):
    """K = 5 actions per state, some outside the box [-1, 1] (the critics clip them)."""
    return 1.5 * torch.randn(*lead, 5, A, generator=gen)


# --------------------------------------------------------------------------- tanh
def test_sigmoid_tanh_matches_torch_tanh_in_float32():
    x = torch.cat([torch.linspace(-12, 12, 20001), torch.tensor([0.0, 1e-8, -1e-8, 1e-4])])
    x.requires_grad_(True)
    fast, exact = sigmoid_tanh(x), torch.tanh(x)
    assert fast.dtype == torch.float32
    assert (fast - exact).abs().max().item() < 2e-7
    (g_fast,) = torch.autograd.grad(fast.sum(), x)
    (g_exact,) = torch.autograd.grad(exact.sum(), x)
    assert (g_fast - g_exact).abs().max().item() < 1e-6


def test_fast_tanh_binding_off_is_torch_tanh():
    x = torch.randn(64, 16)
    assert torch.equal(Tanh(fast=False)(x), torch.tanh(x))
    assert not torch.equal(Tanh(fast=True)(x), torch.tanh(x))     # a different kernel
    with gin.unlock_config():
        gin.parse_config(["Torso.fast_tanh = False", "EnsembleTorso.fast_tanh = False"])
    try:
        torso, ensemble = Torso(4), EnsembleTorso(3, 4)
    finally:
        gin.clear_config()
    assert [m.fast for m in torso.modules() if isinstance(m, Tanh)] == [False]
    assert ensemble.fast_tanh is False
    x = torch.randn(3, 7, 4)
    h = torch.tanh(ensemble.norm(ensemble.first(x)))
    for layer in ensemble.layers:
        h = torch.nn.functional.elu(layer(h))
    assert torch.equal(ensemble(x), h)


def test_torso_forward_is_its_layers():
    """Torso.forward calls its layers as functions (in place without gradient): exactly
    ``torso.net(x)`` with torch.tanh, and within float32 tolerance with 2σ(2x) − 1; the
    input is never written to."""
    torch.manual_seed(9)
    plain, fast = Torso(5, fast_tanh=False), Torso(5)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(9, 5)
    x0 = x.clone()
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            assert torch.equal(plain(x), plain.net(x))
            assert (fast(x) - plain.net(x)).abs().max().item() < 1e-6
    assert torch.equal(x, x0)


# --------------------------------------------------------------------------- fused scoring
def _critics():
    """(name, critic, task input maker, switch-off function) for every critic with a fused path."""
    torch.manual_seed(0)
    features = functools.partial(Features, inputs=INPUTS, features_dim=6)
    feature = FeatureCritic(SPEC, A, 4, features=features)
    goal = GoalFeatureCritic(SPEC, A, 4, features=features)
    adapted = shared_features_critic(feature, SPEC, A, 4)
    per_task = PerTaskCritic(SPEC, A, 4, inputs=INPUTS)
    return [
        ("FeatureCritic", feature, lambda obs, n: torch.tensor([3, 0, 3, 1])[:n],
         lambda c: setattr(c.features, "fused", False)),
        ("GoalFeatureCritic", goal, lambda obs, n: obs["goal"].reshape(n, -1, 2)[:, 0],
         lambda c: setattr(c.features, "fused", False)),
        ("AdaptedFeatureCritic", adapted, lambda obs, n: None,
         lambda c: setattr(c.features, "fused", False)),
        ("PerTaskCritic rows", per_task, lambda obs, n: None,
         lambda c: setattr(c, "fused", False)),
        ("PerTaskCritic ids", per_task, lambda obs, n: torch.tensor([2, 2, 0, 3])[:n],
         lambda c: setattr(c, "fused", False)),
    ]


@pytest.mark.parametrize("chunk_rows", [7, 4096])
@pytest.mark.parametrize("index", range(5))
def test_fused_scores_equal_plain(index, chunk_rows, monkeypatch):
    """Q(s, a_k) for K samples at [n, c, L+1] states: fused (in blocks of ``chunk_rows``
    (state, sample) rows, 7 forcing many blocks and a ragged last one) == plain."""
    name, critic, task_of, switch_off = _critics()[index]
    monkeypatch.setattr(fused, "CHUNK_ROWS", chunk_rows)
    calls = []
    for fn in ("torso_scores", "ensemble_scores"):
        original = getattr(fused, fn)
        monkeypatch.setattr(fused, fn, lambda *a, _f=original, **k: calls.append(1) or _f(*a, **k))
    gen = torch.Generator().manual_seed(index)
    n = 4 if "rows" in name or "Adapted" in name else 3
    obs, actions = observations(gen, n, 2, 11), samples(gen, n, 2, 11)
    task = task_of(obs, n)
    with torch.no_grad():
        fast = critic(obs, actions, task)
        assert calls, f"{name}: the fused path was not taken"
        switch_off(critic)
        calls.clear()
        plain = critic(obs, actions, task)
        assert not calls
    assert fast.shape == plain.shape == (n, 2, 11, 5) and fast.dtype == torch.float32
    assert (fast - plain).abs().max().item() < 2e-6 * max(1.0, plain.abs().max().item())


def test_fused_path_not_taken_when_differentiating():
    """SVG(0) differentiates Q through the action: that takes the plain path, with gradients."""
    _, critic, task_of, _ = _critics()[0]
    gen = torch.Generator().manual_seed(1)
    obs = observations(gen, 3, 4)
    actions = (0.5 * torch.randn(3, 4, 5, A, generator=gen)).requires_grad_(True)
    q = critic(obs, actions, task_of(obs, 3))
    assert q.grad_fn is not None
    (grad,) = torch.autograd.grad(q.sum(), actions)
    assert grad.abs().sum() > 0


def test_fused_scoring_off_by_binding_is_the_plain_formula():
    """``Features.fused = False`` / ``PerTaskCritic.fused = False`` give exactly
    ψ(s, a)ᵀ w computed on [state, clip(a)] rows (the code before issue 12)."""
    with gin.unlock_config():
        gin.parse_config(["Features.fused = False", "PerTaskCritic.fused = False",
                          "Features.inputs = ('position', 'velocity')",
                          "PerTaskCritic.inputs = ('position', 'velocity')"])
    try:
        torch.manual_seed(0)
        critic, per_task = FeatureCritic(SPEC, A, 4), PerTaskCritic(SPEC, A, 4)
    finally:
        gin.clear_config()
    assert critic.features.fused is False and per_task.fused is False
    gen = torch.Generator().manual_seed(2)
    obs, actions = observations(gen, 4, 3), samples(gen, 4, 3)
    task = torch.tensor([1, 0, 3, 3])
    with torch.no_grad():
        psi = critic.features.out(critic.features.torso(state_action(obs, INPUTS, actions)))
        expected = (psi * critic.weights[task][:, None, None, :]).sum(-1)
        assert torch.equal(critic(obs, actions, task), expected)
        x = state_action(obs, INPUTS, actions)
        x = x.reshape(4, -1, x.shape[-1])
        q = per_task.out(per_task.torso(x)).reshape(4, 3, 5)
        assert torch.equal(per_task(obs, actions), q)


# --------------------------------------------------------------------------- Adam
def _net():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ELU(), torch.nn.Linear(8, 1))


def test_fused_adam_matches_plain_adam():
    fast_net, plain_net = _net(), _net()
    fast, plain = adam(fast_net.parameters(), 1e-2), adam(plain_net.parameters(), 1e-2,
                                                          fused=False)
    assert fast.defaults["fused"] and not plain.defaults["fused"]
    gen = torch.Generator().manual_seed(4)
    for _ in range(25):
        x = torch.randn(32, 5, generator=gen)
        for net, opt in ((fast_net, fast), (plain_net, plain)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    moved = False
    for p, q, p0 in zip(fast_net.parameters(), plain_net.parameters(), _net().parameters()):
        assert (p - q).abs().max().item() < 1e-6
        moved |= not torch.allclose(p, p0)
    assert moved


def test_adam_binding_off():
    with gin.unlock_config():
        gin.parse_config(["adam.fused = False"])
    try:
        opt = adam(_net().parameters(), 1e-3)
    finally:
        gin.clear_config()
    assert not opt.defaults["fused"]


# --------------------------------------------------------------------------- a whole update
def _iwpl(fast: bool):
    torso = Torso if fast else plain_torso
    features = functools.partial(Features, inputs=INPUTS, features_dim=6, fused=fast,
                                 torso=torso)
    torch.manual_seed(5)
    with gin.unlock_config():
        gin.parse_config([f"adam.fused = {fast}"])
    try:
        return IWPL(SPEC, A, 4, device=torch.device("cpu"),
                    prior=functools.partial(GaussianPrior, inputs=INPUTS, torso=torso),
                    critic=functools.partial(FeatureCritic, features=features),
                    num_samples=8, target_period=3, gamma=0.9)
    finally:
        gin.clear_config()


def _batch(rng, nb=6, length=4):
    obs = {"position": rng.normal(size=(nb, 1, length + 1, 3)).astype(np.float32),
           "velocity": rng.normal(size=(nb, 1, length + 1, 2)).astype(np.float32),
           "goal": rng.normal(size=(nb, 1, length + 1, 2)).astype(np.float32),
           "task_id": np.repeat(rng.integers(0, 4, size=(nb, 1, 1)), length + 1, axis=2)}
    mask = np.ones((nb, 1, length), np.float32)
    mask[0, 0, 2:] = 0.0
    return {"obs": obs, "actions": rng.uniform(-1, 1, (nb, 1, length, A)).astype(np.float32),
            "rewards": rng.normal(size=(nb, 1, length)).astype(np.float32) * mask,
            "discounts": mask.copy(), "mask": mask}


def test_iwpl_update_fast_equals_plain():
    """Eight IWPL updates (two target refreshes) with every fast path on and with every one
    off, from the same initialisation on the same batches and random draws: the same
    metrics and parameters within float32 tolerance."""
    agents = {fast: _iwpl(fast) for fast in (True, False)}
    initial = {m: {n: p.detach().clone() for n, p in getattr(agents[True], m).named_parameters()}
               for m in ("prior", "critic")}
    assert agents[True].critic.features.fused and not agents[False].critic.features.fused
    rng = np.random.default_rng(6)
    batches = [_batch(rng) for _ in range(8)]
    history = {True: [], False: []}
    for fast, agent in agents.items():
        torch.manual_seed(7)
        history[fast] = [agent.update(b) for b in batches]
    for a, b in zip(history[True], history[False]):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
    # Adam's steps are ~lr whatever the gradient's size, so a parameter whose gradient is
    # near 0 may step differently under float rounding: compare to how far it moved.
    for module in ("prior", "critic"):
        fast = dict(getattr(agents[True], module).named_parameters())
        plain = dict(getattr(agents[False], module).named_parameters())
        for name, p in fast.items():
            moved = (plain[name] - initial[module][name]).abs().max().item()
            assert moved > 0, (module, name)
            assert (p - plain[name]).abs().max().item() < 0.02 * moved, (module, name)


def test_constrained_temperature_mask_equals_selecting_the_valid_states():
    """The temperature steps on masked Q rows as it did on the selected valid rows."""
    gen = torch.Generator().manual_seed(8)
    q = 3.0 * torch.randn(4, 5, 8, generator=gen)
    mask = torch.ones(4, 5)
    mask[1, 3:] = 0.0
    q_padded = q.clone()
    q_padded[1, 3:] = float("nan")                    # padding may hold anything
    masked, selected = ConstrainedTemperature(0.5, 0.7), ConstrainedTemperature(0.5, 0.7)
    for _ in range(5):
        a = masked.update(q_padded, mask)["temperature_dual"]
        b = selected.update(q[mask.bool()])["temperature_dual"]
        assert math.isfinite(a) and a == pytest.approx(b, rel=1e-5)
    assert masked.alpha == pytest.approx(selected.alpha, rel=1e-5)
    assert masked.alpha != pytest.approx(0.7, rel=1e-3)
