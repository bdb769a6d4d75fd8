"""Run a plan's missing runs: ``jobs`` at a time, each an ordinary recorded run
(:func:`iwx.experiment.runner.run_captured`) in a fresh process of its own (spawned,
one run per process: gin's configuration and the RNGs are per process, as in
``iwx.compare``), with one line as each starts and ends and what is left.

A run that fails is reported at the end with the tail of its output; the others go
on (the figure is drawn from what completed). So does a run whose process is killed
from outside (SIGKILL: the out-of-memory killer), each run having an executor of its
own (:class:`Executors`). Ctrl-C or SIGTERM to the command stops
every run going (iwx.figures.stops forwards it, once, to each): each records itself
INTERRUPTED and resumes from its checkpoint when the command is run again. A signal
that reaches one run's own process (SIGINT or SIGTERM: a scheduler, a session ending,
someone stopping that one run) stops that run. Either way the figure starts no further
run, lets the ones already going end, and raises :class:`RunInterrupted`. A stopped run
is not a failed one, and moving on to the next would be spending the compute someone
just asked back.

While runs go on, every ``progress_s`` seconds (``--progress-every``) the command echoes
each running run's newest progress status line when it changed (``[pretrain] 30000/80000
upd (37.5%) 15.2 upd/s, elapsed 32:54, ETA 54:50``; iwx.loops.progress), read from the
file the run's stderr goes to: a run of hours is never silent between its start and end.

Runs start in the order given (iwx.figure passes ``Plan.to_run``: a run stopped with a
checkpoint before the fresh ones). A run that adapts from another's model
(``Planned.after``) starts only once that run has completed (at ``--jobs`` > 1 others go
first); when it failed, the dependent run is reported failed without starting.

With a deadline (``--until``, iwx.figures.deadline) a free slot takes the first run
whose estimate fits before it; a run that does not is not started (outcome
``not_started``: neither failed nor interrupted; ``left``: ``"until"``), nor is one that
adapts from it (``left`` as its pretraining's).

A run that another live process is running (its key's lock is held: another figure
command, a queue beside this one, someone's ``iwx.run``) is not started either: it is
left to that process (``left``: ``"elsewhere"``), and the same command later reuses what
it records. Two figure
commands on one runs folder therefore share out the runs instead of failing each other.
"""

from __future__ import annotations

import multiprocessing
import re
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from iwx.figures.compute import folder_seconds, same_entry
from iwx.figures.deadline import fits, why_not
from iwx.figures.plan import Planned, minutes_text
from iwx.figures.stops import Forwarder, own_group, run_registered

PREFIX = "[iwx.figure]"
PROGRESS_S = 300.0     # default seconds between looks at the running runs' progress
STATUS = re.compile(r"^\[(pretrain|adapt [^\]]+)\] ")   # iwx.loops.progress's lines


def last_status(path: str | Path, tail_bytes: int = 16384) -> str | None:
    """The newest progress status line (``[pretrain] ...``, ``[adapt <variant>] ...``) in
    the last ``tail_bytes`` of a run's log, stripped; None when there is none yet."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - tail_bytes))
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        if STATUS.match(line.strip()):
            return line.strip()
    return None


class RunInterrupted(KeyboardInterrupt):
    """A signal stopped the figure's runs (``status`` 130 Ctrl-C, 143 SIGTERM): one that
    reached a run's own process, or one the command got and forwarded (``forwarded``,
    iwx.figures.stops); ``outcomes`` holds what every run that ended did."""

    def __init__(self, status: int, outcomes: dict[int, dict], forwarded: bool = False):
        super().__init__(status)
        self.status = status
        self.outcomes = outcomes
        self.forwarded = forwarded


def execute(missing: list[Planned], total: int, jobs: int = 1,
            echo: Callable[[str], None] = print,
            progress_s: float = PROGRESS_S, deadline_s: float | None = None,
            until: str = "") -> dict[int, dict]:
    """{planned run's number: run_captured's outcome} of every run in ``missing``;
    ``total`` (all runs of the figure) numbers the progress lines; every ``progress_s``
    seconds each running run's newest status line is echoed when it changed. With
    ``deadline_s`` (``time.time()`` seconds; ``until``: how the user wrote it) a run
    starts only if its estimate fits before it; the others' outcomes say
    ``not_started``. Raises :class:`RunInterrupted` once the runs going have ended,
    when a signal stopped one."""
    with tempfile.TemporaryDirectory(prefix="iwx-figure-logs-") as logs:
        return _execute(missing, total, jobs, echo, progress_s, Path(logs), deadline_s,
                        until)


def _execute(missing, total, jobs, echo, progress_s, logs: Path, deadline_s=None,
             until="") -> dict[int, dict]:
    outcomes: dict[int, dict] = {}
    shown: dict[int, str | None] = {}       # run number: the status line echoed last
    stopped = 0
    forwarded = False                       # the command itself got the signal
    queue = list(missing)
    running: dict[Future, tuple[Planned, float]] = {}
    context = multiprocessing.get_context("spawn")
    pending = {p.number for p in missing}

    def blocked(p: Planned) -> bool:   # its pretraining is still to run or running
        return p.after is not None and p.after.number in pending

    def going() -> list[int]:
        return [p.number for future, (p, _) in list(running.items()) if not future.done()]

    def stop(status: int) -> None:
        nonlocal stopped, forwarded
        stopped, forwarded = stopped or status, True

    with Executors(context) as pool, Forwarder(logs, going, stop):
        while queue or running:
            while queue and not stopped and len(running) < max(1, jobs):
                p = next((q for q in queue if not blocked(q)), None)
                if p is None:
                    break
                queue.remove(p)
                left = p.minutes_left()
                kept = kept_back(p, outcomes, left, deadline_s, until)
                if kept is not None:
                    outcomes[p.number], words = kept
                    pending.discard(p.number)
                    echo(f"{PREFIX} run {p.number}/{total} {words}")
                    continue
                log = logs / f"run_{p.number}.log"
                running[pool.submit(run_registered, p.spec, str(log), str(logs),
                                    p.number)] = (p, time.monotonic())
                resumed = (f", {minutes_text(left)} left after its checkpoint"
                           if left < p.minutes else "")
                measured = " measured" if p.measured else ""
                echo(f"{PREFIX} run {p.number}/{total} started: {p.name()} "
                     f"(estimate{measured} {minutes_text(p.minutes)} min{resumed})")
            if not running:   # nothing to wait for: stopped, or dependents failed just now
                if stopped:
                    raise RunInterrupted(stopped, outcomes, forwarded)
                continue          # (a blocked run's pretraining is always queued or running)
            finished, _ = wait(running, timeout=progress_s, return_when=FIRST_COMPLETED)
            if not finished:
                for p, _ in running.values():
                    line = last_status(logs / f"run_{p.number}.log")
                    if line is not None and line != shown.get(p.number):
                        shown[p.number] = line
                        echo(f"{PREFIX} run {p.number}/{total}: {line}")
            for future in finished:
                p, start = running.pop(future)
                pool.release(future)
                try:
                    outcome = future.result()
                except Exception as exc:  # noqa: BLE001  (the run's process died)
                    outcome = {"ok": False, "seconds": time.monotonic() - start,
                               "error": f"{type(exc).__name__}: {exc}" + (
                                   KILLED if isinstance(exc, BrokenProcessPool) else "")}
                if outcome.get("locked"):     # the other process took it just before
                    outcome = {**outcome, "not_started": "running in another process",
                               "left": "elsewhere"}
                outcomes[p.number] = outcome
                pending.discard(p.number)
                stopped = stopped or outcome.get("interrupted", 0)
                remeasure(p, outcome, queue)
                left = sum(q.minutes_left() for q in queue) + \
                    sum(q.minutes_left() for q, _ in running.values())
                echo(f"{PREFIX} run {p.number}/{total} {status(outcome)}: {p.name()}; "
                     f"{left_text(left, len(queue) + len(running), jobs)}")
            if stopped and not running:
                raise RunInterrupted(stopped, outcomes, forwarded)
    return outcomes


KILLED = (" (its process was killed from outside, e.g. by the out-of-memory killer: "
          "the same command resumes it from its checkpoint)")


class Executors:
    """One single-process executor per run, so each run has a process of its own (not
    ``max_tasks_per_child = 1``: a worker that exits after its task is replaced at once,
    before :meth:`release` shuts its executor down, and the replacement, spawned only to
    be stopped, cost about 0.6 s of CPU per run). A run whose process is killed from
    outside (SIGKILL: the out-of-memory killer) breaks only its own executor, which fails
    that run's future; with one executor for every run, the broken pool terminated the runs beside
    it and refused every later one, and the figure command died with a traceback
    (session 37: half-cheetah RL² was OOM-killed, and its queue stopped for the
    session). Leaving the ``with`` waits for every run still going, as one executor's
    shutdown did."""

    def __init__(self, context):
        self.context = context
        self.pools: dict[Future, ProcessPoolExecutor] = {}

    def submit(self, fn, *args) -> Future:
        pool = ProcessPoolExecutor(max_workers=1, mp_context=self.context,
                                   initializer=own_group)
        future = pool.submit(fn, *args)
        self.pools[future] = pool
        return future

    def release(self, future: Future) -> None:
        """Shut down a finished run's executor: its one process, idle now, ends."""
        self.pools.pop(future).shutdown(wait=True)

    def __enter__(self) -> Executors:
        return self

    def __exit__(self, *exc) -> None:
        for pool in self.pools.values():
            pool.shutdown(wait=True)
        self.pools.clear()


def kept_back(p: Planned, outcomes: dict[int, dict], minutes_left: float,
              deadline_s: float | None, until: str) -> tuple[dict, str] | None:
    """Why ``p`` is not to start now, as (its outcome, the words of its line after
    'run n/N'), or None when it starts. In order: its pretraining (``p.after``) was not
    started (``left`` as the pretraining's) or did not complete (failed); another live
    process holds its lock (``left``: ``"elsewhere"``); its estimate does not fit before
    the deadline (``left``: ``"until"``)."""
    source = p.after
    if source is not None:
        before = outcomes.get(source.number, {})
        if before.get("not_started"):
            return ({"ok": False, "seconds": 0.0, "left": before["left"], "not_started": (
                f"it adapts from run {source.number}, which was not started")},
                f"not started (its pretraining, run {source.number}, was not): {p.name()}")
        if source.done is None and not before.get("ok"):
            return ({"ok": False, "seconds": 0.0, "error": (
                f"not started: it adapts from run {source.number} ({source.name()}), "
                "which did not complete")},
                f"FAILED (not started: run {source.number}, its pretraining, did not "
                f"complete): {p.name()}")
    holder = running_elsewhere(p)
    if holder is not None:
        return ({"ok": False, "seconds": 0.0, "not_started": holder, "left": "elsewhere"},
                f"not started: {p.name()} ({holder})")
    now = time.time()
    if not fits(minutes_left, now, deadline_s):
        why = why_not(minutes_left, now, deadline_s, until)
        return ({"ok": False, "seconds": 0.0, "not_started": why, "left": "until"},
                f"not started: {p.name()} ({why})")
    return None


def running_elsewhere(p: Planned) -> str | None:
    """'running in another process (pid 8562 since 12-05 22:44)' when a live process
    holds the run's lock (iwx.experiment.run_lock); in a training figure also when
    another process runs a longer run of the same training, which will stand for it
    (iwx.figures.plan.inside_running); else None."""
    from iwx.figures.plan import holder_text, inside_running, lock_holder

    holder = lock_holder(p)
    if holder is not None:
        return f"running in another process ({holder_text(holder)})"
    return inside_running(p)


def remeasure(p: Planned, outcome: dict, queue: list[Planned]) -> None:
    """A run that completed here is measured for the seeds of its entry still queued:
    its recorded compute (iwx.figures.compute) joins their ``measured``
    (iwx.figures.compute.measure), so the minutes left that follow use it."""
    if not outcome.get("ok") or outcome.get("reused") or not outcome.get("run_dir"):
        return
    seconds = folder_seconds(Path(outcome["run_dir"]))
    if seconds is None:
        return
    for q in queue:
        if same_entry(p, q):
            q.measured = (*q.measured, seconds / 60.0)


def status(outcome: dict) -> str:
    if outcome.get("not_started"):
        return f"not started ({outcome['not_started']})"
    if outcome.get("interrupted"):
        return (f"INTERRUPTED after {outcome['seconds']:.0f} s (exit "
                f"{outcome['interrupted']}; resumes from its checkpoint)")
    if not outcome["ok"]:
        lines = [line.strip() for line in str(outcome.get("error", "")).splitlines()
                 if line.strip() and not line.strip().startswith("In call to configurable")]
        why = f" ({lines[-1][:300]})" if lines else ""    # gin's own last line says less
        return f"FAILED after {outcome['seconds']:.0f} s{why}"
    if outcome.get("reused"):
        return f"reused run {_run_id(outcome)} ({outcome['run_dir']})"
    return f"done in {outcome['seconds']:.0f} s as run {_run_id(outcome)}"


def _run_id(outcome: dict) -> str:
    return outcome["run_dir"].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def left_text(minutes: float, runs: int, jobs: int) -> str:
    if not runs:
        return "nothing left to run"
    wall = f", about {minutes_text(minutes / max(1, min(jobs, runs)))} min at --jobs {jobs}" \
        if jobs > 1 else ""
    return (f"{runs} run{'s' if runs > 1 else ''} left, about {minutes_text(minutes)} min of "
            f"compute (estimate{wall})")
