"""Figures: mean ± 95% CI curves (the paper's figures 1-3) and a run's training return.

One drawing for every tool: ``iwx.run``'s adaptation.png, ``iwx.compare``'s and
``iwx.report``'s figures all come from :func:`plot_curves`. Matplotlib is imported
only when a figure is drawn (Agg backend: no display needed).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(curves: Sequence, paths: Sequence[str | Path], *, xlabel: str, ylabel: str,
                title: str = "", note: str = "", exploration: int | None = None,
                oracle: float | None = None, baseline: tuple[str, float] | None = None,
                integer_x: bool = False) -> list[Path]:
    """Each curve (``.label``, ``.x``, ``.mean``, ``.ci95``; e.g. :class:`stats.Curve`)
    as a line with its 95% CI shaded, written to every path (PNG, SVG, ... by suffix).

    ``exploration``: the first episodes, shaded grey (acting from π0 where a variant
    has one); ``oracle`` / ``baseline``: reference returns drawn as horizontal lines;
    ``note`` (smoothing, units) goes under the title."""
    plt = _pyplot()
    many = len(curves) > 4
    fig, ax = plt.subplots(figsize=(9.5 if many else 6.5, 4.4), dpi=120)
    markers = len(curves[0].x) <= 30 if curves else False
    for c in curves:
        x, mean, half = np.asarray(c.x), np.asarray(c.mean), np.asarray(c.ci95)
        ax.plot(x, mean, marker="o" if markers else None, ms=3, label=c.label)
        ax.fill_between(x, mean - half, mean + half, alpha=0.2)
    if exploration:
        ax.axvspan(0.5, exploration + 0.5, color="grey", alpha=0.1,
                   label="exploration (acting from π0\nwhere a variant has one)")
    if oracle is not None:
        ax.axhline(oracle, color="k", ls="--", lw=1, label="goal-knowing oracle")
    if baseline is not None:
        ax.axhline(baseline[1], color="k", ls=":", lw=1, label=baseline[0])
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    # wrapped: a long note (many groups' windows) must not run off the figure
    width = 120 if many else 95
    heading = "\n".join(textwrap.fill(part, width) for part in (title, note) if part)
    ax.set_title(heading, fontsize=8)
    if many:   # keep the curves visible: the legend goes beside the axes
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    written = [Path(p) for p in paths]
    for path in written:
        fig.savefig(path)
    plt.close(fig)
    return written


def plot_training_history(history, path: str | Path, *, title: str = "") -> bool:
    """One run's training return (and success rate, where logged) against learner
    updates. ``history``: (name, value, step) triples as ``MemoryLogger`` keeps them.
    Returns False (and writes nothing) when no training return was logged."""
    series: dict[str, list[tuple[int, float]]] = {}
    for name, value, step in history:
        if name in ("train/return", "train/success"):
            series.setdefault(name, []).append((step, value))
    if "train/return" not in series:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    steps, values = zip(*series["train/return"])
    ax.plot(steps, values, label="training return (mean over the log window)")
    ax.set_xlabel("learner updates")
    ax.set_ylabel("episode return on training tasks")
    if "train/success" in series:
        twin = ax.twinx()
        s_steps, s_values = zip(*series["train/success"])
        twin.plot(s_steps, s_values, color="tab:orange", alpha=0.6, label="success rate")
        twin.set_ylabel("success rate")
        twin.legend(fontsize=8, loc="lower right")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
