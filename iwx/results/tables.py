"""Markdown tables of adaptation returns (mean ± 95% CI across units, :mod:`.stats`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from iwx.results.stats import mean_ci, summary, unit_values


def fmt(mean: float | None, half: float) -> str:
    """'m ± h' with two decimals; '—' where there is no number."""
    if mean is None or not math.isfinite(mean):
        return "—"
    return f"{mean:.2f} ± {half:.2f}"


def adaptation_table(results: Mapping[str, np.ndarray], oracle: np.ndarray | None = None) -> str:
    """One row per adaptation episode, one column per variant (returns [units, seeds,
    episodes]): mean return ± 95% CI across units; the oracle's mean ± CI in every row."""
    episodes = next(iter(results.values())).shape[-1]
    header = "| episode | " + " | ".join(results) + (" | oracle |" if oracle is not None else " |")
    lines = [header, "|" + "---|" * (len(results) + 1 + (oracle is not None))]
    stats_ = {name: mean_ci(unit_values(r)) for name, r in results.items()}
    oracle_cell = ""
    if oracle is not None:
        m, h = mean_ci(oracle)
        oracle_cell = f" {m:.2f} ± {h:.2f} |"
    for e in range(episodes):
        cells = [f"{stats_[n][0][e]:.2f} ± {stats_[n][1][e]:.2f}" for n in results]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |" + oracle_cell)
    return "\n".join(lines)


def headline_table(pooled: Mapping[str, np.ndarray], exploration: Mapping[str, int],
                   last: int) -> str:
    """One row per line: its units, seeds per unit, and the last-``last``-episodes and
    after-exploration means ± 95% CI (appendix A.2)."""
    lines = [f"| method | units | seeds per unit | last {last} episodes | after exploration |",
             "|---|---|---|---|---|"]
    for label, r in pooled.items():
        s = summary(r, exploration[label], last=last)
        lines.append(f"| {label} | {r.shape[0]} | {r.shape[1]} | {s['last3_mean']:.2f} ± "
                     f"{s['last3_ci95']:.2f} | {s['post_exploration_mean']:.2f} ± "
                     f"{s['post_exploration_ci95']:.2f} |")
    return "\n".join(lines)
