"""IWPA's adaptation protocol (Algorithm 2 and appendix A.2), all problems at once.

A problem is one held-out task under one adaptation seed; all P = tasks ×
seeds problems play their episodes side by side. For each problem: the first
``exploration_episodes`` act from the prior alone, later ones through
softmax(Q/α) over K prior samples; after every ``unroll_length`` steps one
TD(0) update, after every episode ``updates_per_episode`` updates, each on
``batch_size`` transitions from that problem's own (local) replay.
"""

from __future__ import annotations

import gin
import numpy as np
from tqdm.auto import tqdm

from iwx.loops.checkpoint import rng_state, set_rng_state
from iwx.loops.episodes import play_episode
from iwx.replay.task_replay import TaskReplay


@gin.configurable
class Adaptation:
    def __init__(self, *, episodes: int = 10, exploration_episodes: int = 5, seeds: int = 3,
                 unroll_length: int = 10, updates_per_unroll: int = 1,
                 updates_per_episode: int = 50, batch_size: int = 128, progress: bool = True):
        if exploration_episodes > episodes:
            raise ValueError(f"Adaptation.exploration_episodes={exploration_episodes} exceeds "
                             f"episodes={episodes}")
        self.episodes, self.exploration_episodes, self.seeds = episodes, exploration_episodes, seeds
        self.unroll_length, self.updates_per_unroll = unroll_length, updates_per_unroll
        self.updates_per_episode, self.batch_size = updates_per_episode, batch_size
        self.progress = progress

    def run(self, name: str, make_agent, make_env, goals: np.ndarray, obs_spec, action_dim: int,
            rng: np.random.Generator, logger, save_checkpoint, state: dict | None = None,
            env_seed: int = 0):
        """Adapt on every goal × seed. Returns per-episode returns [tasks, seeds, episodes].

        Episode e of every variant starts from ``reset(seed=[env_seed, 2, e])``:
        the variants meet the same start states (common random numbers).
        """
        num_tasks = len(goals)
        problems = num_tasks * self.seeds
        env = make_env(np.repeat(goals, self.seeds, axis=0), None)   # row = task * seeds + seed
        agent = make_agent(num_problems=problems)
        replay = TaskReplay(problems, obs_spec, action_dim, env.episode_length,
                            capacity=self.episodes)
        rows = np.arange(problems)
        returns = np.zeros((problems, self.episodes))
        start = 0
        if state is not None:
            agent.load_state_dict(state["agent"])
            replay.load_state_dict(state["replay"])
            returns[...] = state["returns"]
            start = state["episode"]
            set_rng_state(state["rng"], rng)  # after building the agent, whose init draws

        def learn(n):
            for _ in range(n):
                agent.update(replay.sample(rng, rows, self.batch_size, 1))

        def after_step(t):
            if t % self.unroll_length == 0:
                learn(self.updates_per_unroll)

        bar = tqdm(total=self.episodes, initial=start, desc=f"adapt {name}", unit="ep",
                   disable=not self.progress, dynamic_ncols=True)
        for episode in range(start, self.episodes):
            explore = episode < self.exploration_episodes
            ret, _ = play_episode(env, lambda obs: agent.act(obs, explore=explore),
                                  replay=replay, rows=rows, after_step=after_step,
                                  seed=[env_seed, 2, episode])
            learn(self.updates_per_episode)
            returns[:, episode] = ret
            per_task = ret.reshape(num_tasks, self.seeds).mean(axis=1)
            logger.scalar(f"adapt/{name}/return", float(ret.mean()), episode + 1)
            for task, value in enumerate(per_task):
                logger.scalar(f"adapt/{name}/return/task_{task:02d}", float(value), episode + 1)
            bar.update(1)
            bar.set_postfix(ret=f"{ret.mean():.2f}")
            save_checkpoint({"agent": agent.state_dict(), "replay": replay.state_dict(),
                             "returns": returns.copy(), "episode": episode + 1,
                             "rng": rng_state(rng)})
        bar.close()
        return returns.reshape(num_tasks, self.seeds, self.episodes)
