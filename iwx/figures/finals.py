"""The table of a training figure (figures 1 and 6): each line's final numbers, across its
seeds and seed by seed.

A line's final value per run is the mean of the last ``last`` unsmoothed chunks the run
reached (:func:`final_numbers`); the table gives mean ± 95% CI across runs, the env steps
the runs played, and each run's own final return and success rate beside its seed and
record id, since a mean of three seeds hides which seed carried it (a Go To Ring run's
seed draws its tasks, so seeds are compared one against another across methods).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from iwx.experiment.store import RecordedRun
from iwx.results.curves import Line
from iwx.results.stats import mean_ci
from iwx.results.tables import fmt


def final_numbers(line: Line, last: int) -> dict:
    """A training line's table numbers: per run (a row of ``line.raw``, [runs, chunks],
    NaN where a run did not reach a chunk) the mean of the last ``last`` chunks it
    reached, then mean ± 95% CI across runs. ``per_run`` lists the runs that reached a
    chunk, ``per_run_ids`` their record ids (``line.run_ids``, where the line has them)."""
    finals, ids = [], []
    run_ids = list(line.run_ids) + [None] * (len(line.raw) - len(line.run_ids))
    for run_id, row in zip(run_ids, np.asarray(line.raw, dtype=np.float64)):
        at = np.flatnonzero(~np.isnan(row))
        if len(at):
            finals.append(float(np.mean(row[at[-last:]])))
            ids.append(run_id)
    if not finals:
        return {"final_mean": None, "final_ci95": None, "runs": 0, "per_run": [],
                "per_run_ids": []}
    mean, half = mean_ci(np.array(finals))
    return {"final_mean": float(mean), "final_ci95": float(half), "runs": len(finals),
            "per_run": finals, "per_run_ids": ids}


def reached(line: Line, records: dict[int, RecordedRun]) -> list[float]:
    """The env steps each run of a training line played (its last ``train/env_steps``),
    or, for runs that logged none, the last chunk it reached."""
    by_id = {r.id: r for r in records.values()}
    out = []
    for i, run_id in enumerate(line.run_ids):
        logged = by_id[run_id].metrics.get("train/env_steps") if run_id in by_id else None
        if logged is not None and len(logged[1]):
            out.append(float(logged[1][-1]))
        else:
            at = np.flatnonzero(~np.isnan(np.asarray(line.raw[i], dtype=np.float64)))
            if len(at):
                out.append(float(line.x[at[-1]]))
    return out


def reached_text(reached: list[float]) -> str:
    if not reached:
        return "—"
    low, high = min(reached), max(reached)
    return f"{low:,.0f}" if low == high else f"{low:,.0f}–{high:,.0f}"


def per_seed_text(returns: dict, rates: dict | None, records: dict[int, RecordedRun]) -> str:
    """Each run's final return (and success rate, where logged), ordered by seed:
    ``seed 0 (#114): 184.9 / 0.90 · seed 1 (#122): …``; a run whose record is not at
    hand shows its record id alone."""
    by_id = {r.id: r for r in records.values()}
    rate_of = dict(zip(rates["per_run_ids"], rates["per_run"])) if rates else {}
    parts = []
    for run_id, value in zip(returns["per_run_ids"], returns["per_run"]):
        seed = by_id[run_id].config.get("seed") if run_id in by_id else None
        rate = rate_of.get(run_id)
        text = f"{value:.2f}" + (f" / {rate:.2f}" if rate is not None else "")
        parts.append((seed if seed is not None else float("inf"),
                      f"{'seed ' + str(seed) if seed is not None else 'run'} (#{run_id}): "
                      f"{text}"))
    return " · ".join(p for _, p in sorted(parts, key=lambda sp: sp[0])) or "—"


def training_table(drawings: Sequence, success: list[Line], records: dict[int, RecordedRun],
                   last: int) -> str:
    """Markdown: one row per spec run of each panel (``drawings``: each with ``panel.task``
    and its return ``lines``): the seeds drawn, the env steps they played, final return
    and final success rate (:func:`final_numbers`), then each seed's own return / rate."""
    rows = [f"| panel | run | seeds | env steps played | return, last {last} chunks | "
            f"success rate, last {last} chunks | per seed (record): return / success |",
            "|---|---|---|---|---|---|---|"]
    for d in drawings:
        if not d.lines:
            rows.append(f"| {d.panel.task} | (no run that trained) | | | — | — | — |")
        for line in d.lines:
            h = final_numbers(line, last)
            rate = next((final_numbers(s, last) for s in success
                         if s.task == line.task and s.group == line.group), None)
            rate_text = fmt(rate["final_mean"], rate["final_ci95"]) if rate and rate["runs"] \
                else "—"
            rows.append(f"| {d.panel.task} | {line.label} | {h['runs']} | "
                        f"{reached_text(reached(line, records))} | "
                        f"{fmt(h['final_mean'], h['final_ci95'])}"
                        f" | {rate_text} | {per_seed_text(h, rate, records)} |")
    return "\n".join(rows)
