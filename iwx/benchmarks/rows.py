"""The bench's rows: (a) learner, (b) acting on point navigation, (c) every physics task.

Every row appends an item (what the table and the JSON record show) and a ``step()``
(what is timed, returning the units it did). Agents, networks, task splits and envs
come from the gin files through :func:`iwx.benchmarks.configured.configure`: the
IWPL rows from ``gin/<task>_iwpl.gin``, with K (``IWPL.num_samples``) and the batch
shape (``MultiTaskTraining.batch_size`` / ``chunk_length``) as bindings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from iwx.benchmarks.configured import configure, networks
from iwx.benchmarks.reference import SACReference
from iwx.loops.episodes import play_episode, to_env_units
from iwx.replay.task_replay import TaskReplay

REPLAY_EPISODES = 4    # real episodes stored per task before sampling batches
BATCH_POOL = 8         # distinct batches cycled through by every learner row
TASK_CHUNK = 25        # vector steps per timed call in the per-environment rows


def batch_params(args) -> list[str]:
    """The bench's batch shape and extra bindings, as bindings on every file it parses."""
    out = []
    if args.batch_size is not None:
        out.append(f"MultiTaskTraining.batch_size = {args.batch_size}")
    if args.chunk_length is not None:
        out.append(f"MultiTaskTraining.chunk_length = {args.chunk_length}")
    return out + list(args.gin_param)


def point_nav(args, k: int | None = None):
    """gin/point_nav_iwpl.gin with the bench's bindings (and K = ``k``)."""
    params = batch_params(args) + ([] if k is None else [f"IWPL.num_samples = {k}"])
    return configure("point_nav", "iwpl", args.seed, params, num_train=args.num_tasks)


def build_agent(config, spec, action_dim: int, num_tasks: int, device, seed: int):
    torch.manual_seed(seed)
    return config.agent(spec, action_dim, num_tasks, device=device)


def filled_replay(args, device) -> tuple:
    """A TaskReplay holding REPLAY_EPISODES real point-navigation episodes in every
    training task, played by the configured IWPL. -> (replay, config, spec, action_dim)."""
    config = point_nav(args)
    rows = np.arange(len(config.train))
    env = config.env(config.train, rows)
    spec, action_dim = env.observation_spec(), env.action_dim
    replay = TaskReplay(len(rows), spec, action_dim, env.episode_length,
                        capacity=REPLAY_EPISODES)
    player = build_agent(config, spec, action_dim, len(rows), device, args.seed)
    for _ in range(REPLAY_EPISODES):
        play_episode(env, player.act, replay=replay, rows=rows)
    return replay, config, spec, action_dim


def add_learner_rows(args, device, rng, items: list, steps: list) -> dict:
    """(a) the SAC reference and IWPL at each K of ``--ks``, on one pool of real batches.
    Returns the facts the record's config reports (tasks, batch shape)."""
    replay, config, spec, action_dim = filled_replay(args, device)
    num_tasks = len(config.train)
    pool = [replay.sample(rng, rng.choice(num_tasks, size=config.batch_size), 1,
                          config.chunk_length) for _ in range(BATCH_POOL)]

    def learner_step(learner):
        index = [0]

        def step():
            learner.update(pool[index[0] % len(pool)])
            index[0] += 1
            return 1
        return step

    shape = {"batch_chunks": config.batch_size, "chunk_length": config.chunk_length,
             "transitions": config.batch_size * config.chunk_length}
    label = f"batch {config.batch_size}x{config.chunk_length}"
    torch.manual_seed(args.seed)
    sac = SACReference(spec, action_dim, num_tasks, device=device)   # the file's networks
    items.append({"item": f"SAC reference update ({label})", "group": "learner",
                  "name": "sac_update", "k": None, **shape, "unit": "updates/s",
                  "gin": config.gin_file, "networks": networks(sac)})
    steps.append(learner_step(sac))
    for k in args.ks:
        iwpl = point_nav(args, k)
        agent = build_agent(iwpl, spec, action_dim, num_tasks, device, args.seed)
        items.append({"item": f"IWPL update K={iwpl.num_samples} ({label})", "group": "learner",
                      "name": f"iwpl_update_k{k}", "k": iwpl.num_samples, **shape,
                      "unit": "updates/s", "reference": "sac_update", "gin": iwpl.gin_file,
                      "networks": networks(agent)})
        steps.append(learner_step(agent))
    return {"num_tasks": num_tasks, "batch_size": config.batch_size,
            "chunk_length": config.chunk_length, "gin": config.gin_file}


def add_acting_rows(args, device, rng, items: list, steps: list) -> None:
    """(b) the bare PointNavVec (random actions) and play_episode + IWPL.act at each K."""
    config = point_nav(args)
    num_tasks = len(config.train)
    for b in args.envs:
        rows = np.arange(b) % num_tasks
        env = config.env(config.train[rows], rows)
        actions = rng.uniform(env.action_low, env.action_high, (1024, b, env.action_dim))

        def bare_step(env=env, actions=actions, counter=[0]):
            env.reset()
            for _ in range(env.episode_length):
                env.step(actions[counter[0] % len(actions)])
                counter[0] += 1
            return env.episode_length * env.num_envs

        items.append({"item": f"bare env, random actions (B={b})", "group": "acting",
                      "name": f"env_b{b}", "k": None, "num_envs": b, "unit": "env steps/s",
                      "gin": config.gin_file})
        steps.append(bare_step)
        for k in args.act_ks:
            iwpl = point_nav(args, k)
            agent = build_agent(iwpl, env.observation_spec(), env.action_dim, num_tasks,
                                device, args.seed)

            def act_step(env=env, agent=agent, done=[0]):
                done[0] = 0
                play_episode(env, agent.act, after_step=lambda t: done.__setitem__(0, t))
                return done[0] * env.num_envs

            items.append({"item": f"play_episode + IWPL.act K={k} (B={b})", "group": "acting",
                          "name": f"act_k{k}_b{b}", "k": k, "num_envs": b,
                          "unit": "env steps/s", "reference": f"env_b{b}",
                          "gin": iwpl.gin_file, "networks": networks(agent)})
            steps.append(act_step)


def add_task_rows(task: str, args, device, rng, items: list, steps: list) -> None:
    """(c) bare task vector (random actions) vs the acting loop (IWPL.act), B training tasks.

    Both rows step the same kind of vector of the first B training tasks of the task's
    gin file (gin/<task>_iwpl.gin) for TASK_CHUNK vector steps per call and reset a
    vector whose episodes have all ended, as training does; the rate counts transitions
    of rows still in their episode (a row that has ended is not stepped until the
    reset). The agent is the file's IWPL (its networks, inputs and K, or ``--task-k``).
    """
    params = batch_params(args) + ([] if args.task_k is None
                                   else [f"IWPL.num_samples = {args.task_k}"])
    config = configure(task, "iwpl", args.seed, params)
    b = args.task_envs
    rows = np.arange(b) % len(config.train)
    bare, acting = config.env(config.train[rows], rows), config.env(config.train[rows], rows)
    spec, action_dim = bare.observation_spec(), bare.action_dim
    agent = build_agent(config, spec, action_dim, len(config.train), device, args.seed)
    k = config.num_samples

    def stepper(env, policy: Callable) -> Callable[[], int]:
        state = {"obs": None, "alive": None, "episode": 0}

        def step():
            transitions = 0
            for _ in range(TASK_CHUNK):
                if state["obs"] is None or not state["alive"].any():
                    state["obs"] = env.reset(seed=[args.seed, 9, state["episode"]])
                    state["alive"] = np.ones(env.num_envs, bool)
                    state["episode"] += 1
                transitions += int(state["alive"].sum())   # ended rows are not stepped
                obs, _, term, trunc = env.step(policy(state["obs"]))
                state["obs"], state["alive"] = obs, state["alive"] & ~(term | trunc)
            return transitions
        return step

    def random_policy(obs):
        return rng.uniform(bare.action_low, bare.action_high, (b, action_dim))

    def iwpl_policy(obs):
        return to_env_units(agent.act(obs), acting.action_low, acting.action_high)

    items.append({"item": f"{task}: bare env, random actions (B={b})", "group": task,
                  "name": f"{task}_env_b{b}", "k": None, "num_envs": b, "unit": "env steps/s",
                  "gin": config.gin_file})
    steps.append(stepper(bare, random_policy))
    items.append({"item": f"{task}: IWPL.act K={k} (B={b})", "group": task,
                  "name": f"{task}_act_k{k}_b{b}", "k": k, "num_envs": b,
                  "unit": "env steps/s", "reference": f"{task}_env_b{b}",
                  "gin": config.gin_file, "networks": networks(agent)})
    steps.append(stepper(acting, iwpl_policy))
