"""A replay ratio the user sets: a samples-per-insert rate limiter (Algorithm 1 at scale).

In the spirit of Reverb's ``SampleToInsertRatio``: inserts and samples are counted
in transitions, and whichever side is ahead of the ratio waits. With I transitions
inserted, S transitions sampled, the ratio r (``samples_per_insert``), the
minimum size m (``min_size_to_sample``) and the buffer b (``error_buffer``)::

    diff = r · I − S                            (how far the learner is behind)
    a sample of n transitions may go           iff  I ≥ m  and  diff − n ≥ r·m − b
    an insert of n transitions may go          iff  I' + n ≤ m  or  r·(I' + n) − S ≤ r·m + b

where I' also counts inserts that were allowed but have not arrived yet
(:meth:`reserve`: an actor told to play an episode). So after the first m
transitions, S stays within b of r·(I − m): over a run, S / (I − m) → r, and the
learning curve against env steps does not depend on how many actors there are or
how fast the machine is.

Every insert or sample is at least one unit (an episode, a batch), so the two
sides can both be blocked for ever when ``b < max(r · n_insert, (r · n_insert +
n_sample) / 2)``; :meth:`check` refuses such a configuration before anything runs.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class SampleToInsertRatio:
    samples_per_insert: float
    min_size_to_sample: int
    error_buffer: float
    inserted: int = 0      # transitions inserted (arrived)
    sampled: int = 0       # transitions sampled by the learner
    reserved: int = 0      # transitions allowed to be inserted that have not arrived

    def __post_init__(self):
        if not self.samples_per_insert > 0:
            raise ValueError(f"samples_per_insert must be > 0, got {self.samples_per_insert}")
        if self.min_size_to_sample < 1:
            raise ValueError(f"min_size_to_sample must be >= 1, got {self.min_size_to_sample}")
        if not self.error_buffer >= 0:
            raise ValueError(f"error_buffer must be >= 0, got {self.error_buffer}")

    # -- the rules ----------------------------------------------------------------
    @property
    def diff(self) -> float:
        return self.samples_per_insert * self.inserted - self.sampled

    @property
    def _offset(self) -> float:
        return self.samples_per_insert * self.min_size_to_sample

    def can_sample(self, n: int) -> bool:
        return (self.inserted >= self.min_size_to_sample
                and self.diff - n >= self._offset - self.error_buffer)

    def can_insert(self, n: int) -> bool:
        total = self.inserted + self.reserved + n
        if total <= self.min_size_to_sample:
            return True
        return self.samples_per_insert * total - self.sampled <= self._offset + self.error_buffer

    # -- the counts -------------------------------------------------------------------
    def reserve(self, n: int) -> None:
        """An insert of up to ``n`` transitions was allowed (``can_insert(n)``) and is on
        its way (an actor plays the episode)."""
        self.reserved += n

    def insert(self, n: int, reserved: int = 0) -> None:
        """``n`` transitions arrived; ``reserved``: what :meth:`reserve` set aside for them
        (an episode that terminated early inserts less than it reserved)."""
        self.reserved -= reserved
        self.inserted += n

    def release(self, reserved: int) -> None:
        """A reserved insert will never arrive (its actor died)."""
        self.reserved -= reserved

    def sample(self, n: int) -> None:
        self.sampled += n

    def measured(self) -> float:
        """Samples per insert since sampling could begin: S / (I − m) (nan before)."""
        beyond = self.inserted - self.min_size_to_sample
        return self.sampled / beyond if beyond > 0 else float("nan")

    def check(self, insert_size: int, sample_size: int) -> None:
        """Refuse a configuration in which inserts of ``insert_size`` and samples of
        ``sample_size`` transitions could block each other for ever: after the minimum
        size, both sides wait when ``2 b < r · n_insert + n_sample``; before it (nothing
        sampled yet, I < m) an insert that crosses m waits for ever when ``b < r ·
        n_insert``."""
        r, n = self.samples_per_insert, insert_size
        need = max(r * n, (r * n + sample_size) / 2)
        if self.error_buffer < need:
            raise ValueError(
                f"error_buffer={self.error_buffer:g} is too small: an episode inserts up to "
                f"{n} transitions (x samples_per_insert={r:g}) and a batch samples "
                f"{sample_size}, so actors and learner could both wait for ever; it must be "
                f"at least {need:g}")

    # -- checkpointing ------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Counts only: reserved inserts are in flight and are lost with the process."""
        return {"inserted": self.inserted, "sampled": self.sampled}

    def load_state_dict(self, state: dict) -> None:
        self.inserted, self.sampled, self.reserved = state["inserted"], state["sampled"], 0
