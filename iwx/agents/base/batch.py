"""Replay batches as learners read them: torch tensors, s_t / s_{t+1} views, task rows.

Layout (``iwx.replay.task_replay``): obs[k] [nb, c, L+1, ...] holds
s_0 .. s_L of each chunk; actions, rewards, discounts, mask [nb, c, L, ...] step t.
"""

from __future__ import annotations

import numpy as np
import torch


def to_torch(tree, device):
    """A (nested dict of) numpy array(s) as torch tensors on ``device``, same dtypes."""
    if isinstance(tree, dict):
        return {k: to_torch(v, device) for k, v in tree.items()}
    return torch.as_tensor(np.asarray(tree), device=device)


def task_rows(value: torch.Tensor | None, rows: int, key: str | None) -> torch.Tensor | None:
    """The task input of each leading row (constant along the other axes).

    ``key`` "task_id": value [rows, ...] -> ids [rows]; another key (a goal
    vector): [rows, ..., G] -> [rows, G]; ``key`` None -> None.
    """
    if key is None:
        return None
    if key == "task_id":
        return value.reshape(rows, -1)[:, 0]
    return value.reshape(rows, -1, value.shape[-1])[:, 0]


def obs_task(obs: dict, key: str | None) -> torch.Tensor | None:
    """:func:`task_rows` of an observation batch, one task per leading row (acting: [B, ...];
    a learner's chunks: [nb, c, L(+1), ...]). ``key`` None -> None."""
    if key is None:
        return None
    value = obs[key]
    return task_rows(value, value.shape[0], key)


def split_steps(obs: dict) -> tuple[dict, dict]:
    """(s_t, s_{t+1}) of chunk observations: obs[k] [nb, c, L+1, ...] -> two dicts of
    views [nb, c, L, ...] (steps 0..L-1 and 1..L)."""
    return ({k: v[:, :, :-1] for k, v in obs.items()},
            {k: v[:, :, 1:] for k, v in obs.items()})
