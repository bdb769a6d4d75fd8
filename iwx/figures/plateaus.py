"""Figure runs' training at the end of its budget: still rising, or on a plateau?

Figure 2 asks for every method "trained to a plateau"; each figure of kind
``adaptation`` tabulates, per run that trained, the check of
:func:`iwx.results.plateau.plateau` on its ``train/return`` (figure.json ``plateaus``,
the README snippet's table).
"""

from __future__ import annotations

from iwx.experiment.store import RecordedRun
from iwx.figures.plan import Plan
from iwx.results.plateau import plateau
from iwx.results.tables import fmt


def plateau_rows(plan: Plan, records: dict[int, RecordedRun]) -> list[dict]:
    """Per run that trained (logged ``train/return``), whether its training return was
    still rising at the end of its budget (:func:`iwx.results.plateau.plateau`: the last
    20% of the logged points against the 20% before, Welch 95% CI of the change, and the
    change as a share of the run's whole gain, which must itself be resolved)."""
    rows = []
    for p in plan.runs:
        run = records.get(p.number)
        if run is None or "train/return" not in run.metrics:
            continue
        steps, values = run.metrics["train/return"]
        check = plateau(values)
        rows.append({"panel": p.panel.task, "label": p.entry.label, "seed": p.seed,
                     "run_id": run.id, "updates": float(steps[-1]) if len(steps) else None,
                     **(check or {"points": 0})})
    return rows


def plateau_table(rows: list[dict]) -> str:
    """Markdown of :func:`plateau_rows`."""
    out = ["| panel | run | seed | updates | return, 20% before → last 20% of the log | "
           "change ± 95% CI | share of the run's gain | still rising? |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        updates = "—" if r["updates"] is None else f"{r['updates']:,.0f}"
        if not r["points"]:
            out.append(f"| {r['panel']} | {r['label']} | {r['seed']} | {updates} | "
                       "(too few points) | — | — | — |")
            continue
        resolved = r.get("gain_resolved", True)   # figure.json written before it lacks it
        share = "—" if r.get("share") is None or not resolved else f"{100 * r['share']:.0f}%"
        verdict = "**yes**" if r["rising"] else \
            "no (no gain over the run)" if not resolved else \
            "flattening" if r.get("significant") else "no"
        out.append(f"| {r['panel']} | {r['label']} | {r['seed']} | {updates} | "
                   f"{r['before']:.2f} → {r['last']:.2f} ({r['points']} points each) | "
                   f"{fmt(r['change'], r['ci95'])} | {share} | {verdict} |")
    return "\n".join(out)
