"""DistributedTraining from the command lines: a run that starts its own Ray and resumes
after a SIGKILL, and sweeps of distributed trials (each reserves its actors). Apart from
tests/test_distributed.py so that pytest-xdist can run the two files side by side."""

from __future__ import annotations

import json
import os
import signal

from cli import (HANG_GUARD_S, TINY, checkpoints, iwx_run, read_json, run_dirs,
                 start_run, wait_for)

DISTRIBUTED = ["pretrain_and_adapt.training = @DistributedTraining()",
               "DistributedTraining.actors = 2", "DistributedTraining.publish_period = 4"]


def metric(run, name):
    """A series as the loop logged it (series.json: against learner updates)."""
    series = read_json(run / "series.json")[name]
    return series["steps"], series["values"]


def test_command_line_run_starts_its_own_ray_and_resumes_after_sigkill(tmp_path):
    params = [*DISTRIBUTED, "MultiTaskTraining.updates = 64"]
    killed = iwx_run(tmp_path, params=params,
                     env={"IWX_KILL_AFTER_CHECKPOINT": "train:32"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    done = iwx_run(tmp_path, params=params)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from checkpoint 'train:32'" in done.stdout
    run = run_dirs(tmp_path)[-1]
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    info = read_json(run / "info.json")
    assert info["resumed_from"]["checkpoint"] == "train:32"
    steps, env_steps = metric(run, "train/env_steps")
    assert steps == [8, 16, 24, 32, 40, 48, 56, 64]   # the history before the kill, then more
    assert env_steps == sorted(env_steps)
    assert json.loads((run / "results.json").read_text())["returns"]
    assert not os.environ.get("IWX_KILL_AFTER_CHECKPOINT")


def test_sigterm_stops_a_distributed_run_as_interrupted_not_failed(tmp_path):
    """ray.init installs a SIGTERM handler of its own (sys.exit); the run puts its own
    back, so SIGTERM (a scheduler's, a session ending) records INTERRUPTED, keeps the
    checkpoint and says how to resume, as it does without Ray. A replay ratio of 1000
    keeps the learner waiting on its actors inside ``ray.wait`` most of the time: in
    compiled code, where the handler's exception can arrive wrapped in a SystemError
    (seen once in a real run; not reproduced on demand)."""
    proc = start_run(tmp_path, [*DISTRIBUTED, "MultiTaskTraining.updates = 100000",
                                "DistributedTraining.samples_per_insert = 1000.0"])
    try:
        wait_for(lambda: checkpoints(tmp_path), proc, poll_s=0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=HANG_GUARD_S)
    finally:
        proc.kill()
    assert proc.returncode == 143, err[-3000:]
    assert "recorded as INTERRUPTED" in err and "Traceback" not in err, err[-3000:]
    (run,) = run_dirs(tmp_path)
    assert read_json(run / "run.json")["status"] == "INTERRUPTED"
    assert checkpoints(tmp_path)


def _sweep_file(path, extra_bindings, seeds=(0, 1)):
    lines = ["gin: gin/point_nav_iwpl.gin", "bindings:"]
    lines += [f"  - {b}" for b in (*TINY, *DISTRIBUTED, *extra_bindings)]
    lines += ["grid:", "  IWPA.alpha: [0.03]", f"seeds: {list(seeds)}",
              "metric: adapt/Shared Q + IW/last3", "mode: max"]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_sweep_of_distributed_trials_reserves_their_actors(tmp_path):
    """Two trials of learner + 2 actors (0.5 CPU each) on a 2-CPU Ray: each reserves 2
    CPUs, so they run one after the other, never side by side."""
    from datetime import datetime

    from cli import run_cli

    spec = _sweep_file(tmp_path / "dist.yaml", ["DistributedTraining.actor_cpus = 0.5"])
    runs = tmp_path / "runs"
    proc = run_cli("iwx.sweep", [str(spec), "--runs-dir", str(runs), "--no-progress",
                                 "--cpus", "2"], timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    done = [r for r in run_dirs(runs) if read_json(r / "run.json")["status"] == "COMPLETED"]
    assert len(done) == 2
    spans = sorted((datetime.fromisoformat(read_json(r / "run.json")["start_time"]),
                    datetime.fromisoformat(read_json(r / "run.json")["stop_time"]))
                   for r in done)
    assert spans[0][1] <= spans[1][0], f"trials overlapped: {spans}"
    for r in done:
        assert read_json(r / "config.json")["bindings"]["DistributedTraining"]["actors"] == 2
        assert "train/actor_01/env_steps_per_s" in read_json(r / "series.json")


def test_sweep_whose_trial_cannot_fit_is_refused(tmp_path):
    from cli import run_cli

    spec = _sweep_file(tmp_path / "big.yaml", ["DistributedTraining.actors = 64"])
    proc = run_cli("iwx.sweep", [str(spec), "--runs-dir", str(tmp_path / "runs")])
    assert proc.returncode == 2
    assert "a trial needs 65 CPUs" in proc.stderr
    assert not (tmp_path / "runs").exists()
