"""An episode recorded in an actor process and written at once stores what step-by-step
replay calls store (iwx.loops.actor_process.EpisodeRecorder, TaskReplay.write_episodes)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from iwx.loops.actor_process import EpisodeRecorder
from iwx.replay.task_replay import TaskReplay

SPEC = {"position": (2,), "task_id": ()}


def episode_calls(rng, rows, length, dead_after):
    """begin / append / end calls of one episode in which row r stops after dead_after[r]."""
    obs = {"position": rng.normal(size=(len(rows), 2)).astype(np.float32),
           "task_id": rows.copy()}
    calls = [("begin_episodes", (rows, obs))]
    for t in range(length):
        alive = t < dead_after
        if not alive.any():
            break
        n = int(alive.sum())
        calls.append(("append", (rows[alive], rng.normal(size=(n, 3)).astype(np.float32),
                                 rng.normal(size=n).astype(np.float32),
                                 (rng.random(n) > 0.2).astype(np.float32),
                                 {"position": rng.normal(size=(n, 2)).astype(np.float32),
                                  "task_id": rows[alive].copy()},
                                 {"log_mu": rng.normal(size=n).astype(np.float32)})))
    calls.append(("end_episodes", (rows,)))
    return calls


def test_written_episodes_equal_step_by_step_calls_through_a_ring():
    rng = np.random.default_rng(0)
    make = lambda: TaskReplay(6, SPEC, 3, 7, capacity=2, extra_spec={"log_mu": ()})  # noqa: E731
    by_step, at_once = make(), make()
    for e in range(5):                                   # 5 episodes through 2 slots per task
        rows = rng.choice(6, size=4, replace=False)
        calls = episode_calls(rng, rows, 7, rng.integers(1, 8, size=4))
        recorder = EpisodeRecorder()
        for name, args in calls:
            getattr(by_step, name)(*args)
            getattr(recorder, name)(*args)
        recorder = pickle.loads(pickle.dumps(recorder))  # as it crosses processes
        recorder.into(at_once)
        assert recorder.transitions == sum(len(a[0]) for n, a in calls if n == "append")
    a, b = by_step.state_dict(), at_once.state_dict()
    for key in ("actions", "rewards", "discounts", "lengths", "cursor", "begun", "episode"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in SPEC:
        np.testing.assert_array_equal(a["obs"][key], b["obs"][key], err_msg=key)
    np.testing.assert_array_equal(a["extras"]["log_mu"], b["extras"]["log_mu"])


def test_a_written_episode_longer_than_the_replay_is_refused():
    replay = TaskReplay(2, SPEC, 3, 2, capacity=2)
    recorder = EpisodeRecorder()
    for name, args in episode_calls(np.random.default_rng(1), np.array([0, 1]), 3,
                                    np.array([3, 3])):
        if name == "append":
            args = args[:5]
        getattr(recorder, name)(*args)
    with pytest.raises(ValueError, match="longer than max_episode_length=2"):
        recorder.into(replay)
