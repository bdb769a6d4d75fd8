"""Several experiments × seeds side by side (``iwx.compare``'s table, JSON and figure).

A *run* here is plain data: {"file", "seed", "ok", "results" (results.json),
"identity" ({"task", "method"} as recorded), "run_dir", "seconds", ...}.
For every adaptation variant of every file, the held-out returns of all seeds
are pooled (:func:`iwx.results.stats.pool`): when the runs share their held-out
split, a unit is a held-out task and its value the mean over (run seed ×
adaptation seed), as in appendix A.2; when each run seed draws its own split
(the default), each (run seed, task) is one unit. A variant name that appears
in more than one file (e.g. "Shared Q + IW" after IWPL and after DISTRAL
pretraining) is labelled with the method its run recorded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from iwx.results import figures, stats, tables

ORACLE = "goal-knowing oracle"


def _labels(keys: list[tuple[str, str, str | None]]) -> dict[tuple[str, str], str]:
    """{(file, variant): label}: the variant's name alone when only one file has it, else
    'name (method)', or 'name (file stem)' where two such files record one method."""
    labels = {}
    for gin_file, name, method in keys:
        same = [k for k in keys if k[1] == name]
        if len(same) == 1:
            labels[(gin_file, name)] = name
        elif sum(1 for k in same if k[2] == method) == 1 and method:
            labels[(gin_file, name)] = f"{name} ({method})"
        else:
            labels[(gin_file, name)] = f"{name} ({Path(gin_file).stem})"
    return labels


def tasks_by_file(runs: list[dict]) -> dict[str, set[str]]:
    """{gin file: the tasks its successful runs recorded} (``identity.task``,
    :mod:`iwx.experiment.identity`; a run that recorded none is left out)."""
    found: dict[str, set[str]] = {}
    for run in runs:
        task = (run.get("identity") or {}).get("task") if run.get("ok") else None
        if task:
            found.setdefault(run["file"], set()).add(task)
    return found


def task_folder(runs: list[dict], files: list[str]) -> tuple[str | None, str | None]:
    """(name, problem): the folder name of a comparison under ``compare/``: the one task
    its runs recorded (``point_nav``, ``cheetah_vel``), else the first file's stem when
    no run recorded a task; a problem text (name None) when the files are of different
    tasks, which one table must not pool."""
    tasks = tasks_by_file(runs)
    named = set().union(*tasks.values()) if tasks else set()
    if len(named) > 1:
        listed = ", ".join(f"{Path(f).name}: {'/'.join(sorted(t))}" for f, t in tasks.items())
        return None, (f"the files are of different tasks ({listed}); compare files of one "
                      "task (one table, one oracle per task)")
    return (named.pop() if named else Path(files[0]).stem), None


def pool(runs: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, int], str]:
    """{label: returns [units, seeds, episodes]} over successful runs, each label's
    exploration episodes, and what a unit is (module docstring)."""
    by_variant: dict[tuple[str, str], list[np.ndarray]] = {}
    explore: dict[tuple[str, str], int] = {}
    methods: dict[str, str | None] = {}
    goals: dict[int, list] = {}
    for run in runs:
        if not run["ok"]:
            continue
        goals.setdefault(run["seed"], run["results"]["test_goals"])
        methods.setdefault(run["file"], (run.get("identity") or {}).get("method"))
        for name, r in run["results"]["returns"].items():
            by_variant.setdefault((run["file"], name), []).append(np.asarray(r))
            explore[(run["file"], name)] = run["results"]["exploration_episodes"]
    shared = stats.same_split(list(goals.values()))
    unit = ("held-out task (the same split for every run seed); seeds per unit = run seeds "
            "x adaptation seeds" if shared else
            "(run seed, held-out task): each run seed draws its own split; seeds per unit = "
            "adaptation seeds")
    labels = _labels([(f, name, methods[f]) for f, name in by_variant])
    pooled, exploration = {}, {}
    for key, arrays in by_variant.items():
        pooled[labels[key]] = stats.pool(arrays, shared)
        exploration[labels[key]] = explore[key]
    return pooled, exploration, unit


def references(runs: list[dict]) -> list[tuple[str, np.ndarray]]:
    """The runs' reference returns per unit (oracle, lower baseline), one run per seed:
    averaged per task over seeds that share a split, distinct splits concatenated."""
    found: dict[str, dict[int, tuple[np.ndarray, list]]] = {}
    for run in runs:
        if not run["ok"]:
            continue
        res = run["results"]
        if res.get("oracle") is not None:
            found.setdefault(ORACLE, {})[run["seed"]] = (res["oracle"], res["test_goals"])
        if res.get("baseline") is not None:
            found.setdefault(res["baseline"]["name"], {})[run["seed"]] = \
                (res["baseline"]["returns"], res["test_goals"])
    return [(name, stats.pool_by_split([v for v, _ in per_seed.values()],
                                       [g for _, g in per_seed.values()]))
            for name, per_seed in found.items()]


def write(runs: list[dict], out: Path, *, files, seeds, gin_params, last: int) -> str:
    """table.md, compare.json and adaptation.png of successful ``runs`` under ``out``;
    returns the table's text. The runs must adapt for one number of episodes."""
    pooled, exploration, unit = pool(runs)
    out.mkdir(parents=True, exist_ok=True)
    table = tables.adaptation_table(pooled)
    head = tables.headline_table(pooled, exploration, last)
    refs = references(runs)
    lines = [f"{name}: {tables.fmt(*stats.mean_ci(r))} per episode" for name, r in refs]
    text = ("Mean held-out return per adaptation episode, ± 95% CI across units; a unit is "
            f"a {unit}.\n\n" + table + "\n\n" + head + "\n"
            + ("\n" + "\n".join(lines) + "\n" if lines else ""))
    (out / "table.md").write_text(text)
    (out / "compare.json").write_text(json.dumps({
        "files": files, "seeds": seeds, "gin_params": gin_params,
        "runs": [{k: v for k, v in r.items() if k != "results"} for r in runs],
        "returns": {k: v.tolist() for k, v in pooled.items()},
        "exploration_episodes": exploration, "unit": unit,
        "references": {n: r.tolist() for n, r in refs}}, indent=1))
    explore = set(exploration.values())
    oracle = next((r for n, r in refs if n == ORACLE), None)
    baseline = next(((n, r) for n, r in refs if n != ORACLE), None)
    figures.plot_curves(
        [stats.curve(label, r) for label, r in pooled.items()], [out / "adaptation.png"],
        xlabel="adaptation episode", ylabel="mean held-out return (95% CI over units)",
        title=f"{out.name}: {len(pooled)} methods, run seeds {seeds}",
        exploration=explore.pop() if len(explore) == 1 else None,
        oracle=None if oracle is None else float(np.mean(oracle)),
        baseline=None if baseline is None else (baseline[0], float(np.mean(baseline[1]))),
        integer_x=True)
    return text
