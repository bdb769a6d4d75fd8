"""The bench's per-method learner rows (d): every method's multi-task update, side by side.

Each method's agent is the one its point-navigation gin file builds
(``gin/point_nav_<method>.gin``: its networks, K, rates), with the bench's batch
shape bound as ``MultiTaskTraining.batch_size`` / ``chunk_length`` on every file,
so every method is timed at the SAME batch size. It first fills its own
:class:`TaskReplay` by acting — so the batches carry what its update reads
(behaviour log-densities, stored LSTM states, contexts) — then its ``update`` is
timed on a pool of real batches. The reference row is IWPL at the gin files' K.
"""

from __future__ import annotations

import numpy as np
import torch

from iwx.benchmarks.configured import configure, networks
from iwx.benchmarks.rows import batch_params
from iwx.loops.episodes import play_episode
from iwx.replay.task_replay import TaskReplay

# name -> title (IWPL's gets its configured K)
METHODS: dict[str, str] = {
    "iwpl": "IWPL", "rs0": "RS(0)", "distral": "DISTRAL", "mpo": "MPO",
    "mpo_distral": "MPO + DISTRAL", "rl2": "RL²", "pearl": "PEARL*",
}
EPISODES_PER_TASK = 2    # acting episodes per task that fill each method's replay
POOL = 8                 # distinct batches cycled through while timing


def own_replay(agent, env, rows: np.ndarray, seed: int) -> TaskReplay:
    """A replay of ``EPISODES_PER_TASK`` episodes per task played by ``agent`` itself,
    acting as multi-task training does (the agent contract, iwx.agents.base)."""
    replay = TaskReplay(len(rows), env.observation_spec(), env.action_dim, env.episode_length,
                        capacity=EPISODES_PER_TASK, extra_spec=agent.replay_extras)
    agent.begin_tasks(len(rows))
    for episode in range(EPISODES_PER_TASK):
        play_episode(env, agent.act, replay=replay, rows=rows, seed=[seed, 7, episode],
                     observe=agent.observe)
    return replay


def add_method_rows(methods, args, device, rng, items: list, steps: list) -> None:
    for name in methods:
        config = configure("point_nav", name, args.seed, batch_params(args),
                           num_train=args.num_tasks)
        num_tasks = len(config.train)
        rows = np.arange(num_tasks)
        env = config.env(config.train, rows)
        torch.manual_seed(args.seed)
        agent = config.agent(env.observation_spec(), env.action_dim, num_tasks, device=device)
        replay = own_replay(agent, env, rows, args.seed)
        context = agent.context_length                  # as MultiTaskTraining reads it
        pool = []
        for _ in range(POOL):
            tasks = rng.choice(num_tasks, size=config.batch_size)
            batch = replay.sample(rng, tasks, 1, config.chunk_length)
            if context:
                batch["context"] = replay.sample(rng, tasks, 1, context)
            pool.append(batch)

        def step(agent=agent, pool=pool, index=[0]):
            agent.update(pool[index[0] % len(pool)])
            index[0] += 1
            return 1

        title = METHODS[name] + (f" K={config.num_samples}" if name == "iwpl" else "")
        label = f"batch {config.batch_size}x{config.chunk_length}"
        item = {"item": f"{title} update ({label})", "group": "methods",
                "name": f"method_{name}", "k": config.num_samples,
                "batch_chunks": config.batch_size, "chunk_length": config.chunk_length,
                "unit": "updates/s", "gin": config.gin_file, "networks": networks(agent)}
        if name != "iwpl" and "iwpl" in methods:
            item["reference"] = "method_iwpl"
        items.append(item)
        steps.append(step)
