"""The bench's adaptation rows (e): one IWPA update of every adaptation problem at once.

What a run's adaptation does (iwx.loops.adaptation): the variants of
``pretrain_and_adapt.variants`` in ``gin/point_nav_iwpl.gin`` (Shared Q + IW, IW),
each built through its own scoped bindings (``shared_q_iw/IWPA``, ``iw/IWPA``) as
:func:`iwx.loops.pipeline.pretrain_and_adapt` builds them, on P = held-out tasks ×
``Adaptation.seeds`` problems; each update samples ``Adaptation.batch_size``
transitions per problem from the problems' replay. The pretrained agent is the
file's IWPL freshly initialised (timing only). Each variant's replay is first filled
with ``Adaptation.episodes`` real episodes played by that variant's agent (the
first ``Adaptation.exploration_episodes`` from π0, as a run does), so the replay is
full; its cache of frozen quantities (``IWPA.cache_frozen``, iwx.agents.frozen_cache)
is then warmed by updates until it holds every stored transition, and the timed
step is the steady state ``agent.update(replay.sample(rng, rows, batch_size, 1))``,
sampling included.
"""

from __future__ import annotations

import gin
import numpy as np
import torch

from iwx.benchmarks.configured import configure, configured_value, networks
from iwx.benchmarks.rows import batch_params
from iwx.loops.adaptation import Adaptation
from iwx.loops.episodes import play_episode
from iwx.loops.pipeline import slug
from iwx.replay.task_replay import TaskReplay

MAX_WARM_UPDATES = 100   # updates at most to warm a variant's cache before timing


def cached_transitions(agent) -> int:
    """Transitions the agent's cache holds in full (0 without a cache)."""
    cache = getattr(agent, "cache", None)
    return 0 if cache is None else cache.complete_entries()


def add_adaptation_rows(args, device, rng, items: list, steps: list) -> None:
    config = configure("point_nav", "iwpl", args.seed, batch_params(args))
    bound = gin.get_bindings("pretrain_and_adapt")      # references resolved as in a run
    split = bound["tasks"].split(args.seed)
    seeds, batch_size, episodes, exploration = (
        configured_value(Adaptation, name)
        for name in ("seeds", "batch_size", "episodes", "exploration_episodes"))
    goals = np.repeat(split.test, seeds, axis=0)          # row = task * seeds + seed
    problems = len(goals)
    rows = np.arange(problems)
    probe = config.env(split.train[:1], np.zeros(1, np.int64))
    action_dim = probe.action_dim
    torch.manual_seed(args.seed)
    pretrained = config.agent(probe.observation_spec(), action_dim, len(split.train),
                              device=device)
    for name, make_agent in bound["variants"].items():
        env = config.env(goals, None)
        spec = env.observation_spec()
        torch.manual_seed(args.seed)
        agent = make_agent(pretrained, spec, action_dim, num_problems=problems, device=device)
        replay = TaskReplay(problems, spec, action_dim, env.episode_length,
                            capacity=episodes, extra_spec=agent.replay_extras)
        agent.begin_tasks(problems)
        for episode in range(episodes):
            play_episode(env, lambda obs, e=episode: agent.act(obs, explore=e < exploration),
                         replay=replay, rows=rows, seed=[args.seed, 2, episode],
                         observe=agent.observe)
        stored, warm = int(replay.steps_per_task().sum()), 0
        while agent.cache is not None and cached_transitions(agent) < stored \
                and warm < MAX_WARM_UPDATES:
            agent.update(replay.sample(rng, rows, batch_size, 1))
            warm += 1

        def step(agent=agent, replay=replay):
            agent.update(replay.sample(rng, rows, batch_size, 1))
            return 1

        cache = agent.cache is not None
        items.append({
            "item": f"IWPA {name} ({problems}x{batch_size}, K={agent.num_samples}"
                    f"{'' if cache else ', no cache'})",
            "group": "adaptation", "name": f"iwpa_update_{slug(name)}", "k": agent.num_samples,
            "problems": problems, "batch_size": batch_size, "cache_frozen": cache,
            "cached_transitions": cached_transitions(agent), "stored_transitions": stored,
            "warm_updates": warm, "unit": "updates/s", "reference": "sac_update",
            "gin": config.gin_file, "networks": networks(agent)})
        steps.append(step)
