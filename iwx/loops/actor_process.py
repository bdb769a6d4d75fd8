"""An actor of distributed training: plays whole episodes in a process of its own.

:class:`EpisodeActor` is a plain class; :mod:`iwx.loops.distributed` makes it a Ray
actor. It receives plain data only (the run's gin text, the learner's class, the
environment factory, the training tasks), parses the gin text in its own process
(gin's configuration is per process), rebuilds the learner's acting part from the
parameters the learner publishes (``Agent.build_acting``, iwx.agents.base.agent),
and plays one episode per call on ``rows`` uniformly drawn training tasks. What it
played comes back as an :class:`EpisodeRecorder`: the replay calls of the episode,
which the learner replays into its per-task replay — the same calls the
single-process loop makes (``play_episode``).
"""

from __future__ import annotations

import os
import time

import numpy as np


class EpisodeRecorder:
    """Records ``play_episode``'s replay calls (begin / append / end) for another process.

    Quacks like :class:`~iwx.replay.task_replay.TaskReplay` on its writing side; at the
    end the steps are stacked into flat arrays (one row per stored step), and
    :meth:`into` writes them into a real replay in a few array copies
    (``TaskReplay.write_episodes``), storing what the same calls would have stored.
    """

    def __init__(self):
        self.begin = None
        self.steps: list[tuple] = []
        self.flat: dict | None = None
        self.transitions = 0

    def begin_episodes(self, tasks, obs) -> None:
        self.begin = (np.asarray(tasks).copy(), {k: np.array(v) for k, v in obs.items()})

    def append(self, tasks, actions, rewards, discounts, next_obs, extras=None) -> None:
        self.steps.append((np.asarray(tasks).copy(), np.array(actions), np.array(rewards),
                           np.array(discounts), {k: np.array(v) for k, v in next_obs.items()},
                           None if extras is None else {k: np.array(v)
                                                        for k, v in extras.items()}))
        self.transitions += len(tasks)

    def end_episodes(self, tasks) -> None:
        del tasks
        steps = self.steps
        self.flat = {
            "step_tasks": np.concatenate([s[0] for s in steps]),
            "steps": np.concatenate([np.full(len(s[0]), t) for t, s in enumerate(steps)]),
            "actions": np.concatenate([s[1] for s in steps]),
            "rewards": np.concatenate([s[2] for s in steps]),
            "discounts": np.concatenate([s[3] for s in steps]),
            "next_obs": {k: np.concatenate([s[4][k] for s in steps]) for k in steps[0][4]},
            "extras": None if steps[0][5] is None else
            {k: np.concatenate([s[5][k] for s in steps]) for k in steps[0][5]},
        }
        self.steps = []          # what crosses the process boundary is the flat arrays

    def into(self, replay) -> None:
        rows, obs = self.begin
        replay.write_episodes(rows, obs, **self.flat)


class EpisodeActor:
    """One actor process. ``index``: which actor; ``incarnation``: how many times an actor
    with this index was started before (a restarted actor draws other random numbers).

    Seeds: its acting part from ``[env_seed, 5, index, incarnation]``, its draws of tasks
    from ``[env_seed, 6, index, incarnation]``; its k-th episode starts from
    ``reset(seed=[env_seed, 7, index, incarnation, k])``.
    ``kill_at_episode``: testing hook, the process SIGKILLs itself when its first
    incarnation starts that episode (a real, unclean death).
    """

    def __init__(self, gin_text: str, agent_cls, make_env, obs_spec, action_dim: int,
                 goals: np.ndarray, *, rows: int, episodes_per_task: int, env_seed: int,
                 index: int, incarnation: int, kill_at_episode: int | None = None):
        os.environ.setdefault("MUJOCO_GL", "disable")
        import gin
        import torch

        from iwx.configurables import register_for

        torch.set_num_threads(1)
        gin.clear_config()
        register_for([gin_text])
        gin.parse_config(gin_text)
        self.agent_cls, self.make_env = agent_cls, make_env
        self.obs_spec, self.action_dim, self.goals = obs_spec, action_dim, np.asarray(goals)
        self.rows, self.episodes_per_task = min(rows, len(goals)), episodes_per_task
        self.env_seed, self.index, self.incarnation = env_seed, index, incarnation
        self.kill_at_episode = kill_at_episode if incarnation == 0 else None
        self.rng = np.random.default_rng([env_seed, 6, index, incarnation])
        self.acting = self.env = self.current_rows = None
        self.version = None
        self.episodes = 0

    def pid(self) -> int:
        return os.getpid()

    def play(self, params, version: int) -> dict:
        """One episode on ``rows`` training tasks with the newest parameters it was given
        (``version``: the learner's update count when they were published)."""
        from iwx.loops.episodes import play_episode

        if self.kill_at_episode is not None and self.episodes == self.kill_at_episode:
            import signal
            os.kill(os.getpid(), signal.SIGKILL)
        start = time.perf_counter()
        if self.acting is None:
            self.acting = self.agent_cls.build_acting(self.obs_spec, self.action_dim,
                                                      len(self.goals), params)
            self.acting.seed(int(np.random.SeedSequence(
                [self.env_seed, 5, self.index, self.incarnation]).generate_state(1)[0]))
        elif version != self.version:
            self.acting.load_params(params)
        self.version = version
        new_tasks = self.current_rows is None or self.episodes % self.episodes_per_task == 0
        if new_tasks:
            self.current_rows = self.rng.choice(len(self.goals), size=self.rows, replace=False)
            if self.env is None:
                self.env = self.make_env(self.goals[self.current_rows], self.current_rows)
            else:
                self.env.set_tasks(self.goals[self.current_rows], self.current_rows)
            self.acting.begin_tasks(self.rows)
        recorder = EpisodeRecorder()
        returns, success = play_episode(
            self.env, self.acting.act, replay=recorder, rows=self.current_rows,
            seed=[self.env_seed, 7, self.index, self.incarnation, self.episodes],
            observe=self.acting.observe)
        self.episodes += 1
        return {"episode": recorder, "rows": self.current_rows.copy(), "returns": returns,
                "success": success, "version": version,
                "env_steps": recorder.transitions,   # steps played: early ends stop a row
                "seconds": time.perf_counter() - start, "index": self.index}
