"""What one IWPA update with ψ fine-tuned costs on Reach: Q' scored per batch, or by a
pass over the whole replay at every target refresh (docs/DECISIONS.md, "Where that
pass is not less work").

    MUJOCO_GL=disable .venv/bin/python docs/experiments/iwpa_target_cost.py [SLOTS]

Builds Reach's IWPL networks (gin/reach_iwpl.gin, freshly initialised), an IWPA with
``finetune_after = 0`` for 90 problems (30 held-out tasks × 3 seeds), K = 16 and
``target_period = 10``, and a replay of SLOTS (default 40: figure 4's adaptation)
full episodes of 250 steps of random transitions of Reach's shapes: the update's cost
does not depend on the values, and filling the replay with real episodes would take
most of an hour. Every entry of the cache is marked drawn (the steady state of a long
adaptation), then per-batch, replay-wide and per-batch again are timed in one process
(20, 10 and 20 updates of 128 transitions per problem, one thread), each path forced
whatever ``FrozenCache.per_batch`` would choose, so that the rule can be checked at
both sides of its threshold (slots × 250 against 10 × 128: per batch from 6 slots on);
the ratio uses each path's best. Timing only: the numbers printed are not a result of
the method. Also printed: the path the rule picks at this size.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from iwx.agents.frozen_cache import FrozenCache
from iwx.agents.iwpa import IWPA
from iwx.benchmarks.configured import configure
from iwx.nets.critics import shared_features_critic
from iwx.replay.task_replay import TaskReplay

PROBLEMS, STEPS, K, BATCH = 90, 250, 16, 128


def main(slots: int) -> None:
    torch.set_num_threads(1)
    cfg = configure("reach", "iwpl", 0)
    probe = cfg.env(cfg.train[:1], np.zeros(1, np.int64))
    spec, action_dim = probe.observation_spec(), probe.action_dim
    torch.manual_seed(0)
    pretrained = cfg.agent(spec, action_dim, len(cfg.train), device=torch.device("cpu"))
    rng = np.random.default_rng(0)
    rows = np.arange(PROBLEMS)
    replay = TaskReplay(PROBLEMS, spec, action_dim, STEPS, capacity=slots)

    def obs():
        return {k: (np.zeros(PROBLEMS, np.int64) if k == "task_id" else
                    rng.normal(size=(PROBLEMS, *shape)).astype(np.float32))
                for k, shape in spec.items()}

    for _ in range(slots):
        replay.begin_episodes(rows, obs())
        for _ in range(STEPS):
            replay.append(rows, rng.uniform(-1, 1, (PROBLEMS, action_dim)),
                          rng.normal(size=PROBLEMS), np.ones(PROBLEMS), obs())
        replay.end_episodes(rows)
    print(f"Reach: {PROBLEMS} problems × {slots} slots × {STEPS} steps, K = {K}, "
          f"batch {BATCH} per problem", flush=True)
    best: dict[str, float] = {}
    for path in ("per batch", "replay-wide", "per batch"):
        torch.manual_seed(1)
        agent = IWPA(pretrained, spec, action_dim, PROBLEMS, device=torch.device("cpu"),
                     critic_fn=shared_features_critic, num_samples=K, target_period=10,
                     finetune_after=0, cache_max_gb=8)
        agent.begin_episode(0)
        forced = path == "per batch"                               # whatever the rule says
        agent.cache.per_batch = lambda entries, forced=forced: forced
        draw = np.random.default_rng(1)
        agent.update(replay.sample(draw, rows, BATCH, 1))          # allocates the cache
        agent.cache.drawn[...] = True                              # every sample drawn
        agent.update(replay.sample(draw, rows, BATCH, 1))
        n = 20 if path == "per batch" else 10
        start = time.perf_counter()
        for _ in range(n):
            agent.update(replay.sample(draw, rows, BATCH, 1))
        seconds = (time.perf_counter() - start) / n
        best[path] = min(best.get(path, float("inf")), seconds)
        print(f"{path}: {seconds:.3f} s per update", flush=True)
    rule = FrozenCache.per_batch(agent.cache, BATCH)               # the method, not the patch
    print(f"{slots} slots: the rule picks {'per batch' if rule else 'replay-wide'}; "
          f"per batch {best['per batch']:.3f} s, replay-wide "
          f"{best['replay-wide']:.3f} s per update: {best['replay-wide'] / best['per batch']:.1f}×")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
