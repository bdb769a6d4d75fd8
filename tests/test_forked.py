"""tests/forked.py: a command run in a fork of the warm template behaves as the same
command in a fresh interpreter (``python -m``), and the command-line tests do fork."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import forked
from cli import ROOT, run_cli

# A module run with ``python -m probe MODE CODE PID``: reports what a command sees of
# its process, then ends as MODE says. (IWX_RUNS_DIR stands for a variable a command
# reads while it runs: one that may differ from the template's environment.)
PROBE = textwrap.dedent('''
    import atexit, json, os, signal, subprocess, sys, time
    atexit.register(lambda: print("atexit ran", flush=True))
    mode, code = sys.argv[1], int(sys.argv[2])   # argv[3]: the test's pid
    print(json.dumps({
        "name": __name__, "argv0": os.path.basename(sys.argv[0]), "args": sys.argv[1:],
        "cwd": os.getcwd(), "path0": sys.path[0], "runs_dir": os.environ.get("IWX_RUNS_DIR"),
        "pid_is_new": os.getpid() != int(sys.argv[3]),
    }))
    subprocess.run([sys.executable, "-c", "import sys; print('grandchild out'); "
                    "print('grandchild err', file=sys.stderr)"])
    print("to stderr", file=sys.stderr)
    sys.stdout.flush()
    if mode == "exit":
        sys.exit(code)
    if mode == "raise":
        raise ValueError("the probe failed on purpose")
    if mode == "message":
        sys.exit("a message instead of a code")
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "sleep":
        time.sleep(60)
        print("woke after a minute")
''')


@pytest.fixture()
def probe_dir(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def both(probe_dir, mode, code=0, timeout=120):
    """The probe run forked and fresh: {"forked": CompletedProcess, "fresh": ...}."""
    env = {**os.environ, "IWX_RUNS_DIR": "seen"}
    args = [mode, str(code), str(os.getpid())]
    before = dict(forked.STARTS)
    out = {"forked": forked.run("probe", args, env=env, cwd=probe_dir, timeout=timeout)}
    assert forked.STARTS["forked"] == before["forked"] + 1, "the probe did not fork"
    out["fresh"] = subprocess.run([sys.executable, "-m", "probe", *args], env=env,
                                  cwd=probe_dir, capture_output=True, text=True, timeout=timeout)
    return out


@pytest.mark.parametrize("mode,code", [("exit", 0), ("exit", 3), ("message", 0)])
def test_a_forked_command_sees_and_reports_what_a_fresh_interpreter_would(probe_dir, mode,
                                                                          code):
    runs = both(probe_dir, mode, code)
    seen = {k: json.loads(p.stdout.splitlines()[0]) for k, p in runs.items()}
    assert seen["forked"] == seen["fresh"]
    assert seen["forked"] == {"name": "__main__", "argv0": "probe.py",
                              "args": [mode, str(code), str(os.getpid())],
                              "cwd": str(probe_dir), "path0": str(probe_dir),
                              "runs_dir": "seen", "pid_is_new": True}
    for p in runs.values():
        assert p.returncode == (1 if mode == "message" else code)
        assert p.stdout.splitlines()[1:] == ["grandchild out", "atexit ran"], p.stdout
        expected = ["grandchild err", "to stderr"]
        if mode == "message":
            expected.append("a message instead of a code")
        assert p.stderr.splitlines() == expected, p.stderr


def test_an_uncaught_error_prints_its_traceback_and_exits_1_as_the_interpreter_does(probe_dir):
    runs = both(probe_dir, "raise")
    for p in runs.values():
        assert p.returncode == 1
        assert "atexit ran" in p.stdout
        last = p.stderr.strip().splitlines()
        assert last[-1] == "ValueError: the probe failed on purpose"
        assert "Traceback (most recent call last):" in p.stderr
        assert "Process" not in p.stderr        # multiprocessing's own report is not shown


def test_a_killed_command_reports_the_signal_as_a_negative_return_code(probe_dir):
    runs = both(probe_dir, "kill")
    assert runs["forked"].returncode == runs["fresh"].returncode == -9
    for p in runs.values():
        assert "atexit ran" not in p.stdout


def test_a_command_past_its_timeout_is_killed_and_raises_with_what_it_printed(probe_dir):
    with pytest.raises(subprocess.TimeoutExpired) as info:
        forked.run("probe", ["sleep", "0", str(os.getpid())], env=dict(os.environ),
                   cwd=probe_dir, timeout=5)
    assert '"name": "__main__"' in info.value.output
    assert "woke" not in info.value.output             # killed, not waited for
    assert info.value.timeout == 5


def test_an_environment_that_a_preloaded_library_may_have_read_starts_fresh():
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert forked.differences(base) == []
    assert forked.differences({**base, "PYTEST_CURRENT_TEST": "another test",
                               "IWX_KILL_AFTER_CHECKPOINT": "train:8"}) == []
    assert forked.differences({**base, "MUJOCO_GL": "osmesa-or-anything-else"}) == ["MUJOCO_GL"]
    assert forked.differences({**base, "IWX_HEARTBEAT_S": "0.5"}) == ["IWX_HEARTBEAT_S"]
    assert forked.differences({**base, "RAY_USAGE_STATS_ENABLED": "0",     # Ray in-process
                               "TUNE_DISABLE_SIGINT_HANDLER": "1"}) == []
    assert forked.differences({**base, "IWX_FRESH_PROCESS": "1"}) == ["IWX_FRESH_PROCESS"]
    without = {k: v for k, v in base.items() if k != "MUJOCO_GL"}
    assert forked.differences(without) == ["MUJOCO_GL"]


def test_the_command_line_tests_fork(tmp_path):
    """run_cli (every command-line test's way in) forks, so the suite's speed-up cannot
    vanish unnoticed (as it would if each test's own variables kept it out)."""
    before = dict(forked.STARTS)
    proc = run_cli("iwx.run", ["--gin", "no/such/file.gin", "--runs-dir", str(tmp_path)])
    assert proc.returncode == 2 and "no/such/file.gin" in proc.stderr, proc.stderr
    assert forked.STARTS == {"forked": before["forked"] + 1, "fresh": before["fresh"]}
