"""Has a training curve stopped rising? Figure 2 asks for every method "trained to a plateau".

The check compares the end of a logged training series with the stretch just before it:
the last ``fraction`` of the logged points against the ``fraction`` before them, the
difference of their means with a Welch 95% interval. A curve whose difference is above
zero by more than the interval is *still rising*; otherwise the budget found no rise that
the noise cannot explain, which is what "plateaued" can honestly mean from one run.

A rise the noise cannot explain is not yet "still rising": over a long budget the last
stretch of a curve that has all but flattened is often above the one before it by a
margin the interval resolves (a return of 12.68 → 12.76 on a run that climbed from 1,
say). So the change is also measured against what the whole run gained, ``gain`` = the
last stretch's mean less the first stretch's (the first k points): a curve is *still
rising* when its change is above zero by more than the interval **and** at least
``min_share`` (default a tenth) of that gain. Below it the curve is *flattening*: the
last fifth of the budget added less than a tenth of what training gained, and more
budget buys little at that rate. A curve growing like the logarithm of the updates
has a share of about 10% wherever it ends, so *still rising* reads "rising at least as
fast as a logarithm" (docs/DECISIONS.md). Both numbers are returned (``significant``,
``share``), so a reader can apply a stricter rule.

A curve that never rose is not rising either: when the whole run's gain is inside its own
Welch interval (first stretch against last; e.g. a return that wandered around −320 for
100k updates, record 83 in docs/records), the share of that gain means nothing (a change
of 15 "is" 1,300% of a gain of −1.2), so such a curve is *not* still rising whatever its
last stretch did; ``significant`` still reports a resolved last-stretch change for a
reader who wants it. A curve that fell and is climbing back (gain resolved, negative)
is measured against the size of its fall.

The points are treated as independent draws around each stretch's mean. Logged training
returns are means over the episodes of one logging period, so neighbouring points share
nothing but the policy's slow drift; the drift inside a stretch widens its variance,
which makes the check slower to call a rise, not quicker.
"""

from __future__ import annotations

import math

import numpy as np


MIN_SHARE = 0.1   # a rise under a tenth of the run's whole gain is a flattening curve


def welch_half_width(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> float:
    """Half-width of the ``confidence`` interval of mean(b) − mean(a), Welch–Satterthwaite
    degrees of freedom. a [k1], b [k2], each k ≥ 2; 0 when both stretches are constant.
    (t quantile: ``scipy.special.stdtrit``, as in :func:`iwx.results.stats.mean_ci`.)"""
    from scipy.special import stdtrit

    v1, v2 = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)   # squared standard errors
    se = math.sqrt(v1 + v2)
    if se == 0.0:
        return 0.0
    df = (v1 + v2) ** 2 / (v1 ** 2 / (len(a) - 1) + v2 ** 2 / (len(b) - 1))
    return float(stdtrit(df, 0.5 + confidence / 2) * se)


def plateau(values, fraction: float = 0.2, confidence: float = 0.95,
            min_share: float = MIN_SHARE) -> dict | None:
    """``values``: [n] a training series as logged, in order, at equal spacing (e.g.
    ``train/return`` every ``log_period`` updates; NaN points are dropped first).

    k = max(2, ⌊n · fraction⌋) points per stretch; ``first`` = the first k points,
    ``before`` = the k points before the last k. Returns {"points": k, "first": mean,
    "before": mean, "last": mean, "change": last − before, "ci95": Welch half-width of
    the change, "significant": change − ci95 > 0, "gain": last − first, "gain_ci95":
    Welch half-width of the gain, "gain_resolved": |gain| − gain_ci95 > 0, "share":
    change / |gain| (None when gain is 0), "rising": significant and gain_resolved and
    share ≥ min_share}; None when fewer than 2k points were logged."""
    if not 0 < fraction <= 0.5:
        raise ValueError(f"plateau: fraction must be in (0, 0.5], got {fraction}")
    if not min_share >= 0:
        raise ValueError(f"plateau: min_share must be >= 0, got {min_share}")
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    k = max(2, int(len(x) * fraction))
    if len(x) < 2 * k:
        return None
    first, before, last = x[:k], x[-2 * k:-k], x[-k:]
    half = welch_half_width(before, last, confidence)
    gain_half = welch_half_width(first, last, confidence)
    change = float(last.mean() - before.mean())
    gain = float(last.mean() - first.mean())
    share = None if gain == 0.0 else change / abs(gain)
    significant = bool(change - half > 0)
    gain_resolved = bool(abs(gain) - gain_half > 0)
    return {"points": k, "first": float(first.mean()), "before": float(before.mean()),
            "last": float(last.mean()), "change": change, "ci95": half,
            "significant": significant, "gain": gain, "gain_ci95": gain_half,
            "gain_resolved": gain_resolved, "share": share,
            "rising": significant and gain_resolved and share is not None
            and share >= min_share}
