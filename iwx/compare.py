"""Run several experiments on several seeds and tabulate their adaptation side by side.

    python -m iwx.compare gin/point_nav_{iwpl,distral,rl2,pearl,scratch}.gin --seeds 0 1 2

The paper's figure 2 at this machine's scale: every gin file × every seed is an
ordinary ``python -m iwx.run`` (recorded in Sacred, resumable), run as a
subprocess, ``--jobs`` at a time. Then, for every adaptation variant of every
file, the held-out returns of all seeds are pooled — each held-out task's value
is its mean over (run seed × adaptation seed), as in appendix A.2, when the
runs share their held-out split; when each run seed draws its own split (the
default), each (run seed, task) counts as one unit — and the mean ± 95% CI
across units is printed per adaptation episode, written as a Markdown table, a
JSON file and a figure under ``--out``, with the oracle / lower baseline of the
task where it has one.

A run whose configuration (files, bindings, seed) already completed in
``--runs-dir`` is not run again: its record is reused (``--rerun`` forces new
runs), so adding a method to a comparison costs only the new method's runs.

A variant name that appears in more than one file (e.g. "Shared Q + IW" after
IWPL and after DISTRAL pretraining) is labelled with its file's method suffix.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")  # this process never renders

import numpy as np  # noqa: E402

from iwx import analysis  # noqa: E402
from iwx.experiment.store import completed_runs  # noqa: E402


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
                   help="where the table, JSON and figure go (default: compare/<first file>)")
    p.add_argument("--rerun", action="store_true",
                   help="run again even where a completed run of the same configuration exists")
    p.add_argument("--last", type=int, default=3,
                   help="episodes averaged for the headline column (default 3, appendix A.2)")
    return p.parse_args(argv)


def method_label(gin_file: str) -> str:
    """'gin/point_nav_distral.gin' -> 'distral' (the part after the task name)."""
    stem = Path(gin_file).stem
    from iwx.envs.suite import SUITE

    for task in sorted(SUITE, key=len, reverse=True):
        if stem.startswith(task + "_"):
            return stem[len(task) + 1:]
    return stem


def run_key(gin_file: str, seed: int, gin_params) -> str | None:
    """The configuration key ``iwx.run --no-progress`` gives this run (None: bad config)."""
    from iwx.experiment.gin_config import ConfigError, parse
    from iwx.run import effective_params

    try:
        return parse([gin_file], effective_params(gin_params, no_progress=True)).key(seed)
    except ConfigError:
        return None


def run_one(gin_file: str, seed: int, args, done: Path | None = None) -> dict:
    """One ``iwx.run`` (or the completed run ``done`` of the same configuration);
    returns its recorded results (or the error)."""
    if done is not None:
        results = json.loads((done / "results.json").read_text())
        return {"file": gin_file, "seed": seed, "ok": True, "seconds": 0.0, "reused": True,
                "run_dir": str(done), "results": results}
    cmd = [sys.executable, "-m", "iwx.run", "--gin", gin_file, "--seed", str(seed),
           "--runs-dir", args.runs_dir, "--no-progress"]
    for binding in args.gin_param:
        cmd += ["--gin_param", binding]
    if args.mongo:
        cmd += ["--mongo", args.mongo]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    found = re.search(r"\[iwx\] recorded run (\S+) in", proc.stdout)
    if proc.returncode != 0 or found is None:
        return {"file": gin_file, "seed": seed, "ok": False, "seconds": elapsed,
                "error": (proc.stderr or proc.stdout)[-2000:]}
    run_dir = Path(args.runs_dir) / found.group(1)
    results = json.loads((run_dir / "results.json").read_text())
    return {"file": gin_file, "seed": seed, "ok": True, "seconds": elapsed,
            "run_dir": str(run_dir), "results": results}


def pool(runs: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, int], str]:
    """{label: returns [units, seeds, episodes]} over successful runs, each label's
    exploration episodes, and what a unit is.

    When every run seed held out the same tasks (a pinned split), a unit is a
    held-out task and its seeds are run seeds × adaptation seeds (appendix A.2).
    When the split is drawn from each run seed (the default), task i of two run
    seeds are different tasks, so every (run seed, task) is its own unit.
    """
    by_variant: dict[tuple[str, str], list[np.ndarray]] = {}
    explore: dict[tuple[str, str], int] = {}
    goals: dict[int, list] = {}
    for run in runs:
        if not run["ok"]:
            continue
        goals.setdefault(run["seed"], run["results"]["test_goals"])
        for name, r in run["results"]["returns"].items():
            by_variant.setdefault((run["file"], name), []).append(np.asarray(r))
            explore[(run["file"], name)] = run["results"]["exploration_episodes"]
    shared_split = all(np.array_equal(g, next(iter(goals.values()))) for g in goals.values())
    axis = 1 if shared_split else 0
    unit = ("held-out task (the same split for every run seed); seeds per unit = run seeds "
            "x adaptation seeds" if shared_split else
            "(run seed, held-out task): each run seed draws its own split; seeds per unit = "
            "adaptation seeds")
    names = [name for _, name in by_variant]
    pooled, exploration = {}, {}
    for (gin_file, name), arrays in by_variant.items():
        label = name if names.count(name) == 1 else f"{name} ({method_label(gin_file)})"
        pooled[label] = np.concatenate(arrays, axis=axis)
        exploration[label] = explore[(gin_file, name)]
    return pooled, exploration, unit


def references(runs: list[dict], shared_split: bool) -> list[tuple[str, np.ndarray]]:
    """The runs' reference returns per unit (oracle, lower baseline), like :func:`pool`:
    averaged over run seeds per task for a shared split, else one unit per (seed, task)."""
    found: dict[str, dict[int, np.ndarray]] = {}
    for run in runs:
        if not run["ok"]:
            continue
        res = run["results"]
        if res.get("oracle") is not None:
            found.setdefault("goal-knowing oracle", {})[run["seed"]] = np.asarray(res["oracle"])
        if res.get("baseline") is not None:
            found.setdefault(res["baseline"]["name"], {})[run["seed"]] = \
                np.asarray(res["baseline"]["returns"])
    combine = (lambda xs: np.mean(xs, axis=0)) if shared_split else np.concatenate
    return [(name, combine(list(per_seed.values()))) for name, per_seed in found.items()]


def headline_table(pooled: dict[str, np.ndarray], exploration: dict[str, int],
                   last: int) -> str:
    """One row per method: its last-``last``-episodes and post-exploration means ± 95% CI."""
    lines = [f"| method | units | seeds per unit | last {last} episodes | after exploration |",
             "|---|---|---|---|---|"]
    for label, r in pooled.items():
        s = analysis.summary(r, exploration[label], last=last)
        lines.append(f"| {label} | {r.shape[0]} | {r.shape[1]} | {s['last3_mean']:.2f} ± {s['last3_ci95']:.2f} "
                     f"| {s['post_exploration_mean']:.2f} ± {s['post_exploration_ci95']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    missing = [f for f in args.gin if not Path(f).is_file()]
    if missing:
        print(f"iwx.compare: gin file(s) not found: {missing}", file=sys.stderr)
        return 2
    jobs = [(f, s) for f in args.gin for s in args.seeds]
    out = Path(args.out or Path("compare") / Path(args.gin[0]).stem.split("_")[0])
    print(f"[iwx.compare] {len(jobs)} runs ({len(args.gin)} files × {len(args.seeds)} seeds), "
          f"{args.jobs} at a time; records in {args.runs_dir}", flush=True)
    from tqdm.auto import tqdm

    finished = {} if args.rerun else completed_runs(Path(args.runs_dir))
    reuse = {(f, s): finished.get(run_key(f, s, args.gin_param)) for f, s in jobs}
    runs = []
    with ThreadPoolExecutor(max_workers=args.jobs) as executor, \
            tqdm(total=len(jobs), desc="runs", unit="run", dynamic_ncols=True) as bar:
        futures = [executor.submit(run_one, f, s, args, reuse[(f, s)]) for f, s in jobs]
        for future in futures:
            run = future.result()
            runs.append(run)
            bar.update(1)
            status = ("reused " + run["run_dir"] if run.get("reused") else "ok") \
                if run["ok"] else "FAILED"
            bar.write(f"  {run['file']} seed {run['seed']}: {status} in {run['seconds']:.0f} s")
    failed = [r for r in runs if not r["ok"]]
    for r in failed:
        print(f"\n[iwx.compare] {r['file']} seed {r['seed']} failed:\n{r['error']}",
              file=sys.stderr)
    pooled, exploration, unit = pool(runs)
    if not pooled:
        print("iwx.compare: no adaptation results to compare", file=sys.stderr)
        return 1

    out.mkdir(parents=True, exist_ok=True)
    episodes = {r.shape[-1] for r in pooled.values()}
    if len(episodes) != 1:
        print(f"iwx.compare: the files adapt for different numbers of episodes {episodes}; "
              f"compare files of one task", file=sys.stderr)
        return 2
    table = analysis.adaptation_table(pooled)
    head = headline_table(pooled, exploration, args.last)
    refs = references(runs, shared_split=unit.startswith("held-out task"))
    lines = [f"{name}: {m:.2f} ± {h:.2f} per episode"
             for name, (m, h) in ((n, analysis.mean_ci(r)) for n, r in refs)]
    text = ("Mean held-out return per adaptation episode, ± 95% CI across units; a unit is "
            f"a {unit}.\n\n" + table + "\n\n" + head + "\n"
            + ("\n" + "\n".join(lines) + "\n" if lines else ""))
    (out / "table.md").write_text(text)
    (out / "compare.json").write_text(json.dumps({
        "files": args.gin, "seeds": args.seeds, "gin_params": args.gin_param,
        "runs": [{k: v for k, v in r.items() if k != "results"} for r in runs],
        "returns": {k: v.tolist() for k, v in pooled.items()},
        "exploration_episodes": exploration, "unit": unit,
        "references": {n: r.tolist() for n, r in refs}}, indent=1))
    explore = set(exploration.values())
    oracle = next((r for n, r in refs if n == "goal-knowing oracle"), None)
    baseline = next(((n, r) for n, r in refs if n != "goal-knowing oracle"), None)
    analysis.plot_adaptation(pooled, out / "adaptation.png", oracle=oracle, baseline=baseline,
                             exploration_episodes=explore.pop() if len(explore) == 1 else None,
                             title=f"{out.name}: {len(pooled)} methods, "
                                   f"run seeds {args.seeds}")
    print("\n" + text)
    print(f"[iwx.compare] wrote {out}/table.md, compare.json, adaptation.png")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
