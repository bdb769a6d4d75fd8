"""Train / validation / held-out split of a task distribution."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class TaskSplit:
    """Task parameters (e.g. goals), one row per task, disjoint by construction."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
