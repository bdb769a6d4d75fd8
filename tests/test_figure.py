"""``python -m iwx.figure N``: a paper figure from its spec file, run or reused, drawn.

The end-to-end tests run the shipped figure 3 at its ``smoke`` scale (the cpu panels
and gin files on tiny budgets: 8 real recorded runs) once for the module, then check
the outputs against the file store, a second invocation (everything reused), a dry
run against the store and, where SecantusDB is installed, reuse from MongoDB alone.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli import ROOT, ran_figure_run, read_json, run_cli, run_dirs
from iwx.results import stats

SPEC = ROOT / "figures" / "figure3.yaml"
VARIANTS = ["Shared Q + IW", "IW", "Shared Q", "DISTRAL", "RL²", "PEARL*", "From Scratch"]
OUTPUTS = ("figure3.png", "figure3.pdf", "training.png", "training_return.png", "table.md",
           "figure.json", "README.md")

GOOD = """\
figure: 3
title: A test figure
kind: adaptation
last: 3
scales:
  cpu:
    about: "a test scale"
    seeds: [0]
    window: 3
    bindings: [Adaptation.seeds = 1]
    panels:
      - task: reach_cpu
        overlay: [gin/tasks/reach_cpu.gin]
        runs:
          - {gin: gin/reach_scratch.gin, minutes: 2}
"""


def figure(args, **kwargs):
    return run_cli("iwx.figure", [str(a) for a in args], **kwargs)


# --------------------------------------------------------------------------- refusals

def write_spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


BAD_SPECS = {
    "missing key": (GOOD.replace("    window: 3\n", ""), "scales.cpu.window: missing"),
    "mistyped key": (GOOD.replace("    window: 3\n", "    windw: 3\n"),
                     "scales.cpu: unknown key(s) windw"),
    "wrong type": (GOOD.replace("minutes: 2", "minutes: soon"),
                   "scales.cpu.panels[0].runs[0].minutes: expected a number"),
    "unknown kind": (GOOD.replace("kind: adaptation", "kind: histogram"),
                     "kind: unknown kind 'histogram'; known: adaptation, training, tasks"),
    "bad chunk": (GOOD.replace("    window: 3\n", "    window: 3\n    chunk: 0\n"),
                  "scales.cpu.chunk: expected a number > 0 (env steps per chunk), got 0"),
    "bad seed": (GOOD.replace("seeds: [0]", "seeds: [-1]"), "scales.cpu.seeds[0]"),
    "missing gin file": (GOOD.replace("gin/reach_scratch.gin", "gin/reach_scratchh.gin"),
                         "scales.cpu.panels[0].runs[0].gin: gin file not found: "
                         "gin/reach_scratchh.gin"),
    "binding gin refuses": (GOOD.replace("[Adaptation.seeds = 1]", "[Adaptation.seedz = 1]"),
                            "scales.cpu.panels[0].runs[0] (seed 0): configuration error"),
    "panel of another task": (GOOD.replace("        overlay: [gin/tasks/reach_cpu.gin]\n", ""),
                              "its runs record task 'reach', the panel is 'reach_cpu'"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_is_refused_naming_the_file_and_the_key(tmp_path, capsys, case):
    from iwx.figure import main

    text, expected = BAD_SPECS[case]
    path = write_spec(tmp_path, text)
    runs = tmp_path / "runs"
    code = main(["--spec", str(path), "--runs-dir", str(runs), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(f"iwx.figure: {path}") and err.count("\n") == 1, err
    assert expected in err, err
    assert not runs.exists() and not (tmp_path / "out").exists()


def test_unknown_figure_scale_or_panel_is_refused_listing_what_exists(tmp_path, capsys):
    from iwx.figure import main

    runs = ["--runs-dir", str(tmp_path / "runs")]
    assert main(["8", *runs]) == 2
    assert "no spec for figure 8: the shipped figures are 1, 2, 3, 4, 5, 6, 7" \
        in capsys.readouterr().err
    assert main(["3", "--scale", "gpu", *runs]) == 2
    assert "no scale 'gpu'; its scales are cpu, paper, smoke" in capsys.readouterr().err
    assert main(["3", "--panels", "reach", *runs]) == 2
    assert "has no panel reach; its panels are reach_cpu, go_to_ring_cpu" \
        in capsys.readouterr().err
    assert main(["3", "--runs", "IWPL", "MAML", *runs]) == 2
    assert "no run named MAML in the panels drawn; their runs are IWPL, RL², PEARL*, " \
        "From Scratch (a label or a gin file)" in capsys.readouterr().err
    assert main(["--spec", str(write_spec(tmp_path, GOOD)), "4", *runs]) == 2
    assert "this spec draws figure 3, not 4" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_exit_status_of_a_refusal_is_2(tmp_path):
    proc = figure(["--spec", write_spec(tmp_path, BAD_SPECS["mistyped key"][0]), "--dry-run"])
    assert proc.returncode == 2 and "unknown key(s) windw" in proc.stderr


# --------------------------------------------------------------------------- dry runs

def spec_runs(scale: str) -> list[dict]:
    """Every (panel, run) of a scale of the shipped spec, read with plain YAML."""
    raw = yaml.safe_load(SPEC.read_text())["scales"][scale]
    return [{"task": p["task"], **r} for p in raw["panels"] for r in p["runs"]
            for _ in raw["seeds"]]


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_dry_run_lists_every_run_with_its_estimate_and_runs_nothing(tmp_path, scale):
    runs = tmp_path / "runs"
    proc = figure(["3", "--dry-run", "--scale", scale, "--runs-dir", runs])
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = spec_runs(scale)
    rows = [line for line in proc.stdout.splitlines() if "will run" in line]
    assert len(rows) == len(expected)
    for row, run in zip(rows, expected):
        assert row.startswith(run["task"]) and run["gin"] in row
        assert row.split()[-1] == f"{run['minutes']:g}"
    total = sum(r["minutes"] for r in expected)
    assert f"{len(expected)} runs: 0 reused, {len(expected)} to run, about {total:g} min" \
        in proc.stdout
    assert not runs.exists()


def test_dry_run_says_which_run_is_going_now_and_which_resumes(tmp_path, monkeypatch):
    """A figure spans sessions: its dry run shows a run another process is running (its
    lock's holder) and one stopped with a checkpoint (the checkpoint's summary)."""
    import os

    from iwx.experiment.run_lock import RunLock, lock_path
    from iwx.figures.plan import make_plan
    from iwx.figures.spec import load
    from iwx.loops.checkpoint import Checkpointer

    monkeypatch.chdir(ROOT)
    runs = tmp_path / "runs"
    plan = make_plan(load(SPEC), "smoke", runs_dir=str(runs))
    going, stopped = plan.runs[0], plan.runs[1]
    ck = Checkpointer(runs / "_checkpoints" / stopped.key)
    ck.meta = {"run_id": "3"}
    ck.save({"phase": "train"}, "train:4")
    with RunLock(lock_path(runs, going.key), key=going.key):
        proc = figure(["3", "--dry-run", "--scale", "smoke", "--runs-dir", runs])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines()
            if line.startswith(("reach_cpu", "go_to_ring_cpu"))]
    assert len(rows) == len(plan.runs)
    assert re.search(rf"running now \(pid {os.getpid()} since \d\d-\d\d \d\d:\d\d\)", rows[0])
    assert re.search(r"resumes from train:4 \(saved \d\d-\d\d \d\d:\d\d\)", rows[1])
    assert all("will run" in row for row in rows[2:])
    # The estimate of a resumed run drops by the share of its pretraining checkpointed:
    # train:4 of the smoke scale's 16 updates leaves 3/4 of its 0.3 minutes.
    assert stopped.updates == 16 and stopped.minutes == 0.3
    assert rows[1].rstrip().endswith("0.225 of 0.3")
    assert rows[0].rstrip().endswith("  0.3") and rows[2].rstrip().endswith("  0.3")
    total = sum(p.minutes for p in plan.runs) - 0.3 / 4
    assert f"{len(plan.runs)} to run, about {total:.3g} min" in proc.stdout   # 2.33


def test_runs_picks_runs_by_label_or_gin_file_in_every_panel(tmp_path):
    from iwx.figures.plan import run_name

    assert run_name("From Scratch") == run_name("from-scratch") == "fromscratch"
    assert run_name("PEARL*") == "pearl" and run_name("RL²") == "rl2"
    runs = tmp_path / "runs"
    proc = figure(["3", "--dry-run", "--runs", "scratch", "RL²", "gin/reach_iwpl.gin",
                   "--runs-dir", runs])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split()[:2] for line in proc.stdout.splitlines() if "will run" in line]
    assert [r[0] for r in rows] == ["reach_cpu"] * 3 + ["go_to_ring_cpu"] * 2, proc.stdout
    assert [r[-1] for r in rows] == ["gin/reach_iwpl.gin", "gin/reach_rl2.gin",
                                     "gin/reach_scratch.gin", "gin/go_to_ring_rl2.gin",
                                     "gin/go_to_ring_scratch.gin"], proc.stdout
    assert "5 runs: 0 reused, 5 to run" in proc.stdout
    one = figure(["3", "--dry-run", "--panels", "reach_cpu", "--runs", "iwpl", "--runs-dir", runs])
    assert "1 run: 0 reused, 1 to run, about 115 min of compute" in one.stdout, one.stdout
    assert not runs.exists()


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke figure made once: (runs folder, out folder, the command's result)."""
    tmp = tmp_path_factory.mktemp("figure3")
    runs, out = tmp / "runs", tmp / "out"
    args = ["3", "--scale", "smoke", "--runs-dir", runs, "--out", out, "--jobs", "2",
            "--progress-every", "0.2"]
    return runs, out, args, figure(args, timeout=900)


def hand_table_cell(results: dict, variant: str, last: int) -> str:
    """Appendix A.2 by hand from results.json: per held-out task the mean over seeds of
    the last ``last`` episodes, then mean ± 95% CI (Student t) across tasks."""
    returns = np.asarray(results["returns"][variant], dtype=np.float64)   # [task, seed, ep]
    per_task = returns[:, :, -last:].mean(axis=(1, 2))
    mean, half = stats.mean_ci(per_task)
    return f"{mean:.2f} ± {half:.2f}"


def test_the_smoke_figure_runs_records_and_draws_every_run(smoke):
    runs, out, _, proc = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert len(re.findall(r"run \d/8 started", proc.stdout)) == 8
    assert len(re.findall(r"run \d/8 done in \d+ s as run \d", proc.stdout)) == 8
    # between a run's start and end, its newest progress line (iwx.loops.progress) as it
    # changes: the runs' own status lines, passed through with the run's number
    passed = re.findall(r"^\[iwx\.figure\] run (\d)/8: \[(pretrain|adapt [^\]]+)\] (.*)$",
                        proc.stdout, re.MULTILINE)
    assert passed, proc.stdout[-3000:]
    assert {kind for _, kind, _ in passed} >= {"pretrain"}
    assert all(re.match(r"(start:|resumed at|done:|interrupted|\d+/\d+ \w+ \()", rest)
               for _, _, rest in passed), passed

    record = read_json(out / "figure.json")
    assert [p["task"] for p in record["panels"]] == ["reach_cpu", "go_to_ring_cpu"]
    table = (out / "table.md").read_text()
    for panel in record["panels"]:
        assert [line["label"] for line in panel["lines"]] == VARIANTS
        assert panel["exploration_episodes"] == 1
    # every run of the figure is a COMPLETED record of the file store
    dirs = run_dirs(runs)
    assert len(dirs) == 8 and sorted(r["dir"] for r in record["runs"]) == \
        sorted(str(d) for d in dirs)
    for row in record["runs"]:
        folder = ran_figure_run(row)
        results = read_json(folder / "results.json")
        for variant in results["returns"]:   # the table's numbers, by hand from results.json
            assert f"| {row['panel']} | {variant} | 2 | task | 1 | " \
                   f"{hand_table_cell(results, variant, 3)} |" in table
    assert record["compute_seconds"] == pytest.approx(
        sum(r["compute_seconds"] for r in record["runs"]))
    # whether each training was still rising at its end (iwx.results.plateau), checked
    # against scipy's Welch interval on the run's own series: 16 updates logged every 4,
    # so 2 points a stretch; From Scratch trains nothing and has no row
    from scipy import stats as scipy_stats

    trained = [row for row in record["runs"]
               if "train/return" in read_json(ran_figure_run(row) / "series.json")]
    assert len(trained) == 6 and len(record["plateaus"]) == 6
    for row, check in zip(trained, record["plateaus"]):
        assert (check["panel"], check["label"], str(check["run_id"])) == \
            (row["panel"], row["label"], str(row["run_id"]))
        values = read_json(ran_figure_run(row) / "series.json")["train/return"]["values"]
        assert len(values) == 4 and check["points"] == 2 and check["updates"] == 16
        before, last = values[:2], values[2:]
        assert check["change"] == pytest.approx(np.mean(last) - np.mean(before))
        if np.var(before) + np.var(last) > 0:
            low, high = scipy_stats.ttest_ind(last, before, equal_var=False) \
                .confidence_interval(0.95)
            assert check["ci95"] == pytest.approx((high - low) / 2, rel=1e-6)
        assert check["significant"] == (check["change"] - check["ci95"] > 0)
        # 4 points: the first stretch is the one before, so the change is the whole gain
        assert check["gain"] == pytest.approx(check["change"])
        assert check["rising"] == (check["significant"] and (
            check["share"] is None or check["share"] >= 0.1))
    assert "still rising?" in (out / "README.md").read_text()
    assert record["compute_seconds"] > 0
    # the training of every run that trained (From Scratch does not), per panel
    for metric in ("train/success", "train/return"):
        labels = [(line["task"], line["label"]) for line in record["training"][metric]]
        assert labels == [(t, m) for t in ("reach_cpu", "go_to_ring_cpu")
                          for m in ("IWPL", "RL²", "PEARL*")]
    assert record["training_x"] == {"reach_cpu": "env steps", "go_to_ring_cpu": "env steps"}
    readme = (out / "README.md").read_text()
    assert "![figure 3](figure3.png)" in readme and table.strip() in readme
    assert table.strip() in proc.stdout


def test_the_same_command_again_reuses_every_run_and_redraws(smoke):
    runs, out, args, first = smoke
    assert first.returncode == 0
    before = [d.name for d in run_dirs(runs)]
    table = (out / "table.md").read_text()
    for name in OUTPUTS:
        (out / name).unlink()
    again = figure(args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [d.name for d in run_dirs(runs)] == before
    assert "every run reused (8 runs): only redrawing" in again.stdout
    assert again.stdout.count(" reused: ") == 8 and "started" not in again.stdout
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert (out / "table.md").read_text() == table
    assert {r["status"] for r in read_json(out / "figure.json")["runs"]} == {"reused"}

    dry = figure(["3", "--scale", "smoke", "--runs-dir", runs, "--dry-run"])
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "8 runs: 8 reused, 0 to run, about 0 min of compute" in dry.stdout
    assert dry.stdout.count(f"reused: {runs}") == 8


def test_a_failed_run_is_reported_and_the_figure_drawn_from_the_others(smoke, tmp_path,
                                                                       monkeypatch):
    """The smoke scale's Reach panel plus one more run, which cannot start: both of its
    checkpoint files are damaged (iwx.loops.checkpoint refuses them, naming them). The
    four recorded runs are reused and drawn; the failure is reported with its output's
    tail; exit status 1. (A run another process holds is not a failure:
    tests/test_figure_shared_runs.py.)"""
    from iwx.figures.plan import make_plan
    from iwx.figures.spec import load

    runs, _, _, first = smoke
    assert first.returncode == 0
    raw = yaml.safe_load(SPEC.read_text())
    scale = raw["scales"]["smoke"]
    panel = scale["panels"][0]
    panel["runs"].append({"gin": "gin/reach_scratch.gin", "minutes": 0.3, "label": "again",
                          "bindings": ["Adaptation.updates_per_episode = 3"]})
    raw["scales"] = {"smoke": {**scale, "panels": [panel]}}
    path = tmp_path / "figure3.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    monkeypatch.chdir(ROOT)   # gin paths as the command resolves them (its cwd: ROOT)
    plan = make_plan(load(path), "smoke", runs_dir=str(runs))
    assert [p.done is not None for p in plan.runs] == [True] * 4 + [False]
    out = tmp_path / "out"
    damaged = runs / "_checkpoints" / plan.runs[-1].key
    damaged.mkdir(parents=True)
    for name in ("state.pt", "state.prev.pt"):
        (damaged / name).write_bytes(b"not a checkpoint")
    proc = figure(["--spec", path, "--scale", "smoke", "--runs-dir", runs, "--out", out])
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    (failed_line,) = [line for line in proc.stdout.splitlines() if "run 5/5 FAILED" in line]
    assert "--fresh" in failed_line, failed_line      # the checkpoint error's last line
    assert "run 5/5 failed: reach_cpu · gin/reach_scratch.gin · seed 0" in proc.stderr
    assert plan.runs[-1].key in proc.stderr            # the error names the files
    record = read_json(out / "figure.json")
    assert [line["label"] for line in record["panels"][0]["lines"]] == VARIANTS
    assert [r["status"] for r in record["runs"]] == ["reused"] * 4 + ["failed"]
    assert plan.runs[-1].key in record["runs"][-1]["error"]


def pool_workers(pid: int) -> list[int]:
    """The processes ``pid`` spawned to run a figure's runs (Linux: read from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue                     # a process that ended while we looked
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(stat.parent.name))
    return found


def start_figure(spec: Path, runs: Path, out: Path):
    """``python -m iwx.figure --spec SPEC`` in the background, SIGINT's default action in
    it (and so in its runs) even where this test process was started with SIGINT ignored
    (a background job of a shell)."""
    import os
    import signal
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-m", "iwx.figure", "--spec", str(spec), "--runs-dir", str(runs),
         "--out", str(out)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_until_running(proc, runs: Path, index: int) -> None:
    """Until the ``index``-th run record (0-based) has metrics: that run is going."""
    import time

    deadline = time.monotonic() + 300       # a hang guard, not a speed claim
    while not (runs.is_dir() and len(run_dirs(runs)) > index
               and (run_dirs(runs)[index] / "metrics.json").is_file()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)


LONG_THEN_SHORT = GOOD.replace(
    "          - {gin: gin/reach_scratch.gin, minutes: 2}\n",
    "          - {gin: gin/reach_iwpl.gin, minutes: 2, bindings: [MultiTaskTraining.updates = "
    "100000, ReachTasks.num_train = 4, ReachEnv.time_limit = 1.0]}\n"
    "          - {gin: gin/reach_scratch.gin, minutes: 2}\n")


def signal_the_first_run(tmp_path: Path, spec: str, runs: Path, signum):
    """Start the figure of ``spec``, send ``signum`` to its first run's process once that
    run is going, and wait for the command: (process, stdout, stderr)."""
    import os
    import signal

    proc = start_figure(write_spec(tmp_path, spec), runs, tmp_path / "out")
    try:
        wait_until_running(proc, runs, 0)
        (worker,) = pool_workers(proc.pid)
        os.kill(worker, signum)
        out, err = proc.communicate(timeout=300)
    finally:
        for pid in pool_workers(proc.pid):   # a run still going would outlive the test
            os.kill(pid, signal.SIGKILL)
        proc.kill()
    return proc, out, err


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_signal_to_one_run_stops_the_figure_there(tmp_path):
    """SIGINT to a run's own process (a scheduler's, or someone stopping that run, not
    the figure): the run records itself INTERRUPTED, the figure starts no further run
    and exits 130 saying how to resume, instead of spending the compute on the next."""
    import signal

    runs = tmp_path / "runs"
    proc, out, err = signal_the_first_run(tmp_path, LONG_THEN_SHORT, runs, signal.SIGINT)
    assert proc.returncode == 130, out[-2000:] + err[-2000:]
    assert "run 1/2 INTERRUPTED" in out and "resumes from its checkpoint" in out
    assert "run 2/2 started" not in out
    assert "a run was stopped by a signal: no further run started" in err
    (only,) = run_dirs(runs)
    assert read_json(only / "run.json")["status"] == "INTERRUPTED"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_run_killed_from_outside_fails_and_the_next_one_runs(tmp_path):
    """SIGKILL to a run's process (what the out-of-memory killer sends; no handler can
    see it): that run fails, saying its process was killed and that the same command
    resumes it, and the figure goes on to its next run. With one process pool for all
    runs the next start raised BrokenProcessPool and the command died there."""
    import signal

    runs = tmp_path / "runs"
    then_tiny = LONG_THEN_SHORT.replace(
        "          - {gin: gin/reach_scratch.gin, minutes: 2}\n",
        "          - {gin: gin/reach_scratch.gin, minutes: 2, bindings: [ReachTasks.num_train"
        " = 4, ReachTasks.num_test = 1, ReachEnv.time_limit = 1.0, Adaptation.episodes = 2,"
        " Adaptation.exploration_episodes = 1]}\n")
    assert then_tiny != LONG_THEN_SHORT
    proc, out, err = signal_the_first_run(tmp_path, then_tiny, runs, signal.SIGKILL)
    assert proc.returncode == 1, out[-2000:] + err[-2000:]     # a failed run, not a crash
    (failed_line,) = [line for line in out.splitlines() if "run 1/2 FAILED" in line]
    assert "killed from outside" in failed_line and "resumes it" in failed_line
    assert "run 2/2 done" in out and "Traceback" not in err
    first, second = run_dirs(runs)
    assert read_json(second / "run.json")["status"] == "COMPLETED"


FAILING_LONG_SHORT = LONG_THEN_SHORT.replace(
    "        runs:\n",
    "        runs:\n"
    "          - {gin: gin/reach_iwpl.gin, minutes: 1, label: too big, bindings: "
    "[IWPA.cache_max_gb = 1e-9, "
    "ReachTasks.num_train = 4, ReachEnv.time_limit = 1.0]}\n")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize("sig, code, said", [("SIGTERM", 143, "stopped by SIGTERM"),
                                             ("SIGINT", 130, "stopped by Ctrl-C")])
def test_a_signal_to_the_figure_command_stops_its_runs_and_leaves_none_behind(
        tmp_path, sig, code, said):
    """SIGTERM (``kill``, ``timeout``, a queue being stopped) or SIGINT sent to the
    figure command's own process, not its runs': the command forwards it to the run
    going, which records itself INTERRUPTED; no further run starts and no worker is left
    running on its own (SIGTERM used to end the command at once and orphan its run; a
    SIGINT to the command alone left it waiting forever for a run that never heard)."""
    import os
    import signal

    signum = getattr(signal, sig)
    runs = tmp_path / "runs"
    proc = start_figure(write_spec(tmp_path, FAILING_LONG_SHORT), runs, tmp_path / "out")
    workers = []
    try:
        wait_until_running(proc, runs, 1)     # run 1 failed at once; run 2 is going
        workers = pool_workers(proc.pid)
        assert len(workers) == 1
        os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=300)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()
                 and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
    finally:
        for pid in pool_workers(proc.pid) + workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
    assert proc.returncode == code, out[-2000:] + err[-2000:]
    assert alive == []
    # the run before it failed: said when it failed (its error's last line) and again,
    # with its output's tail, when the figure stops early
    (failed_line,) = [line for line in out.splitlines() if "run 1/3 FAILED" in line]
    assert "IWPA.cache_max_gb" in failed_line
    assert "run 1/3 failed: reach_cpu · gin/reach_iwpl.gin · seed 0" in err
    assert "run 2/3 INTERRUPTED" in out and f"exit {code}" in out
    assert "run 3/3 started" not in out
    assert said in err and "resumes them from their checkpoints" in err
    assert [read_json(d / "run.json")["status"] for d in run_dirs(runs)] == \
        ["FAILED", "INTERRUPTED"]


def test_runs_recorded_only_in_mongodb_are_reused_from_there(smoke, tmp_path):
    db_module = pytest.importorskip("iwx.experiment.dbserver")
    try:
        db_module.find_secantusd()
    except db_module.DatabaseError as exc:
        pytest.skip(f"SecantusDB is not installed ({exc})")
    runs, out, _, first = smoke
    assert first.returncode == 0
    server = db_module.start_server(tmp_path / "db", port=0, timeout=300)
    try:
        sync = run_cli("iwx.resync", ["--runs-dir", str(runs), "--mongo", server.url,
                                      "--no-progress"])
        assert sync.returncode == 0, sync.stderr[-3000:]
        empty, mongo_out = tmp_path / "empty", tmp_path / "out"
        proc = figure(["3", "--scale", "smoke", "--runs-dir", empty, "--mongo", server.url,
                       "--out", mongo_out])
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count(f"in {server.url}") == 8 and "started" not in proc.stdout
    assert not empty.exists()
    assert (mongo_out / "table.md").read_text() == (out / "table.md").read_text()
    rows = read_json(mongo_out / "figure.json")["runs"]
    assert {r["source"] for r in rows} == {server.url} and all(r["dir"] is None for r in rows)


# --------------------------------------------------------------------------- small parts

def test_a_records_compute_is_its_wall_time_from_either_store():
    from iwx.experiment.store import RecordedRun
    from iwx.figures.record import seconds_of

    def run(start, stop):
        return RecordedRun(1, "s", "COMPLETED", {}, {}, {}, {}, start_time=start,
                           stop_time=stop)

    assert seconds_of(run("2026-12-03T11:37:06.500000", "2026-12-03T11:38:07.000000")) == 60.5
    assert seconds_of(run(dt.datetime(2026, 1, 1, 10), dt.datetime(2026, 1, 1, 12))) == 7200
    assert seconds_of(run("2026-12-03T11:37:06", None)) is None


def test_the_shipped_spec_is_found_by_number_and_every_scale_reads():
    from iwx.figures import spec

    assert spec.available()[3].samefile(SPEC)
    loaded = spec.load(spec.find(3))
    assert list(loaded.scales) == ["cpu", "paper", "smoke"]
    assert [p.task for p in loaded.scale("cpu").panels] == \
        [p.task for p in loaded.scale("smoke").panels]


def test_a_resumed_runs_compute_adds_the_segments_it_resumed_from(tmp_path):
    """Run 3 resumed run 2, which resumed run 1 (killed: it ends at its last heartbeat):
    the compute is 60 + 30 + 10 s, not the last segment's 10 s."""
    from iwx.experiment.store import RecordedRun
    from iwx.figures.record import compute_of

    segments = {1: ("2026-12-03T10:00:00", {"heartbeat": "2026-12-03T10:01:00"}, None),
                2: ("2026-12-03T11:00:00", {"stop_time": "2026-12-03T11:00:30"}, 1)}
    for run_id, (start, end, previous) in segments.items():
        folder = tmp_path / str(run_id)
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"start_time": start, **end}))
        info = {} if previous is None else {"resumed_from": {"run_id": previous}}
        (folder / "info.json").write_text(json.dumps(info))
    last = RecordedRun(3, str(tmp_path), "COMPLETED", {}, {"resumed_from": {"run_id": 2}}, {},
                       {}, start_time="2026-12-03T12:00:00", stop_time="2026-12-03T12:00:10")
    assert compute_of(last) == 100.0
    fresh = RecordedRun(4, str(tmp_path), "COMPLETED", {}, {}, {}, {},
                        start_time="2026-12-03T12:00:00", stop_time="2026-12-03T12:00:10")
    assert compute_of(fresh) == 10.0


def write_record(folder: Path, status: str, start: str, stop: str, key: str | None = None,
                 resumed_from: int | None = None) -> None:
    """A file-store record as the figure reads it: run.json, info.json (and results.json
    when COMPLETED)."""
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(
        {"status": status, "start_time": start, "stop_time": stop}))
    info = {"checkpoint_key": key} if key else {}
    if resumed_from is not None:
        info["resumed_from"] = {"run_id": resumed_from}
    (folder / "info.json").write_text(json.dumps(info))
    if status == "COMPLETED":
        (folder / "results.json").write_text("{}")


def test_later_seeds_are_estimated_from_what_the_completed_seeds_took(tmp_path, monkeypatch):
    """Figure 3's smoke scale at 4 seeds. Seeds 0 and 1 of its first run are recorded:
    60 s, and 90 s resumed from a 30 s segment (2 min). Seeds 2 and 3 are estimated at
    their mean, 1.5 min, marked measured; the other runs keep the spec's 0.3. A seed
    that completes while the figure runs joins the estimate of the seeds still queued."""
    from iwx.figures.execute import remeasure
    from iwx.figures.plan import make_plan, table
    from iwx.figures.spec import load

    raw = yaml.safe_load(SPEC.read_text())
    raw["scales"] = {"smoke": {**raw["scales"]["smoke"], "seeds": [0, 1, 2, 3]}}
    path = tmp_path / "figure3.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False))
    monkeypatch.chdir(ROOT)
    runs = tmp_path / "runs"
    first = make_plan(load(path), "smoke", runs_dir=str(runs))
    seed0, seed1, seed2, _ = (p for p in first.runs if p.entry is first.runs[0].entry)
    assert (seed0.seed, seed1.seed, seed2.seed) == (0, 1, 2) and seed2.minutes == 0.3
    write_record(runs / "1", "COMPLETED", "2026-12-05T10:00:00", "2026-12-05T10:01:00",
                 seed0.key)
    write_record(runs / "2", "INTERRUPTED", "2026-12-05T11:00:00", "2026-12-05T11:00:30")
    write_record(runs / "3", "COMPLETED", "2026-12-05T12:00:00", "2026-12-05T12:01:30",
                 seed1.key, resumed_from=2)
    plan = make_plan(load(path), "smoke", runs_dir=str(runs))
    later, fourth = (p for p in plan.missing() if p.entry is plan.runs[0].entry)
    assert later.key == seed2.key and fourth.seed == 3
    assert later.measured == fourth.measured == (1.0, 2.0) and later.minutes == 1.5
    others = [p for p in plan.missing() if p.entry is not later.entry]
    assert others and all(not p.measured and p.minutes == 0.3 for p in others)
    rows = table(plan).splitlines()
    assert next(r for r in rows if "will run" in r and f"  {later.seed}  " in r
                and later.files[0] in r).rstrip().endswith("  1.5*")
    assert rows[-1].startswith("* measured: the mean recorded compute")
    # seed 2 completes in 3 min while the figure runs: seed 3, still queued, takes it in
    write_record(runs / "4", "COMPLETED", "2026-12-05T13:00:00", "2026-12-05T13:03:00")
    remeasure(later, {"ok": True, "reused": False, "run_dir": str(runs / "4")}, [fourth])
    assert fourth.measured == (1.0, 2.0, 3.0) and fourth.minutes == 2.0
    remeasure(later, {"ok": False, "run_dir": str(runs / "4")}, [fourth])   # failed: no
    assert fourth.measured == (1.0, 2.0, 3.0)


def test_the_newest_progress_line_is_read_from_the_end_of_a_runs_log(tmp_path):
    from iwx.figures.execute import last_status

    log = tmp_path / "run_1.log"
    assert last_status(log) is None                              # not written yet
    log.write_text("[iwx] resuming from checkpoint 'train:16' of run 3\n")
    assert last_status(log) is None                              # no status line yet
    log.write_text("[iwx] resuming from checkpoint 'train:16' of run 3\n"
                   "[pretrain] resumed at 16/48 upd (33.3%)\n"
                   "[pretrain] 24/48 upd (50.0%) 3.1 upd/s, elapsed 0:03, ETA 0:08\n"
                   "(pid=123) a Ray worker's line [pretrain] quoted\n"
                   "[adapt Shared Q + IW] start: 0/3 ep (0.0%)\n"
                   "Traceback (most recent call last):\n")
    assert last_status(log) == "[adapt Shared Q + IW] start: 0/3 ep (0.0%)"
    # only the end of a long log is read
    log.write_text("[pretrain] 1/2 upd (50.0%)\n" + "x" * 100 + "\n")
    assert last_status(log, tail_bytes=50) is None
    assert last_status(log) == "[pretrain] 1/2 upd (50.0%)"
