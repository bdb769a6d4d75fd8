"""Flags that change nothing computed never change what a run *is* (issue 14): a run
made with ``--no-progress`` resumes one made without it, and ``iwx.compare`` (which
runs without progress bars) reuses a run made with them."""

from __future__ import annotations

from cli import ROOT, TINY, read_json, run_cli, run_dirs


def _run(runs, *, progress: bool, env=None):
    args = ["--gin", str(ROOT / "gin/point_nav_iwpl.gin"), "--runs-dir", str(runs),
            "--gin_param", "PointNavTasks.seed = 5"]
    for p in TINY:
        args += ["--gin_param", p]
    if not progress:
        args.append("--no-progress")
    return run_cli("iwx.run", args, env=env)


def test_no_progress_resumes_a_run_made_with_progress_bars(tmp_path):
    killed = _run(tmp_path, progress=True, env={"IWX_KILL_AFTER_CHECKPOINT": "train:32"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = _run(tmp_path, progress=False)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from checkpoint 'train:32'" in resumed.stdout
    first, second = run_dirs(tmp_path)
    assert read_json(second / "info.json")["resumed_from"] == {"run_id": first.name,
                                                               "checkpoint": "train:32"}
    # the flag is not part of the recorded configuration either
    assert "progress" not in read_json(second / "config.json")["bindings"].get(
        "MultiTaskTraining", {})


def test_compare_reuses_a_run_made_with_progress_bars(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    made = _run(runs, progress=True)
    assert made.returncode == 0, made.stderr[-3000:]
    args = [str(ROOT / "gin/point_nav_iwpl.gin"), "--seeds", "0", "--runs-dir", str(runs),
            "--out", str(out), "--gin_param", "PointNavTasks.seed = 5"]
    for p in TINY:
        args += ["--gin_param", p]
    proc = run_cli("iwx.compare", args, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("reused") == 1
    assert len(run_dirs(runs)) == 1
