"""docs/experiments/behaviour.py, which the README's and the notes' "how the trained agent
acts" numbers come from: a tiny trained run played again from its model.pt, the same
output for the same --seed (π0's sampling is seeded too), --bind reaching the agent (K
prior samples per state), a bad binding refused by the configuration's own check."""

from __future__ import annotations

import os
import subprocess
import sys

from cli import ROOT, iwx_run, run_dirs

SCRIPT = ROOT / "docs" / "experiments" / "behaviour.py"


def behaviour(run_dir, *args):
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "disable"})


def values(stdout: str) -> dict[str, float]:
    """{name: mean} from the script's '  name: mean ± half' lines."""
    out = {}
    for line in stdout.splitlines():
        if line.startswith("  ") and ": " in line and " ± " in line:
            name, rest = line.strip().split(": ", 1)
            out[name] = float(rest.split(" ± ")[0])
    return out


def test_a_trained_run_is_played_again_seeded_and_rebound(tmp_path):
    made = iwx_run(tmp_path / "runs")
    assert made.returncode == 0, made.stderr[-3000:]
    (run,) = run_dirs(tmp_path / "runs")

    first = behaviour(run, "--episodes", 16)
    assert first.returncode == 0, first.stderr[-3000:]
    got = values(first.stdout)
    assert sorted(got) == ["distance", "ended_without_success", "return", "steps", "success"]
    assert got["steps"] == 20.0                     # navigation: 20 steps, only truncated
    assert 0.0 <= got["success"] <= 1.0 and got["return"] >= 0.0
    assert "16 training-task episodes" in first.stdout and "bound after" not in first.stdout
    again = behaviour(run, "--episodes", 16)
    assert again.stdout == first.stdout             # every random source from --seed

    one = behaviour(run, "--episodes", 16, "--bind", "IWPL.num_samples = 1")
    assert one.returncode == 0, one.stderr[-3000:]
    assert "bound after its own: IWPL.num_samples = 1" in one.stdout
    # one π0 sample per state, not the best of the run's K: other actions, other paths
    assert values(one.stdout)["distance"] != got["distance"]

    bad = behaviour(run, "--episodes", 16, "--bind", "IWPL.num_samples = 0")
    assert bad.returncode != 0
    assert "IWPL.num_samples" in bad.stderr, bad.stderr[-3000:]
