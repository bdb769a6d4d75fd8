"""A resumed run closes its predecessor's record.

A run killed with ``kill -9`` (or by the OOM killer, or a node that vanished)
never writes its last ``run.json``: Sacred leaves it RUNNING forever. The run
that resumes from its checkpoint knows it is dead — it holds the configuration's
run lock, which the predecessor would still hold if it were alive — so it marks
the predecessor's record: status INTERRUPTED (unless it already ended otherwise),
``stop_time`` = its last heartbeat, and ``resumed_by`` = the new run's id. Every
resumed run also records ``resumed_from`` in its own info (the runner does).
"""

from __future__ import annotations

import json
from pathlib import Path

from iwx.experiment.durable import write_atomically


def mark_resumed(runs_dir: str | Path, predecessor_id, successor_id) -> Path | None:
    """Mark run ``predecessor_id`` of the file store as resumed by ``successor_id``.
    Returns its folder, or None when there is no such run (a checkpoint made under
    another runs dir, or a record deleted by hand)."""
    if predecessor_id is None or str(predecessor_id) == str(successor_id):
        return None
    run_dir = Path(runs_dir) / str(predecessor_id)
    path = run_dir / "run.json"
    try:
        run = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if run.get("status") == "RUNNING":
        run["status"] = "INTERRUPTED"
        run["stop_time"] = run.get("heartbeat") or run.get("start_time")
        run["interrupted_by"] = "the process died without recording its end (e.g. kill -9)"
    run["resumed_by"] = str(successor_id)
    write_atomically(path, json.dumps(run, sort_keys=True, indent=2).encode())
    return run_dir
