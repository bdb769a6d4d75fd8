"""Re-send file-store runs to MongoDB: ``python -m iwx.resync --runs-dir runs --mongo URL``.

The file store under ``--runs-dir`` is every run's record; MongoDB mirrors it
(iwx/experiment/mirror.py). When the database was down during a run, or a run
was made without ``--mongo``, this copies the runs (all, or the ids given)
into MongoDB in Sacred's layout. It is idempotent: a run already there is
updated in place (found by its ``meta.iwx_uid``), never duplicated, so it is
safe to run again and again (e.g. from cron), and concurrently with other
resyncs or with the runs themselves, from any machine: each run is written
under a claim held in MongoDB (iwx/experiment/claims.py); a run another process
is writing is done at the end, once that process let go of it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.resync", description=__doc__.split("\n")[0])
    p.add_argument("run_ids", nargs="*", metavar="RUN_ID",
                   help="file-store run ids to send (default: every run)")
    p.add_argument("--runs-dir", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   help="Sacred file store (default: runs/)")
    p.add_argument("--mongo", default=os.environ.get("IWX_MONGO_URL"), metavar="URL",
                   help="MongoDB to sync into (default: $IWX_MONGO_URL)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from iwx.experiment.mirror import Mirror, SyncBusy, SyncError
    from iwx.experiment.mongo import check_url, database, ping
    from iwx.experiment.store import run_dirs

    if not args.mongo:
        print("iwx.resync: no MongoDB given: pass --mongo URL or set IWX_MONGO_URL",
              file=sys.stderr)
        return 2
    problem = check_url(args.mongo)
    if problem:
        print(f"iwx.resync: --mongo: {problem}", file=sys.stderr)
        return 2
    runs_dir = Path(args.runs_dir)
    folders = run_dirs(runs_dir)
    if args.run_ids:
        wanted = set(args.run_ids)
        missing = sorted(wanted - {p.name for p in folders})
        if missing:
            print(f"iwx.resync: no run(s) {missing} in {runs_dir}", file=sys.stderr)
            return 2
        folders = [p for p in folders if p.name in wanted]
    if not folders:
        print(f"iwx.resync: no runs in {runs_dir}", file=sys.stderr)
        return 2
    if not ping(args.mongo, timeout_ms=5000):
        print(f"iwx.resync: MongoDB at {args.mongo} does not answer; nothing was sent "
              "(the file store is unchanged)", file=sys.stderr)
        return 1
    from pymongo.errors import PyMongoError
    from tqdm.auto import tqdm

    client, db = database(args.mongo)
    mirror = Mirror(db)
    wait = mirror.claims.lease.total_seconds()
    failed, later, done = [], [], 0
    try:
        for folder in tqdm(folders, desc="resync", unit="run", disable=args.no_progress):
            try:
                mongo_id = mirror.sync(folder)
            except SyncBusy:      # another process writes it now: come back at the end
                later.append(folder)
                continue
            except SyncError as exc:
                failed.append((folder.name, str(exc)))
                continue
            done += 1
            print(f"  run {folder.name} -> MongoDB run {mongo_id}")
        if later:
            print(f"[iwx.resync] {len(later)} run(s) were being written by another process; "
                  f"syncing them now (waiting up to {wait:g} s for each)", flush=True)
        for folder in later:      # by now the other process is done with most of them
            try:
                mongo_id = mirror.sync(folder, wait_s=wait)
            except SyncError as exc:
                failed.append((folder.name, str(exc)))
                continue
            done += 1
            print(f"  run {folder.name} -> MongoDB run {mongo_id} (after the other process)")
    except PyMongoError as exc:
        print(f"iwx.resync: MongoDB at {args.mongo} stopped answering after {done} run(s) "
              f"({type(exc).__name__}); run the same command again once it is back "
              "(what was sent stays, nothing is sent twice)", file=sys.stderr)
        return 1
    finally:
        client.close()
    added = len(mirror.created)
    print(f"[iwx.resync] {done} runs of {runs_dir} in {args.mongo} "
          f"({added} new, {done - added} updated)")
    for name, why in failed:
        print(f"iwx.resync: run {name} skipped: {why}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
