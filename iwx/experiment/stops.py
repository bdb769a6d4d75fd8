"""Stops recorded as stops: SIGTERM and Ctrl-C end a run as INTERRUPTED.

``timeout``, cluster schedulers (Slurm, Kubernetes) and ``kill`` send SIGTERM,
whose default action ends Python without unwinding: Sacred never writes the
end of the run, which stays RUNNING forever. While a run executes,
:func:`stop_signals` turns SIGTERM into :class:`Terminated`, a Sacred interrupt
(status INTERRUPTED), exactly as Ctrl-C's KeyboardInterrupt already is; the
runner then says how to resume (:class:`iwx.experiment.runner.RunStopped`).
"""

from __future__ import annotations

import contextlib
import signal
import threading

from sacred.utils import SacredInterrupt


class Terminated(SacredInterrupt):
    """SIGTERM arrived while the run was executing."""

    STATUS = "INTERRUPTED"


def _raise_terminated(signum, frame):
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def stop_signals():
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only: signal
    handlers can only be set there; elsewhere — a Ray worker's thread — nothing
    changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(exc: BaseException) -> int:
    return 143 if isinstance(exc, Terminated) else 130


def interrupt_name(exc: BaseException) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "Ctrl-C (SIGINT)"
