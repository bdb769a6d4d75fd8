"""The replay in a checkpoint: it comes back bit for bit (also from the older numpy form),
and saving it costs no second copy of it in memory."""

from __future__ import annotations

import numpy as np
import torch

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


def python_peak_while_saving(state: dict, path) -> int:
    """Bytes Python allocated at its peak while ``torch.save`` wrote ``state`` (tracemalloc:
    the pickle and every bytes object are Python allocations; a tensor's storage is
    written from C++ and is not one). Measured this way, not as the process's peak RSS:
    the kernel's high-water mark is updated lazily and once missed the numpy form's
    whole copy."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        torch.save({"replay": state}, path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_saving_the_replay_costs_no_copy_of_it_in_memory(tmp_path):
    """A 40 MB replay: saving its state allocates well under a tenth of it; saving the
    same arrays as numpy allocates more than the replay again (they are pickled into
    memory whole; this is what put 13 GB on half-cheetah RL²'s 4.7 GB), which is what
    this test tells apart."""
    replay = TaskReplay(20, {"proprio": (30,)}, 6, 400, capacity=40)
    size = sum(a.nbytes for a in [*replay.obs.values(), replay.actions, replay.rewards,
                                  replay.discounts, replay.lengths, replay.episode])
    assert size > 40e6
    state = python_peak_while_saving(replay.state_dict(), tmp_path / "state.pt")
    assert state < 0.1 * size, (state, size)
    numpy = python_peak_while_saving(arrays(replay), tmp_path / "numpy.pt")
    assert numpy > size, (numpy, size)
