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


def task_generator(run_seed: int, seed: int | None, salt: int) -> np.random.Generator:
    """The generator of one task distribution's draw: seeded by ``seed`` when a
    config pins it, else by the run's seed; ``salt`` keeps distributions apart."""
    return np.random.default_rng(np.random.SeedSequence([run_seed if seed is None else seed,
                                                         salt]))


def first_train_tasks(split: TaskSplit, count: int | None) -> TaskSplit:
    """``split`` with only its first ``count`` training tasks (None: all of them); its
    validation and held-out tasks unchanged. A few-task regime drawn this way (figure 4)
    adapts on the very held-out tasks of the many-task draw, where a smaller
    ``num_train`` would shift every held-out task (the split is in order)."""
    if count is None:
        return split
    if isinstance(count, bool) or not isinstance(count, int) or \
            not 1 <= count <= len(split.train):
        raise ValueError(f"pretrain_and_adapt.train_tasks = {count!r}: expected a whole "
                         f"number from 1 to the split's {len(split.train)} training tasks "
                         "(or None for all)")
    return dataclasses.replace(split, train=split.train[:count])


def split_in_order(rows: np.ndarray, num_train: int, num_validation: int) -> TaskSplit:
    """One draw of task rows split in order train, validation, held-out (the rest),
    so that a held-out task can never be a training task."""
    a, b = num_train, num_train + num_validation
    return TaskSplit(train=rows[:a], validation=rows[a:b], test=rows[b:])
