"""What Omniboard loads for iwx's records: ``python -m iwx.bench omniboard``.

Omniboard's runs list with a metric column (e.g. the maximum of ``train/return``)
unwinds every metric a run recorded and joins each one's document: its cost grows
with the number of series per run. This bench measures that, side by side, for the
two record layouts a run can have (iwx/experiment/metrics.py):

* ``browsable`` — the default: aggregate series only, of which ``info.metrics``
  lists the runs-list column series (``iwx.experiment.metrics.COLUMNS``);
* ``everything`` — ``RecordedMetrics.per_task``, ``throughput`` and ``diagnostics``
  True: every series the loops log (what every run recorded before).

For each layout it makes one real run of the default point-navigation experiment
(its task counts and adaptation variants as the gin file has them; budgets cut
to ``--updates`` learner updates logged every ``--log-period``, so each training
series has its usual ~100 points), copies that run's record ``--runs`` times with
fresh uids into a file store, mirrors them into a SecantusDB database of its own
(``python -m iwx.db``'s server), starts Omniboard on it and times, ``--repeats``
times, the requests the runs list makes (the same ``select`` the web page sends):
without metric columns and with one. Prints the median seconds and the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LAYOUTS = {"browsable": [],
           "everything": ["RecordedMetrics.per_task = True", "RecordedMetrics.throughput = True",
                          "RecordedMetrics.diagnostics = True"]}
# What Omniboard 2.16.1's runs table selects on its first load (web/src/components/RunsTable).
SELECT = ("_id,heartbeat,experiment,command,host,stop_time,config,duration,result,start_time,"
          "resources,format,status,omniboard,metrics,meta")
METRIC_COLUMN = {"name": "train_return_max", "metric_name": "train/return", "extrema": "max"}


def make_run(store: Path, bindings: list[str], updates: int, log_period: int) -> Path:
    """One real recorded run of gin/point_nav_iwpl.gin on a cut budget; its folder."""
    cut = [f"MultiTaskTraining.updates = {updates}", f"MultiTaskTraining.log_period = {log_period}",
           f"MultiTaskTraining.checkpoint_period = {updates}", "Adaptation.episodes = 10",
           "Adaptation.updates_per_episode = 5"]
    args = [sys.executable, "-m", "iwx.run", "--gin", str(ROOT / "gin/point_nav_iwpl.gin"),
            "--runs-dir", str(store), "--no-progress"]
    for b in cut + bindings:
        args += ["--gin_param", b]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"the run failed:\n{proc.stderr[-2000:]}")
    return max((p for p in store.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def copies(run: Path, store: Path, n: int) -> list[Path]:
    """``n`` copies of a run folder with fresh uids (what n runs of that shape look like)."""
    out = []
    for i in range(1, n + 1):
        target = store / str(i)
        shutil.copytree(run, target)
        record = json.loads((target / "run.json").read_text())
        record["meta"]["iwx_uid"] = uuid.uuid4().hex
        (target / "run.json").write_text(json.dumps(record))
        out.append(target)
    if (run.parent / "_sources").is_dir():
        shutil.copytree(run.parent / "_sources", store / "_sources", dirs_exist_ok=True)
    return out


def get(url: str, params: dict | None = None) -> tuple[float, object]:
    full = url + ("?" + urllib.parse.urlencode(params) if params else "")
    start = time.perf_counter()
    with urllib.request.urlopen(full, timeout=600) as response:
        body = json.load(response)
    return time.perf_counter() - start, body


def time_runs_list(board_url: str, repeats: int, metric_column: bool) -> tuple[float, int]:
    """Median seconds of the runs list's request, and how many runs it returned."""
    select = SELECT + (f",{METRIC_COLUMN['name']}" if metric_column else "")
    params = {"select": select, "sort_by": "_id", "order_by": "-1", "query": "{}",
              "limit": "50"}
    times, count = [], 0
    for _ in range(repeats):
        seconds, body = get(f"{board_url}/sacred/api/v1/Runs", params)
        times.append(seconds)
        count = len(body)
    return statistics.median(times), count


def measure(layout: str, bindings: list[str], work: Path, args) -> dict:
    import pymongo

    from iwx.experiment.dbserver import start_server
    from iwx.experiment.mirror import Mirror
    from iwx.experiment.omniboard import start_omniboard

    made = make_run(work / f"{layout}-made", bindings, args.updates, args.log_period)
    metrics = json.loads((made / "metrics.json").read_text())
    runs = copies(made, work / f"{layout}-store", args.runs)
    server = start_server(work / f"{layout}-db")
    try:
        client = pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000)
        db = client.get_default_database()
        mirror = Mirror(db)
        for run in runs:
            mirror.sync(run)
        listed = len(db.runs.find_one({}, {"info.metrics": 1})["info"]["metrics"])
        board = start_omniboard(server.url, timeout=120)
        try:
            plain, count = time_runs_list(board.url, args.repeats, metric_column=False)
            db["omniboard.metric.columns"].insert_one(dict(METRIC_COLUMN))
            with_column, count_column = time_runs_list(board.url, args.repeats, metric_column=True)
        finally:
            board.stop()
        client.close()
    finally:
        server.stop()
    return {"layout": layout, "series_per_run": len(metrics), "listed_per_run": listed,
            "points_per_run": sum(len(m["steps"]) for m in metrics.values()),
            "runs": count, "runs_with_column": count_column,
            "list_s": plain, "list_with_metric_column_s": with_column}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m iwx.bench omniboard",
                                description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20, help="runs in each database (default 20)")
    p.add_argument("--repeats", type=int, default=3, help="timed requests per case (median)")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--log-period", type=int, default=2)
    p.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS),
                   help="which record layouts (default both; 'everything' takes minutes)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the numbers")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="iwx-bench-omniboard-") as tmp:
        for layout in args.layouts:
            bindings = LAYOUTS[layout]
            print(f"[bench] {layout}: one real run, {args.runs} copies, mirrored, Omniboard",
                  flush=True)
            rows.append(measure(layout, bindings, Path(tmp), args))
    print(f"\nOmniboard runs list, {args.runs} runs, median of {args.repeats} requests:")
    print("| layout | series / run | in info.metrics | points / run | list (s) "
          "| list + 1 metric column (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['layout']} | {r['series_per_run']} | {r['listed_per_run']} | "
              f"{r['points_per_run']} | "
              f"{r['list_s']:.2f} | {r['list_with_metric_column_s']:.2f} |")
    if len(rows) == 2:
        new, old = rows[0]["list_with_metric_column_s"], rows[1]["list_with_metric_column_s"]
        print(f"\nwith a metric column: everything / browsable = {old / new:.1f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
