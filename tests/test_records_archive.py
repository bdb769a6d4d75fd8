"""docs/records/machine/archive.py: the archiver copies a COMPLETED run and the segments it
resumed from into docs/records/cpu-runs, commits only those, and leaves running runs alone."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _archive_module():
    spec = importlib.util.spec_from_file_location(
        "records_archive", REPO / "docs" / "records" / "machine" / "archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(runs: Path, run_id: str, status: str, method: str, resumed_from: str | None = None):
    d = runs / run_id
    (d / "_sources").mkdir(parents=True)
    (d / "run.json").write_text(json.dumps({"status": status}))
    info = {"identity": {"method": method}}
    if resumed_from:
        info["resumed_from"] = {"run_id": resumed_from, "checkpoint": "train:5000"}
    (d / "info.json").write_text(json.dumps(info))
    (d / "config.json").write_text(json.dumps({"gin_files": [f"gin/x_{method}.gin"]}))
    (d / "metrics.json").write_text("{}")
    (d / "model.pt").write_bytes(b"weights")
    (d / "video.mp4").write_bytes(b"not archived")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                          text=True).stdout


def test_a_completed_run_and_its_segments_are_committed_and_nothing_else(tmp_path):
    repo, runs = tmp_path / "repo", tmp_path / "runs"
    (repo / "docs" / "records" / "cpu-runs").mkdir(parents=True)
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    (repo / "other.txt").write_text("a change of someone else's, uncommitted")
    _run(runs, "4", "INTERRUPTED", "iwpl")
    _run(runs, "5", "COMPLETED", "iwpl", resumed_from="4")
    _run(runs, "6", "COMPLETED", "rl2")
    _run(runs, "7", "RUNNING", "iwpl")
    (runs / "_checkpoints").mkdir()

    archive = _archive_module()
    assert archive.one_pass(runs, repo) == ["5", "6"]
    out = repo / "docs" / "records" / "cpu-runs"
    assert sorted(p.name for p in out.iterdir()) == ["4", "5", "6"]
    assert sorted(p.name for p in (out / "5").iterdir()) == \
        ["config.json", "info.json", "metrics.json", "model.pt", "run.json"]
    assert not (out / "6" / "model.pt").exists()          # only IWPL pretrainings' weights
    log = _git(repo, "log", "--format=%s").splitlines()
    assert log[0].startswith("records: run 6 (COMPLETED, gin/x_rl2.gin)")
    assert log[1].startswith("records: run 5 (COMPLETED") and "resumed from: 4" in log[1]
    assert "?? other.txt" in _git(repo, "status", "--short")   # left to its owner
    assert archive.one_pass(runs, repo) == []                    # a second pass: nothing new

    # a copy left uncommitted (its commit failed) is archived again by the next pass
    _run(runs, "8", "COMPLETED", "rl2")
    (out / "8").mkdir()
    (out / "8" / "run.json").write_text("half written")
    assert archive.one_pass(runs, repo) == ["8"]
    assert json.loads((out / "8" / "run.json").read_text()) == {"status": "COMPLETED"}
    assert _git(repo, "status", "--short", "--", "docs") == ""
