"""``python -m iwx.compare``: several methods × seeds, one table, read back against the runs."""

from __future__ import annotations

import numpy as np

from cli import ROOT, TINY, read_json, run_cli, run_dirs
from iwx.results import stats


def test_compare_pools_seeds_and_tabulates_every_variant(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = [str(ROOT / "gin/point_nav_iwpl.gin"), str(ROOT / "gin/point_nav_scratch.gin"),
            "--seeds", "0", "1", "--jobs", "2", "--runs-dir", str(runs), "--out", str(out),
            "--gin_param", "PointNavTasks.seed = 5"]      # one held-out split for both seeds
    for p in TINY:
        args += ["--gin_param", p]
    proc = run_cli("iwx.compare", args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(run_dirs(runs)) == 4                     # 2 files x 2 seeds, each a Sacred run
    record = read_json(out / "compare.json")
    assert set(record["returns"]) == {"Shared Q + IW", "IW", "From Scratch"}

    # Pool by hand from the recorded runs: tasks x (run seeds x adaptation seeds) x episodes.
    by_variant: dict[str, list] = {}
    for run in run_dirs(runs):
        for name, r in read_json(run / "results.json")["returns"].items():
            by_variant.setdefault(name, []).append(np.asarray(r))
    table = (out / "table.md").read_text()
    for name, arrays in by_variant.items():
        pooled = np.concatenate(arrays, axis=1)
        assert pooled.shape == (3, 4, 3)                 # TINY: 3 tasks, 2 adaptation seeds
        assert np.allclose(np.asarray(record["returns"][name]).mean(), pooled.mean())
        mean, half = stats.mean_ci(pooled.mean(axis=1))
        for e in range(3):
            assert f"{mean[e]:.2f} ± {half[e]:.2f}" in table, (name, e)
    assert "held-out task (the same split for every run seed)" in table
    oracle = [read_json(r / "results.json")["oracle"] for r in run_dirs(runs)]
    m, h = stats.mean_ci(np.mean(oracle, axis=0))       # per task, over the seeds' runs
    assert f"goal-knowing oracle: {m:.2f} ± {h:.2f}" in table
    assert (out / "adaptation.png").stat().st_size > 0
    assert "From Scratch" in proc.stdout and "Shared Q + IW" in proc.stdout

    # The same command again reuses the four completed runs: nothing is rerun.
    again = run_cli("iwx.compare", args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(run_dirs(runs)) == 4
    assert again.stdout.count("reused") == 4
    assert (out / "table.md").read_text() == table


def test_compare_reports_a_failed_run_and_exits_nonzero(tmp_path):
    bad = tmp_path / "point_nav_broken.gin"
    bad.write_text("include 'gin/point_nav_iwpl.gin'\nIWPL.no_such_parameter = 3\n")
    args = [str(ROOT / "gin/point_nav_iwpl.gin"), str(bad), "--seeds", "0", "--jobs", "2",
            "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    for p in TINY:
        args += ["--gin_param", p]
    proc = run_cli("iwx.compare", args, timeout=600)
    assert proc.returncode == 1
    assert "point_nav_broken.gin seed 0 failed" in proc.stderr
    assert "no_such_parameter" in proc.stderr
    # the good run still made it into the table
    assert "Shared Q + IW" in (tmp_path / "out" / "table.md").read_text()


def test_pool_counts_each_seeds_own_split_as_separate_tasks():
    """Default splits differ per run seed: task i of seed 0 and of seed 1 are different
    tasks, so they are separate units; a shared split pools seeds per task."""
    from iwx.results.comparison import pool

    def run(seed, goals, value):
        returns = np.full((2, 1, 4), value, dtype=float)        # 2 tasks, 1 seed, 4 episodes
        return {"ok": True, "file": "gin/point_nav_iwpl.gin", "seed": seed,
                "results": {"returns": {"IW": returns.tolist()}, "test_goals": goals,
                            "exploration_episodes": 1}}

    own = [run(0, [[0, 1], [1, 0]], 1.0), run(1, [[2, 2], [3, 3]], 3.0)]
    pooled, explore, unit = pool(own)
    assert pooled["IW"].shape == (4, 1, 4) and explore == {"IW": 1}
    assert unit.startswith("(run seed, held-out task)")
    shared = [run(0, [[0, 1], [1, 0]], 1.0), run(1, [[0, 1], [1, 0]], 3.0)]
    pooled, _, unit = pool(shared)
    assert pooled["IW"].shape == (2, 2, 4) and unit.startswith("held-out task")
    assert np.allclose(pooled["IW"].mean(axis=1), 2.0)
    assert pool([{**own[0], "ok": False}])[0] == {}
