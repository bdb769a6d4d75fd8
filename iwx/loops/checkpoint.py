"""Whole-state checkpoints that let a killed run continue exactly where it was.

A checkpoint is one file written atomically (temporary file + rename), so a
kill at any moment leaves either the previous checkpoint or the new one.
It holds whatever the loops put in (networks, optimisers, replay, counters)
plus every random state: torch (CPU and CUDA), numpy generators the loops
own, and Python's ``random``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


def rng_state(np_rng: np.random.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np_rng.bit_generator.state,
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, np_rng: np.random.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np_rng.bit_generator.state = state["numpy"]
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Saves to / loads from ``directory/state.pt``. ``directory=None`` disables it."""

    def __init__(self, directory: str | os.PathLike | None, *, kill_at: str | None = None):
        self.directory = None if directory is None else Path(directory)
        # Testing hook: "<label>" makes the process SIGKILL itself right after
        # saving the checkpoint with that label (a real, unclean kill).
        if kill_at is None:
            kill_at = os.environ.get("IWX_KILL_AFTER_CHECKPOINT")
        self.kill_at = kill_at
        self.meta: dict = {}  # stored with every checkpoint (e.g. the recording run's id)

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / "state.pt"

    def load(self) -> dict | None:
        if self.path is None or not self.path.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=False)

    def save(self, state: dict, label: str) -> None:
        if self.path is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({**state, **self.meta, "label": label}, tmp)
        os.replace(tmp, self.path)
        if self.kill_at is not None and self.kill_at == label:
            import signal
            os.kill(os.getpid(), signal.SIGKILL)

    def clear(self) -> None:
        if self.path is not None and self.path.exists():
            self.path.unlink()
