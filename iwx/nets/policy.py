"""Parametric Gaussian policies of the baselines (RS(0), DISTRAL, MPO).

π_i(a|s) = N(μ(s, i), diag σ(s, i)²): one network for every training task,
told which task it acts in by a one-hot task id (``task_key = "task_id"``), a
goal descriptor (``"goal"``), or nothing (``None``, e.g. a policy conditioned
on something else such as PEARL*'s latent, passed as ``extra``).

Decisions (docs/DECISIONS.md, "Parametric policies"):
- samples are *not* clipped: a = μ + σ ε exactly, so log π(a|s) is the exact
  density the Retrace ratios and KL estimates need. The acting loop clips to
  [-1, 1] when it maps actions to the environment
  (``iwx.loops.episodes.to_env_units``), and every critic sees the clipped
  action (``iwx.nets.inputs.state_action``), so nothing rewards a mean that
  leaves the box.
- σ is squashed into [exp(log_std_min), exp(log_std_max)] as in
  :class:`iwx.nets.prior.GaussianPrior`, so the two have the same heads and a
  policy can start as a copy of π0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn

from iwx.nets.gaussian_head import init_std_bias, squashed_gaussian
from iwx.nets.inputs import observation_dim, select
from iwx.nets.torso import Torso


def task_encoding(obs: Mapping[str, torch.Tensor], task_key: str | None,
                  num_tasks: int) -> torch.Tensor | None:
    """One-hot task id [..., num_tasks], a goal vector [..., g] as float, or None."""
    if task_key is None:
        return None
    value = obs[task_key]
    if task_key == "task_id":
        return torch.nn.functional.one_hot(value.long(), num_tasks).float()
    return value.float()


@gin.configurable
class GaussianPolicy(nn.Module):
    """π(a | s, task[, extra]) with a diagonal Gaussian head. Shapes: obs [..., ·] -> [..., A].

    ``inputs``: observation keys the policy sees besides the task; ``extra_dim``:
    width of an extra input vector given to :meth:`distribution` (e.g. a latent).
    """

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int,
                 num_tasks: int = 1, *, inputs: Sequence[str] = ("position",),
                 task_key: str | None = "task_id", extra_dim: int = 0, torso=Torso,
                 log_std_min: float = -3.0, log_std_max: float = 0.5,
                 init_std: float | None = 0.8):
        super().__init__()
        self.inputs, self.task_key, self.num_tasks = tuple(inputs), task_key, num_tasks
        task_dim = 0
        if task_key == "task_id":
            task_dim = num_tasks
        elif task_key is not None:
            task_dim = observation_dim(obs_spec, [task_key])
        self.extra_dim = extra_dim
        self.torso = torso(observation_dim(obs_spec, self.inputs) + task_dim + extra_dim)
        self.head = nn.Linear(self.torso.out_dim, 2 * action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        self.action_dim = action_dim
        init_std_bias(self.head, action_dim, init_std, log_std_min, log_std_max, "GaussianPolicy")

    def features(self, obs: Mapping[str, torch.Tensor],
                 extra: torch.Tensor | None = None) -> torch.Tensor:
        parts = [select(obs, self.inputs)]
        task = task_encoding(obs, self.task_key, self.num_tasks)
        if task is not None:
            parts.append(task)
        if self.extra_dim:
            if extra is None:
                raise ValueError(f"this policy expects an extra input of width {self.extra_dim}")
            parts.append(extra.expand(*parts[0].shape[:-1], self.extra_dim))
        return torch.cat(parts, dim=-1)

    def distribution(self, obs: Mapping[str, torch.Tensor],
                     extra: torch.Tensor | None = None) -> torch.distributions.Normal:
        mean, raw = self.head(self.torso(self.features(obs, extra))).chunk(2, dim=-1)
        return squashed_gaussian(mean, raw, self.log_std_min, self.log_std_max)
