"""Progress of a long loop: a live bar on a terminal, plain log lines everywhere.

Why (issue 15): tqdm redraws its bar with '\\r' on one physical line. Written to a
file, a pipe or a Ray worker's log that is thousands of frames on one line that
``tail`` and ``grep`` cannot use (~2.5 MB an hour of pretraining); and with Sacred's
``CAPTURE_MODE = "sys"`` the bar writes into the captured output, where any line
printed while a frame is open is glued to that frame, so ``cout.txt`` and
Omniboard keep a stale state ("pretrain: 5%| | 19/384 ...[iwx] ...") of a run
that went on to finish. :func:`progress_bar` is the one way the loops (and
``iwx.compare``, the sweep driver) show progress:

* **Status lines, always** — one complete line each, ending in '\\n', written to
  ``sys.stderr`` (where tqdm wrote), e.g.::

      [pretrain] start: 0/25000 upd (0.0%)
      [pretrain] 1250/25000 upd (5.0%) 12.3 upd/s, elapsed 1:42, ETA 32:10, ret=0.42
      [pretrain] done: 25000/25000 upd in 33:51 (12.3 upd/s), ret=0.47
      [pretrain] interrupted by KeyboardInterrupt at 1200/25000 upd (4.8%) after 1:37

  The rule, which bounds the log: a line when the bar opens; after an update, a
  line when the count reached a new multiple of ``STEP_PERCENT`` (5 %) of the
  total below 100 %, or when ``INTERVAL_S`` (36 s) passed since the last line;
  a line when the bar closes (done, or interrupted — by what, when an exception
  is on its way). Every line restarts the interval, so time-driven lines are at
  most ``elapsed / INTERVAL_S`` (100 an hour) and the others at most 21 per bar
  (the opening line, 5 % … 95 %, the closing line). An hour of pretraining is
  at most ~121 lines, ~13 KB (8 KB measured for 25000 updates in an hour:
  tests/test_progress.py) instead of ~2.5 MB of frames. Lines are written from
  ``update`` only: a loop that stalls adds nothing until it moves again.
* **A tqdm bar too, on a terminal** — when the process's own stderr
  (``sys.__stderr__``) and the current ``sys.stderr`` are both terminals. The bar
  draws on ``sys.__stderr__``: Sacred's "sys" capture replaces ``sys.stdout`` /
  ``sys.stderr`` with tee proxies, so drawing past them keeps every frame out of
  ``cout.txt``. The status lines still go through ``sys.stderr`` (the bar is
  cleared and redrawn around each), so the terminal's scrollback, ``cout.txt``
  and Omniboard's "Captured Out" read the same log.

``enabled=False`` (``--no-progress``, which binds ``MultiTaskTraining.progress`` /
``Adaptation.progress = False``): no bar and no periodic lines, but the opening
and closing lines stay — two lines per phase, so a quiet run's log still says
which phase it is in and how each one ended instead of staying silent until
the summary.

``INTERVAL_S`` and ``STEP_PERCENT`` are read when a bar is made (tests may set
them, or pass ``interval_s`` / ``step_percent``); ``clock`` is injectable.
"""

from __future__ import annotations

import math
import sys
import time

INTERVAL_S = 36.0        # at least this long between time-driven lines: 100 an hour at most
STEP_PERCENT = 5         # a line at each multiple of this percentage of the total

DETECT = object()        # progress_bar(terminal=DETECT): find out whether there is one


def terminal_stream():
    """The terminal a bar may draw on: ``sys.__stderr__`` when it and the current
    ``sys.stderr`` (Sacred's tee proxy answers for the stream it wraps) are both
    terminals; else None (a file, a pipe, a captured stream, a Ray worker)."""
    real = sys.__stderr__
    try:
        return real if real is not None and real.isatty() and sys.stderr.isatty() else None
    except (AttributeError, ValueError, OSError):   # a closed or unusual stream
        return None


def progress_bar(total: int | None, desc: str, unit: str, initial: int = 0,
                 enabled: bool = True, *, terminal=DETECT, stream=None, clock=time.monotonic,
                 interval_s: float | None = None,
                 step_percent: float | None = None) -> "Progress":
    """A progress display over ``total`` ``unit``s named ``desc`` (module docstring).

    ``terminal``: the stream a tqdm bar draws on, None for status lines only
    (default: :func:`terminal_stream`). ``stream``: where status lines go
    (default: ``sys.stderr`` at each write)."""
    if terminal is DETECT:
        terminal = terminal_stream()
    return Progress(total, desc, unit, initial, enabled, terminal=terminal, stream=stream,
                    clock=clock, interval_s=INTERVAL_S if interval_s is None else interval_s,
                    step_percent=STEP_PERCENT if step_percent is None else step_percent)


class Progress:
    """What the loops call on a tqdm bar (``update``, ``set_postfix``, ``write``,
    ``close``, use as a context manager), with the behaviour of the module docstring."""

    def __init__(self, total, desc, unit, initial, enabled, *, terminal, stream, clock,
                 interval_s, step_percent):
        self.total, self.desc, self.unit = total, desc, unit
        self.n = self.initial = initial
        self.enabled = enabled
        self._stream, self._clock = stream, clock
        self._interval, self._step_size = interval_s, step_percent
        self._postfix: dict[str, str] = {}
        self._closed = False
        self._bar = None
        if enabled and terminal is not None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=terminal,
                             dynamic_ncols=True)
        self._start = self._last = clock()
        self._step = self._step_of(initial)
        self._emit(f"[{desc}] {'resumed at' if initial else 'start:'} {self._count()}\n")

    # -- what the loops call -------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        if not self.enabled or self._closed:
            return
        now = self._clock()
        step = self._step_of(self.n)
        new_step = step > self._step and (self.total is None or self.n < self.total)
        if new_step or now - self._last >= self._interval:
            self._step = max(step, self._step)
            self._last = now
            self._emit(f"[{self.desc}] {self._count()} {self._rate(now)}, "
                       f"elapsed {clock_text(now - self._start)}, ETA {self._eta(now)}"
                       f"{self._postfix_text()}\n")

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        values = {**(ordered_dict or {}), **kwargs}
        self._postfix = {k: value_text(v) for k, v in values.items()}
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=refresh)

    def write(self, s: str, file=None, end: str = "\n") -> None:
        """A message line (like ``tqdm.write``: to ``sys.stdout`` unless ``file``),
        above the bar on a terminal."""
        self._emit(f"{s}{end}", sys.stdout if file is None else file)

    def close(self) -> None:
        """Close the bar and write the closing line: "done" when the count reached the
        total, else "interrupted" (by the exception on its way, when there is one)."""
        if self._closed:
            return
        self._closed = True
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
        now = self._clock()
        elapsed = clock_text(now - self._start)
        exc = sys.exc_info()[1]      # close() in a `finally` an exception is leaving by
        if exc is None and (self.total is None or self.n >= self.total):
            text = f"done: {self._count(percent=False)} in {elapsed} ({self._rate(now)})"
        else:
            by = f" by {type(exc).__name__}" if exc is not None else ""
            text = f"interrupted{by} at {self._count()} after {elapsed}"
        self._emit(f"[{self.desc}] {text}{self._postfix_text()}\n")

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the text ------------------------------------------------------------------------
    def _step_of(self, n: int) -> int:
        if not self.total or self._step_size <= 0:
            return 0
        return math.floor(100 * n / (self.total * self._step_size) + 1e-9)

    def _count(self, percent: bool = True) -> str:
        if self.total is None:
            return f"{self.n} {self.unit}"
        text = f"{self.n}/{self.total} {self.unit}"
        if percent and self.total:
            text += f" ({100 * self.n / self.total:.1f}%)"
        return text

    def _rate(self, now: float) -> str:
        elapsed = now - self._start
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        if rate >= 1 or rate == 0:
            return f"{rate:.1f} {self.unit}/s"
        return f"{1 / rate:.1f} s/{self.unit}"

    def _eta(self, now: float) -> str:
        elapsed, done = now - self._start, self.n - self.initial
        if self.total is None or elapsed <= 0 or done <= 0:
            return "?"
        return clock_text((self.total - self.n) * elapsed / done)

    def _postfix_text(self) -> str:
        return "".join(f", {k}={v}" for k, v in self._postfix.items())

    def _emit(self, text: str, file=None) -> None:
        """Write whole lines and flush; a stream that went away never stops a run."""
        out = file if file is not None else (self._stream or sys.stderr)
        try:
            if self._bar is None:
                out.write(text)
                out.flush()
                return
            with self._bar.get_lock():       # clear the bar, write above it, redraw it
                self._bar.clear(nolock=True)
                out.write(text)
                out.flush()
                self._bar.refresh(nolock=True)
        except (OSError, ValueError):
            pass


def clock_text(seconds: float) -> str:
    """1:37, 32:10, 1:02:03."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def value_text(value) -> str:
    """A postfix value as tqdm would show it, short: strings as they are, floats in 3
    significant digits."""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
