"""``train/env_steps`` counts the steps played, not episode slots.

Go To Ring with a reach tolerance wider than the room: every episode is reached, rewarded
and ended on its first step, so 2 rows × 2 iterations of the single-process loop play 4
steps (counting ``episode_length`` per row, as the loops once did, would say 4 × 20). The
distributed loop counts its actors' episodes the same way.
"""

import numpy as np

from cli import iwx_run, read_json, run_dirs

REACHED_AT_ONCE = ["GoToRingEnv.distance_tolerance = 100.0", "GoToRingEnv.episode_seconds = 1.0",
                   "GoToRingTasks.num_train = 4", "GoToRingTasks.num_test = 2",
                   "MultiTaskTraining.updates = 16", "MultiTaskTraining.updates_per_iteration = 8",
                   "MultiTaskTraining.envs_per_iteration = 2", "MultiTaskTraining.log_period = 8",
                   "MultiTaskTraining.checkpoint_period = 16", "pretrain_and_adapt.variants = {}"]


def logged(run, name):
    series = read_json(run / "series.json")[name]
    return series["steps"], series["values"]


def test_the_single_loop_counts_one_step_per_row_of_an_episode_ended_at_once(tmp_path):
    proc = iwx_run(tmp_path, "gin/go_to_ring_rs0.gin", REACHED_AT_ONCE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    _, success = logged(run, "train/success")
    assert np.allclose(success, 1.0)               # every episode reached the ring at once
    steps, env_steps = logged(run, "train/env_steps")
    assert steps == [8, 16] and env_steps == [2, 4], env_steps
    assert logged(run, "train/episode_steps")[1] == [1.0, 1.0]   # each episode: one step
    assert "train/episode_steps" not in read_json(run / "metrics.json")   # a diagnostic


def test_the_distributed_loop_counts_the_steps_its_actors_played(tmp_path):
    proc = iwx_run(tmp_path, "gin/go_to_ring_rs0.gin", [
        *REACHED_AT_ONCE, "pretrain_and_adapt.training = @DistributedTraining()",
        "DistributedTraining.actors = 1"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    _, env_steps = logged(run, "train/env_steps")
    # each episode is 2 rows × 1 step; slots would count 2 × 20 per episode
    assert env_steps and all(v % 2 == 0 for v in env_steps)
    assert all(v == 1.0 for v in logged(run, "train/episode_steps")[1])
    assert read_json(run / "info.json")["throughput"]["samples_per_insert"] > 0
    assert min(v for v in env_steps if v > 0) < 40 or env_steps[-1] % 40 != 0, env_steps
