"""Run several experiments on several seeds and tabulate their adaptation side by side.

    python -m iwx.compare gin/point_nav_{iwpl,distral,rl2,pearl,scratch}.gin --seeds 0 1 2

The paper's figure 2 at this machine's scale: every gin file × every seed is an
ordinary recorded run (:func:`iwx.experiment.runner.run`: Sacred, resumable),
each in a process of its own, ``--jobs`` at a time. Then, for every adaptation
variant of every file, the held-out returns of all seeds are pooled — each
held-out task's value is its mean over (run seed × adaptation seed), as in
appendix A.2, when the runs share their held-out split; when each run seed
draws its own split (the default), each (run seed, task) counts as one unit —
and the mean ± 95% CI across units is printed per adaptation episode, written
as a Markdown table, a JSON file and a figure under ``--out`` (default
``compare/<task>``, the task the runs recorded as their identity,
iwx/experiment/identity.py: ``compare/point_nav``), with the oracle / lower
baseline of the task where it has one (:mod:`iwx.results.comparison`). Files of
different tasks are refused (exit status 2): one table has one task's oracle.

A run whose configuration (files, bindings, seed) already completed in
``--runs-dir`` is not run again: its record is reused (``--rerun`` forces new
runs), so adding a method to a comparison costs only the new method's runs.

A variant name that appears in more than one file (e.g. "Shared Q + IW" after
IWPL and after DISTRAL pretraining) is labelled with the method its run recorded.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.compare", description=__doc__.split("\n")[0])
    p.add_argument("gin", nargs="+", metavar="FILE", help="gin files, one experiment each")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="run seeds (default: 0 1 2)")
    p.add_argument("--gin_param", action="append", default=[], metavar="'NAME = VALUE'",
                   help="binding applied to every run (repeatable), e.g. a smaller budget")
    p.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 1)),
                   help="runs at a time (each uses one torch thread; default: CPU count)")
    p.add_argument("--runs-dir", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   help="Sacred file store of the runs (default: runs/)")
    p.add_argument("--mongo", default=os.environ.get("IWX_MONGO_URL"), metavar="URL",
                   help="also record every run into this MongoDB")
    p.add_argument("--out", default=None,
                   help="where the table, JSON and figure go (default: compare/<task>, the "
                        "task the runs recorded, e.g. compare/point_nav)")
    p.add_argument("--rerun", action="store_true",
                   help="run again even where a completed run of the same configuration exists")
    p.add_argument("--last", type=int, default=3,
                   help="episodes averaged for the headline column (default 3, appendix A.2)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from iwx.experiment import shipped

    missing = [f for f in args.gin if not (Path(f).is_file() or shipped.find(f, "gin"))]
    if missing:
        print(f"iwx.compare: gin file(s) not found: {missing}", file=sys.stderr)
        return 2
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from iwx.experiment.runner import RunSpec, run_captured
    from iwx.loops.progress import progress_bar
    from iwx.results import comparison

    jobs = [(f, s) for f in args.gin for s in args.seeds]
    print(f"[iwx.compare] {len(jobs)} runs ({len(args.gin)} files × {len(args.seeds)} seeds), "
          f"{args.jobs} at a time; records in {args.runs_dir}", flush=True)
    specs = [RunSpec(gin_files=(f,), bindings=tuple(args.gin_param), seed=s,
                     runs_dir=args.runs_dir, mongo=args.mongo, progress=False,
                     reuse=not args.rerun) for f, s in jobs]
    runs = []
    # One fresh process per run: gin's configuration and the RNGs are per process.
    with ProcessPoolExecutor(max_workers=args.jobs, max_tasks_per_child=1,
                             mp_context=multiprocessing.get_context("spawn")) as executor, \
            progress_bar(len(jobs), "runs", "run") as bar:
        futures = [executor.submit(run_captured, spec) for spec in specs]
        for (gin_file, seed), future in zip(jobs, futures):
            try:
                outcome = future.result()
            except Exception as exc:  # noqa: BLE001  (the run's process died)
                outcome = {"ok": False, "seconds": 0.0, "error": f"{type(exc).__name__}: {exc}"}
            run = {"file": gin_file, "seed": seed, **outcome}
            runs.append(run)
            bar.update(1)
            status = ("reused " + run["run_dir"] if run.get("reused") else "ok") \
                if run["ok"] else "FAILED"
            bar.write(f"  {run['file']} seed {run['seed']}: {status} in {run['seconds']:.0f} s")
    failed = [r for r in runs if not r["ok"]]
    for r in failed:
        print(f"\n[iwx.compare] {r['file']} seed {r['seed']} failed:\n{r['error']}",
              file=sys.stderr)
    ok = [r for r in runs if r["ok"]]
    if not any(r["results"]["returns"] for r in ok):
        print("iwx.compare: no adaptation results to compare", file=sys.stderr)
        return 1
    task, problem = comparison.task_folder(ok, args.gin)
    if problem:
        print(f"iwx.compare: {problem}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("compare") / task
    episodes = {len(e) for r in ok for v in r["results"]["returns"].values() for t in v for e in t}
    if len(episodes) != 1:
        print(f"iwx.compare: the files adapt for different numbers of episodes {episodes}; "
              f"compare files of one task", file=sys.stderr)
        return 2
    text = comparison.write(runs, out, files=args.gin, seeds=args.seeds,
                            gin_params=args.gin_param, last=args.last)
    print("\n" + text)
    print(f"[iwx.compare] wrote {out}/table.md, compare.json, adaptation.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
