"""The checks every environment runs at the top of ``step``, before touching its state.

One place for them, so that the six task distributions (and their task
vectors) refuse the same garbage with the same words:

- :func:`check_action`: the action has exactly the expected shape, holds real
  numbers, and every entry is finite. Returns it as a float64 array. A NaN or
  an infinity is refused, never clipped: it means the policy has broken, and
  clipping would hide that in the data. (Finite values outside the action box
  are not this module's business; every env clips them, see
  :mod:`iwx.envs.vector`.)
- :func:`check_running`: ``reset()`` has been called, and (for a single-task
  env) the episode has not ended since.

Both are pure and cheap (one ``np.isfinite`` over the action; the messages are
built only when something is wrong), because they run on every step.
"""

from __future__ import annotations

import numpy as np

_LISTED = 5        # non-finite entries named in a message; the rest are counted


def check_action(action, shape: tuple[int, ...], owner: str) -> np.ndarray:
    """``action`` as a float64 array of exactly ``shape``, all finite; else ValueError.

    ``owner`` names the env in the message (e.g. ``"CheetahVelVec"``). Integer
    arrays are accepted (converted); booleans, complex numbers, strings and
    objects are not. No broadcasting: a scalar, ``(1, A)`` for ``(A,)``, or
    ``(A,)`` / ``(B,)`` for ``(B, A)`` are all wrong shapes.
    """
    array = np.asarray(action)
    if array.shape != shape or array.dtype.kind not in "fiu":
        _raise_bad_array(array, shape, owner)
    finite = np.isfinite(array)
    if not finite.all():
        _raise_non_finite(array, finite, shape, owner)
    return array.astype(np.float64, copy=False)


def check_running(owner: str, *, started: bool, ended: bool = False, hint: str = "") -> None:
    """RuntimeError unless ``reset()`` has been called and the episode has not ended.

    ``hint`` is appended to the not-started message (e.g. what else needs a reset).
    """
    if not started:
        raise RuntimeError(f"{owner}.step() before reset(): call reset() first{hint}")
    if ended:
        raise RuntimeError(f"{owner}.step(): episode ended (terminated or truncated); "
                           f"call reset()")


def _expected(shape: tuple[int, ...]) -> str:
    if len(shape) == 2:
        return (f"shape {shape} (B, A): one row of {shape[1]} action values for each of "
                f"the {shape[0]} tasks")
    if len(shape) == 1:
        return f"shape {shape} (A,): one value per action dimension"
    return f"shape {shape}"


def _raise_bad_array(array: np.ndarray, shape: tuple[int, ...], owner: str):
    if array.dtype.kind not in "fiu":
        raise ValueError(f"{owner}.step: actions must be real numbers (a float array of "
                         f"{_expected(shape)}), got dtype {array.dtype} with shape "
                         f"{array.shape}")
    raise ValueError(f"{owner}.step: actions must have {_expected(shape)}, got shape "
                     f"{array.shape}; nothing is broadcast")


def _raise_non_finite(array: np.ndarray, finite: np.ndarray, shape: tuple[int, ...],
                      owner: str):
    bad = np.argwhere(~finite)
    entries = ", ".join(
        f"{tuple(int(i) for i in index) if len(index) > 1 else int(index[0])}"
        f"={array[tuple(index)]}" for index in bad[:_LISTED])
    more = f" and {len(bad) - _LISTED} more" if len(bad) > _LISTED else ""
    where, label = "", "index"
    if len(shape) == 2:
        label = "(row, column)"
        rows = np.unique(bad[:, 0])
        where = f" in row(s) {rows.tolist()[:_LISTED]}{' ...' if len(rows) > _LISTED else ''}"
    raise ValueError(f"{owner}.step: actions must be finite (NaN and infinity are refused, "
                     f"not clipped); got {len(bad)} non-finite entr"
                     f"{'y' if len(bad) == 1 else 'ies'}{where} of an array of shape "
                     f"{array.shape}; at {label}: {entries}{more}")
