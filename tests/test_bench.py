"""Smoke test of ``python -m iwx.bench``: it runs, every item reports a positive rate, and
what it timed is what the gin files (and the bench's bindings on them) configure."""

import json
import math
from pathlib import Path

import pytest
from cli import run_cli

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 48   # a torso width no gin file and no default uses: only gin can have set it


def configured_widths(gin_file: str, params: list[str]) -> dict:
    """What the file (with ``params``) makes every torso and LSTM: Torso.norm_width and
    Torso.hidden, the LSTM sizes a method binds, and ψ's dimension."""
    import gin

    import iwx.nets.context  # noqa: F401  (ContextEncoder and RecurrentCore are queried for
    import iwx.nets.recurrent  # noqa: F401  every file, also those that do not name them)
    from iwx.experiment.gin_config import parse

    try:
        parse([str(ROOT / f) for f in gin_file.split(" + ")], params)
        torso, features = gin.get_bindings("Torso"), gin.get_bindings("Features")
        lstm = {gin.get_bindings(name).get(key) for name, key in
                (("RecurrentCore", "hidden_size"), ("ContextEncoder", "lstm_size"))} - {None}
    finally:
        gin.clear_config()
    return {"norm": torso["norm_width"], "hidden": set(torso["hidden"]), "lstm": lstm,
            "features_dim": features["features_dim"]}


def test_bench_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli(
        "iwx.bench", ["--seconds", "0.2", "--ks", "10", "--json", str(out),
                      "--tasks", "cheetah_vel", "reach_cpu", "--task-envs", "2", "--task-k", "4",
                      "--gin_param", f"WIDTH = {WIDTH}",
                      "--no-adaptation"],  # the adaptation rows (e): tests/test_iwpa_cache.py
        timeout=120)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    names = {it["name"] for it in result["items"]}
    assert names == {"sac_update", "iwpl_update_k10", "env_b8", "act_k10_b8", "env_b1",
                     "act_k10_b1", "cheetah_vel_env_b2", "cheetah_vel_act_k4_b2",
                     "reach_cpu_env_b2", "reach_cpu_act_k4_b2", "method_iwpl", "method_rs0",
                     "method_distral", "method_mpo", "method_mpo_distral", "method_rl2",
                     "method_pearl", "matmul_peak"}
    for it in result["items"]:
        assert it["rate"] > 0 and math.isfinite(it["rate"]), it
        if it["unit"] == "updates/s":   # every learner row: its matrix-product GFLOP/s
            assert it["flops_per_update"] > 0, it
            assert it["gflops"] == pytest.approx(it["flops_per_update"] * it["rate"] / 1e9)
            assert it["fraction_of_peak"] == pytest.approx(
                it["gflops"] / result["items"][-1]["rate"])
        assert it["units"] > 0 and it["seconds"] > 0, it
        if it.get("reference"):
            assert it["slowdown"] > 0, it
        if it["name"].startswith("method_"):       # every method at the same batch size
            assert (it["batch_chunks"], it["chunk_length"]) == (32, 10), it
    assert result["items"][-1]["name"] == "matmul_peak"
    # What was timed is what the gin files configure: every torso of every timed network
    # (IWPL's prior and critic, the SAC reference, each method's networks) has the width
    # the item's gin file gives it with the bench's binding, not a constructor default.
    timed = [it for it in result["items"] if it.get("networks")]
    assert {it["name"] for it in timed} == {n for n in names
                                            if "env_b" not in n and n != "matmul_peak"}
    for it in timed:
        want = configured_widths(it["gin"], [f"WIDTH = {WIDTH}"])
        assert want["norm"] == WIDTH and want["hidden"] == {WIDTH}
        for name, net in it["networks"].items():
            assert net["norm"] == [want["norm"]], (it["name"], name, net)
            assert want["hidden"] <= set(net["linear"]), (it["name"], name, net)
            assert set(net["lstm"]) <= want["lstm"], (it["name"], name, net)
        if it["name"].startswith(("iwpl_update", "act_k", "cheetah_vel_act", "reach_cpu_act")):
            assert any(want["features_dim"] in net["linear"]          # ψ(s, a) ∈ R^d
                       for net in it["networks"].values()), it["networks"]
    # a scale variant (gin/tasks/reach_cpu.gin, a task file without experiment files of its
    # own) is timed after its base task's experiment file, as the figures run it
    assert {it["gin"] for it in result["items"] if it["group"] == "reach_cpu"} == {
        "gin/reach_iwpl.gin + gin/tasks/reach_cpu.gin"}
    assert {it["gin"] for it in result["items"] if it["group"] == "methods"} == {
        f"gin/point_nav_{m}.gin" for m in ("iwpl", "rs0", "distral", "mpo", "mpo_distral",
                                           "rl2", "pearl")}
    assert result["machine"]["threads"] == 1
    assert result["machine"]["torch"]
    # the printed table names every item
    for it in result["items"]:
        assert it["item"] in proc.stdout
    assert "GFLOP/s" in proc.stdout


def test_bench_rejects_an_unknown_task():
    proc = run_cli("iwx.bench", ["--tasks", "humanoid_run"], timeout=60)
    assert proc.returncode == 2
    assert "unknown ['humanoid_run']" in proc.stderr and "go_to_ring" in proc.stderr


def test_bench_rejects_an_unknown_method():
    proc = run_cli("iwx.bench", ["--methods", "maml"], timeout=60)
    assert proc.returncode == 2
    assert "unknown ['maml']" in proc.stderr and "pearl" in proc.stderr


def test_bench_distributed_against_single_loop(tmp_path):
    """``iwx.bench distributed`` end to end on a tiny budget: the learner's insert cost, the
    single loop and 1 actor at the single loop's samples per insert, rates as ratios."""
    out = tmp_path / "dist.json"
    proc = run_cli(
        "iwx.bench", ["distributed", "--tasks", "point_nav",
                      "--actors", "1", "--updates", "48", "--log-period", "8", "--json", str(out),
                      "--gin_param", "Torso.hidden = (8,)", "--gin_param", "Torso.norm_width = 8",
                      "--gin_param", "PointNavTasks.num_train = 8"],
        timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    insert, single, one = json.loads(out.read_text())["rows"]
    assert insert["insert_cost"]["transitions"] == 8 * 20
    assert single["loop"] == "single process" and one["loop"] == "1 actor"
    assert single["samples_per_insert"] == pytest.approx(16.0)   # 8 x 32 x 10 / (8 x 20)
    assert one["samples_per_insert"] == pytest.approx(16.0, rel=0.5)
    for row in (single, one):
        assert row["updates_per_s"] > 0 and row["env_steps_per_s"] > 0 and row["periods"] == 5
    assert single["env_ratio"] == 1.0 and one["update_ratio"] > 0
