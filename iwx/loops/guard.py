"""The divergence guard: a run whose learning blows up stops, saying what, where and why.

What is checked, and when (the loops call it; nothing here touches a device per update):

- every update's metrics (the Python floats of the agent's ``update()`` dict): finite,
  and the losses and Q values (:func:`is_bounded`: a name with ``loss``, or ``q`` /
  ``q_*``) at most ``DivergenceGuard.max_abs`` in magnitude;
- at every logging period, the values about to be logged (returns included): finite;
- at every logging period, the agent's network tensors (parameters and buffers): finite
  and at most ``max_abs``; before every checkpoint, also the rest of what it checkpoints
  (optimiser moments, duals, caches): finite. A checkpoint is written only after this,
  so no non-finite state is ever saved over a good one;
- an error torch raises inside an update or an act (e.g. ``Normal`` refusing a NaN loc)
  becomes the same diagnostic when the agent's state is then non-finite or out of
  bound, or when the message itself reports nan / inf values.

Each failure raises :class:`DivergenceError`: the quantity, its value, where (update,
env step, adaptation episode), the last good checkpoint, and the bindings most likely
at fault with their values (:func:`suspect_rates`, read from gin).

``max_abs`` (default 1e8) is far above anything a healthy run of iwx's tasks produces:
per-step rewards are at most ~1 (point navigation, reach, GTT), 10 once per episode
(go to ring) and ~20 (half-cheetah's -|v - v_goal| - 0.05 ‖a‖²), so |Q| ≤ r_max / (1 - γ)
≤ ~2e3 and a squared TD error ½ δ² ≤ ½ (2 · 2e3)² = 8e6; Adam moves a weight by about
its learning rate per step, so weights stay ≪ 1e4 over any schedule of iwx. Recorded
healthy runs report critic losses below 0.03 and |Q| below 8 (notes: divergence). A loss
of 1e26 (``IWPL.critic_lr = 100``) is 18 orders above the bound.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import gin
import numpy as np
import torch

DEFAULT_MAX_ABS = 1e8
_BOUNDED = re.compile(r"loss|(^|[/_])q($|_)")
_NONFINITE_TEXT = re.compile(r"\b(nan|inf|infinity)\b", re.IGNORECASE)


class DivergenceError(Exception):
    """A run's numbers stopped being finite (or grew past the bound). ``quantity`` (a
    metric or tensor name), ``value``, ``where``, ``checkpoint`` (what the last good one
    is), ``suspects`` (bindings with their values) make up the message."""

    def __init__(self, quantity: str, value: float, where: str, *, checkpoint: str,
                 suspects: Sequence[str], bound: float | None = None,
                 cause: str | None = None, note: str | None = None):
        self.quantity, self.value, self.where = quantity, value, where
        self.checkpoint, self.suspects, self.bound = checkpoint, list(suspects), bound
        self.cause, self.note = cause, note
        if not math.isfinite(value):
            what = "not finite"
        else:
            what = f"|{value:.4g}| exceeds DivergenceGuard.max_abs = {bound:g}"
        lines = [f"divergence: {quantity} = {value:.4g} ({what}) at {where}"]
        if cause:
            lines.append(f"  found after this error: {cause}")
        lines.append(f"  last good checkpoint: {checkpoint}")
        lines.append("  bindings most likely at fault: "
                     + (", ".join(self.suspects) if self.suspects else "(none found)"))
        if note:
            lines.append(f"  {note}")
        lines.append("  A changed binding is a new configuration (it starts from zero); "
                     "rerunning unchanged resumes from the last good checkpoint and will "
                     "likely diverge again. DivergenceGuard.max_abs = None checks "
                     "finiteness only.")
        #: the message alone (gin re-raises errors with its own line appended to str())
        self.diagnostic = "\n".join(lines)
        super().__init__(self.diagnostic)

    def __reduce__(self):   # crosses processes (Ray) with its fields
        return _rebuild, (self.quantity, self.value, self.where,
                          {"checkpoint": self.checkpoint, "suspects": self.suspects,
                           "bound": self.bound, "cause": self.cause, "note": self.note})


def _rebuild(quantity, value, where, fields) -> DivergenceError:
    return DivergenceError(quantity, value, where, **fields)


# -- pure checks --------------------------------------------------------------------------
def is_bounded(name: str) -> bool:
    """Whether the magnitude bound applies to metric ``name`` (losses and Q values; not
    counts, rates, temperatures or Lagrange multipliers, which may be large and healthy)."""
    return _BOUNDED.search(name) is not None


def first_bad_value(values: Mapping[str, object],
                    max_abs: float | None = None) -> tuple[str, float] | None:
    """(name, value) of the first value that is not finite, or (for :func:`is_bounded`
    names, when ``max_abs`` is given) larger than ``max_abs`` in magnitude; else None.
    Values that are not real numbers (None, strings) are skipped."""
    for name, value in values.items():
        if not isinstance(value, (float, int, np.floating, np.integer)):
            continue
        value = float(value)
        if not math.isfinite(value) or (max_abs is not None and abs(value) > max_abs
                                         and is_bounded(name)):
            return name, value
    return None


def first_bad_tensor(named: Iterable[tuple[str, object]],
                     max_abs: float | None = None) -> tuple[str, float] | None:
    """(name, max |x|) of the first floating tensor (or numpy array) holding a non-finite
    value or, with ``max_abs``, a value larger than that; else None. One reduction per
    tensor and one transfer per device."""
    by_device: dict[torch.device, list[tuple[str, torch.Tensor]]] = {}
    for name, t in named:
        if isinstance(t, np.ndarray):
            if t.size and np.issubdtype(t.dtype, np.floating):
                t = torch.from_numpy(t)
            else:
                continue
        if not isinstance(t, torch.Tensor) or not t.numel() or not (
                t.is_floating_point() or t.is_complex()):
            continue
        by_device.setdefault(t.device, []).append((name, t))
    for items in by_device.values():
        extremes = torch.stack([t.detach().abs().amax().float() for _, t in items]).tolist()
        for (name, _), m in zip(items, extremes):
            if not math.isfinite(m) or (max_abs is not None and m > max_abs):
                return name, m
    return None


def state_tensors(state, prefix: str) -> Iterable[tuple[str, object]]:
    """(dotted path, leaf) of every tensor / array in a nested state dict or list."""
    if isinstance(state, Mapping):
        for key, value in state.items():
            yield from state_tensors(value, f"{prefix}.{key}")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from state_tensors(value, f"{prefix}.{i}")
    elif isinstance(state, (torch.Tensor, np.ndarray)):
        yield prefix, state


def agent_tensors(agent, everything: bool) -> tuple[list, list]:
    """(network tensors, other tensors) of ``agent``: the state dicts of its
    ``nn.Module`` attributes (bounded), and with ``everything`` the rest of what its
    ``PARTS`` checkpoint (optimisers, duals, caches: checked for finiteness only)."""
    networks = [(f"{name}.{key}", t) for name, module in vars(agent).items()
                if isinstance(module, torch.nn.Module)
                for key, t in module.state_dict().items()]
    others: list = []
    if everything:
        for name in getattr(agent, "PARTS", ()):
            part = getattr(agent, name, None)
            if part is None or isinstance(part, torch.nn.Module):
                continue
            if isinstance(part, torch.Tensor):
                others.append((name, part))
            elif callable(getattr(part, "state_dict", None)):
                others.extend(state_tensors(part.state_dict(), name))
    return networks, others


def suspect_rates(quantity: str, rates: Sequence[str]) -> list[str]:
    """Which of an agent's learning-rate arguments ``rates`` most likely moved
    ``quantity`` (a metric name, or a tensor's dotted name): the rate of the network it
    belongs to (``critic_loss``, ``q_mean``, ``td_loss``, ``target_critic.w`` ->
    ``critic_lr``), the duals' rate for temperatures and multipliers, else all of them."""
    name = quantity.rsplit("/", 1)[-1].lower()
    name = name.removeprefix("target_")
    head = re.split(r"[._]", name, maxsplit=1)[0]
    if head in ("q", "td"):
        head = "critic"
    if f"{head}_lr" in rates:
        return [f"{head}_lr"]
    if head in ("temperature", "log", "multiplier", "estep", "alpha") and "dual_lr" in rates:
        return ["dual_lr"]
    return list(rates)


# -- the bindings behind an agent -----------------------------------------------------------
def _plain(value):
    """A binding's value with a %MACRO resolved."""
    if isinstance(value, gin.config.ConfigurableReference) and value.selector == "gin.macro":
        try:
            return gin.query_parameter(f"{value.scoped_selector}.value")
        except ValueError:
            return value
    return value


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _norm(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def binding_text(cls, param: str, variant: str | None = None) -> str:
    """'scope/Name.param = value' as the parsed gin config binds ``param`` of ``cls``
    (in the scope named like ``variant``, e.g. 'Shared Q + IW' -> shared_q_iw/, or an
    enclosing one), or 'Name.param = default (its default)'."""
    name = cls.__name__
    bound = {scope: params[param]
             for (scope, selector), params in gin.config._CONFIG.items()  # gin 0.5's store
             if selector.rsplit(".", 1)[-1] == name and param in params}
    scopes = [s for s in bound if s and variant is not None and
              _norm(s.rsplit("/", 1)[-1]) == _norm(variant)]
    for scope in [*scopes, ""]:
        if scope in bound:
            prefix = f"{scope}/" if scope else ""
            return f"{prefix}{name}.{param} = {_show(_plain(bound[scope]))}"
    if bound:   # bound only in other scopes: name them all
        return ", ".join(f"{s}/{name}.{param} = {_show(_plain(v))}" for s, v in bound.items())
    default = inspect.signature(cls).parameters.get(param)
    shown = "?" if default is None else _show(default.default)
    return f"{name}.{param} = {shown} (its default)"


def learning_rates(cls) -> list[str]:
    """The constructor arguments of ``cls`` that are learning rates."""
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.endswith("_lr") or p == "lr" or p.endswith("learning_rate")]


# -- what the loops use ---------------------------------------------------------------------
@gin.configurable
class DivergenceGuard:
    """One per run: the bound, and what the last good checkpoint is.

    ``max_abs``: the magnitude past which a loss, a Q value or a network tensor counts
    as diverged (None: check finiteness only). The pipeline tells it the checkpoint's
    path and every label it saves (:meth:`saved`); each loop :meth:`watch` es its agent.
    """

    def __init__(self, *, max_abs: float | None = DEFAULT_MAX_ABS):
        if max_abs is not None and (isinstance(max_abs, bool) or
                                    not isinstance(max_abs, (int, float)) or
                                    not 0 < max_abs < math.inf):
            raise ValueError(f"DivergenceGuard.max_abs must be a positive finite number or "
                             f"None (finiteness only), got {max_abs!r}")
        self.max_abs = None if max_abs is None else float(max_abs)
        self.checkpoint_path = None
        self.last_good: str | None = None

    def saved(self, label: str) -> None:
        self.last_good = label

    def checkpoint_text(self) -> str:
        if self.last_good is None:
            return "none was written before this (the same command starts from zero)"
        where = "" if self.checkpoint_path is None else f" in {self.checkpoint_path}"
        return f"{self.last_good!r}{where}"

    def watch(self, agent, *, schedule: Mapping[str, object] | None = None,
              variant: str | None = None, suspects: Sequence[str] | None = None) -> "Watch":
        return Watch(self, agent, schedule or {}, variant, suspects)


class Watch:
    """The guard on one agent in one loop. ``where`` arguments are callables returning
    the place in words, e.g. "update 9 of pretraining (env step 720)" (called only on
    failure). ``schedule``: the loop's batch bindings {name: value}, the suspects when the
    very first update of the run already fails; ``variant``: the adaptation variant's
    name (finds its gin scope); ``suspects``: fixed suspects instead of either."""

    def __init__(self, guard: DivergenceGuard, agent, schedule: Mapping[str, object],
                 variant: str | None, suspects: Sequence[str] | None):
        self.guard, self.agent = guard, agent
        self.schedule, self.variant, self.fixed_suspects = dict(schedule), variant, suspects
        self.start = getattr(agent, "updates", 0)

    # per update: Python floats only
    def update(self, metrics: Mapping[str, object], where: Callable[[], str]) -> None:
        bad = first_bad_value(metrics, self.guard.max_abs)
        if bad is not None:
            first = getattr(self.agent, "updates", 0) <= self.start + 1
            raise self.error(*bad, where(), first_update=first)

    def logged(self, values: Mapping[str, object], where: Callable[[], str]) -> None:
        """Values about to be logged: finite (their magnitude is the updates' business;
        the update metrics among them were checked as they came, so what fails here is a
        return, a success rate or a ratio: the environment's numbers)."""
        bad = first_bad_value(values)
        if bad is not None:
            raise self.error(*bad, where(), suspects=[], note=(
                "No update reported it: the episodes' returns come from the environment "
                "(pretrain_and_adapt.env and its bindings), not from a learning step."))

    def state(self, where: Callable[[], str], everything: bool = False) -> None:
        """The agent's network tensors (and, with ``everything``, all it checkpoints)."""
        networks, others = agent_tensors(self.agent, everything)
        bad = first_bad_tensor(networks, self.guard.max_abs) or first_bad_tensor(others)
        if bad is not None:
            raise self.error(*bad, where())

    def translate(self, exc: BaseException, where: Callable[[], str]) -> None:
        """Raise the diagnostic for an error torch raised (from ``exc``) when the agent's
        state or the error's message shows a divergence; return otherwise (the caller
        re-raises ``exc``: a plain bug stays a plain bug)."""
        networks, others = agent_tensors(self.agent, everything=True)
        bad = first_bad_tensor(networks, self.guard.max_abs) or first_bad_tensor(others)
        text = (str(exc).strip().splitlines() or [""])[0]
        cause = f"{type(exc).__name__}: {text[:240]}"
        if bad is None and _NONFINITE_TEXT.search(str(exc)):
            bad = (f"a value inside torch ({type(exc).__name__})", math.nan)
        if bad is not None:
            raise self.error(*bad, where(), cause=cause) from exc

    def error(self, quantity: str, value: float, where: str, *, cause: str | None = None,
              first_update: bool = False, suspects: Sequence[str] | None = None,
              note: str | None = None) -> DivergenceError:
        """The diagnostic. Suspects: ``suspects`` or the watch's fixed ones if given; the
        schedule when an update metric fails at the run's ``first_update`` (no learning
        step had been taken: a learning rate cannot be the cause); else the learning
        rate(s) of the network ``quantity`` belongs to."""
        if suspects is None:
            suspects = self.fixed_suspects
        if suspects is None and first_update and self.schedule:
            suspects = [f"{k} = {_show(v)}" for k, v in self.schedule.items()]
            note = ("It happened at the first update of this run, before any learning step "
                    "could diverge: the batch (its schedule) is suspect, not the learning "
                    "rates.")
        if suspects is None:
            cls = type(self.agent)
            suspects = [binding_text(cls, p, self.variant)
                        for p in suspect_rates(quantity, learning_rates(cls))]
        return DivergenceError(quantity, value, where,
                               checkpoint=self.guard.checkpoint_text(), suspects=suspects,
                               bound=self.guard.max_abs, cause=cause, note=note)
