"""Checkpoints that cannot be corrupted or confused (issue 14).

Real files and real processes throughout: damaged files fall back to the previous
checkpoint with one warning naming the path; two damaged files give a CheckpointError
naming both and ``--fresh``; a save that the operating system refuses (a file-size
limit, a full tmpfs where unprivileged mounts are allowed) leaves the old checkpoint
loadable and no temporary file; concurrent savers never leave an unusable
checkpoint; a run's lock keeps a second process out, names the holder, and dies
with it. No wall-clock assertions.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from iwx.experiment.run_lock import RunLock, RunLocked, lock_path
from iwx.loops.checkpoint import CheckpointError, Checkpointer, rng_state, set_rng_state

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
WIDTH = 20_000


def _state(i: int, writer: int = 0) -> dict:
    return {"i": i, "writer": writer, "weights": torch.full((WIDTH,), float(1000 * writer + i))}


def _two_saves(directory: Path) -> Checkpointer:
    ck = Checkpointer(directory)
    ck.save(_state(1), "one")
    ck.save(_state(2), "two")
    return ck


def _python(code: str, *args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=ROOT, env=ENV,
                            text=True, **kwargs)


# -- save / load --------------------------------------------------------------------------

def test_round_trip_keeps_tensors_meta_label_and_every_rng(tmp_path):
    directory = tmp_path / "ck"
    ck = Checkpointer(directory)
    assert ck.load() is None                     # nothing saved yet: start from zero
    rng = np.random.default_rng(5)
    rng.random(3)
    torch.manual_seed(1)
    random.seed(2)
    weights = torch.randn(3, 4)
    ck.meta = {"run_id": "7"}
    ck.save({"weights": weights, "rng": rng_state(rng), "counters": {"updates": 32}}, "train:32")
    expected = rng.random(4), torch.rand(4), random.random()

    other = np.random.default_rng(0)
    torch.manual_seed(99)
    random.seed(0)
    loaded = Checkpointer(directory).load()
    assert (loaded["label"], loaded["run_id"], loaded["counters"]) == ("train:32", "7",
                                                                      {"updates": 32})
    assert torch.equal(loaded["weights"], weights)
    set_rng_state(loaded["rng"], other)
    assert np.array_equal(other.random(4), expected[0])
    assert torch.equal(torch.rand(4), expected[1])
    assert random.random() == expected[2]
    assert sorted(os.listdir(directory)) == ["state.json", "state.pt"]


def _truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_weight(path: Path):
    """One bit of one float of the weights: the zip structure stays intact, so torch
    alone would load the changed number without complaint."""
    data = bytearray(path.read_bytes())
    at = data.index(struct.pack("<f", 2.0) * 64) + 4 * 100
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def _garbage(path: Path):
    path.write_bytes(os.urandom(path.stat().st_size))


@pytest.mark.parametrize("damage, problem", [
    (_truncate, "is truncated"),
    (_flip_a_weight, "fails its checksum"),
    (_garbage, "is not an iwx checkpoint"),
    (lambda path: path.write_bytes(b""), "is empty"),
    (Path.unlink, "is missing"),        # killed between the two renames of a save
])
def test_damaged_state_falls_back_to_the_previous_with_one_warning(tmp_path, capsys, damage,
                                                                    problem):
    directory = tmp_path / "ck"
    _two_saves(directory)
    damage(directory / "state.pt")
    capsys.readouterr()
    loaded = Checkpointer(directory).load()
    assert loaded["label"] == "one"
    assert torch.equal(loaded["weights"], _state(1)["weights"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert f"{directory / 'state.pt'} {problem}" in line
    assert str(directory / "state.prev.pt") in line


def test_a_save_after_falling_back_keeps_the_good_previous(tmp_path, capsys):
    directory = tmp_path / "ck"
    _two_saves(directory)
    _truncate(directory / "state.pt")
    ck = Checkpointer(directory)
    assert ck.load()["label"] == "one"
    ck.save(_state(3), "three")       # must not rotate the truncated file over "one"
    _truncate(directory / "state.pt")
    assert Checkpointer(directory).load()["label"] == "one"


@pytest.mark.parametrize("damage_previous, problem", [
    (_truncate, "is truncated"),
    (Path.unlink, "is missing"),
])
def test_both_unusable_raise_checkpoint_error_naming_both_and_fresh(tmp_path, damage_previous,
                                                                    problem):
    directory = tmp_path / "ck"
    ck = _two_saves(directory)
    _garbage(directory / "state.pt")
    damage_previous(directory / "state.prev.pt")
    with pytest.raises(CheckpointError) as info:
        Checkpointer(directory).load()
    message = str(info.value)
    assert f"{directory / 'state.pt'} is not an iwx checkpoint" in message
    assert f"{directory / 'state.prev.pt'} {problem}" in message
    assert "--fresh" in message
    ck.clear()                           # what --fresh does
    assert Checkpointer(directory).load() is None


def test_a_checkpoint_written_before_the_header_still_loads(tmp_path):
    directory = tmp_path / "ck"
    directory.mkdir()
    torch.save({"label": "old", "weights": torch.ones(3)}, directory / "state.pt")
    loaded = Checkpointer(directory).load()
    assert loaded["label"] == "old" and torch.equal(loaded["weights"], torch.ones(3))


def test_a_preloaded_state_is_returned_once_without_reading_the_file(tmp_path):
    directory = tmp_path / "ck"
    ck = _two_saves(directory)
    state = Checkpointer(directory).load()
    _garbage(directory / "state.pt")             # a read now would fall back to "one"
    ck.preload(state)
    assert ck.load() is state
    assert ck.load()["label"] == "one"


def test_clear_removes_both_checkpoints_and_stale_temporary_files(tmp_path):
    directory = tmp_path / "ck"
    ck = _two_saves(directory)
    (directory / "state.tmp").write_bytes(b"left by iwx before unique names")
    (directory / "state.k2j4x9ab.tmp").write_bytes(b"left by a killed save")
    (directory / "notes.txt").write_text("not the checkpointer's")
    ck.clear()
    assert sorted(os.listdir(directory)) == ["notes.txt"]
    assert ck.load() is None


def test_every_save_leaves_a_summary_a_reader_takes_without_loading_the_state(tmp_path):
    """state.json: the newest save's label, time and meta (what a figure's dry run shows
    of a run in progress), so nobody loads a state of hundreds of MB to say where it is."""
    import datetime

    from iwx.loops.checkpoint import checkpoint_summary

    directory = tmp_path / "ck"
    assert checkpoint_summary(directory) is None                # nothing saved yet
    ck = Checkpointer(directory)
    ck.meta = {"run_id": "7"}
    before = datetime.datetime.now().astimezone().replace(microsecond=0)
    ck.save(_state(1), "train:8")
    after = datetime.datetime.now().astimezone()
    summary = checkpoint_summary(directory)
    assert summary["label"] == "train:8" and summary["run_id"] == "7"
    assert before <= datetime.datetime.fromisoformat(summary["saved"]) <= after  # the save's
    ck.save(_state(2), "train:16")
    assert checkpoint_summary(directory)["label"] == "train:16"
    assert ck.load()["label"] == "train:16"                   # the state says the same
    ck.clear()
    assert checkpoint_summary(directory) is None and not (directory / "state.json").exists()


def test_the_holder_of_a_run_lock_is_read_without_touching_the_lock(tmp_path):
    from iwx.experiment.run_lock import current_holder

    path = tmp_path / "k.lock"
    assert current_holder(path) is None                       # no lock file
    with RunLock(path, key="k") as lock:
        holder = current_holder(path)
        assert holder["pid"] == os.getpid() and holder["key"] == "k"
        assert lock.held
    assert current_holder(path) is None                       # released: the file is empty
    # a holder killed outright leaves its description behind; its process is gone
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    path.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(), "key": "k"}))
    assert current_holder(path) is None
    # a holder on another host cannot be checked from here: it is reported as it says
    path.write_text(json.dumps({"pid": 1, "host": "elsewhere", "key": "k"}))
    assert current_holder(path)["host"] == "elsewhere"
    with RunLock(path, key="k"):                              # and the lock itself is free
        pass


# -- saves the operating system refuses ---------------------------------------------------

class _NoSpace:
    """Stands in for a disk that fills while the checkpoint's contents are produced."""

    def __reduce__(self):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_save_names_the_path_and_keeps_the_old_checkpoint(tmp_path):
    directory = tmp_path / "ck"
    ck = Checkpointer(directory)
    ck.save(_state(1), "one")
    before = (directory / "state.pt").read_bytes()
    with pytest.raises(OSError) as info:
        ck.save({"weights": torch.ones(3), "oops": _NoSpace()}, "two")
    assert info.value.errno == errno.ENOSPC
    assert str(directory / "state.pt") in str(info.value)
    assert "No space left on device" in str(info.value)
    assert sorted(os.listdir(directory)) == ["state.json", "state.pt"]          # no temporary file
    assert (directory / "state.pt").read_bytes() == before
    assert Checkpointer(directory).load()["label"] == "one"


REFUSED_SAVE = r"""
import json, os, resource, signal, sys, torch
from iwx.loops.checkpoint import Checkpointer
directory, limit = sys.argv[1], int(sys.argv[2])
ck = Checkpointer(directory)
ck.save({"weights": torch.zeros(10)}, "small")
if limit:   # the kernel refuses writes past `limit` bytes (EFBIG) instead of signalling
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
error = None
try:
    ck.save({"weights": torch.zeros(1_000_000)}, "big")     # 4 MB
except OSError as exc:
    error = {"type": type(exc).__name__, "errno": exc.errno, "message": str(exc)}
print(json.dumps({"error": error, "files": sorted(os.listdir(directory)),
                  "label": Checkpointer(directory).load()["label"]}), flush=True)
ck.save({"weights": torch.zeros(10)}, "after")      # saving works again
"""


def _check_refused(out: str, directory: Path, code: int):
    report = json.loads(out.strip().splitlines()[-1])
    assert report["error"] is not None, report
    assert report["error"]["errno"] == code, report
    assert str(directory / "state.pt") in report["error"]["message"]
    assert os.strerror(code) in report["error"]["message"]
    assert "enforce fail" not in report["error"]["message"]
    assert report["files"] == ["state.json", "state.pt"]   # temporary file removed
    assert report["label"] == "small"               # the previous checkpoint is untouched


def test_a_write_the_kernel_refuses_mid_file_leaves_the_old_checkpoint(tmp_path):
    """A real failing write(2) partway through the file: RLIMIT_FSIZE gives EFBIG. The
    next save works, and the testing hook IWX_KILL_AFTER_CHECKPOINT kills right after it."""
    directory = tmp_path / "ck"
    done = subprocess.run([sys.executable, "-c", REFUSED_SAVE, str(directory), "200000"],
                          cwd=ROOT, env={**ENV, "IWX_KILL_AFTER_CHECKPOINT": "after"},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip(), done.stderr[-2000:]
    _check_refused(done.stdout, directory, errno.EFBIG)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert Checkpointer(directory).load()["label"] == "after"


def _tmpfs_command(mount_point: Path, *command) -> list[str]:
    """``command`` in a user and mount namespace where ``mount_point`` is a 1 MB tmpfs."""
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            'mount -t tmpfs -o size=1m tmpfs "$0" && exec "$@"', str(mount_point), *command]


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(_tmpfs_command(probe, "true"), capture_output=True).returncode == 0


def test_a_full_disk_leaves_the_old_checkpoint_and_says_no_space(tmp_path):
    """ENOSPC from a real, full filesystem (a 1 MB tmpfs; needs unprivileged user
    namespaces, which some machines forbid: the test above covers the same path)."""
    if not _can_mount_tmpfs(tmp_path):
        pytest.skip("cannot mount a tmpfs in a user namespace on this machine")
    directory = tmp_path / "full"
    directory.mkdir()
    done = subprocess.run(_tmpfs_command(directory, sys.executable, "-c", REFUSED_SAVE,
                                         str(directory), "0"),
                          cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    _check_refused(done.stdout, directory, errno.ENOSPC)


# -- concurrent savers --------------------------------------------------------------------

SAVER = r"""
import sys, torch
from iwx.loops.checkpoint import Checkpointer
directory, writer, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ck = Checkpointer(directory)
print("ready", flush=True)
sys.stdin.readline()
for i in range(30):
    ck.save({"i": i, "writer": writer, "weights": torch.full((width,), float(1000 * writer + i))},
            f"{writer}:{i}")
"""


def test_concurrent_savers_never_leave_an_unusable_checkpoint(tmp_path, capsys):
    """Two processes save 30 times each into one directory (what the run lock prevents,
    should it be bypassed) while this one loads over and over: every load succeeds and
    holds one saver's complete state."""
    directory = tmp_path / "ck"
    Checkpointer(directory).save(_state(0), "0:0")
    savers = [_python(SAVER, directory, writer, WIDTH, stdin=subprocess.PIPE,
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE) for writer in (1, 2)]
    for saver in savers:
        assert saver.stdout.readline().strip() == "ready"
    for saver in savers:
        saver.stdin.write("go\n")
        saver.stdin.flush()

    def check(state):
        assert state is not None
        expected = torch.full((WIDTH,), float(1000 * state["writer"] + state["i"]))
        assert torch.equal(state["weights"], expected), state["label"]

    while any(saver.poll() is None for saver in savers):
        check(Checkpointer(directory).load())
    for saver in savers:
        _, err = saver.communicate(timeout=120)
        assert saver.returncode == 0, err[-2000:]
    final = Checkpointer(directory).load()
    check(final)
    assert final["i"] == 29
    assert not list(directory.glob("*.tmp"))


# -- the run lock -------------------------------------------------------------------------

HOLDER = r"""
import sys
from iwx.experiment.run_lock import RunLock
lock = RunLock(sys.argv[1], key=sys.argv[2]).acquire()
print("held", flush=True)
sys.stdin.readline()
"""


def _holder(path: Path, key: str) -> subprocess.Popen:
    holder = _python(HOLDER, path, key, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_gets_run_locked_naming_the_first(tmp_path):
    key = "0123abcd"
    path = lock_path(tmp_path, key)
    holder = _holder(path, key)
    try:
        with pytest.raises(RunLocked) as info:
            RunLock(path, key=key).acquire()
        message = str(info.value)
        assert f"process {holder.pid} on host {socket.gethostname()}" in message
        assert f"run {key} is already going" in message
        assert f"command: {sys.executable}" in message
        assert info.value.holder["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_dies_with_its_holder(tmp_path):
    path = lock_path(tmp_path, "k")
    holder = _holder(path, "k")
    with pytest.raises(RunLocked):
        RunLock(path).acquire()
    holder.send_signal(signal.SIGKILL)        # no clean-up of any kind
    holder.wait()
    with RunLock(path) as lock:
        assert lock.held
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_wait_polls_until_the_lock_is_free_then_gives_up_naming_the_wait(tmp_path):
    path = lock_path(tmp_path, "k")
    first = RunLock(path).acquire()     # another open file: contends like another process
    threading.Timer(0.3, first.release).start()
    second = RunLock(path, wait=120, poll=0.02).acquire()
    assert second.held
    with pytest.raises(RunLocked) as info:
        RunLock(path, wait=0.1, poll=0.02).acquire()
    assert "after waiting 0.1 s" in str(info.value)
    assert f"process {os.getpid()}" in str(info.value)
    second.release()
    RunLock(path).acquire().release()
