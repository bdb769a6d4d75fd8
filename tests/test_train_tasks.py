"""``pretrain_and_adapt.train_tasks``: train on the first k of the split's training tasks
and adapt on the very held-out tasks of the full draw (figure 4's few-task regime)."""

from __future__ import annotations

import numpy as np
import pytest

from cli import iwx_run, read_json, run_dirs
from iwx.envs.tasks import TaskSplit, first_train_tasks


def split() -> TaskSplit:
    rows = np.arange(20, dtype=np.float32).reshape(10, 2)
    return TaskSplit(train=rows[:6], validation=rows[6:7], test=rows[7:])


def test_the_first_k_training_tasks_are_kept_and_the_rest_unchanged():
    full = split()
    few = first_train_tasks(full, 2)
    assert few.train.tolist() == [[0.0, 1.0], [2.0, 3.0]]
    assert few.validation is full.validation and few.test is full.test
    assert first_train_tasks(full, None) is full
    assert first_train_tasks(full, 6).train.tolist() == full.train.tolist()


@pytest.mark.parametrize("count", [0, 7, -1, 2.0, True, "2"])
def test_a_count_outside_the_training_tasks_is_refused(count):
    with pytest.raises(ValueError, match=r"train_tasks = .*: expected a whole number from 1 "
                                         r"to the split's 6 training tasks"):
        first_train_tasks(split(), count)


def test_a_run_on_few_training_tasks_adapts_on_the_full_draws_held_out_tasks(tmp_path):
    runs = tmp_path / "runs"
    for params in ([], ["pretrain_and_adapt.train_tasks = 2"]):
        proc = iwx_run(runs, params=params)
        assert proc.returncode == 0, proc.stderr[-3000:]
    full, few = sorted(run_dirs(runs), key=lambda d: int(d.name))
    assert read_json(full / "results.json")["test_goals"] == \
        read_json(few / "results.json")["test_goals"]
    # the learner's training tasks (its model records them): 6 in the full run, 2 here
    import torch

    tasks = [torch.load(d / "model.pt", weights_only=False)["num_tasks"] for d in (full, few)]
    assert tasks == [6, 2]


def test_a_bad_count_is_a_configuration_error_before_any_compute(tmp_path):
    proc = iwx_run(tmp_path / "runs", params=["pretrain_and_adapt.train_tasks = 9"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "train_tasks = 9: expected a whole number from 1 to the split's 6" in proc.stderr


def test_a_few_task_model_is_adapted_from_with_the_same_train_tasks(tmp_path):
    """The check of a ``pretrained`` model against the configuration counts the training
    tasks ``train_tasks`` keeps (2 here), not the split's (6)."""
    runs = tmp_path / "runs"
    assert iwx_run(runs, params=["pretrain_and_adapt.train_tasks = 2"]).returncode == 0
    model = run_dirs(runs)[0] / "model.pt"
    proc = iwx_run(runs, params=["pretrain_and_adapt.train_tasks = 2",
                                 f"pretrain_and_adapt.pretrained = '{model}'"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = iwx_run(runs, params=[f"pretrain_and_adapt.pretrained = '{model}'"])
    assert proc.returncode == 2 and "2 training tasks" in proc.stderr, proc.stderr[-3000:]
