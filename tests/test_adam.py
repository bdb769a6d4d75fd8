"""iwx.agents.base.adam against torch.optim.Adam: the same numbers bit for bit, the same
checkpoints either way, and no import of torch's compiler by a learning process."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
import torch

from cli import ROOT
from iwx.agents.base import Adam, adam


def _params(dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shapes = [(7, 5), (5,), (3, 2, 4), ()]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def _grads(params, step: int):
    """Gradients of step ``step``: random, some large, and one parameter without one on
    every third step (Adam skips it, its counter too)."""
    gen = torch.Generator().manual_seed(100 + step)
    grads = [torch.randn(p.shape, generator=gen, dtype=p.dtype) * (10.0 ** (i - 2))
             for i, p in enumerate(params)]
    if step % 3 == 2:
        grads[1] = None
    return grads


def _step(opt, params, step: int):
    opt.zero_grad()
    for p, g in zip(params, _grads(params, step)):
        p.grad = None if g is None else g.clone()
    opt.step()


def _torch_adam(params, lr, fused):
    return torch.optim.Adam(params, lr=lr, fused=True) if fused else \
        torch.optim.Adam(params, lr=lr)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("fused", [True, False])
def test_every_step_is_torchs_bit_for_bit(fused, dtype):
    mine, theirs = _params(dtype), _params(dtype)
    ours = Adam(mine[:2], lr=3e-3, fused=fused)
    ours.add_param_group({"params": mine[2:], "lr": 5e-2})     # a group of its own rate
    ref = _torch_adam(theirs[:2], 3e-3, fused)
    ref.add_param_group({"params": theirs[2:], "lr": 5e-2})
    for step in range(40):
        _step(ours, mine, step)
        _step(ref, theirs, step)
        for a, b in zip(mine, theirs):
            assert torch.equal(a, b), (step, (a - b).abs().max())
    for a, b in zip(mine, theirs):
        s, r = ours.state[a], ref.state[b]
        assert s.keys() == r.keys() == {"step", "exp_avg", "exp_avg_sq"}
        for key in s:
            assert torch.equal(s[key], r[key]) and s[key].dtype == r[key].dtype, key
    assert ours.state[mine[1]]["step"].item() == 40 - 13    # skipped on 13 of 40 steps


def test_one_step_by_hand_in_float32():
    """θ = 1, g = 0.5, γ = 0.1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25, so
    θ ← 1 − 0.1 · 0.5 / (0.5 + 1e-8) = 0.9 (Adam's first step is γ·sign(g))."""
    for fused in (True, False):
        theta = torch.tensor([1.0], requires_grad=True)
        opt = Adam([theta], lr=0.1, fused=fused)
        theta.grad = torch.tensor([0.5])
        opt.step()
        state = opt.state[theta]
        assert state["exp_avg"].item() == pytest.approx(0.05, rel=1e-6)
        assert state["exp_avg_sq"].item() == pytest.approx(0.00025, rel=1e-6)
        assert theta.item() == pytest.approx(0.9, rel=1e-6)
        assert state["step"].dtype == torch.float32 and state["step"].item() == 1.0


def _saved(opt) -> dict:
    """A state dict through torch.save / torch.load, as a checkpoint carries it."""
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("direction", ["torch to iwx", "iwx to torch"])
def test_a_checkpoint_loads_either_way_and_goes_on_identically(fused, direction):
    """A run checkpointed before this class existed resumes with it, and the other way."""
    first, twin = _params(), _params()
    mine = Adam(first, lr=1e-2, fused=fused) if direction == "iwx to torch" else \
        _torch_adam(first, 1e-2, fused)
    other = _torch_adam(twin, 1e-2, fused) if direction == "iwx to torch" else \
        Adam(twin, lr=1e-2, fused=fused)
    for step in range(5):
        _step(mine, first, step)
    with torch.no_grad():
        for a, b in zip(first, twin):
            b.copy_(a)
    state = _saved(mine)
    other.load_state_dict(state)
    assert other.state_dict()["param_groups"] == mine.state_dict()["param_groups"]
    for step in range(5, 12):
        _step(mine, first, step)
        _step(other, twin, step)
    for a, b in zip(first, twin):
        assert torch.equal(a, b)


def test_loading_restores_the_saved_rates_and_refuses_another_shape():
    params = _params()
    opt = Adam(params, lr=1e-2)
    _step(opt, params, 0)
    state = opt.state_dict()
    state["param_groups"][0]["lr"] = 7e-4                 # e.g. changed before saving
    fresh = Adam(_params(), lr=1e-2)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == 7e-4
    other = Adam(_params()[:3], lr=1e-2)
    with pytest.raises(ValueError, match=r"param group sizes differ \(here, saved\): \[\(3, 4\)\]"):
        other.load_state_dict(state)
    assert other.state == {}                               # nothing changed
    split = Adam(_params()[:2], lr=1e-2)
    split.add_param_group({"params": _params(seed=1)[2:]})
    with pytest.raises(ValueError, match="1 param groups saved, 2 here"):
        split.load_state_dict(state)


def test_bad_arguments_are_refused():
    p = _params()
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([], lr=1e-3)
    with pytest.raises(ValueError, match="learning rate must be >= 0"):
        Adam(p, lr=-1.0)
    with pytest.raises(ValueError, match="appears twice"):
        Adam([p[0], p[0]], lr=1e-3)
    opt = Adam(p[:2], lr=1e-3)
    with pytest.raises(ValueError, match="appears twice"):
        opt.add_param_group({"params": [p[1], p[2]]})
    with pytest.raises(ValueError, match="leaf tensors only"):
        Adam([p[0] * 2], lr=1e-3)
    with pytest.raises(ValueError, match="fused Adam: a torch.int64 parameter"):
        Adam([torch.zeros(3, dtype=torch.int64)], lr=1e-3, fused=True)
    assert not adam([torch.zeros(3, dtype=torch.int64)], 1e-3).defaults["fused"]


def test_zero_grad_clears_or_zeroes():
    p = _params()
    opt = Adam(p, lr=1e-3)
    for q in p:
        q.grad = torch.ones_like(q)
    opt.zero_grad(set_to_none=False)
    assert all(torch.equal(q.grad, torch.zeros_like(q)) for q in p)
    opt.zero_grad()
    assert all(q.grad is None for q in p)


LEARN = """
import sys, torch
from iwx.agents.base import Adam, optimise
from iwx.agents.temperature import ConstrainedTemperature
net = torch.nn.Linear(3, 2)
for fused in (True, False):
    optimise(net(torch.ones(4, 3)).pow(2).mean(), Adam(net.parameters(), 1e-3, fused=fused))
ConstrainedTemperature().update(torch.randn(5, 8))
print("torch._dynamo" in sys.modules)
"""


def test_learning_does_not_import_torchs_compiler():
    """The point of the class: torch.optim's first call imports torch._dynamo (1.2 s of
    CPU per learning process)."""
    proc = subprocess.run([sys.executable, "-c", LEARN], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "False"
    with_torch = LEARN.replace("Adam(net.parameters(), 1e-3, fused=fused)",
                               "torch.optim.Adam(net.parameters(), 1e-3)")
    proc = subprocess.run([sys.executable, "-c", with_torch], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]   # the check can see it
