"""Has a training curve stopped rising? Figure 2 asks for every method "trained to a plateau".

The check compares the end of a logged training series with the stretch just before it:
the last ``fraction`` of the logged points against the ``fraction`` before them, the
difference of their means with a Welch 95% interval. A curve whose difference is above
zero by more than the interval is *still rising*; otherwise the budget found no rise that
the noise cannot explain, which is what "plateaued" can honestly mean from one run.

The points are treated as independent draws around each stretch's mean. Logged training
returns are means over the episodes of one logging period, so neighbouring points share
nothing but the policy's slow drift; the drift inside a stretch widens its variance,
which makes the check slower to call a rise, not quicker.
"""

from __future__ import annotations

import math

import numpy as np


def plateau(values, fraction: float = 0.2, confidence: float = 0.95) -> dict | None:
    """``values``: [n] a training series as logged, in order, at equal spacing (e.g.
    ``train/return`` every ``log_period`` updates; NaN points are dropped first).

    k = max(2, ⌊n · fraction⌋) points per stretch; ``before`` = the k points before the
    last k. Returns {"points": k, "before": mean, "last": mean, "change": last − before,
    "ci95": Welch half-width of the change, "rising": change − ci95 > 0}; None when
    fewer than 2k points were logged."""
    from scipy import stats

    if not 0 < fraction <= 0.5:
        raise ValueError(f"plateau: fraction must be in (0, 0.5], got {fraction}")
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    k = max(2, int(len(x) * fraction))
    if len(x) < 2 * k:
        return None
    before, last = x[-2 * k:-k], x[-k:]
    v1, v2 = before.var(ddof=1) / k, last.var(ddof=1) / k       # squared standard errors
    se = math.sqrt(v1 + v2)
    if se == 0.0:
        half = 0.0
    else:                                                        # Welch–Satterthwaite
        df = (v1 + v2) ** 2 / (v1 ** 2 / (k - 1) + v2 ** 2 / (k - 1))
        half = float(stats.t.ppf(0.5 + confidence / 2, df) * se)
    change = float(last.mean() - before.mean())
    return {"points": k, "before": float(before.mean()), "last": float(last.mean()),
            "change": change, "ci95": half, "rising": bool(change - half > 0)}
