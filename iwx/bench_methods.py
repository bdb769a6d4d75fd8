"""The bench's per-method learner rows: every method's multi-task update, side by side.

Each method's agent (iwx's default network sizes, point navigation) first fills
its own :class:`TaskReplay` by acting — so the batches carry what its update
reads (behaviour log-densities, stored LSTM states, contexts) — then its
``update`` is timed on a pool of real batches of the SAME size for every
method (``--batch-size`` chunks × ``--chunk-length`` steps). The reference row
is IWPL with K = 16, the gin files' K.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from iwx.agents.actor_critic import ActorCritic
from iwx.agents.iwpl import IWPL
from iwx.agents.mpo import MPO
from iwx.agents.pearl import PEARL
from iwx.agents.rl2 import RL2
from iwx.envs.point_nav import PointNavVec
from iwx.loops.episodes import play_episode
from iwx.nets.prior import GaussianPrior
from iwx.replay.task_replay import TaskReplay

# name -> (label, constructor(obs_spec, action_dim, num_tasks, device))
METHODS: dict[str, tuple[str, Callable]] = {
    "iwpl": ("IWPL K=16", lambda s, a, n, d: IWPL(s, a, n, device=d, num_samples=16)),
    "rs0": ("RS(0)", lambda s, a, n, d: ActorCritic(s, a, n, device=d)),
    "distral": ("DISTRAL", lambda s, a, n, d: ActorCritic(s, a, n, device=d,
                                                          prior=GaussianPrior, kl_cost=0.01)),
    "mpo": ("MPO", lambda s, a, n, d: MPO(s, a, n, device=d)),
    "mpo_distral": ("MPO + DISTRAL", lambda s, a, n, d: MPO(s, a, n, device=d,
                                                            prior=GaussianPrior, kl_cost=0.01)),
    "rl2": ("RL²", lambda s, a, n, d: RL2(s, a, n, device=d)),
    "pearl": ("PEARL*", lambda s, a, n, d: PEARL(s, a, n, device=d)),
}
EPISODES_PER_TASK = 2    # acting episodes per task that fill each method's replay
POOL = 8                 # distinct batches cycled through while timing


def own_replay(agent, goals: np.ndarray, seed: int) -> TaskReplay:
    """A replay of ``EPISODES_PER_TASK`` episodes per task played by ``agent`` itself."""
    rows = np.arange(len(goals))
    env = PointNavVec(goals, rows)
    replay = TaskReplay(len(goals), env.observation_spec(), env.action_dim, env.episode_length,
                        capacity=EPISODES_PER_TASK,
                        extra_spec=getattr(agent, "replay_extras", None))
    if hasattr(agent, "begin_tasks"):
        agent.begin_tasks(len(goals))
    for episode in range(EPISODES_PER_TASK):
        play_episode(env, agent.act, replay=replay, rows=rows, seed=[seed, 7, episode],
                     observe=getattr(agent, "observe", None))
    return replay


def add_method_rows(methods, args, device, rng, goals, items: list, steps: list) -> None:
    env = PointNavVec(goals[:1], np.zeros(1, np.int64))
    spec, action_dim, num_tasks = env.observation_spec(), env.action_dim, len(goals)
    label = f"batch {args.batch_size}x{args.chunk_length}"
    for name in methods:
        title, build = METHODS[name]
        torch.manual_seed(args.seed)
        agent = build(spec, action_dim, num_tasks, device)
        replay = own_replay(agent, goals, args.seed)
        context = getattr(agent, "context_length", 0)
        pool = []
        for _ in range(POOL):
            tasks = rng.choice(num_tasks, size=args.batch_size)
            batch = replay.sample(rng, tasks, 1, args.chunk_length)
            if context:
                batch["context"] = replay.sample(rng, tasks, 1, context)
            pool.append(batch)

        def step(agent=agent, pool=pool, index=[0]):
            agent.update(pool[index[0] % len(pool)])
            index[0] += 1
            return 1

        item = {"item": f"{title} update ({label})", "group": "methods",
                "name": f"method_{name}", "k": None, "batch_chunks": args.batch_size,
                "chunk_length": args.chunk_length, "unit": "updates/s"}
        if name != "iwpl" and "iwpl" in methods:
            item["reference"] = "method_iwpl"
        items.append(item)
        steps.append(step)
