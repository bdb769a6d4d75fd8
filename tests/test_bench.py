"""Smoke test of ``python -m iwx.bench``: it runs, and every item reports a positive rate."""

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "iwx.bench", "--seconds", "0.2", "--ks", "10", "--json", str(out),
         "--tasks", "cheetah_vel", "reach", "--task-envs", "2", "--task-k", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    names = {it["name"] for it in result["items"]}
    assert names == {"sac_update", "iwpl_update_k10", "env_b8", "act_k10_b8", "env_b1",
                     "act_k10_b1", "cheetah_vel_env_b2", "cheetah_vel_act_k4_b2",
                     "reach_env_b2", "reach_act_k4_b2", "method_iwpl", "method_rs0",
                     "method_distral", "method_mpo", "method_mpo_distral", "method_rl2",
                     "method_pearl"}
    for it in result["items"]:
        assert it["rate"] > 0 and math.isfinite(it["rate"]), it
        assert it["units"] > 0 and it["seconds"] > 0, it
        if it.get("reference"):
            assert it["slowdown"] > 0, it
        if it["name"].startswith("method_"):       # every method at the same batch size
            assert (it["batch_chunks"], it["chunk_length"]) == (32, 10), it
    assert result["machine"]["threads"] == 1
    assert result["machine"]["torch"]
    # the printed table names every item
    for it in result["items"]:
        assert it["item"] in proc.stdout


def test_bench_rejects_an_unknown_task():
    proc = subprocess.run([sys.executable, "-m", "iwx.bench", "--tasks", "humanoid_run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown ['humanoid_run']" in proc.stderr and "go_to_ring" in proc.stderr


def test_bench_rejects_an_unknown_method():
    proc = subprocess.run([sys.executable, "-m", "iwx.bench", "--methods", "maml"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown ['maml']" in proc.stderr and "pearl" in proc.stderr
