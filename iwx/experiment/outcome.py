"""What a finished run reports: its results schema (results.json), figures and summary.

``pretrain_and_adapt`` returns {"returns": {variant: [tasks, seeds, episodes]},
"oracle", "baseline", "test_goals", "exploration_episodes", "adapt_on"}; from it
and the logged history this module makes

* :func:`headlines`: per variant, appendix A.2's numbers (last 3 episodes, after
  exploration; mean ± 95% CI across tasks), as a fraction of the oracle and
  over the lower baseline where the task has them;
* :func:`results_record`: the ``results.json`` artifact (every return, the
  references, the split, the headlines, the final training return);
* :func:`write_figures`: ``adaptation.png`` and ``training.png``;
* :func:`summary_text`: what ``iwx.run`` prints at the end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from iwx.results import figures, stats, tables

TRAIN_FINAL = 10   # logged training returns averaged for a run's final training return


def final_return(history, window: int = TRAIN_FINAL) -> float | None:
    """Mean of the last ``window`` logged training returns (None without training)."""
    values = [v for name, v, _ in history if name == "train/return"][-window:]
    return float(sum(values) / len(values)) if values else None


def headlines(result: dict) -> dict[str, dict]:
    """{variant: headline numbers} (:func:`iwx.results.stats.summary`), with
    ``last3_fraction_of_oracle`` / ``last3_minus_baseline`` where the task has them."""
    returns, oracle, baseline = result["returns"], result["oracle"], result["baseline"]
    explore = result["exploration_episodes"]
    out = {name: stats.summary(r, explore) for name, r in returns.items()}
    if oracle is not None:
        for h in out.values():
            h["last3_fraction_of_oracle"] = h["last3_mean"] / float(np.mean(oracle))
    if baseline is not None:
        for h in out.values():
            h["last3_minus_baseline"] = h["last3_mean"] - float(np.mean(baseline[1]))
    return out


def results_record(result: dict, history, headline: dict[str, dict]) -> dict:
    """The ``results.json`` schema: returns [task, seed, episode] per variant, oracle
    [task], baseline {name, returns [task]}, test_goals, exploration_episodes,
    adapt_on, train_final_return, summary (the headlines)."""
    oracle, baseline = result["oracle"], result["baseline"]
    return {
        "returns": {n: r.tolist() for n, r in result["returns"].items()},
        "oracle": None if oracle is None else oracle.tolist(),
        "baseline": None if baseline is None else {"name": baseline[0],
                                                   "returns": baseline[1].tolist()},
        "test_goals": np.asarray(result["test_goals"]).tolist(),
        "exploration_episodes": result["exploration_episodes"],
        "adapt_on": result["adapt_on"],
        "train_final_return": final_return(history),
        "summary": headline}


def write_figures(result: dict, history, out: Path, title: str) -> None:
    """``adaptation.png`` (when the run adapted) and ``training.png`` (when it trained)."""
    returns, oracle, baseline = result["returns"], result["oracle"], result["baseline"]
    if returns:
        figures.plot_curves(
            [stats.curve(name, r) for name, r in returns.items()], [out / "adaptation.png"],
            xlabel="adaptation episode", ylabel="mean held-out return (95% CI over tasks)",
            title=title, exploration=result["exploration_episodes"],
            oracle=None if oracle is None else float(np.mean(oracle)),
            baseline=None if baseline is None else (baseline[0], float(np.mean(baseline[1]))),
            integer_x=True)
    figures.plot_training_history(history, out / "training.png", title=title)


def summary_text(result: dict, history, headline: dict[str, dict]) -> str:
    """The table per adaptation episode (or the last training return), the references
    and one headline line per variant."""
    returns, oracle, baseline = result["returns"], result["oracle"], result["baseline"]
    parts = []
    if returns:
        which = "held-out" if result["adapt_on"] == "test" else "validation"
        parts.append(f"\nMean {which} return per adaptation episode (± 95% CI across tasks):")
        parts.append(tables.adaptation_table(returns, oracle))
    else:
        last = [v for n, v, _ in history if n == "train/return"][-1:]
        parts.append("\nmulti-task training only (no adaptation variants)"
                     + (f": last training return {last[0]:.2f}" if last else ""))
    if oracle is not None:
        parts.append(f"\ngoal-knowing oracle: {np.mean(oracle):.2f} per episode")
    if baseline is not None:
        m, h = stats.mean_ci(baseline[1])
        parts.append(f"\n{baseline[0]}: {m:.2f} ± {h:.2f} per episode")
    for name, h in headline.items():
        line = (f"{name}: last 3 episodes {h['last3_mean']:.2f} ± {h['last3_ci95']:.2f}, "
                f"after exploration {h['post_exploration_mean']:.2f} "
                f"± {h['post_exploration_ci95']:.2f}")
        if "last3_fraction_of_oracle" in h:
            line += f", {100 * h['last3_fraction_of_oracle']:.0f}% of the oracle"
        if "last3_minus_baseline" in h:
            line += f", {h['last3_minus_baseline']:+.2f} over {baseline[0]}"
        parts.append(line)
    return "\n".join(parts)
