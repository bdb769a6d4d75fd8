"""A signal to the figure command reaches the runs it is running, once each.

Without this, SIGTERM to ``python -m iwx.figure`` (``kill``, ``timeout``, a scheduler, a
queue being stopped) ended the command at once and left its runs going in orphaned
worker processes, and SIGINT to the command's process alone (``kill -INT``) left it
waiting forever for runs that never heard of it. Now:

- each worker puts itself in a process group of its own (:func:`own_group`, the pool's
  initializer), so a signal sent to the command's group (a terminal's Ctrl-C,
  ``timeout``) reaches the command only, and a run never gets the same stop twice (a
  second one could land in the middle of recording the first);
- a worker, once its run can be stopped (SIGTERM raises, SIGINT raises
  KeyboardInterrupt), registers its pid in the figure's control folder
  (:func:`run_registered`), then looks for the folder's ``STOP`` mark and returns an
  interrupted outcome without starting when it is there;
- the command, on SIGINT or SIGTERM (:class:`Forwarder`), writes ``STOP`` first and then
  sends the same signal to every registered worker whose run is going. Whatever the
  interleaving, a run either gets the signal (registered before the command looked) or
  sees ``STOP`` (registered after): none starts after the stop, none is missed.

Each stopped run records itself INTERRUPTED and resumes from its checkpoint when the
same command runs again, exactly as when the signal reaches a run's own process.
Idle workers are never signalled (an idle pool worker killed by a signal breaks the
whole pool).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from iwx.experiment.runner import run_captured
from iwx.experiment.stops import Terminated, interrupt_exit_code, stop_signals

STOP = "STOP"


def own_group() -> None:
    """Pool initializer: this worker leads a process group of its own."""
    try:
        os.setpgid(0, 0)
    except OSError:         # not permitted here (already a session leader): keep the group
        pass


def pid_file(control: Path, number: int) -> Path:
    return Path(control) / f"run_{number}.pid"


def run_registered(spec, log_path: str, control: str, number: int) -> dict:
    """In a pool worker: :func:`iwx.experiment.runner.run_captured` for planned run
    ``number``, stoppable by the command from the moment its pid is registered."""
    start = time.monotonic()
    try:
        with stop_signals():              # SIGTERM raises from here on, as SIGINT does
            target = pid_file(Path(control), number)
            partial = target.with_suffix(".tmp")
            partial.write_text(str(os.getpid()))
            partial.replace(target)       # whole or absent, never half written
            stop = stop_status(Path(control))
            if stop is not None:
                return stopped_before_start(start, stop)
            return run_captured(spec, log_path)
    except (KeyboardInterrupt, Terminated) as exc:   # arrived before the run took over
        return stopped_before_start(start, interrupt_exit_code(exc))


def stopped_before_start(start: float, status: int) -> dict:
    return {"ok": False, "seconds": time.monotonic() - start, "interrupted": status,
            "error": "stopped by the figure command's signal before it started; nothing "
                     "recorded"}


def stop_status(control: Path) -> int | None:
    """The exit status the command's ``STOP`` mark stands for, read once: 130 for
    SIGINT, 143 for SIGTERM (or a mark that does not say); None when there is none."""
    try:
        text = (control / STOP).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return 143
    return 130 if text == str(int(signal.SIGINT)) else 143


class Forwarder:
    """While in use, SIGINT and SIGTERM to this process forward to the going runs.

    ``going()`` yields the planned numbers of the runs whose futures are not done;
    ``on_stop(status)`` is told the exit status (130 / 143) so no further run starts.
    Only in the main thread (signal handlers can only be set there); elsewhere nothing
    changes. A signal this process ignores (SIGINT in a shell's background job) stays
    ignored, and its runs, which inherit that, are never sent it."""

    def __init__(self, control: Path, going: Callable[[], Iterable[int]],
                 on_stop: Callable[[int], None]):
        self.control, self.going, self.on_stop = Path(control), going, on_stop
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Forwarder:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(signum) is not signal.SIG_IGN:   # a background job's
                    self.previous[signum] = signal.signal(signum, self.forward)  # SIGINT
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def forward(self, signum, frame) -> None:
        self.on_stop(128 + signum)
        mark = self.control / STOP
        if not mark.exists():             # whole or absent, as the pid files
            partial = mark.with_suffix(".tmp")
            partial.write_text(str(int(signum)))
            partial.replace(mark)
        for number in list(self.going()):
            try:
                pid = int(pid_file(self.control, number).read_text())
                os.kill(pid, signum)
            except (OSError, ValueError):   # not registered yet (it will see STOP), or gone
                continue
