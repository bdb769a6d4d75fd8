"""docs/experiments/adaptation_pairs.py, the README's paired comparisons: B − A per held-out
task against a hand computation, the default span (the last 3 episodes) and a span
outside the records refused with the records' range, not a mean of an empty slice."""

from __future__ import annotations

import json
import subprocess
import sys

from cli import ROOT

SCRIPT = ROOT / "docs" / "experiments" / "adaptation_pairs.py"


def record(folder, name, returns, goals):
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(
        {"returns": {name: returns}, "test_goals": goals}))
    return folder


def pairs(*args):
    return subprocess.run([sys.executable, str(SCRIPT), "paired", *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_paired_differences_by_hand_default_span_and_a_span_out_of_range(tmp_path):
    goals = [[0.5], [1.5]]
    # 2 tasks × 2 adaptation seeds × 4 episodes; B equals A through episode 1
    a = [[[1, 2, 3, 4], [1, 2, 5, 6]], [[0, 0, 0, 0], [0, 2, 2, 2]]]
    b = [[[1, 4, 5, 6], [1, 4, 7, 8]], [[0, 0, 3, 3], [0, 2, 5, 5]]]
    run_a = record(tmp_path / "a", "RL²", a, goals)
    run_b = record(tmp_path / "b", "Shared Q + IW", b, goals)

    proc = pairs(run_a, run_b)                         # default: episodes 2-4
    assert proc.returncode == 0, proc.stderr
    assert "2 tasks × 2 seeds; identical through episode 1" in proc.stdout
    # task 0: A (2+3+4+2+5+6)/6 = 22/6, B (4+5+6+4+7+8)/6 = 34/6, B − A = 2
    # task 1: A (0+0+0+2+2+2)/6 = 1,    B (0+3+3+2+5+5)/6 = 3,    B − A = 2
    # A 0.5·(22/6 + 1) = 2.33, B 0.5·(34/6 + 3) = 4.33; no spread: ± 0
    assert "episodes 2-4: A 2.33, B 4.33, B − A +2.00 ± 0.00 (up 2, down 0, equal 0)" \
        in proc.stdout, proc.stdout

    proc = pairs(run_a, run_b, "--spans", "3", "1-1")
    assert proc.returncode == 0, proc.stderr
    # episode 3: task 0 B − A = (5+7)/2 − (3+5)/2 = 2, task 1 (3+5)/2 − (0+2)/2 = 3
    # mean 2.5; Student-t 95% half-width 12.706 · std(ddof=1)/√2 = 12.706 · 0.5 = 6.35
    assert "episodes 3-3: A 2.50, B 5.00, B − A +2.50 ± 6.35 (up 2, down 0, equal 0)" \
        in proc.stdout, proc.stdout
    assert "episodes 1-1: A 0.50, B 0.50, B − A +0.00 ± 0.00 (up 0, down 0, equal 2)" \
        in proc.stdout, proc.stdout

    for bad, words in [("8-10", "these records have episodes 1-4"),
                       ("3-2", "these records have episodes 1-4"),
                       ("0", "these records have episodes 1-4"),
                       ("late", "expected FIRST-LAST")]:
        proc = pairs(run_a, run_b, "--spans", bad)
        assert proc.returncode == 1, (bad, proc.stdout)
        assert f"--spans {bad}: {words}" in proc.stderr, (bad, proc.stderr)
        assert "nan" not in proc.stdout
