"""Run a plan's missing runs: ``jobs`` at a time, each an ordinary recorded run
(:func:`iwx.experiment.runner.run_captured`) in a fresh process of its own (spawned,
one run per process: gin's configuration and the RNGs are per process, as in
``iwx.compare``), with one line as each starts and ends and what is left.

A run that fails is reported at the end with the tail of its output; the others go
on (the figure is drawn from what completed). Ctrl-C stops every run: each records
itself INTERRUPTED and resumes from its checkpoint when the command is run again.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from iwx.experiment.runner import run_captured
from iwx.figures.plan import Planned

PREFIX = "[iwx.figure]"


def execute(missing: list[Planned], total: int, jobs: int = 1,
            echo: Callable[[str], None] = print) -> dict[int, dict]:
    """{planned run's number: run_captured's outcome} of every run in ``missing``;
    ``total`` (all runs of the figure) numbers the progress lines."""
    outcomes: dict[int, dict] = {}
    queue = list(missing)
    running: dict[Future, tuple[Planned, float]] = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, jobs), max_tasks_per_child=1,
                             mp_context=context) as pool:
        while queue or running:
            while queue and len(running) < max(1, jobs):
                p = queue.pop(0)
                running[pool.submit(run_captured, p.spec)] = (p, time.monotonic())
                echo(f"{PREFIX} run {p.number}/{total} started: {p.name()} "
                     f"(estimate {p.minutes:g} min)")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                p, start = running.pop(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001  (the run's process died)
                    outcome = {"ok": False, "seconds": time.monotonic() - start,
                               "error": f"{type(exc).__name__}: {exc}"}
                outcomes[p.number] = outcome
                left = sum(q.minutes for q in queue) + sum(q.minutes for q, _ in
                                                           running.values())
                echo(f"{PREFIX} run {p.number}/{total} {status(outcome)}: {p.name()}; "
                     f"{left_text(left, len(queue) + len(running), jobs)}")
    return outcomes


def status(outcome: dict) -> str:
    if not outcome["ok"]:
        return f"FAILED after {outcome['seconds']:.0f} s"
    if outcome.get("reused"):
        return f"reused run {_run_id(outcome)} ({outcome['run_dir']})"
    return f"done in {outcome['seconds']:.0f} s as run {_run_id(outcome)}"


def _run_id(outcome: dict) -> str:
    return outcome["run_dir"].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def left_text(minutes: float, runs: int, jobs: int) -> str:
    if not runs:
        return "nothing left to run"
    wall = f", about {minutes / max(1, min(jobs, runs)):g} min at --jobs {jobs}" \
        if jobs > 1 else ""
    return (f"{runs} run{'s' if runs > 1 else ''} left, about {minutes:g} min of compute "
            f"(estimate{wall})")
