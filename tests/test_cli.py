"""The ``iwx`` command (iwx/cli.py), ``iwx runs`` (iwx/runs.py), the smoke configuration
and shipped files named from anywhere (iwx/experiment/shipped.py), from this checkout.
The installed wheel is tests/test_package.py's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli import ROOT, read_json, run_cli, run_dirs
from iwx import cli
from iwx.experiment import shipped

SUBCOMMANDS = ("run", "sweep", "compare", "runs", "report", "figure", "db", "resync", "bench")


# --------------------------------------------------------------------------- the dispatcher
def test_help_lists_every_subcommand_with_what_it_does():
    proc = run_cli("iwx", ["--help"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for name in SUBCOMMANDS:
        (line,) = [x for x in lines if x.split()[:1] == [name]]
        assert len(line.split()) > 3, line          # a description follows the name
    # figure is offered exactly when its module exists
    assert any(x.split()[:1] == ["figure"] for x in lines) == (ROOT / "iwx/figure.py").is_file()


def test_no_argument_prints_the_help_and_exits_2():
    proc = run_cli("iwx", [])
    assert proc.returncode == 2
    assert "usage: python -m iwx COMMAND" in proc.stderr and "runs" in proc.stderr


def test_an_unknown_subcommand_names_the_valid_ones():
    proc = run_cli("iwx", ["rnu", "--gin", "x"])
    assert proc.returncode == 2
    assert "unknown command 'rnu'" in proc.stderr and "did you mean 'run'" in proc.stderr
    assert all(name in proc.stderr for name in SUBCOMMANDS), proc.stderr


def test_listing_the_commands_imports_none_of_them():
    """The help must answer at once: no torch, Ray, Sacred, nor any command module."""
    probe = ("import sys, io, contextlib\nfrom iwx import cli\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    cli.main(['--help'])\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('torch', 'ray', 'sacred', 'numpy') or m in "
             f"{[m for _, m, _ in cli.COMMANDS]!r}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_a_command_is_offered_only_when_its_module_exists(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", cli.COMMANDS + (("later", "iwx.not_yet", "x"),))
    assert "later" not in [name for name, _, _ in cli.available()]
    assert cli.main(["later"]) == 2


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_forwards_its_arguments(name):
    proc = run_cli("iwx", [name, "--help"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage:"), proc.stdout[:300]
    assert "--help" in proc.stdout


def test_help_subcommand_is_the_commands_help():
    proc = run_cli("iwx", ["help", "run"])
    assert proc.returncode == 0 and "--gin FILE" in proc.stdout, proc.stderr


# --------------------------------------------------------------------------- shipped names
@pytest.mark.parametrize("name", ["point_nav_iwpl", "point_nav_iwpl.gin",
                                  "gin/point_nav_iwpl.gin"])
def test_a_shipped_gin_file_is_named_from_any_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped.resolve(name, "gin").resolve() == ROOT / "gin/point_nav_iwpl.gin"
    assert shipped.resolve("tasks/point_nav", "gin").resolve() == ROOT / "gin/tasks/point_nav.gin"


def test_an_existing_path_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "point_nav_iwpl.gin").write_text("# mine\n")
    assert shipped.resolve("point_nav_iwpl.gin", "gin") == Path("point_nav_iwpl.gin")


def test_a_close_miss_is_an_error_listing_the_close_names(tmp_path, monkeypatch):
    from iwx.experiment.gin_config import ConfigError, parse

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        parse(["point_nav_iwp"], [])
    message = str(err.value)
    assert message.startswith("gin file not found: point_nav_iwp")
    assert "did you mean point_nav_iwpl" in message and str(ROOT / "gin") in message
    with pytest.raises(ConfigError, match="the shipped ones are in"):
        parse(["zzzz_nothing_like_it"], [])


def test_includes_of_a_shipped_file_resolve_from_another_folder(tmp_path, monkeypatch):
    import gin

    from iwx.experiment.gin_config import parse

    monkeypatch.chdir(tmp_path)
    try:
        config = parse(["smoke"], [])
        assert gin.query_parameter("MultiTaskTraining.updates") == 100   # smoke.gin
        assert gin.query_parameter("FixedTemperature.alpha") == 0.02      # point_nav_iwpl.gin
        assert gin.query_parameter("PointNavVec.sparse") is True          # tasks/point_nav.gin
        assert gin.query_parameter("Adaptation.unroll_length") == 10      # common/protocol.gin
    finally:
        gin.clear_config()
    assert f"# --- {ROOT / 'gin/tasks/point_nav.gin'}" in config.text


def test_a_sweep_and_its_gin_entries_are_named_from_any_folder(tmp_path, monkeypatch):
    from iwx.tuning.spec import SpecError, load

    monkeypatch.chdir(tmp_path)
    spec = load("adapt_alpha")
    assert spec.path.resolve() == ROOT / "sweeps/adapt_alpha.yaml"
    assert [p.resolve() for p in spec.gin_files] == [ROOT / "gin/point_nav_iwpl.gin"]
    mine = tmp_path / "mine.yaml"
    mine.write_text("gin: point_nav_rl2\nmetric: train/final_return\ngrid: {RL2.gamma: [0.9]}\n")
    assert [p.resolve() for p in load(mine).gin_files] == [ROOT / "gin/point_nav_rl2.gin"]
    with pytest.raises(SpecError, match="did you mean adapt_alpha"):
        load("adapt_alpah")
    mine.write_text("gin: point_nav_rl3\nmetric: train/final_return\n")
    with pytest.raises(SpecError, match="did you mean point_nav_rl2"):
        load(mine)


# --------------------------------------------------------------------------- iwx runs
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One real run of the smoke configuration, named, from a folder outside the checkout."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    proc = run_cli("iwx", ["run", "--gin", "smoke", "--runs-dir", "runs", "--no-progress",
                           "--tag", "smoke"], cwd=elsewhere, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return elsewhere / "runs"


def test_runs_lists_a_recorded_run(store):
    (run,) = run_dirs(store)
    record, info = read_json(run / "run.json"), read_json(run / "info.json")
    assert record["status"] == "COMPLETED"
    proc = run_cli("iwx", ["runs", str(store)])
    assert proc.returncode == 0, proc.stderr
    header, line = proc.stdout.splitlines()
    assert header.split()[:4] == ["id", "uid", "status", "task"]
    fields = line.split()
    assert fields[:7] == [run.name, record["meta"]["iwx_uid"][:8], "COMPLETED", "point_nav",
                          "iwpl", "0", "smoke"]
    for variant, h in info["summary"].items():
        assert f"{variant} {h['last3_mean']:.2f}" in line
    assert fields[-1].endswith("s")          # the duration


def test_runs_json_and_filters(store):
    proc = run_cli("iwx", ["runs", str(store), "--json", "--tag", "smoke"])
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(proc.stdout)
    assert row["status"] == "COMPLETED" and row["gin_files"] == ["smoke"]
    assert set(row["headline"]) == {"Shared Q + IW", "IW"}
    assert row["duration_s"] > 0 and row["start_time"].endswith("+00:00")
    proc = run_cli("iwx", ["runs", str(store), "--status", "failed"])
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"no runs in {store} match --status FAILED"
    assert json.loads(run_cli("iwx", ["runs", str(store), "--json", "--tag", "x"]).stdout) == []


def test_runs_of_an_empty_or_missing_store(tmp_path):
    proc = run_cli("iwx", ["runs", str(tmp_path)])
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"no runs in {tmp_path} (an empty store)"
    proc = run_cli("iwx", ["runs"], cwd=tmp_path, env={"IWX_RUNS_DIR": "nothing_here"})
    assert proc.returncode == 2
    assert "unknown source 'nothing_here': neither a directory" in proc.stderr
    assert "nothing was recorded in nothing_here" in proc.stderr


def test_runs_of_a_mongodb_that_does_not_answer():
    proc = run_cli("iwx", ["runs", "mongodb://127.0.0.1:9/iwx"], timeout=60)
    assert proc.returncode == 2
    assert "did not answer" in proc.stderr, proc.stderr
