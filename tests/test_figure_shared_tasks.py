"""The training return of a panel's pretrainings on the training tasks they share
(iwx/figures/shared_tasks.py), by hand."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from iwx.experiment.store import RecordedRun
from iwx.figures.shared_tasks import shared_task_rows, shared_task_table, task_returns

NAN = float("nan")


def recorded(run_id, per_task, goals=((0.1, 0.2),)):
    """A run that logged ``train/return/task_NNN`` at updates 10, 20, ..., 100 as
    float64 arrays (what iwx.experiment.store gives back)."""
    metrics = {f"train/return/task_{t:03d}": (np.arange(10, 10 * len(v) + 1, 10, dtype=np.int64),
                                              np.asarray(v, dtype=np.float64))
               for t, v in per_task.items()}
    results = json.dumps({"test_goals": [list(g) for g in goals]}).encode()
    return RecordedRun(id=run_id, source="here", status="COMPLETED", config={}, info={},
                       meta={}, metrics=metrics, artifact_names=["results.json"],
                       _fetch=lambda name: results if name == "results.json" else None)


def test_a_tasks_return_is_its_mean_over_the_last_fifth_of_the_updates():
    run = recorded(1, {0: [0, 0, 0, 0, 0, 0, 0, 0, 4.0, 6.0],
                       1: [1, 1, 1, 1, 1, 1, 1, 3.0, NAN, NAN],       # missed the last two
                       2: [5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0, NAN, NAN]})
    # updates 10..100: the last fifth is updates > 80, i.e. the points at 90 and 100
    assert task_returns(run) == {0: 5.0}     # tasks 1 and 2 have no point there (NaN)
    # over the last 40% (updates > 60: 70, 80, 90, 100)
    assert task_returns(run, 0.4) == {0: pytest.approx(2.5), 1: pytest.approx(2.0),
                                      2: pytest.approx(5.0)}
    assert task_returns(recorded(2, {})) == {}


def plan_of(runs):
    """A plan's shape as shared_task_rows reads it: panels, seeds, planned runs."""
    panel = SimpleNamespace(task="reach_cpu")
    planned = [SimpleNamespace(number=n, panel=panel, seed=0, entry=SimpleNamespace(label=label))
               for n, label in runs]
    return SimpleNamespace(panels=[panel], scale=SimpleNamespace(seeds=[0]), runs=planned)


def flat(value, n=5):
    return [value] * n


def test_runs_on_different_tasks_of_one_draw_are_compared_on_the_tasks_they_share():
    many = recorded(7, {0: flat(10.0), 1: flat(20.0), 2: flat(30.0), 3: flat(100.0)})
    few = recorded(8, {0: flat(16.0), 1: flat(23.0)})
    scratch = recorded(9, {})                               # trained nothing: no row
    plan = plan_of([(1, "IWPL, many tasks"), (2, "IWPL, few tasks"), (3, "From Scratch")])
    rows = shared_task_rows(plan, {1: many, 2: few, 3: scratch})
    assert [(r["label"], r["run_id"], r["tasks"], r["shared"]) for r in rows] == [
        ("IWPL, many tasks", 7, 4, [0, 1]), ("IWPL, few tasks", 8, 2, [0, 1])]
    # many: tasks 0 and 1 at 10 and 20: mean 15, t(0.975, 1) = 12.706, sd = 7.071,
    # sem = 5 -> ± 63.53; few: 16 and 23: mean 19.5, sd 4.950, sem 3.5 -> ± 44.47
    assert rows[0]["per_task"] == [10.0, 20.0] and rows[1]["per_task"] == [16.0, 23.0]
    assert rows[0]["mean"] == pytest.approx(15.0) and rows[1]["mean"] == pytest.approx(19.5)
    assert rows[0]["ci95"] == pytest.approx(63.531, abs=1e-3)
    assert rows[1]["ci95"] == pytest.approx(44.472, abs=1e-3)
    assert rows[0]["all_tasks"] == pytest.approx(40.0) and rows[1]["all_tasks"] == 19.5
    table = shared_task_table(rows)
    assert "| reach_cpu | IWPL, few tasks | 0 | 2 tasks | 19.50 ± 44.47 (2 tasks) | " \
           "0: 16.0, 1: 23.0 | 19.50 |" in table


def test_runs_on_the_same_tasks_or_of_different_draws_get_no_rows():
    a = recorded(1, {0: flat(1.0), 1: flat(2.0)})
    b = recorded(2, {0: flat(3.0), 1: flat(4.0)})
    plan = plan_of([(1, "IWPL"), (2, "DISTRAL")])
    assert shared_task_rows(plan, {1: a, 2: b}) == []        # same tasks: nothing to set apart
    other = recorded(3, {0: flat(3.0)}, goals=((0.3, 0.4),))  # another held-out draw
    assert shared_task_rows(plan, {1: a, 2: other}) == []
