"""Ctrl-C and SIGTERM in the sweep driver: a graceful stop, said so, exit 130 / 143.

Ray Tune catches the first SIGINT itself: it stops the trials, saves its state and
returns from ``Tuner.fit()`` as if the sweep had ended, so the driver could only
guess that it had been interrupted (the old guess, "incomplete and nothing
failed", was wrong as soon as one trial had failed). SIGTERM (``timeout``, cluster
schedulers) ended the driver at once, without a summary, and could leave Ray's
worker processes behind.

:class:`StopSignals` takes both signals for the life of the driver and remembers
the first one:

- while Ray Tune runs the trials (:meth:`StopSignals.tuning`), it asks Tune for the
  graceful stop Ctrl-C gets (Tune's SIGUSR1 handler, which ``fit()`` always
  installs; Tune's own SIGINT handler is switched off with
  ``TUNE_DISABLE_SIGINT_HANDLER``, so SIGINT and SIGTERM take the same path);
- while the summary is written (:meth:`StopSignals.finishing`), it only notes the
  signal: the summary of what ran is worth the second it takes;
- anywhere else (starting Ray, the pretraining run) it raises :class:`SweepInterrupted`,
  a KeyboardInterrupt, so a run in progress is recorded as INTERRUPTED;
- a second signal always raises at once (skipping Tune's last save, as Tune's own
  second Ctrl-C does).

The sweep then exits with 128 + the signal's number, as a shell reports a process a
signal ended and as ``iwx.run`` does: 130 after SIGINT, 143 after SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import signal

NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class SweepInterrupted(KeyboardInterrupt):
    """A stop signal arrived where the sweep could not stop gracefully."""


class StopSignals:
    """Catches SIGINT and SIGTERM; ``signum`` is the first one caught (None: none)."""

    def __init__(self):
        self.signum: int | None = None
        self._phase = "other"
        self._previous: dict = {}

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or signal.SIGINT)

    @property
    def name(self) -> str:
        return NAMES.get(self.signum, f"signal {self.signum}")

    def install(self) -> StopSignals:
        """Take both signals; again after ``ray.init()``, whose core worker installs a
        SIGTERM handler of its own (it logs and aborts the driver)."""
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"    # ours routes SIGINT (below)
        for signum in NAMES:
            previous = signal.signal(signum, self._handle)
            self._previous.setdefault(signum, previous)
        return self

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    @contextlib.contextmanager
    def tuning(self):
        """Around ``Tuner.fit()``: a first signal stops the trials gracefully."""
        self._phase = "tuning"
        try:
            yield
        finally:
            self._phase = "other"

    def finishing(self) -> None:
        """From here on a first signal is only noted (the summary is being written)."""
        self._phase = "finishing"

    def _handle(self, signum, frame):
        first = self.signum is None
        if first:
            self.signum = signum
            if self._phase == "finishing":
                return
            graceful = signal.getsignal(signal.SIGUSR1) if self._phase == "tuning" else None
            if callable(graceful):
                graceful(signal.SIGUSR1, frame)   # Tune: stop the trials, save, return
                return
        raise SweepInterrupted(NAMES.get(signum, str(signum)))
