"""Adam (Kingma & Ba, 2015), the optimiser of every learner, without torch.optim.

Why not ``torch.optim.Adam``: its methods are wrapped to keep torch's compiler out
(``torch._disable_dynamo``), and the first call of any of them imports that compiler,
``torch._dynamo``: 1.2 s of CPU on this machine, as much as importing torch itself,
spent by every process that builds a learner (every run, every figure's run, every
sweep trial) though iwx never compiles. The update is the same: the fused path calls
the very kernel ``torch.optim.Adam(fused=True)`` calls (``torch._fused_adam_``), and
the per-tensor path repeats ``torch.optim.Adam``'s single-tensor loop op for op, so
both are bit-identical to torch's on the CPU (tests/test_adam.py checks it step by step,
and that checkpoints load either way: :meth:`Adam.state_dict` is torch's format).

Per parameter θ with gradient g at step t (β1, β2, ε, learning rate γ):

    m ← β1 m + (1 − β1) g                 (exp_avg, as lerp: m + (1 − β1)(g − m))
    v ← β2 v + (1 − β2) g²                (exp_avg_sq)
    θ ← θ − γ / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)

What is left out because no learner uses it: weight decay, AMSGrad, maximise, closures,
capturable / differentiable steps, gradient scaling, sparse and complex parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

BETAS = (0.9, 0.999)
EPS = 1e-8
# A param group's keys, as torch.optim.Adam writes them (so its checkpoints load here and
# these load there); the options this class does not implement keep torch's defaults.
FIXED = {"weight_decay": 0, "amsgrad": False, "maximize": False, "foreach": None,
         "capturable": False, "differentiable": False, "decoupled_weight_decay": False}


def single_tensor_update_(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor,
                          exp_avg_sq: torch.Tensor, step: torch.Tensor, *, lr: float,
                          beta1: float, beta2: float, eps: float) -> None:
    """One Adam step of one parameter in place, op for op as torch's single-tensor loop
    (``torch.optim.adam._single_tensor_adam``, without its options). ``step``: a 0-d
    float32 counter on the CPU, incremented first. Shapes: param, grad, exp_avg,
    exp_avg_sq all alike."""
    step += 1
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    t = step.item()
    bias_correction1 = 1 - beta1 ** t
    bias_correction2 = 1 - beta2 ** t
    step_size = lr / bias_correction1
    denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-step_size)


def fused_update_(params: list[torch.Tensor], grads: list[torch.Tensor],
                  exp_avgs: list[torch.Tensor], exp_avg_sqs: list[torch.Tensor],
                  steps: list[torch.Tensor], *, lr: float, beta1: float, beta2: float,
                  eps: float) -> None:
    """One Adam step of many parameters in place, with torch's fused kernel, one call per
    (device, dtype) as ``torch.optim.Adam(fused=True)`` makes it. ``steps``: 0-d float32
    counters on each parameter's device, incremented first."""
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault((p.device, p.dtype), []).append(i)
    for rows in groups.values():
        def pick(tensors):
            return [tensors[i] for i in rows]
        torch._foreach_add_(pick(steps), 1)
        torch._fused_adam_(pick(params), pick(grads), pick(exp_avgs), pick(exp_avg_sqs), [],
                           pick(steps), amsgrad=False, lr=lr, beta1=beta1, beta2=beta2,
                           weight_decay=0, eps=eps, maximize=False, grad_scale=None,
                           found_inf=None)


class Adam:
    """Adam over ``params`` at learning rate ``lr``: ``fused`` updates each (device,
    dtype) group of parameters in one kernel, else one parameter at a time.

    The part of ``torch.optim.Optimizer``'s interface the learners use: ``param_groups``
    (each a dict with ``params`` and ``lr``; :meth:`add_param_group` adds one), ``state``
    (per parameter ``step``, ``exp_avg``, ``exp_avg_sq``), ``defaults``,
    :meth:`zero_grad`, :meth:`step`, :meth:`state_dict` / :meth:`load_state_dict`."""

    def __init__(self, params: Iterable[torch.Tensor] | Iterable[dict], lr: float, *,
                 fused: bool = False, betas: tuple[float, float] = BETAS,
                 eps: float = EPS):
        if not lr >= 0.0:
            raise ValueError(f"Adam: learning rate must be >= 0, got {lr}")
        if not eps >= 0.0:
            raise ValueError(f"Adam: eps must be >= 0, got {eps}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        self.defaults: dict[str, Any] = {"lr": lr, "betas": tuple(betas), "eps": eps, **FIXED,
                                         "fused": True if fused else None}
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError("Adam: an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict) -> None:
        """Another group (``params`` and optionally its own ``lr``); the rest from
        :attr:`defaults`. A parameter may belong to one group only."""
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        for p in params:
            if not isinstance(p, torch.Tensor) or not p.is_leaf:
                raise ValueError("Adam optimises leaf tensors only")
            if self.defaults["fused"] and not (p.is_floating_point()
                                               and p.device.type in ("cpu", "cuda")):
                raise ValueError(f"fused Adam: a {p.dtype} parameter on {p.device}")
        ids = {id(p) for p in params}
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if len(ids) != len(params) or taken & ids:
            raise ValueError("Adam: a parameter appears twice among the param groups")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def _state(self, p: torch.Tensor, fused: bool) -> dict[str, torch.Tensor]:
        state = self.state.get(p)
        if not state:    # as torch: the counter on the parameter's device when fused
            step = (torch.zeros((), dtype=torch.float32, device=p.device) if fused
                    else torch.tensor(0.0, dtype=torch.float32))
            state = self.state[p] = {
                "step": step,
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return state

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            fused = bool(group["fused"])
            beta1, beta2 = group["betas"]
            options = {"lr": group["lr"], "beta1": beta1, "beta2": beta2, "eps": group["eps"]}
            params = [p for p in group["params"] if p.grad is not None]
            states = [self._state(p, fused) for p in params]
            if fused:
                if params:
                    fused_update_(params, [p.grad for p in params],
                                  [s["exp_avg"] for s in states],
                                  [s["exp_avg_sq"] for s in states],
                                  [s["step"] for s in states], **options)
                continue
            for p, s in zip(params, states):
                single_tensor_update_(p, p.grad, s["exp_avg"], s["exp_avg_sq"], s["step"],
                                      **options)

    def state_dict(self) -> dict:
        """torch.optim.Optimizer's format: ``state`` keyed by each parameter's index in
        the order of the groups, ``param_groups`` with indices for parameters."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [index[id(p)] for p in group["params"]]})
        return {"state": {index[id(p)]: s for p, s in self.state.items()},
                "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Moments, counters and group options (learning rates included) from
        :meth:`state_dict` or from ``torch.optim.Adam.state_dict()``; refused, with nothing
        changed, when its groups do not match these in number and size."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError(f"Adam.load_state_dict: {len(saved)} param groups saved, "
                             f"{len(self.param_groups)} here")
        sizes = [(len(g["params"]), len(s["params"])) for g, s in zip(self.param_groups, saved)]
        if any(a != b for a, b in sizes):
            raise ValueError(f"Adam.load_state_dict: param group sizes differ (here, saved): "
                             f"{sizes}")
        by_index = {i: (p, bool(s.get("fused"))) for g, s in zip(self.param_groups, saved)
                    for i, p in zip(s["params"], g["params"])}
        state = {}
        for i, values in state_dict["state"].items():
            p, fused = by_index[i]
            state[p] = {key: _placed(key, value, p, fused) for key, value in values.items()}
        self.state = state
        self.param_groups = [{**self.defaults, **{k: v for k, v in s.items() if k != "params"},
                              "params": g["params"]} for g, s in zip(self.param_groups, saved)]


def _placed(key: str, value, p: torch.Tensor, fused: bool):
    """A saved state value as torch.optim.Optimizer.load_state_dict places it: the step
    counter a float32 on the parameter's device when fused (else as saved), the moments
    in the parameter's dtype on its device."""
    if not isinstance(value, torch.Tensor):
        return torch.tensor(float(value), dtype=torch.float32) if key == "step" else value
    if key == "step":
        return value.to(dtype=torch.float32, device=p.device) if fused else value
    return value.to(dtype=p.dtype, device=p.device)
