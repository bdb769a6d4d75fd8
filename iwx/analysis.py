"""Statistics and figures over adaptation returns (shared by run and report).

Returns arrays are [tasks, seeds, episodes]. Following appendix A.2, a task's
value is the mean over its adaptation seeds; means and 95% confidence
intervals (Student t) are then taken across tasks.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import stats


def mean_ci(values: np.ndarray, axis: int = 0, confidence: float = 0.95):
    """Mean and half-width of the ``confidence`` t-interval along ``axis``."""
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[axis]
    mean = values.mean(axis=axis)
    if n < 2:
        return mean, np.zeros_like(mean)
    sem = values.std(axis=axis, ddof=1) / np.sqrt(n)
    return mean, sem * stats.t.ppf(0.5 + confidence / 2, n - 1)


def per_task(returns: np.ndarray) -> np.ndarray:
    """[tasks, seeds, episodes] -> [tasks, episodes] (mean over seeds)."""
    return np.asarray(returns).mean(axis=1)


def summary(returns: np.ndarray, exploration_episodes: int, last: int = 3) -> dict:
    """Headline numbers of one variant: last-``last``-episodes and post-exploration means."""
    tasks = per_task(returns)
    last_mean, last_ci = mean_ci(tasks[:, -last:].mean(axis=1))
    if tasks.shape[1] > exploration_episodes:
        post_mean, post_ci = mean_ci(tasks[:, exploration_episodes:].mean(axis=1))
    else:  # no episode after exploration
        post_mean = post_ci = float("nan")
    return {"last3_mean": float(last_mean), "last3_ci95": float(last_ci),
            "post_exploration_mean": float(post_mean), "post_exploration_ci95": float(post_ci)}


def adaptation_table(results: Mapping[str, np.ndarray], oracle: np.ndarray | None = None) -> str:
    """Markdown table: mean held-out return ± 95% CI per adaptation episode, per variant."""
    episodes = next(iter(results.values())).shape[-1]
    header = "| episode | " + " | ".join(results) + (" | oracle |" if oracle is not None else " |")
    lines = [header, "|" + "---|" * (len(results) + 1 + (oracle is not None))]
    stats_ = {name: mean_ci(per_task(r)) for name, r in results.items()}
    oracle_cell = ""
    if oracle is not None:
        m, h = mean_ci(oracle)
        oracle_cell = f" {m:.2f} ± {h:.2f} |"
    for e in range(episodes):
        cells = [f"{stats_[n][0][e]:.2f} ± {stats_[n][1][e]:.2f}" for n in results]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |" + oracle_cell)
    return "\n".join(lines)


def plot_adaptation(results: Mapping[str, np.ndarray], path, *, oracle: np.ndarray | None = None,
                    baseline: tuple[str, np.ndarray] | None = None,
                    exploration_episodes: int | None = None, title: str = "") -> None:
    """Mean return per adaptation episode, 95% CI shaded, one line per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    many = len(results) > 4
    fig, ax = plt.subplots(figsize=(9 if many else 6, 4), dpi=120)
    for name, r in results.items():
        mean, half = mean_ci(per_task(r))
        x = np.arange(1, len(mean) + 1)
        ax.plot(x, mean, marker="o", label=name)
        ax.fill_between(x, mean - half, mean + half, alpha=0.25)
    if oracle is not None:
        ax.axhline(float(np.mean(oracle)), color="k", ls="--", lw=1, label="goal-knowing oracle")
    if baseline is not None:
        ax.axhline(float(np.mean(baseline[1])), color="k", ls=":", lw=1, label=baseline[0])
    if exploration_episodes:
        ax.axvspan(0.5, exploration_episodes + 0.5, color="grey", alpha=0.1,
                   label="exploration (acting from π0 where\na variant has one)")
    ax.set_xlabel("adaptation episode")
    ax.set_ylabel("mean held-out return (95% CI over tasks)")
    ax.set_title(title, fontsize=9)
    if many:   # keep the curves visible: the legend goes beside the axes
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_training(history, path, *, title: str = "") -> bool:
    """Training return (and success rate, where logged) against learner updates.

    ``history``: (name, value, step) triples as kept by ``MemoryLogger``. Returns
    False (and writes nothing) when no training return was logged.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for name, value, step in history:
        if name in ("train/return", "train/success"):
            series.setdefault(name, []).append((step, value))
    if "train/return" not in series:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
