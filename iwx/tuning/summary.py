"""A sweep's outcome: each configuration's mean ± 95% CI across seeds, and the best one.

Appendix A.2 chooses adaptation hyperparameters on a small validation set of
tasks; a sweep's trials adapt on the validation split by default, so the best
configuration here is chosen without looking at the held-out tasks. Confidence
intervals are Student t across seeds (one value per seed: the metric of that
seed's run), as everywhere in iwx (``iwx.results.stats.mean_ci``).

Rows are built from per-(configuration, seed) outcomes (:mod:`iwx.tuning.outcomes`):
a failed seed is shown as failed and never enters a mean; a configuration with a
failed seed is never the best (a configuration that diverges on one seed in three is
not a safe pick), and is listed after the ranked ones; seeds still running in another
process, interrupted or not started are listed as missing.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from iwx.results.stats import mean_ci
from iwx.tuning.outcomes import COMPLETED, ELSEWHERE, FAILED, INTERRUPTED, NOT_STARTED


@dataclasses.dataclass
class Row:
    params: dict
    scores: dict[int, float] = dataclasses.field(default_factory=dict)   # seed -> metric
    run_ids: dict[int, str] = dataclasses.field(default_factory=dict)
    failed: dict[int, str] = dataclasses.field(default_factory=dict)     # seed -> error
    elsewhere: dict[int, str] = dataclasses.field(default_factory=dict)  # seed -> holder
    interrupted: list[int] = dataclasses.field(default_factory=list)

    @property
    def label(self) -> str:
        return ", ".join(f"{k} = {v}" for k, v in self.params.items()) or "(base config)"

    def stats(self) -> tuple[float, float, int]:
        values = np.array([self.scores[s] for s in sorted(self.scores)], dtype=np.float64)
        if len(values) == 0:
            return math.nan, math.nan, 0
        mean, half = mean_ci(values)
        return float(mean), float(half), len(values)

    @property
    def ranked(self) -> bool:
        """Whether the row may be the best: some score, no failed seed, a finite mean."""
        mean, _, n = self.stats()
        return n > 0 and not self.failed and math.isfinite(mean)


def _key(params: dict) -> str:
    return repr(list(params.items()))


def rows_from_outcomes(outcomes, configurations=()) -> list[Row]:
    """One row per configuration: those of ``configurations`` (a grid's points, in
    order, so a configuration no trial reached still has its row), then any other
    configuration the outcomes name, in the order they first appear."""
    rows: dict[str, Row] = {}
    for params in configurations:
        rows.setdefault(_key(params), Row(dict(params)))
    for o in outcomes:
        row = rows.setdefault(_key(o.params), Row(dict(o.params)))
        if o.state == COMPLETED:
            row.scores[o.seed], row.run_ids[o.seed] = o.score, o.run_id
        elif o.state == FAILED:
            row.failed[o.seed] = o.error or "failed"
        elif o.state == ELSEWHERE:
            row.elsewhere[o.seed] = o.error or "running in another process"
        elif o.state == INTERRUPTED:
            row.interrupted.append(o.seed)
    return list(rows.values())


def counts(outcomes, expected: int) -> dict:
    """How many (configuration, seed) results are in each state, of ``expected``;
    those no outcome covers (a search's configurations not proposed yet) are not
    started."""
    n = {state: sum(1 for o in outcomes if o.state == state)
         for state in (COMPLETED, FAILED, ELSEWHERE, INTERRUPTED)}
    n[NOT_STARTED] = max(0, expected - sum(n.values()))
    return {"expected": expected, "completed": n[COMPLETED], "failed": n[FAILED],
            "running_elsewhere": n[ELSEWHERE], "interrupted": n[INTERRUPTED],
            "not_started": n[NOT_STARTED],
            "missing": n[ELSEWHERE] + n[INTERRUPTED] + n[NOT_STARTED]}


def counts_line(c: dict) -> str:
    """'1 of 6 (configuration, seed) results completed, 1 failed, 4 missing (...)'."""
    parts = [f"{c['completed']} of {c['expected']} (configuration, seed) results completed"]
    if c["failed"]:
        parts.append(f"{c['failed']} failed")
    if c["missing"]:
        why = [f"{c[k]} {name}" for k, name in (
            ("interrupted", "interrupted"), ("not_started", "not started"),
            ("running_elsewhere", "still running in another process")) if c[k]]
        parts.append(f"{c['missing']} missing ({', '.join(why)})")
    return ", ".join(parts)


def best(rows: list[Row], mode: str) -> Row | None:
    scored = [r for r in rows if r.ranked]
    if not scored:
        return None
    pick = max if mode == "max" else min
    return pick(scored, key=lambda r: r.stats()[0])


def _order(rows: list[Row], mode: str) -> list[Row]:
    """Ranked rows best first, then rows with a failed seed, then rows without a score."""
    sign = -1.0 if mode == "max" else 1.0
    return sorted(rows, key=lambda r: (0 if r.ranked else 1 if r.stats()[2] else 2,
                                       sign * r.stats()[0] if r.ranked else 0.0))


def _note(r: Row, top: Row | None, seeds) -> str:
    notes = ["**best**"] if r is top else []
    for seed, why in sorted(r.failed.items()):
        notes.append(f"seed {seed} FAILED: {why}")
    if r.elsewhere:
        notes.append(f"seeds {sorted(r.elsewhere)} still running in another process")
    missing = [s for s in seeds
               if s not in r.scores and s not in r.failed and s not in r.elsewhere]
    if missing:
        cut = [s for s in missing if s in r.interrupted]
        notes.append(f"missing seeds {missing}" + (f" ({cut} interrupted)" if cut else ""))
    return "; ".join(notes).replace("|", "\\|")


def table(rows: list[Row], metric: str, mode: str, seeds) -> str:
    """Markdown: one row per configuration, the best marked."""
    top = best(rows, mode)
    lines = [f"| configuration | {metric} (mean ± 95% CI over seeds) | seeds | runs | |",
             "|---|---|---|---|---|"]
    for r in _order(rows, mode):
        mean, half, n = r.stats()
        cell = f"{mean:.3f} ± {half:.3f}" if n else "—"
        runs = ", ".join(r.run_ids[s] for s in sorted(r.run_ids))
        lines.append(f"| {r.label} | {cell} | {n} | {runs} | {_note(r, top, seeds)} |")
    return "\n".join(lines)


def as_json(rows: list[Row], metric: str, mode: str, seeds=()) -> dict:
    top = best(rows, mode)
    out = []
    for r in rows:
        mean, half, n = r.stats()
        out.append({"params": r.params, "label": r.label, "mean": mean, "ci95": half, "n": n,
                    "ranked": r.ranked,
                    "scores": {str(s): v for s, v in sorted(r.scores.items())},
                    "run_ids": {str(s): v for s, v in sorted(r.run_ids.items())},
                    "failed": {str(s): v for s, v in sorted(r.failed.items())},
                    "running_elsewhere": {str(s): v for s, v in sorted(r.elsewhere.items())},
                    "interrupted": sorted(r.interrupted),
                    "missing_seeds": [s for s in seeds if s not in r.scores
                                      and s not in r.failed],
                    "errors": [r.failed[s] for s in sorted(r.failed)]})
    return {"metric": metric, "mode": mode, "configurations": out,
            "best": None if top is None else {"params": top.params, "label": top.label,
                                              "mean": top.stats()[0], "ci95": top.stats()[1]}}
