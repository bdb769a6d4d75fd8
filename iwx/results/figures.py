"""Figures: mean ± 95% CI curves (the paper's figures 1-3) and a run's training return.

One drawing for every tool: ``iwx.run``'s adaptation.png, ``iwx.compare``'s and
``iwx.report``'s figures all come from :func:`plot_curves` (one set of axes) or
:func:`plot_panels` (one set of axes per task). Matplotlib is imported
only when a figure is drawn (Agg backend: no display needed).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Panel:
    """One set of axes: its curves and references (see :func:`plot_curves`); ``title``
    names it (e.g. its task) when a figure has several; ``xlabel`` overrides the figure's."""

    curves: Sequence
    title: str = ""
    exploration: int | None = None
    oracle: float | None = None
    baseline: tuple[str, float] | None = None
    xlabel: str | None = None
    bounds: tuple[float, float] | None = None   # the metric's range, e.g. (0, 1): a rate


#: The range of a rate (a success rate): its shaded interval is drawn inside it.
RATE = (0.0, 1.0)


def metric_bounds(metric: str) -> tuple[float, float] | None:
    """The range a logged metric can take, where it has one: a success rate's
    (``train/success``) is [0, 1]; None for the others."""
    return RATE if metric.rsplit("/", 1)[-1] == "success" else None


def band(mean: np.ndarray, half: np.ndarray, bounds: tuple[float, float] | None = None):
    """(lower, upper) edges of the shaded interval mean ± half, clipped to ``bounds``.

    A Student-t interval over 2-3 seeds of a success rate easily reaches below 0 or above
    1; a value the metric cannot take is not drawn (the table keeps the interval as
    computed). mean, half [T] -> lower, upper [T]."""
    lower, upper = mean - half, mean + half
    if bounds is not None:
        lower, upper = np.clip(lower, *bounds), np.clip(upper, *bounds)
    return lower, upper


def plot_curves(curves: Sequence, paths: Sequence[str | Path], *, xlabel: str, ylabel: str,
                title: str = "", note: str = "", exploration: int | None = None,
                oracle: float | None = None, baseline: tuple[str, float] | None = None,
                integer_x: bool = False) -> list[Path]:
    """Each curve (``.label``, ``.x``, ``.mean``, ``.ci95``; e.g. :class:`stats.Curve`)
    as a line with its 95% CI shaded, written to every path (PNG, SVG, ... by suffix).

    ``exploration``: the first episodes, shaded grey (acting from π0 where a variant
    has one); ``oracle`` / ``baseline``: reference returns drawn as horizontal lines;
    ``note`` (smoothing, units) goes under the title. A curve may also carry ``n`` (how
    many runs each point averages: the CI is shaded only where it is ≥ 2) and ``ends``
    ({"x"} where one of its runs ends: marked |)."""
    return plot_panels([Panel(curves, exploration=exploration, oracle=oracle,
                              baseline=baseline)], paths, xlabel=xlabel, ylabel=ylabel,
                       title=title, note=note, integer_x=integer_x)


def plot_panels(panels: Sequence[Panel], paths: Sequence[str | Path], *, xlabel: str,
                ylabel: str, title: str = "", note: str = "",
                integer_x: bool = False) -> list[Path]:
    """:func:`plot_curves` with one set of axes per panel, side by side (three a row), each
    with its own title, legend and references; ``title`` and ``note`` head the figure."""
    plt = _pyplot()
    many = max((len(p.curves) for p in panels), default=0) > 4
    cols = min(3, len(panels))
    rows = -(-len(panels) // cols)
    width = 9.5 if many else 6.5
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, 4.4 * rows), dpi=120,
                             squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        _draw(ax, panel, panel.xlabel or xlabel, ylabel, integer_x, many)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    # wrapped: a long note (many groups' windows) must not run off the figure
    heading = "\n".join(textwrap.fill(part, (120 if many else 95) * cols)
                        for part in (title, note) if part)
    if len(panels) == 1:
        panel_title = panels[0].title
        axes[0, 0].set_title("\n".join(p for p in (heading, panel_title) if p), fontsize=8)
    else:
        fig.suptitle(heading, fontsize=9)
    fig.tight_layout()
    written = [Path(p) for p in paths]
    for path in written:
        fig.savefig(path)
    plt.close(fig)
    return written


FEW = 3   # intervals over fewer runs than this may be clipped at the axes (y_range)


def y_range(panel: Panel) -> tuple[float, float] | None:
    """The y limits of a panel whose intervals over 2 runs would flatten it, else None
    (matplotlib's own). A 95% Student t interval over 2 runs is 12.7 standard errors
    wide on each side (t at 1 degree of freedom) and easily spans ten times the lines
    themselves; the limits then cover every mean, the references and every interval over
    :data:`FEW` or more runs (``n`` per point where a line has it, else its ``units``;
    a line saying neither counts as many), with a 5% margin, and the wide intervals are
    clipped at the axes. A metric with a range of its own (a rate: ``bounds``) keeps
    matplotlib's limits: its intervals are drawn within that range already."""
    if panel.bounds is not None:
        return None
    inner, outer = [], []
    for c in panel.curves:
        mean, half = np.asarray(c.mean, dtype=float), np.asarray(c.ci95, dtype=float)
        lower, upper = band(mean, half)
        n = getattr(c, "n", None)
        runs = np.asarray(n) if n is not None else np.full(len(mean), getattr(c, "units", FEW))
        shaded = runs >= 2 if n is not None else np.ones(len(mean), bool)
        many = runs >= FEW
        inner += [mean, lower[many & shaded], upper[many & shaded]]
        outer += [lower[shaded], upper[shaded]]
    inner += [np.asarray([v]) for v in (panel.oracle, panel.baseline and panel.baseline[1])
              if v is not None]
    inner_values, outer_values = _finite(inner), _finite(outer)
    if not inner_values.size or not outer_values.size:
        return None
    low, high = inner_values.min(), inner_values.max()
    pad = 0.05 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
    if outer_values.min() >= low - pad and outer_values.max() <= high + pad:
        return None
    return float(low - pad), float(high + pad)


def _finite(arrays: list[np.ndarray]) -> np.ndarray:
    """The finite values of ``arrays``, flattened into one."""
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    return values[np.isfinite(values)]


def _draw(ax, panel: Panel, xlabel: str, ylabel: str, integer_x: bool, many: bool) -> None:
    markers = len(panel.curves[0].x) <= 30 if panel.curves else False
    ended = False
    for c in panel.curves:
        x, mean, half = np.asarray(c.x), np.asarray(c.mean), np.asarray(c.ci95)
        (line,) = ax.plot(x, mean, marker="o" if markers else None, ms=3, label=c.label)
        n = getattr(c, "n", None)
        where = None if n is None else np.asarray(n) >= 2
        ax.fill_between(x, *band(mean, half, panel.bounds), where=where, alpha=0.2,
                        color=line.get_color())
        ends = [e["x"] for e in getattr(c, "ends", None) or []]
        if ends:
            at = np.interp(ends, x, mean)
            ax.plot(ends, at, ls="none", marker="|", ms=12, mew=2, color=line.get_color(),
                    label=None if ended else "a run ends (fewer runs after)")
            ended = True
    if panel.exploration:
        ax.axvspan(0.5, panel.exploration + 0.5, color="grey", alpha=0.1,
                   label="exploration (acting from π0\nwhere a variant has one)")
    if panel.oracle is not None:
        ax.axhline(panel.oracle, color="k", ls="--", lw=1, label="goal-knowing oracle")
    if panel.baseline is not None:
        ax.axhline(panel.baseline[1], color="k", ls=":", lw=1, label=panel.baseline[0])
    if integer_x:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    limits = y_range(panel)
    if limits is not None:
        ax.set_ylim(*limits)
        ax.text(0.01, 0.01, "intervals over 2 runs clipped at the axes", fontsize=6,
                color="0.4", transform=ax.transAxes, va="bottom")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if panel.title:
        ax.set_title(panel.title, fontsize=8)
    if many:   # keep the curves visible: the legend goes beside the axes
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)


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
