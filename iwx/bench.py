"""Throughput bench: IWPL learner and acting loop against SAC / bare-env references.

    python -m iwx.bench                       # default: ~3 s per item, 1 torch thread
    python -m iwx.bench --batch-size 512      # the paper's batch size (512 chunks x 10)
    python -m iwx.bench --json bench.json     # also write the numbers
    python -m iwx.bench --tasks gtt reach     # only these physics tasks (default: all)
    python -m iwx.bench --gin_param 'WIDTH = 256'   # a binding on every file it parses
    python -m iwx.bench distributed           # DistributedTraining against the single loop
                                              # (iwx.benchmarks.distributed)
    python -m iwx.bench omniboard             # Omniboard's runs list per record layout
                                              # (iwx.benchmarks.omniboard)

Measured side by side in one process, on the same device (cuda when available):

(a) learner updates/s of ``IWPL.update`` at each K of ``--ks``, on real batches
    sampled from a :class:`TaskReplay` filled with real point-navigation
    episodes, and of a SAC-style reference update (:class:`SACReference`) on
    the SAME batches with the same network sizes;
(b) environment steps/s (env transitions: B per vector step) of
    ``play_episode`` with ``IWPL.act`` over a :class:`PointNavVec` of B tasks,
    and of the bare environment (``PointNavVec.step`` with random actions,
    resetting every episode) with the same B.

(c) for every physics task of the suite (half-cheetah velocity, Go To Ring,
    Move Box, Reach, GTT): env steps/s of the bare task vector with random
    actions and of the same vector driven by ``IWPL.act``, B tasks side by side.

(d) every method's multi-task learner update at the same batch size (IWPL,
    RS(0), DISTRAL, MPO, MPO + DISTRAL, RL², PEARL*; ``--methods``), each on
    batches from a replay it filled by acting (:mod:`iwx.benchmarks.methods`).

(e) one IWPA adaptation update of all P = held-out tasks x seeds problems at once, per
    adaptation variant of the gin file (Shared Q + IW, IW), at the run's batch size and
    K, with its cache of frozen quantities warm (:mod:`iwx.benchmarks.adaptation`;
    ``--no-adaptation`` skips them).

What is timed is what a run builds: each row parses its gin file
(``gin/point_nav_iwpl.gin`` for (a) and (b), ``gin/<task>_iwpl.gin`` for (c),
``gin/point_nav_<method>.gin`` for (d)) and calls the configurables bound to
``pretrain_and_adapt.tasks`` / ``env`` / ``agent``; the bench's options are
bindings on that file (``--batch-size`` is ``MultiTaskTraining.batch_size``, a K
is ``IWPL.num_samples``; :mod:`iwx.benchmarks.configured`). The JSON record names
each row's gin file and the widths of the networks it timed.

Every item is built and warmed up first, then timed for a fixed wall budget
(``--seconds``) split into ``--rounds`` windows visited round-robin, so that a
drift in background load hits every item alike; the rate is units done / wall
time of whole calls. The table also shows the spread of the per-round rates and
the process CPU time / wall (a starved run shows well under 100% per thread).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iwx.benchmarks.configured import task_names  # noqa: E402
from iwx.benchmarks.methods import METHODS  # noqa: E402
from iwx.benchmarks.table import format_table, loadavg, machine_info  # noqa: E402


def _int_list(values) -> list[int]:
    out = []
    for v in values:
        out += [int(x) for x in str(v).split(",") if x.strip()]
    return out


def _choice(p, option: str, given: list[str], known: list[str]) -> list[str]:
    """all / none / some of ``known``; an unknown name is a usage error (exit 2)."""
    if given == ["all"]:
        return list(known)
    if given == ["none"]:
        return []
    unknown = sorted(set(given) - set(known))
    if unknown:
        p.error(f"{option}: unknown {unknown}; choose from all, none, {', '.join(known)}")
    return given


def parse_args(argv=None):
    physics = [t for t in task_names() if t != "point_nav"]
    p = argparse.ArgumentParser(prog="python -m iwx.bench", description=__doc__.split("\n")[0])
    p.add_argument("--ks", nargs="+", default=["10,20,50"],
                   help="K prior samples of the IWPL learner rows (default 10,20,50)")
    p.add_argument("--act-ks", nargs="+", default=None,
                   help="K of the acting rows (default: the same as --ks)")
    p.add_argument("--envs", nargs="+", default=["8,1"],
                   help="B, tasks per PointNavVec in the acting rows (default 8,1)")
    p.add_argument("--tasks", nargs="+", default=["all"],
                   help=f"physics tasks for the per-environment acting rows: all, none, or "
                        f"some of {', '.join(physics)}")
    p.add_argument("--task-envs", type=int, default=8,
                   help="B, tasks per task vector in the per-environment rows (default 8)")
    p.add_argument("--task-k", type=int, default=None,
                   help="K of IWPL.act in the per-environment rows (default: the gin file's)")
    p.add_argument("--methods", nargs="+", default=["all"],
                   help=f"learner-update rows of the methods: all, none, or some of "
                        f"{' '.join(METHODS)}")
    p.add_argument("--no-adaptation", action="store_true",
                   help="skip the IWPA adaptation-update rows (e)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="chunks per batch (default: the gin files', 32 on point navigation)")
    p.add_argument("--chunk-length", type=int, default=None,
                   help="steps per chunk (default: the gin files', 10)")
    p.add_argument("--gin_param", action="append", default=[], metavar="BINDING",
                   help="a gin binding applied to every file the bench parses (repeatable)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="timed wall budget per item, after warm-up (default 3)")
    p.add_argument("--rounds", type=int, default=3,
                   help="split each item's budget into this many round-robin windows (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    p.add_argument("--num-tasks", type=int, default=None,
                   help="point-navigation training tasks (default: the gin file's, 80)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    args.ks = _int_list(args.ks)
    args.act_ks = args.ks if args.act_ks is None else _int_list(args.act_ks)
    args.envs = _int_list(args.envs)
    args.tasks = _choice(p, "--tasks", args.tasks, physics)
    args.methods = _choice(p, "--methods", args.methods, list(METHODS))
    if args.task_envs < 1 or (args.task_k is not None and args.task_k < 1):
        p.error("--task-envs and --task-k must be >= 1")
    for name in ("ks", "act_ks", "envs"):
        if not getattr(args, name) or min(getattr(args, name)) < 1:
            p.error(f"--{name.replace('_', '-')} needs positive integers")
    if any(v is not None and v < 1 for v in (args.batch_size, args.chunk_length,
                                              args.num_tasks)) \
            or args.seconds <= 0 or args.threads < 1 or args.rounds < 1:
        p.error("--batch-size, --chunk-length, --num-tasks, --threads, --rounds must be >= 1 "
                "and --seconds > 0")
    return args


def run(args) -> dict:
    from iwx.benchmarks.adaptation import add_adaptation_rows
    from iwx.benchmarks.methods import add_method_rows
    from iwx.benchmarks.rows import add_acting_rows, add_learner_rows, add_task_rows
    from iwx.benchmarks.timing import count_flops, matmul_peak_step, measure_all
    from iwx.loops.pipeline import resolve_device

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = machine_info(device, args.threads)
    rng = np.random.default_rng(args.seed)
    items: list[dict] = []
    steps: list[Callable[[], int]] = []
    learner = add_learner_rows(args, device, rng, items, steps)       # (a)
    if not args.no_adaptation:                                        # (e)
        add_adaptation_rows(args, device, rng, items, steps)
    add_acting_rows(args, device, rng, items, steps)                  # (b)
    for task in args.tasks:                                           # (c)
        add_task_rows(task, args, device, rng, items, steps)
    add_method_rows(args.methods, args, device, rng, items, steps)    # (d)
    for item, step in zip(items, steps):          # matrix-product FLOPs of one update
        if item["unit"] == "updates/s":
            item["flops_per_update"] = count_flops(step)
    items.append({"item": "float32 matmul 1024^3 (machine peak)", "group": "machine",
                  "name": "matmul_peak", "k": None, "unit": "GFLOP/s"})
    steps.append(matmul_peak_step(device))

    print(f"iwx.bench: {info['device']} ({info['device_name']}), torch {info['torch']}, "
          f"{info['threads']} thread(s); {len(items)} items x {args.seconds:g} s "
          f"in {args.rounds} round(s), after warm-up...", file=sys.stderr, flush=True)
    measure_all(items, steps, args.seconds, args.rounds, device,
                lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    rates = {it["name"]: it["rate"] for it in items}
    for it in items:
        ref = it.get("reference")
        it["slowdown"] = rates[ref] / it["rate"] if ref else None
        if "flops_per_update" in it:
            it["gflops"] = it["flops_per_update"] * it["rate"] / 1e9
            it["fraction_of_peak"] = it["gflops"] / rates["matmul_peak"]
    info["loadavg_after"] = loadavg()
    from iwx.benchmarks import reference, rows

    return {"machine": info,
            "config": {k: v for k, v in vars(args).items() if k != "json"} | {
                "sac_alpha": reference.ALPHA, "sac_gamma": reference.GAMMA,
                "sac_target_period": reference.TARGET_PERIOD,
                "sac_learning_rate": reference.LEARNING_RATE,
                "num_tasks": learner["num_tasks"], "batch_size": learner["batch_size"],
                "chunk_length": learner["chunk_length"], "learner_gin": learner["gin"],
                "replay_episodes_per_task": rows.REPLAY_EPISODES,
                "batch_pool": rows.BATCH_POOL},
            "items": items}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["omniboard"]:     # what Omniboard loads for each record layout
        from iwx.benchmarks.omniboard import main as omniboard

        return omniboard(argv[1:])
    if argv[:1] == ["distributed"]:   # distributed against single-process training
        from iwx.benchmarks.distributed import main as distributed

        return distributed(argv[1:])
    args = parse_args(argv)
    result = run(args)
    print(format_table(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
