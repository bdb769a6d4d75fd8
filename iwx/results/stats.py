"""Units, smoothing and 95% confidence intervals over adaptation returns.

Returns arrays are [units, seeds, episodes]. Following appendix A.2, a unit's
value is the mean over its seeds; means and 95% confidence intervals (Student
t) are then taken across units. A *unit* is a held-out task when every pooled
run adapted on the same tasks (its seeds are then run seeds × adaptation
seeds), otherwise each (run, task) (:func:`pool`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Curve:
    """A plotted line: mean ± ``ci95`` at each ``x`` (what :mod:`iwx.results.figures` draws)."""

    label: str
    x: list[float]
    mean: list[float]
    ci95: list[float]


def mean_ci(values: np.ndarray, axis: int = 0, confidence: float = 0.95):
    """Mean and half-width of the ``confidence`` Student t-interval along ``axis``
    (half-width 0 for a single value). The quantile is scipy.special's ``stdtrit``, what
    ``scipy.stats.t.ppf`` calls, without importing scipy.stats (about 0.7 s of CPU in
    every run process that records a headline)."""
    from scipy.special import stdtrit

    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    sem = values.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, sem * stdtrit(n - 1, 0.5 + confidence / 2)


def mean_ci_present(values: np.ndarray, confidence: float = 0.95):
    """Per column of ``values`` [rows, columns] with NaN where a row has no value (a run
    that ended earlier): (mean, CI half-width, rows present), each over the rows present;
    the half-width is 0 where fewer than 2 are."""
    values = np.asarray(values, dtype=np.float64)
    n = (~np.isnan(values)).sum(axis=0)
    mean = np.full(values.shape[1], np.nan)
    half = np.zeros(values.shape[1])
    for col in np.flatnonzero(n):
        present = values[~np.isnan(values[:, col]), col]
        mean[col], half[col] = mean_ci(present, confidence=confidence)
    return mean, half, n


def unit_values(returns: np.ndarray) -> np.ndarray:
    """[units, seeds, episodes] -> [units, episodes]: each unit's mean over its seeds."""
    return np.asarray(returns).mean(axis=1)


def same_split(goals: Sequence) -> bool:
    """Did every run adapt on the same tasks? ``goals``: each run's held-out task
    parameters (``results.json`` ``test_goals``); a run without them (None) differs."""
    if len(goals) < 2:
        return True
    if any(g is None for g in goals):
        return False
    arrays = [np.asarray(g, dtype=np.float64) for g in goals]
    return all(a.shape == arrays[0].shape and np.allclose(a, arrays[0]) for a in arrays)


def pool(per_run: Sequence[np.ndarray], shared: bool) -> np.ndarray:
    """Runs' returns [tasks, seeds, episodes] as one [units, seeds, episodes] array.

    ``shared`` (every run adapted on the same tasks): a unit is a task and its
    seeds are every run's seeds (concatenated along the seed axis); otherwise task i
    of two runs are different tasks, and every (run, task) is its own unit.
    """
    return np.concatenate([np.asarray(r) for r in per_run], axis=1 if shared else 0)


def pool_by_split(values: Sequence[np.ndarray], splits: Sequence) -> np.ndarray | None:
    """Per-task reference values (an oracle's return, a baseline's) of several runs as
    units: runs that adapted on the same tasks are averaged per task, distinct splits
    concatenated in order of first appearance. None without values."""
    groups: dict[bytes, list[np.ndarray]] = {}
    for value, split in zip(values, splits):
        goals = np.round(np.asarray(split, np.float64), 9)
        groups.setdefault(goals.tobytes() + str(goals.shape).encode(), []).append(
            np.asarray(value, np.float64))
    if not groups:
        return None
    return np.concatenate([np.mean(found, axis=0) for found in groups.values()])


def rolling_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing rolling mean along the last axis, min periods 1: element e is the mean
    of elements max(0, e - window + 1) .. e (appendix A.1 / A.2 smoothing)."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1:
        return values.copy()
    csum = np.cumsum(values, axis=-1)
    n = values.shape[-1]
    idx = np.arange(n)
    lo = idx - window
    lower = np.where(lo >= 0, np.take(csum, np.clip(lo, 0, None), axis=-1), 0.0)
    count = np.minimum(idx + 1, window)
    return (csum - lower) / count


def trailing_chunk_mean(chunks: Sequence[int], values: Sequence[float], window: int,
                        columns: Sequence[int]) -> np.ndarray:
    """Appendix A.1's trailing mean over ``window`` chunks, by chunk position, for one run
    that logged only some chunks (a log every ~50k env steps leaves some 50k chunks empty).

    chunks [n] (the run's chunk numbers, increasing), values [n] (its chunk means),
    columns [C] (the figure's chunk numbers) -> [C]: at column c inside the run's span
    (chunks[0] <= c <= chunks[-1]) the mean of the values whose chunk k has
    c - window < k <= c, NaN where there is none; NaN outside the span. With no chunk
    missing it is :func:`rolling_mean` along the run's chunks."""
    chunks = np.asarray(chunks, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    out = np.full(len(columns), np.nan)
    for i, c in enumerate(columns):
        if chunks[0] <= c <= chunks[-1]:
            inside = (chunks > c - max(window, 1)) & (chunks <= c)
            if inside.any():
                out[i] = values[inside].mean()
    return out


def headline(units: np.ndarray, exploration_episodes: int | None, last: int = 3,
             x: Sequence[float] | None = None) -> dict:
    """Appendix A.2's numbers of one curve from its unsmoothed unit values [units,
    episodes]: the mean of the last ``last`` episodes, and of the episodes after the
    exploration episodes, each mean ± 95% CI across units (NaN where there is none).

    ``x``: the episode number of each column (default 1, 2, ...), when the columns are
    not every episode from the first."""
    units = np.asarray(units)
    last_mean, last_ci = mean_ci(units[:, -last:].mean(axis=1))
    if exploration_episodes is None:
        keep = None
    elif x is None:
        keep = slice(exploration_episodes, None) if units.shape[1] > exploration_episodes \
            else None
    else:
        keep = np.asarray(x) > exploration_episodes
        keep = keep if keep.any() else None
    if keep is None:
        post_mean = post_ci = float("nan")
    else:
        post_mean, post_ci = mean_ci(units[:, keep].mean(axis=1))
    return {"last3_mean": float(last_mean), "last3_ci95": float(last_ci),
            "post_exploration_mean": float(post_mean), "post_exploration_ci95": float(post_ci)}


def summary(returns: np.ndarray, exploration_episodes: int, last: int = 3) -> dict:
    """:func:`headline` of a variant's returns [units, seeds, episodes]."""
    return headline(unit_values(returns), exploration_episodes, last)


def curve(label: str, returns: np.ndarray) -> Curve:
    """The unsmoothed curve of returns [units, seeds, episodes]: mean ± 95% CI across
    units at each adaptation episode (numbered from 1)."""
    mean, half = mean_ci(unit_values(returns))
    return Curve(label, list(range(1, len(mean) + 1)), mean.tolist(), half.tolist())
