"""``--until``: start only the runs that will finish before a deadline.

A figure of many hours runs across machines that are lent for a few hours at a time
(a session, a cluster allocation). A run still going when the machine goes is lost
unless its runs folder comes back; a run that would not finish is better not started,
leaving the core to a shorter run of the figure, or free.

With ``--until``, a free slot takes the first run in start order (a run stopped with a
checkpoint first, then the figure's order: iwx.figures.plan.Plan.to_run) whose estimate
(:meth:`iwx.figures.plan.Planned.minutes_left`: measured from the entry's completed
seeds where there are some, less what its checkpoint holds) times :data:`SAFETY` ends
before the deadline; a run that does not fit is not started (it would not fit later
either) and is listed at the end. Runs already going are never stopped. The runs
left are neither failed nor interrupted: the same command (with a later ``--until``)
runs them.

``--until`` takes a clock time (``00:55``: the next time the clock shows it), a date and
time (``2026-12-06 00:55`` or ``2026-12-06T00:55``, local time) or a duration from now
(``150m``, ``2.5h``, ``90s``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence

SAFETY = 1.2   # a run fits when 1.2 × its estimate ends before the deadline

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*$")
_CLOCK = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """The deadline ``text`` names, relative to ``now`` (a naive local datetime).
    Raises ValueError saying which forms it takes."""
    if m := _DURATION.match(text):
        seconds = float(m.group(1)) * _UNIT_S[m.group(2)]
        if seconds <= 0:
            raise ValueError(f"--until {text}: a duration must be > 0")
        return now + dt.timedelta(seconds=seconds)
    if m := _CLOCK.match(text):
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise ValueError(f"--until {text}: not a time of day (HH:MM, 00:00-23:59)")
        at = now.replace(hour=hour, minute=minute, second=0, microsecond=0)
        return at if at > now else at + dt.timedelta(days=1)
    try:
        at = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--until {text}: expected a time of day (00:55), a date and time "
                         "(2026-12-06 00:55) or a duration (150m, 2.5h, 90s)") from None
    if at.tzinfo is not None:
        at = at.astimezone().replace(tzinfo=None)
    if at <= now:
        raise ValueError(f"--until {text}: that is in the past (now {now:%Y-%m-%d %H:%M})")
    return at


def fits(minutes: float, now_s: float, deadline_s: float | None) -> bool:
    """Whether a run estimated at ``minutes`` started at ``now_s`` ends, with the margin
    :data:`SAFETY`, before ``deadline_s`` (seconds on one clock; None: no deadline)."""
    return deadline_s is None or now_s + SAFETY * minutes * 60.0 <= deadline_s


def why_not(minutes: float, now_s: float, deadline_s: float, until: str) -> str:
    """Why a run was not started, for its line: estimate, margin and time left."""
    left = max(0.0, (deadline_s - now_s) / 60.0)
    return (f"{SAFETY:g} × its estimate of {minutes:.0f} min does not end in the "
            f"{left:.0f} min before --until {until}")


def schedule(runs: Sequence, jobs: int, minutes_available: float,
             minutes: Callable[[object], float],
             after: Callable[[object], object | None],
             held: Callable[[object], bool] = lambda r: False,
             ) -> tuple[dict[int, float], list]:
    """What ``--until`` would start, simulated on the estimates: ({run number: minutes
    from now when it starts}, the runs left). A run another process is running
    (``held``) is left to it at once, as the real command leaves it. ``jobs`` slots
    take, each time one is free, the first run in order whose pretraining (``after``)
    has ended (or is not among ``runs``) and that fits (:func:`fits`) in what is left of
    ``minutes_available``; a run that adapts from one that is left is left too."""
    numbers = {r.number for r in runs}
    left: list = [r for r in runs if held(r)]
    queue = [r for r in runs if r not in left]
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    free = [0.0] * max(1, jobs)          # when each slot is next free, minutes from now
    while queue:
        free.sort()
        t = free[0]
        started = None
        for r in list(queue):
            source = after(r)
            if source is not None and source.number in numbers:
                if source in left:
                    queue.remove(r)
                    left.append(r)
                    continue
                if source.number not in ends or ends[source.number] > t:
                    continue
            if not fits(minutes(r), t * 60.0, minutes_available * 60.0):
                queue.remove(r)
                left.append(r)
                continue
            started = r
            break
        if started is not None:
            queue.remove(started)
            starts[started.number] = t
            ends[started.number] = t + minutes(started)
            free[0] = ends[started.number]
            continue
        waiting = [ends[after(r).number] for r in queue
                   if after(r) is not None and after(r).number in ends
                   and ends[after(r).number] > t]
        if not waiting:
            break
        free[0] = max(t, min(waiting))    # this slot waits for the next pretraining's end
    left.extend(r for r in queue if r not in left)
    return starts, left


def names(runs: Iterable, total: int) -> str:
    """'16/24, 17/24 and 18/24'."""
    items = [f"{r.number}/{total}" for r in runs]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
