"""figures/iwpl_samples.yaml (iwx's own, evidence for figure 1): IWPL on Reach at K = 16
is figure 1's run by key, so the recorded runs are reused, and the K = 64 runs differ from
them in the number of prior samples alone."""

from __future__ import annotations

import pytest

from cli import planned_figure_runs, run_cli


def test_k16_is_figure_1s_iwpl_reach_and_k64_differs_in_the_samples_alone():
    figure1 = {p.seed: p for p in planned_figure_runs(1, "cpu", tasks=["reach_cpu"])
               if p.entry.label == "IWPL"}
    runs = planned_figure_runs("iwpl_samples", "cpu")
    k16 = {p.seed: p for p in runs if p.entry.label.startswith("IWPL, K 16")}
    k64 = {p.seed: p for p in runs if p.entry.label == "IWPL, K 64"}
    assert sorted(k16) == sorted(k64) == sorted(figure1) == [0, 1, 2]
    for seed in (0, 1, 2):
        assert k16[seed].key == figure1[seed].key           # reused where figure 1 ran
        assert k64[seed].key != k16[seed].key
        low, high = k16[seed].bindings, k64[seed].bindings
        assert low["IWPL"]["num_samples"] == 16 and high["IWPL"]["num_samples"] == 64
        changed = {name for name in set(low) | set(high) if low.get(name) != high.get(name)}
        assert changed <= {"IWPL", "IWPA", "K/macro"}, changed
        assert {k: v for k, v in low["IWPL"].items() if k != "num_samples"} == \
            {k: v for k, v in high["IWPL"].items() if k != "num_samples"}


@pytest.mark.parametrize("scale", ["cpu"])
def test_the_dry_run_lists_both_lines_and_runs_nothing(tmp_path, scale):
    proc = run_cli("iwx.figure", ["iwpl_samples", "--scale", scale, "--dry-run",
                                  "--runs-dir", str(tmp_path / "runs")], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dry run: nothing run" in proc.stdout
    assert proc.stdout.count("K=64") == 3
    assert "6 runs: 0 reused, 6 to run" in proc.stdout
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("[0-9]*"))
