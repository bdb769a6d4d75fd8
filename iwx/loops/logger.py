"""The small interface through which loops report metrics.

Loops know nothing of Sacred: they call ``logger.scalar(name, value, step)``.
The recording layer implements it; :class:`MemoryLogger` keeps the history,
which is what a checkpoint stores so a resumed run can replay it.
"""

from __future__ import annotations

from typing import Protocol


class Logger(Protocol):
    """What the training and adaptation loops report through."""

    def scalar(self, name: str, value: float, step: int) -> None: ...


class ResumableLogger(Logger, Protocol):
    """A logger whose history a checkpoint keeps (the pipeline saves and restores it)."""

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class MemoryLogger:
    """Keeps every scalar; forwards each one to ``sink`` (a callable) if given."""

    def __init__(self, sink=None):
        self.history: list[tuple[str, float, int]] = []
        self.sink = sink

    def scalar(self, name: str, value: float, step: int) -> None:
        self.history.append((name, float(value), int(step)))
        if self.sink is not None:
            self.sink(name, float(value), int(step))

    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        """Restore the history and re-emit it, so the new record is complete."""
        self.history = []
        for name, value, step in state["history"]:
            self.scalar(name, value, step)
