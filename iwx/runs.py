"""List recorded runs: ``iwx runs [SOURCE]`` (or ``python -m iwx.runs``).

    iwx runs                                   # ./runs (or $IWX_RUNS_DIR): the last 20
    iwx runs /data/runs --status COMPLETED --tag figure2 --last 0
    iwx runs mongodb://127.0.0.1:27017/iwx --sweep adapt_alpha-1a2b3c4d --json

One row per run, newest last: its id, uid (the first 8 hex digits of
``meta.iwx_uid``: the name a run keeps in every store), status, task and method
(``config.identity``), seed, gin files, headline result (each adaptation
variant's mean return over the last 3 episodes, from ``info.summary``; a
pretraining-only run's final training return, from ``results.json``), start
(local time) and duration. Runs are read through :mod:`iwx.experiment.store`, so
a file store and MongoDB look the same, and nothing heavy is imported.

Exit status: 0, also when the store holds no run or none matches; 2 when SOURCE
cannot be read (neither a directory nor a mongodb:// URL, or a MongoDB that does
not answer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path, PurePath

from iwx.experiment.headline import short_uid
from iwx.experiment.store import (RecordedRun, StoreError, is_mongo_url, load_runs,
                                  sacred_time)

COLUMNS = ("id", "uid", "status", "task", "method", "seed", "gin", "result (last 3)",
           "started", "duration")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="iwx runs", description=__doc__.split("\n")[0])
    p.add_argument("source", nargs="?", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   metavar="SOURCE", help="Sacred file store or mongodb:// URL "
                                          "(default: $IWX_RUNS_DIR, else runs/)")
    p.add_argument("--status", action="append", default=[], type=str.upper,
                   help="only runs of this Sacred status (repeatable: any of them), "
                        "e.g. COMPLETED, RUNNING, FAILED, INTERRUPTED")
    p.add_argument("--tag", action="append", default=[], help="only runs with this tag "
                                                              "(repeatable: any of them)")
    p.add_argument("--sweep", default=None, metavar="ID", help="only the runs of this sweep")
    p.add_argument("--last", type=int, default=20, metavar="N",
                   help="the newest N runs (default 20; 0: all)")
    p.add_argument("--json", action="store_true", help="a JSON list instead of the table")
    return p.parse_args(argv)


def seconds(run: RecordedRun) -> float | None:
    """From start to stop; a run still going (or that died) to its last heartbeat."""
    start, end = sacred_time(run.start_time), sacred_time(run.stop_time) or sacred_time(run.heartbeat)
    return None if start is None or end is None else max(0.0, (end - start).total_seconds())


def duration(value: float | None) -> str:
    if value is None:
        return "-"
    s = round(value)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def headline(run: RecordedRun) -> dict[str, float]:
    """{variant: last-3-episode mean} from ``info.summary``; for a run that adapted
    nothing, {"train": final training return} from ``results.json``; {} when unknown."""
    summary = run.info.get("summary")
    out = {}
    if isinstance(summary, dict):
        out = {str(name): round(float(h["last3_mean"]), 2) for name, h in summary.items()
               if isinstance(h, dict) and isinstance(h.get("last3_mean"), (int, float))}
    if not out and run.status == "COMPLETED":
        final = (run.results() or {}).get("train_final_return")
        if isinstance(final, (int, float)):
            out = {"train": round(float(final), 2)}
    return out


def row(run: RecordedRun) -> dict:
    """The plain-data description of a run (what ``--json`` prints)."""
    identity = run.config.get("identity") or run.info.get("identity") or {}
    start, stop = sacred_time(run.start_time), sacred_time(run.stop_time)
    uid = run.meta.get("iwx_uid")
    return {"id": run.id, "uid": short_uid(uid) or "-", "iwx_uid": uid, "status": run.status,
            "task": identity.get("task"), "method": identity.get("method"),
            "seed": run.config.get("seed"),
            "gin_files": [str(f) for f in run.config.get("gin_files") or []],
            "headline": headline(run),
            "start_time": start.isoformat() if start else None,
            "stop_time": stop.isoformat() if stop else None,
            "duration_s": None if (s := seconds(run)) is None else round(s, 1),
            "tags": list(run.tags), "sweep": (run.sweep or {}).get("id")}


def cells(r: dict) -> tuple[str, ...]:
    start = datetime.fromisoformat(r["start_time"]) if r["start_time"] else None
    gin = "+".join(PurePath(f).name.removesuffix(".gin") for f in r["gin_files"]) or "-"
    result = ", ".join(f"{k} {v:.2f}" for k, v in r["headline"].items()) or "-"
    return (str(r["id"]), r["uid"], r["status"], r["task"] or "-", r["method"] or "-",
            "-" if r["seed"] is None else str(r["seed"]), gin, result,
            start.astimezone().strftime("%Y-%m-%d %H:%M") if start else "-",
            duration(r["duration_s"]))


def table(rows: list[dict]) -> str:
    body = [COLUMNS] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip()
                     for line in body)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.last < 0:
        print(f"iwx runs: --last {args.last}: expected N >= 0 (0: every run)",
              file=sys.stderr)
        return 2
    try:
        runs = load_runs(args.source, sweep=args.sweep, tags=args.tag,
                         statuses=args.status or None)
    except StoreError as exc:
        print(f"iwx runs: {exc}", file=sys.stderr)
        if not is_mongo_url(args.source) and not Path(args.source).exists():
            print(f"iwx runs: nothing was recorded in {args.source} (iwx run records into "
                  "--runs-dir, default runs/; give the store's folder or URL)",
                  file=sys.stderr)
        return 2
    shown = runs[-args.last:] if args.last else runs
    if args.json:
        print(json.dumps([row(r) for r in shown], indent=1))
        return 0
    if not runs:
        chosen = [f"--{k} {v}" for k, vs in (("status", args.status), ("tag", args.tag))
                  for v in vs] + ([f"--sweep {args.sweep}"] if args.sweep else [])
        print(f"no runs in {args.source}" + (f" match {' '.join(chosen)}" if chosen else
                                             " (an empty store)"))
        return 0
    print(table([row(r) for r in shown]))
    if len(shown) < len(runs):
        print(f"(the last {len(shown)} of {len(runs)} runs; --last 0 shows all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
