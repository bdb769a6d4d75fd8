"""The replay in a checkpoint: it comes back bit for bit (also from the older numpy form),
and saving it costs no second copy of it in memory."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from cli import ROOT
from iwx.loops.checkpoint import Checkpointer, read_checkpoint
from iwx.replay.task_replay import TaskReplay

SPEC = {"proprio": (5,), "task_id": ()}


def filled(seed: int = 0) -> TaskReplay:
    """A replay whose every array holds distinct values (float32, int64 as stored)."""
    rng = np.random.default_rng(seed)
    replay = TaskReplay(3, SPEC, 2, 7, capacity=4, extra_spec={"hidden": (3,)})
    for array in [*replay.obs.values(), *replay.extras.values(), replay.actions,
                  replay.rewards, replay.discounts, replay.lengths, replay.cursor,
                  replay.begun, replay.episode]:
        array[...] = rng.integers(-1000, 1000, array.shape) if array.dtype == np.int64 else \
            rng.standard_normal(array.shape).astype(np.float32)
    return replay


def arrays(replay: TaskReplay) -> dict:
    return {"obs": replay.obs, "extras": replay.extras, "actions": replay.actions,
            "rewards": replay.rewards, "discounts": replay.discounts,
            "lengths": replay.lengths, "cursor": replay.cursor, "begun": replay.begun,
            "episode": replay.episode}


def assert_same(a: TaskReplay, b: TaskReplay) -> None:
    flat = lambda r: {f"{k}/{n}" if isinstance(v, dict) else k: x  # noqa: E731
                      for k, v in arrays(r).items()
                      for n, x in (v.items() if isinstance(v, dict) else [(None, v)])}
    left, right = flat(a), flat(b)
    assert left.keys() == right.keys()
    for name in left:
        assert left[name].dtype == right[name].dtype, name
        assert np.array_equal(left[name], right[name]), name


def test_the_state_is_tensors_sharing_the_replays_memory():
    replay = filled()
    state = replay.state_dict()
    assert isinstance(state["actions"], torch.Tensor) and state["actions"].dtype == torch.float32
    assert state["obs"]["task_id"].dtype == torch.int64
    replay.actions[0, 0, 0, 0] = 123.0                  # a view, not a copy
    assert state["actions"][0, 0, 0, 0].item() == 123.0


def test_a_checkpointed_replay_comes_back_bit_for_bit(tmp_path):
    replay = filled()
    Checkpointer(tmp_path).save({"replay": replay.state_dict()}, "train:8")
    state, problem = read_checkpoint(tmp_path / "state.pt")
    assert problem is None
    back = TaskReplay(3, SPEC, 2, 7, capacity=4, extra_spec={"hidden": (3,)})
    back.load_state_dict(state["replay"])
    assert_same(back, replay)
    other = filled(seed=1)            # and it is the values that came back, not zeros
    assert not np.array_equal(other.actions, back.actions)


def test_a_replay_saved_as_numpy_arrays_still_loads(tmp_path):
    """Checkpoints written before session 37 hold the replay's numpy arrays."""
    replay = filled()
    torch.save({"replay": arrays(replay)}, tmp_path / "old.pt")
    back = TaskReplay(3, SPEC, 2, 7, capacity=4, extra_spec={"hidden": (3,)})
    back.load_state_dict(torch.load(tmp_path / "old.pt", weights_only=False)["replay"])
    assert_same(back, replay)


MEASURE = """
import json, os, resource, sys, tempfile
import numpy as np, torch
from iwx.replay.task_replay import TaskReplay
replay = TaskReplay(40, {"proprio": (40,)}, 6, 400, capacity=40)
for a in [*replay.obs.values(), replay.actions, replay.rewards, replay.discounts]:
    a[...] = 1.0                                   # every page resident, as a full replay
size = sum(a.nbytes for a in [*replay.obs.values(), replay.actions, replay.rewards,
                              replay.discounts])
state = replay.state_dict() if sys.argv[1] == "state" else {
    k: getattr(replay, k) for k in ("obs", "actions", "rewards", "discounts")}
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with tempfile.TemporaryDirectory() as d:
    torch.save({"replay": state}, os.path.join(d, "state.pt"))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"replay": size, "extra": after - before}))
"""


def peak_while_saving(form: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", MEASURE, form], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_saving_the_replay_costs_no_copy_of_it_in_memory():
    """A 120 MB replay: its state saved, the process's peak grows by well under a tenth of
    it; the same arrays saved as numpy grow it by more than the replay again (pickled
    into memory whole: about 4× here), which is what this test tells apart."""
    state = peak_while_saving("state")
    assert state["replay"] > 100e6
    assert state["extra"] < 0.1 * state["replay"], state
    numpy = peak_while_saving("numpy")
    assert numpy["extra"] > state["replay"], numpy
