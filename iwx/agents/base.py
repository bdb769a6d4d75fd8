"""The agent toolkit: what every method module may import (and nothing method-specific).

Method modules under ``iwx/agents`` import from here and from ``iwx.ops`` /
``iwx.nets``, never from one another (docs/AGENTS.md).
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
