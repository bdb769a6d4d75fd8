"""Distributed against single-process multi-task training, side by side in one command.

    python -m iwx.bench distributed                      # Reach and half-cheetah, 2 actors
    python -m iwx.bench distributed --tasks reach --actors 1 2 4 --updates 800
    python -m iwx.bench distributed --updates-per-iteration 16 --json d.json
    python -m iwx.bench distributed --insert-only --tasks reach   # the learner's insert cost

For each task, the single-process loop (``MultiTaskTraining``) and
``DistributedTraining`` with each number of actors train the task's IWPL gin file
(no adaptation: ``pretrain_and_adapt.variants = {}``) **at the same samples per
insert**: the single loop's ratio follows from its schedule
(``updates_per_iteration · batch_size · chunk_length / (envs_per_iteration ·
episode_length)``), and the distributed loop is given that number. Each
measurement is a process of its own (Ray, gin and torch state are per process),
one after the other. Rates are env steps and learner updates per second of wall
time between the first and the last logging period, so start-up (Ray, actor
processes, the first episodes) is not counted.

What bounds the ratio: the single loop spends a fraction f of its time acting and
1 − f learning; with the learner on one core and actors on others, both rates can
grow by at most min(1/f, 1/(1 − f)) at a fixed replay ratio — 2× only where acting
and learning cost the same (``--updates-per-iteration`` moves f).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

TASKS = {"reach": "gin/reach_iwpl.gin", "cheetah_vel": "gin/cheetah_vel_iwpl.gin",
         "point_nav": "gin/point_nav_iwpl.gin"}


def measure(gin_file: str, bindings: list[str], seed: int = 0) -> dict:
    """One training run in this process; its rates from the logging periods' times."""
    os.environ.setdefault("MUJOCO_GL", "disable")
    from iwx.experiment.gin_config import parse
    from iwx.loops.checkpoint import Checkpointer
    from iwx.loops.logger import MemoryLogger
    from iwx.loops.pipeline import pretrain_and_adapt

    parse([gin_file], ["pretrain_and_adapt.variants = {}", "pretrain_and_adapt.oracle = None",
                       "pretrain_and_adapt.baseline = None", *bindings])
    marks = []

    def sink(name, value, step):
        if name == "train/env_steps":
            marks.append((time.perf_counter(), step, value))

    logger = MemoryLogger(sink=sink)
    with tempfile.TemporaryDirectory() as tmp:
        pretrain_and_adapt(seed, logger, Checkpointer(None), tmp)
    (t0, u0, e0), (t1, u1, e1) = marks[0], marks[-1]
    last = {name: value for name, value, _ in logger.history}
    waits = {name: [v for n, v, _ in logger.history if n == name]
             for name in ("train/learner_wait_fraction", "train/actor_wait_fraction")}
    return {"updates_per_s": (u1 - u0) / (t1 - t0), "env_steps_per_s": (e1 - e0) / (t1 - t0),
            "samples_per_insert": last.get("train/samples_per_insert"),
            # mean over the logging periods (the first is start-up: not counted)
            "learner_wait": _mean(waits["train/learner_wait_fraction"][1:]),
            "actor_wait": _mean(waits["train/actor_wait_fraction"][1:]),
            "seconds": t1 - t0, "periods": len(marks) - 1}


def _mean(values: list) -> float | None:
    return sum(values) / len(values) if values else None


def insert_cost(gin_file: str, rows: int = 8, repeats: int = 20) -> dict:
    """The learner's cost of one arrived episode of ``rows`` tasks (random actions): its
    unpickling and its write into the replay, per transition."""
    import pickle

    import gin
    import numpy as np

    from iwx.experiment.gin_config import parse
    from iwx.loops.actor_process import EpisodeRecorder
    from iwx.loops.episodes import play_episode
    from iwx.replay.task_replay import TaskReplay

    parse([gin_file], [])
    tasks = gin.query_parameter("pretrain_and_adapt.tasks").scoped_configurable_fn()
    make_env = gin.query_parameter("pretrain_and_adapt.env").scoped_configurable_fn
    train = tasks.split(0).train
    ids = np.arange(min(rows, len(train)))
    env = make_env(train[ids], ids)
    rng = np.random.default_rng(0)
    recorder = EpisodeRecorder()
    play_episode(env, lambda obs: rng.uniform(-1, 1, (len(ids), env.action_dim)),
                 replay=recorder, rows=ids, seed=0)
    replay = TaskReplay(len(train), env.observation_spec(), env.action_dim,
                        env.episode_length, capacity=4)
    blob = pickle.dumps(recorder, protocol=5)
    start = time.perf_counter()
    for _ in range(repeats):
        pickle.loads(blob).into(replay)
    seconds = (time.perf_counter() - start) / repeats
    return {"transitions": recorder.transitions, "bytes": len(blob),
            "ms_per_episode": 1e3 * seconds,
            "us_per_transition": 1e6 * seconds / recorder.transitions}


def plan(task: str, actors: list[int], updates: int, log_period: int,
         updates_per_iteration: int | None) -> list[tuple[str, list[str]]]:
    """(label, bindings) of every measurement of one task."""
    common = [f"MultiTaskTraining.updates = {updates}",
              f"MultiTaskTraining.log_period = {log_period}",
              "MultiTaskTraining.checkpoint_period = 1000000000",
              "MultiTaskTraining.progress = False"]
    if updates_per_iteration is not None:
        common.append(f"MultiTaskTraining.updates_per_iteration = {updates_per_iteration}")
    jobs = [("single process", common)]
    for a in actors:
        # samples_per_insert unbound: DistributedTraining takes the single loop's ratio
        jobs.append((f"{a} actor{'s' if a > 1 else ''}",
                     [*common, "pretrain_and_adapt.training = @DistributedTraining()",
                      f"DistributedTraining.actors = {a}"]))
    return jobs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m iwx.bench distributed",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["reach", "cheetah_vel"], choices=list(TASKS))
    p.add_argument("--actors", nargs="+", type=int, default=[2])
    p.add_argument("--updates", type=int, default=1200, help="learner updates per measurement")
    p.add_argument("--log-period", type=int, default=100)
    p.add_argument("--updates-per-iteration", type=int, default=None,
                   help="the single loop's schedule (sets the shared samples per insert); "
                        "default: the gin file's")
    p.add_argument("--gin_param", action="append", default=[], metavar="BINDING")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--insert-only", action="store_true",
                   help="only the learner's cost of inserting an episode")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:                       # a child: one measurement, JSON on the last line
        job = json.loads(args.one)
        print(json.dumps(measure(job["gin"], job["bindings"])))
        return 0
    rows = []
    for task in args.tasks:
        cost = insert_cost(TASKS[task])
        print(f"{task}: inserting an episode of {cost['transitions']} transitions "
              f"({cost['bytes'] / 1e6:.2f} MB) costs the learner {cost['ms_per_episode']:.2f} "
              f"ms ({cost['us_per_transition']:.2f} us per transition)", flush=True)
        rows.append({"task": task, "insert_cost": cost})
        base = None
        for label, bindings in ([] if args.insert_only else
                                plan(task, args.actors, args.updates, args.log_period,
                                     args.updates_per_iteration)):
            job = {"gin": TASKS[task], "bindings": [*args.gin_param, *bindings]}
            out = subprocess.run([sys.executable, "-m", "iwx.benchmarks.distributed",
                                  "--one", json.dumps(job)], capture_output=True, text=True)
            if out.returncode:
                print(out.stderr[-3000:], file=sys.stderr)
                return 1
            row = {"task": task, "loop": label, **json.loads(out.stdout.strip().splitlines()[-1])}
            base = base or row
            row["env_ratio"] = row["env_steps_per_s"] / base["env_steps_per_s"]
            row["update_ratio"] = row["updates_per_s"] / base["updates_per_s"]
            rows.append(row)
            print(_line(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "argv": sys.argv[1:], "cpus": os.cpu_count()}, f, indent=1)
    return 0


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _line(row: dict) -> str:
    return (f"| {row['task']} | {row['loop']} | {_fmt(row['samples_per_insert'], '.2f')} | "
            f"{row['env_steps_per_s']:.0f} | {row['updates_per_s']:.1f} | "
            f"{row['env_ratio']:.2f}x | {row['update_ratio']:.2f}x | "
            f"{_fmt(row['learner_wait'], '.2f')} | {_fmt(row['actor_wait'], '.2f')} | "
            f"{row['seconds']:.0f} s |")


if __name__ == "__main__":
    sys.exit(main())
