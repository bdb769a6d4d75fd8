"""Stops recorded as stops, one run per configuration at a time, and a full disk that
loses nothing silently (issue 14), through the real command line."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from tests.cli import (HANG_GUARD_S, ROOT, checkpoints, iwx_run, read_json, run_command,
                       run_dirs, start_run, wait_for)

LONGER = ["MultiTaskTraining.updates = 400", "MultiTaskTraining.checkpoint_period = 16"]
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_record_interrupted_and_say_how_to_resume(tmp_path, sig, code):
    proc = start_run(tmp_path, LONGER)
    wait_for(lambda: checkpoints(tmp_path), proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode == code, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    assert "recorded as INTERRUPTED" in err
    assert "to resume, run the same command again: python -m iwx.run" in err
    (first,) = run_dirs(tmp_path)
    assert read_json(first / "run.json")["status"] == "INTERRUPTED"
    assert checkpoints(tmp_path)   # kept
    again = iwx_run(tmp_path, params=LONGER)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from checkpoint 'train:" in again.stdout
    _, second = run_dirs(tmp_path)
    assert read_json(second / "run.json")["status"] == "COMPLETED"
    assert read_json(first / "run.json")["resumed_by"] == second.name
    assert not checkpoints(tmp_path)


def test_second_identical_command_is_refused_naming_the_first(tmp_path):
    """Started together and staggered: one runs, the others are refused at once
    (exit 2, no record), and nothing the first writes is disturbed."""
    params = ["MultiTaskTraining.updates = 800", "MultiTaskTraining.checkpoint_period = 16"]
    pair = [start_run(tmp_path, params), start_run(tmp_path, params)]   # at the same moment
    wait_for(lambda: any(p.poll() is not None for p in pair))
    (loser,) = [p for p in pair if p.poll() is not None]
    (winner,) = [p for p in pair if p is not loser]
    loser_err = loser.communicate()[1]
    assert loser.returncode == 2, loser_err[-3000:]
    wait_for(lambda: checkpoints(tmp_path), winner)
    staggered = iwx_run(tmp_path, params=params)    # while the first is checkpointing
    out, err = winner.communicate(timeout=HANG_GUARD_S)
    assert winner.returncode == 0, err[-3000:]
    assert staggered.returncode == 2, staggered.stderr[-3000:]
    for message in (loser_err, staggered.stderr):
        assert "is already going" in message and "Traceback" not in message, message[-2000:]
    # (the one started together may look before the winner has described itself)
    assert f"process {winner.pid} on host" in staggered.stderr, staggered.stderr[-2000:]
    (only,) = run_dirs(tmp_path)            # the refused commands recorded nothing
    assert read_json(only / "run.json")["status"] == "COMPLETED"
    assert (only / "results.json").is_file() and (only / "model.pt").is_file()


def test_torn_checkpoint_resumes_from_the_previous_one(tmp_path):
    killed = iwx_run(tmp_path, params=LONGER, env={"IWX_KILL_AFTER_CHECKPOINT": "train:48"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    (state,) = checkpoints(tmp_path)
    state.write_bytes(state.read_bytes()[:1000])          # torn
    resumed = iwx_run(tmp_path, params=LONGER)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert str(state) in resumed.stdout + resumed.stderr   # said which file was bad
    assert "resuming from checkpoint 'train:32'" in resumed.stdout


def test_unreadable_checkpoints_are_refused_before_any_record(tmp_path):
    killed = iwx_run(tmp_path, params=LONGER, env={"IWX_KILL_AFTER_CHECKPOINT": "train:48"})
    assert killed.returncode == -9
    for path in (tmp_path / "_checkpoints").glob("*/state*.pt"):
        path.write_bytes(b"garbage")
    again = iwx_run(tmp_path, params=LONGER)
    assert again.returncode == 2
    assert "--fresh" in again.stderr and "Traceback" not in again.stderr, again.stderr
    assert len(run_dirs(tmp_path)) == 1                     # no FAILED run added
    fresh = iwx_run(tmp_path, params=LONGER, extra=["--fresh"])
    assert fresh.returncode == 0, fresh.stderr[-3000:]


# --- a full disk -------------------------------------------------------------------------

@pytest.fixture
def small_store(tmp_path):
    """A 48 MB tmpfs as the file store (needs root and mount; skipped elsewhere)."""
    mount = tmp_path / "store"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> Path:
    """Write until the file system is full (ENOSPC)."""
    filler = folder / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        # the last bytes too
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


FAST_BEAT = {"IWX_HEARTBEAT_S": "0.5", "IWX_RECORD_RETRY_S": "2"}


def test_disk_full_for_a_moment_loses_nothing(small_store):
    proc = start_run(small_store, LONGER, env=FAST_BEAT)
    wait_for(lambda: checkpoints(small_store), proc)
    filler = _fill(small_store)
    time.sleep(1.5)          # three heartbeats fail
    filler.unlink()
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    if proc.returncode != 0:   # it may instead have stopped, naming the path: then resume
        assert "No space left on device" in err and str(small_store) in err, err[-3000:]
        again = subprocess.run(run_command(small_store, LONGER), cwd=ROOT, text=True,
                               capture_output=True, env={**os.environ, **FAST_BEAT,
                                                         "PYTHONPATH": str(ROOT)})
        assert again.returncode == 0, again.stderr[-3000:]
    done = [d for d in run_dirs(small_store)
            if read_json(d / "run.json")["status"] == "COMPLETED"]
    (run,) = done
    for name in ("results.json", "model.pt", "config.gin", "operative_config.gin"):
        assert (run / name).is_file(), name
    torch.load(run / "model.pt", weights_only=False)
    metrics = read_json(run / "series.json")   # against learner updates
    steps = metrics["train/return"]["steps"]
    assert steps == sorted(steps) and steps[-1] == 400   # every logging period, none lost
    assert len(steps) == 400 // 8
    assert not checkpoints(small_store)


def test_disk_full_to_the_end_fails_loudly_keeps_the_checkpoint_and_resumes(small_store):
    proc = start_run(small_store, LONGER, env=FAST_BEAT)
    wait_for(lambda: checkpoints(small_store), proc)
    filler = _fill(small_store)
    out, err = proc.communicate(timeout=HANG_GUARD_S)
    assert proc.returncode not in (0, 2), err[-3000:]
    assert "No space left on device" in err and str(small_store) in err, err[-3000:]
    assert "to resume, run the same command again" in err
    assert checkpoints(small_store)                      # the last good one
    filler.unlink()
    again = subprocess.run(run_command(small_store, LONGER), cwd=ROOT, text=True,
                           capture_output=True, env={**os.environ, **FAST_BEAT,
                                                     "PYTHONPATH": str(ROOT)})
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from checkpoint" in again.stdout
    run = run_dirs(small_store)[-1]
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    assert (run / "results.json").is_file() and (run / "model.pt").is_file()
    assert not checkpoints(small_store)
