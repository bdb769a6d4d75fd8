"""DistributedTraining (Algorithm 1 with Ray actor processes) end to end, on tiny budgets.

Runs go through the real runner, in this process, and are read back from Sacred's file
store. They share one local Ray instance started by the module (a run uses "the
process's existing Ray context", as inside a sweep trial); tests/test_distributed_cli.py
has the command lines, which start and stop their own.
"""

from __future__ import annotations

import pytest

from cli import ROOT, TINY, read_json

DISTRIBUTED = ["pretrain_and_adapt.training = @DistributedTraining()",
               "DistributedTraining.actors = 2", "DistributedTraining.publish_period = 4"]
METHODS = ["iwpl", "rs0", "distral", "mpo", "mpo_distral", "rl2", "pearl"]
SMALL = {   # small networks and memory, as tests/test_acting_parts.py uses
    "rl2": ["RecurrentCore.hidden_size = 8"],
    "pearl": ["PEARL.context_length = 6", "ContextEncoder.lstm_size = 8"],
}


@pytest.fixture(scope="module")
def ray_context():
    import ray

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


def run_in_process(runs_dir, gin_stem: str, params=(), seed: int = 0):
    from iwx.experiment.runner import RunSpec, run

    record = run(RunSpec(gin_files=(str(ROOT / f"gin/point_nav_{gin_stem}.gin"),),
                         bindings=(*TINY, *DISTRIBUTED, *SMALL.get(gin_stem, []), *params),
                         seed=seed, runs_dir=str(runs_dir), progress=False))
    assert record is not None
    return record.run_dir


def metric(run, name):
    """A series as the loop logged it (series.json: against learner updates)."""
    series = read_json(run / "series.json")[name]
    return series["steps"], series["values"]


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_distributed_and_adapts(ray_context, tmp_path, method):
    run = run_in_process(tmp_path, method)
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    config = read_json(run / "config.json")
    assert config["bindings"]["DistributedTraining"]["actors"] == 2
    steps, env_steps = metric(run, "train/env_steps")
    assert steps == [8, 16, 24, 32, 40, 48]           # MultiTaskTraining's schedule knobs
    assert env_steps[-1] > 0 and env_steps == sorted(env_steps)
    for name in ("train/return", "train/samples_per_insert", "train/updates_per_s",
                 "train/env_steps_per_s", "train/param_lag", "train/learner_wait_fraction",
                 "train/actor_wait_fraction", "train/actor_00/env_steps_per_s",
                 "train/actor_01/env_steps_per_s", "train/actor_restarts"):
        assert name in read_json(run / "series.json"), name
    # TINY: 8 updates x 8 x 10 per 4 episodes x 20 steps -> r = 8 samples per insert. The
    # limiter keeps |r (I - m) - S| <= b, b = (2 actors / 2 + 1) x 8 x 80 + 80 (the default),
    # and the run logs S / (I - m) with S = 48 updates x 80:
    _, ratio = metric(run, "train/samples_per_insert")
    sampled = 48 * 80
    assert abs(8 * sampled / ratio[-1] - sampled) <= (2 / 2 + 1) * 8 * 80 + 80
    results = read_json(run / "results.json")
    assert bool(results["returns"]) == (method in ("iwpl", "distral", "rl2", "pearl"))
    if method == "pearl":
        # gin/point_nav_pearl.gin's training_env reaches the actor processes: they act in
        # the dense reward (every 20-step return below 0), adaptation in the sparse one.
        _, train = metric(run, "train/return")
        assert train and all(v < -0.5 for v in train), train
        _, adapt = metric(run, "adapt/PEARL*/return")
        assert adapt and all(v >= 0.0 for v in adapt), adapt


def test_a_killed_actor_is_restarted_and_the_run_completes(ray_context, tmp_path,
                                                           monkeypatch):
    # The only actor SIGKILLs its own process when it starts its first episode, so the
    # learner cannot finish without seeing the death. (With two actors this raced: on a
    # loaded CI machine actor 1 played the whole 96-update run before Ray reported actor
    # 0's death, and the run completed with 0 restarts logged.)
    monkeypatch.setenv("IWX_KILL_ACTOR_AT_EPISODE", "0")
    run = run_in_process(tmp_path, "iwpl", ["MultiTaskTraining.updates = 96",
                                            "DistributedTraining.actors = 1"])
    assert read_json(run / "config.json")["bindings"]["DistributedTraining"]["actors"] == 1
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    _, restarts = metric(run, "train/actor_restarts")
    assert restarts[-1] == 1        # exactly one: the new actor 0 did not die as well
    assert "actor 0 died; starting it again (restart 1)" in (run / "cout.txt").read_text()


def test_too_small_error_buffer_is_refused_before_compute(ray_context, tmp_path):
    from iwx.experiment.runner import RunSpec, run

    with pytest.raises(ValueError, match="error_buffer=10 is too small.*at least 640"):
        run(RunSpec(gin_files=(str(ROOT / "gin/point_nav_iwpl.gin"),),
                    bindings=(*TINY, *DISTRIBUTED, "DistributedTraining.error_buffer = 10"),
                    runs_dir=str(tmp_path), progress=False))
