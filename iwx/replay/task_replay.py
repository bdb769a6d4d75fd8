"""Per-task trajectory store, sampled as chunks (Algorithm 1, learner).

Each task owns a ring of ``capacity`` episode slots. Steps are appended as
they happen, so a partly played episode can already be sampled (IWPA updates
after every 10-step unroll, mid-episode). Sampling picks, for each requested
task, slots with probability proportional to their stored length (uniform over
transitions) and a chunk start uniformly inside the slot; chunks shorter than
``chunk_length`` (start of an episode) come back padded with ``mask = 0``.

Batch layout (nb tasks, c chunks per task, L = chunk_length):
    obs[k]     [nb, c, L+1, ...]   s_t .. s_{t+L}
    actions    [nb, c, L, A]       as act() returned them (Gaussian policies: unclipped)
    rewards    [nb, c, L]
    discounts  [nb, c, L]          0 after a termination, 1 otherwise (truncation bootstraps)
    mask       [nb, c, L]          1 where the step exists
    task       [nb]                the task row of each chunk group
    extras[n]  [nb, c, L, *shape]  per-step values the agent returned when it acted
                                   (``extra_spec = {n: shape}``, e.g. log μ(a|s) for Retrace)
    index      where each step is stored, to key per-transition caches (IWPA's,
               iwx.agents.frozen_cache): slot, step [nb, c, L] (step clipped to the
               episode length like the data; padded steps point at no stored step),
               episode [nb, c, L] the slot's episode number (how many episodes its
               task had begun before it: a slot overwritten by a new episode gets a
               new number), shape [2] = (capacity, max_episode_length)
    context    added by the loops for agents with ``context_length`` > 0: a second sample
               of the same tasks in the same order, with c = 1 and L = context_length

Multi-task training samples nb = batch_size / chunks_per_task tasks (c = chunks_per_task,
L = chunk_length); adaptation samples [P, batch_size, 1(+1)] transitions, one row per
problem, from each problem's own replay (appendix A.2).
"""

from __future__ import annotations

from collections.abc import Mapping

import gin
import numpy as np
import torch


@gin.configurable
class TaskReplay:
    def __init__(self, num_tasks: int, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int,
                 max_episode_length: int, *, capacity: int = 1000,
                 extra_spec: Mapping[str, tuple[int, ...]] | None = None):
        self.num_tasks, self.capacity, self.max_len = num_tasks, capacity, max_episode_length
        shape = (num_tasks, capacity)
        t = max_episode_length
        self.obs = {k: np.zeros((*shape, t + 1, *s), np.int64 if k == "task_id" else np.float32)
                    for k, s in obs_spec.items()}
        self.actions = np.zeros((*shape, t, action_dim), np.float32)
        self.rewards = np.zeros((*shape, t), np.float32)
        self.discounts = np.zeros((*shape, t), np.float32)
        self.extras = {k: np.zeros((*shape, t, *s), np.float32)
                       for k, s in (extra_spec or {}).items()}
        self.lengths = np.zeros(shape, np.int64)
        self.cursor = np.zeros(num_tasks, np.int64)  # slot being written, per task
        self.begun = np.zeros(num_tasks, np.int64)   # episodes begun, per task
        self.episode = np.full(shape, -1, np.int64)  # which of its task's episodes a slot holds

    # -- writing ---------------------------------------------------------------
    def begin_episodes(self, tasks: np.ndarray, obs: Mapping[str, np.ndarray]) -> None:
        tasks = np.asarray(tasks)
        if len(np.unique(tasks)) != len(tasks):
            raise ValueError("one episode per task at a time: tasks must be distinct")
        slot = self.cursor[tasks]
        self.lengths[tasks, slot] = 0
        self.episode[tasks, slot] = self.begun[tasks]
        self.begun[tasks] += 1
        for k, v in obs.items():
            self.obs[k][tasks, slot, 0] = v

    def append(self, tasks: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
               discounts: np.ndarray, next_obs: Mapping[str, np.ndarray],
               extras: Mapping[str, np.ndarray] | None = None) -> None:
        """One step for each task in ``tasks`` (all its arrays row-aligned with it)."""
        extras = extras or {}
        if set(extras) != set(self.extras):
            raise ValueError(f"replay extras: the agent returned {sorted(extras)}, the replay "
                             f"was built for {sorted(self.extras)} (agent.replay_extras)")
        tasks = np.asarray(tasks)
        slot = self.cursor[tasks]
        t = self.lengths[tasks, slot]
        if np.any(t >= self.max_len):
            raise ValueError(f"episode longer than max_episode_length={self.max_len}")
        self.actions[tasks, slot, t] = actions
        self.rewards[tasks, slot, t] = rewards
        self.discounts[tasks, slot, t] = discounts
        for k, v in next_obs.items():
            self.obs[k][tasks, slot, t + 1] = v
        for k, v in extras.items():
            self.extras[k][tasks, slot, t] = v
        self.lengths[tasks, slot] = t + 1

    def write_episodes(self, tasks: np.ndarray, obs: Mapping[str, np.ndarray],
                       step_tasks: np.ndarray, steps: np.ndarray, actions: np.ndarray,
                       rewards: np.ndarray, discounts: np.ndarray,
                       next_obs: Mapping[str, np.ndarray],
                       extras: Mapping[str, np.ndarray] | None = None) -> None:
        """Whole episodes at once, as ``begin_episodes(tasks, obs)``, then one ``append``
        per step, then ``end_episodes(tasks)`` would store them, in a few array copies:
        row j of the flat arrays is step ``steps[j]`` (0-based) of task ``step_tasks[j]``
        (each task's steps 0 .. n-1, any order). How distributed training inserts an
        episode an actor played (iwx.loops.actor_process.EpisodeRecorder)."""
        extras = extras or {}
        if set(extras) != set(self.extras):
            raise ValueError(f"replay extras: the agent returned {sorted(extras)}, the replay "
                             f"was built for {sorted(self.extras)} (agent.replay_extras)")
        tasks, step_tasks, steps = np.asarray(tasks), np.asarray(step_tasks), np.asarray(steps)
        if len(steps) and steps.max() >= self.max_len:
            raise ValueError(f"episode longer than max_episode_length={self.max_len}")
        self.begin_episodes(tasks, obs)
        slot = self.cursor[step_tasks]
        self.actions[step_tasks, slot, steps] = actions
        self.rewards[step_tasks, slot, steps] = rewards
        self.discounts[step_tasks, slot, steps] = discounts
        for k, v in next_obs.items():
            self.obs[k][step_tasks, slot, steps + 1] = v
        for k, v in extras.items():
            self.extras[k][step_tasks, slot, steps] = v
        np.add.at(self.lengths, (step_tasks, slot), 1)
        self.end_episodes(tasks)

    def end_episodes(self, tasks: np.ndarray) -> None:
        tasks = np.asarray(tasks)
        self.cursor[tasks] = (self.cursor[tasks] + 1) % self.capacity

    # -- reading ---------------------------------------------------------------
    def last_episode_lengths(self, tasks: np.ndarray) -> np.ndarray:
        """Steps stored by each task's most recently ended episode."""
        tasks = np.asarray(tasks)
        return self.lengths[tasks, (self.cursor[tasks] - 1) % self.capacity]

    def steps_per_task(self) -> np.ndarray:
        return self.lengths.sum(axis=1)

    def sample(self, rng: np.random.Generator, tasks: np.ndarray, chunks_per_task: int,
               chunk_length: int) -> dict:
        tasks = np.asarray(tasks)
        lengths = self.lengths[tasks]                                   # [nb, cap]
        cum = np.cumsum(lengths, axis=1)
        if np.any(cum[:, -1] == 0):
            raise ValueError("cannot sample a task with no stored steps")
        u = rng.random((len(tasks), chunks_per_task)) * cum[:, -1:]      # [nb, c]
        slot = (u[..., None] >= cum[:, None, :]).sum(-1)                 # [nb, c]
        length = np.take_along_axis(lengths, slot, axis=1)              # [nb, c]
        start = np.floor(rng.random(slot.shape) * (np.maximum(length - chunk_length, 0) + 1))
        start = start.astype(np.int64)
        steps = start[..., None] + np.arange(chunk_length)              # [nb, c, L]
        mask = steps < length[..., None]
        steps = np.minimum(steps, self.max_len - 1)
        obs_steps = np.minimum(start[..., None] + np.arange(chunk_length + 1), self.max_len)
        row = tasks[:, None, None]
        col = slot[..., None]
        batch = {
            "obs": {k: v[row, col, obs_steps] for k, v in self.obs.items()},
            "actions": self.actions[row, col, steps],
            "rewards": self.rewards[row, col, steps] * mask,
            "discounts": self.discounts[row, col, steps] * mask,
            "mask": mask.astype(np.float32),
            "task": tasks.copy(),
            "extras": {k: v[row, col, steps] for k, v in self.extras.items()},
            "index": {"slot": np.broadcast_to(col, steps.shape).copy(), "step": steps,
                      "episode": self.episode[row, col].repeat(chunk_length, axis=-1),
                      "shape": np.array([self.capacity, self.max_len])},
        }
        return batch

    # -- checkpointing ---------------------------------------------------------
    def state_dict(self) -> dict:
        """Every array as a torch tensor sharing its memory (``torch.from_numpy``; not a
        copy: save it before writing more). ``torch.save`` streams a tensor's bytes to the
        file, while a numpy array is pickled, and torch builds the whole pickle in memory:
        saving the arrays themselves peaked at about 4× the replay on top of it (a 3 GB
        half-cheetah RL² replay took its process from 4.7 to 17.5 GB, and the OOM killer
        took the run). :meth:`load_state_dict` takes either form, so checkpoints written
        before keep loading."""
        def tensors(x):
            return {k: tensors(v) for k, v in x.items()} if isinstance(x, dict) else \
                torch.from_numpy(x)

        return tensors({"obs": self.obs, "actions": self.actions, "rewards": self.rewards,
                        "discounts": self.discounts, "lengths": self.lengths,
                        "cursor": self.cursor, "extras": self.extras, "begun": self.begun,
                        "episode": self.episode})

    def load_state_dict(self, state: dict) -> None:
        for k, v in state["obs"].items():
            self.obs[k][...] = v
        for name in ("actions", "rewards", "discounts", "lengths", "cursor"):
            getattr(self, name)[...] = state[name]
        for name in ("begun", "episode"):   # absent from checkpoints older than issue 12
            if name in state:
                getattr(self, name)[...] = state[name]
        for k, v in state.get("extras", {}).items():
            self.extras[k][...] = v
