"""A sweep's outcome: each configuration's mean ± 95% CI across seeds, and the best one.

Appendix A.2 chooses adaptation hyperparameters on a small validation set of
tasks; a sweep's trials adapt on the validation split by default, so the best
configuration here is chosen without looking at the held-out tasks. Confidence
intervals are Student t across seeds (one value per seed: the metric of that
seed's run), as everywhere in iwx (``iwx.results.stats.mean_ci``).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from iwx.results.stats import mean_ci


@dataclasses.dataclass
class Row:
    params: dict
    scores: dict[int, float]            # seed -> metric
    run_ids: dict[int, str]
    errors: list[str] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.params.items()) or "(base config)"

    def stats(self) -> tuple[float, float, int]:
        values = np.array([self.scores[s] for s in sorted(self.scores)], dtype=np.float64)
        if len(values) == 0:
            return math.nan, math.nan, 0
        mean, half = mean_ci(values)
        return float(mean), float(half), len(values)


def rows_from_trials(trials: list[dict]) -> list[Row]:
    """Group trial records ({params, scores: {seed: v}, run_ids, error}) by configuration,
    in the order configurations first appear."""
    rows: dict[str, Row] = {}
    for t in trials:
        key = repr(sorted(t["params"].items()))
        row = rows.setdefault(key, Row(dict(t["params"]), {}, {}))
        row.scores.update(t.get("scores", {}))
        row.run_ids.update(t.get("run_ids", {}))
        if t.get("error"):
            row.errors.append(t["error"])
    return list(rows.values())


def best(rows: list[Row], mode: str) -> Row | None:
    scored = [r for r in rows if r.stats()[2] > 0 and not math.isnan(r.stats()[0])]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.stats()[0])


def table(rows: list[Row], metric: str, mode: str, seeds) -> str:
    """Markdown: one row per configuration, the best marked."""
    top = best(rows, mode)
    lines = [f"| configuration | {metric} (mean ± 95% CI over seeds) | seeds | runs | |",
             "|---|---|---|---|---|"]
    order = sorted(rows, key=lambda r: (-1 if mode == "max" else 1) * np.nan_to_num(
        r.stats()[0], nan=-np.inf if mode == "max" else np.inf))
    for r in order:
        mean, half, n = r.stats()
        cell = f"{mean:.3f} ± {half:.3f}" if n else "—"
        missing = [s for s in seeds if s not in r.scores]
        note = "**best**" if r is top else ""
        if missing:
            note = (note + " " if note else "") + f"missing seeds {missing}"
        if r.errors:
            note = (note + " " if note else "") + f"{len(r.errors)} failed"
        runs = ", ".join(r.run_ids[s] for s in sorted(r.run_ids))
        lines.append(f"| {r.label} | {cell} | {n} | {runs} | {note} |")
    return "\n".join(lines)


def as_json(rows: list[Row], metric: str, mode: str) -> dict:
    top = best(rows, mode)
    out = []
    for r in rows:
        mean, half, n = r.stats()
        out.append({"params": r.params, "label": r.label, "mean": mean, "ci95": half, "n": n,
                    "scores": {str(s): v for s, v in sorted(r.scores.items())},
                    "run_ids": {str(s): v for s, v in sorted(r.run_ids.items())},
                    "errors": r.errors})
    return {"metric": metric, "mode": mode, "configurations": out,
            "best": None if top is None else {"params": top.params, "label": top.label,
                                              "mean": top.stats()[0], "ci95": top.stats()[1]}}
