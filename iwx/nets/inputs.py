"""Which parts of a dict observation a network sees (information asymmetry)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def observation_dim(spec: Mapping[str, tuple[int, ...]], keys: Sequence[str]) -> int:
    missing = [k for k in keys if k not in spec]
    if missing:
        raise KeyError(f"network inputs {missing} are not in the observation {sorted(spec)}")
    dim = 0
    for k in keys:
        shape = spec[k]
        dim += int(torch.tensor(shape).prod().item()) if shape else 1
    return dim


def select(obs: Mapping[str, torch.Tensor], keys: Sequence[str]) -> torch.Tensor:
    """Concatenate the named parts of ``obs`` along the last axis, as float32."""
    return torch.cat([obs[k].float() for k in keys], dim=-1)


def state_action(obs: Mapping[str, torch.Tensor], keys: Sequence[str],
                 actions: torch.Tensor) -> torch.Tensor:
    """[select(obs), clip(a, -1, 1)] along the last axis.

    Critics see the action the environment executes: the acting loop clips every
    action to the box [-1, 1] (``iwx.loops.episodes.to_env_units``), while the
    parametric policies sample unclipped Gaussians. Without the clip a critic
    extrapolates beyond the box, where the true Q is flat, and SVG(0) / MPO
    follow that extrapolation: the policy mean ran off to |μ| ~ 10⁴ on point
    navigation (docs/DECISIONS.md, "Parametric policies"). Inside the box the
    clip is the identity (IWPL's prior samples are already clipped).

    ``actions`` is either [..., A] with the same leading shape as the
    observation parts, or [..., K, A] with one extra axis of K samples per
    state; the state is then repeated (as a view) for each sample.
    """
    s = select(obs, keys)
    actions = actions.clamp(-1.0, 1.0)
    if actions.dim() == s.dim() + 1:
        s = s.unsqueeze(-2).expand(*actions.shape[:-1], s.shape[-1])
    return torch.cat([s, actions], dim=-1)
