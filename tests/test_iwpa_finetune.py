"""IWPA's fine-tuning schedule (``IWPA.finetune_after``; paper §6, *Generalization*, figure 4):
w̃ alone for the first N adaptation episodes, ψ too from episode N on, in float32.

Before the switch the agent is the plain Shared Q + IW agent bit for bit; after it ψ
moves at its own learning rate; a checkpoint written after the switch resumes to the
same numbers; the adaptation loop announces every episode, a resumed one's included;
bad bindings fail before any compute.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from iwx.agents.base import Agent
from iwx.loops.adaptation import Adaptation
from iwx.loops.checkpoint import rng_state, set_rng_state
from iwx.loops.logger import MemoryLogger
from iwx.replay.task_replay import TaskReplay

from test_iwpa_cache import (GOALS, LENGTH, P, ROWS, SPEC, env, filled, make_agent, params, play,
                             pretrained)

torch.set_num_threads(1)


def updates(agent, replay, rng, n=3):
    return [agent.update(replay.sample(rng, ROWS, 8, 1)) for _ in range(n)]


def test_before_the_switch_it_is_shared_q_iw_bit_for_bit():
    pre = pretrained()
    plain, scheduled = make_agent(pre, "shared_q_iw"), make_agent(pre, "shared_q_iw",
                                                                  finetune_after=2)
    out = []
    for agent in (plain, scheduled):
        torch.manual_seed(5)
        _, replay = filled(agent)
        rng = np.random.default_rng(0)
        agent.begin_episode(0)
        agent.begin_episode(1)
        out.append((updates(agent, replay, rng), params(agent.critic)))
    assert out[0][0] == out[1][0]
    assert all(torch.equal(a, b) for a, b in zip(out[0][1], out[1][1]))
    assert not scheduled.finetuning


def test_from_episode_n_psi_trains_at_its_own_learning_rate():
    pre = pretrained()
    agent = make_agent(pre, "shared_q_iw", finetune_after=2, learning_rate=3e-2,
                       features_learning_rate=1e-3)
    _, replay = filled(agent)
    rng = np.random.default_rng(1)
    psi0 = params(agent.critic.features)
    agent.begin_episode(1)
    updates(agent, replay, rng)
    assert all(torch.equal(a, b) for a, b in zip(params(agent.critic.features), psi0))
    assert agent.cache.features is not None                  # ψ frozen: cached
    agent.begin_episode(2)
    assert agent.finetuning
    assert [g["lr"] for g in agent.optimizer.param_groups] == [3e-2, 1e-3]
    assert agent.cache.features is None                      # ψ moves: no longer cached
    psi1 = params(agent.critic.features)
    updates(agent, replay, rng)
    moved = [(a - b).abs().max().item() for a, b in zip(params(agent.critic.features), psi1)]
    assert all(m > 0 for m in moved)
    # Adam's first steps move each parameter by about its learning rate: ψ's, not w̃'s
    assert max(moved) < 3 * 3 * 1e-3
    # the pretrained ψ (what other variants reload) is untouched
    assert all(torch.equal(a, b) for a, b in zip(params(pre.critic.features), psi0))
    agent.begin_episode(3)                                   # switching is once only
    assert len(agent.optimizer.param_groups) == 2


def test_a_checkpoint_after_the_switch_resumes_to_the_same_numbers(tmp_path):
    pre = pretrained()
    agent = make_agent(pre, "shared_q_iw", finetune_after=1)
    vec, replay = filled(agent)
    rng = np.random.default_rng(2)
    agent.begin_episode(1)
    updates(agent, replay, rng, 2)
    path = tmp_path / "state.pt"
    torch.save({"agent": agent.state_dict(), "replay": replay.state_dict(),
                "rng": rng_state(rng)}, path)

    def go(agent, replay):
        out = updates(agent, replay, rng, 3)
        play(agent, vec, replay, 2)
        agent.begin_episode(2)
        out += updates(agent, replay, rng, 3)
        return out, params(agent.critic) + params(agent.target_critic)

    first, first_params = go(agent, replay)
    saved = torch.load(path, weights_only=False)
    restored = make_agent(pre, "shared_q_iw", seed=99, finetune_after=1)
    again = TaskReplay(P, SPEC, 2, LENGTH, capacity=3)
    restored.load_state_dict(saved["agent"])                 # switches before loading Adam
    again.load_state_dict(saved["replay"])
    set_rng_state(saved["rng"], rng)
    assert restored.finetuning and len(restored.optimizer.param_groups) == 2
    second, second_params = go(restored, again)
    assert first == second
    assert all(torch.equal(a, b) for a, b in zip(first_params, second_params))


def test_a_checkpoint_without_the_flag_loads_as_before_the_switch():
    """Checkpoints written before the schedule existed have no ``finetuning`` key."""
    pre = pretrained()
    agent = make_agent(pre, "shared_q_iw")
    state = agent.state_dict()
    del state["finetuning"]
    restored = make_agent(pre, "shared_q_iw", seed=7)
    restored.load_state_dict(state)
    assert not restored.finetuning


@pytest.mark.parametrize("variant, kwargs, words", [
    ("iw", {"finetune_after": 2}, "has ψ: Shared Q + IW"),
    ("shared_q_iw_finetune", {"finetune_after": 2}, "bind one or the other"),
    ("shared_q_iw", {"finetune_after": -1}, "must be None or >= 0"),
])
def test_bad_schedules_fail_at_construction(variant, kwargs, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        make_agent(pretrained(), variant, **kwargs)


class EpisodeLog(Agent):
    """The smallest adaptation agent that acts (zero actions) and records what the
    loop tells it: which episodes began, and where its updates fell."""

    PARTS = ("updates", "log")

    def __init__(self):
        self.updates, self.log = 0, []

        class Still:
            replay_extras: dict = {}

            def begin_tasks(self, rows):
                pass

            def observe(self, *args):
                pass

            def act(self, obs, explore=False):
                return np.zeros((len(obs["position"]), 2)), {}

        self.acting = Still()

    def act(self, obs, explore=False):
        return self.acting.act(obs, explore)

    def begin_episode(self, episode):
        self.log.append(("episode", episode, self.updates))

    def update(self, batch):
        self.count_update()
        return {}


def test_the_loop_announces_every_episode_before_it_plays_a_resumed_run_included():
    states = []
    adaptation = Adaptation(episodes=4, exploration_episodes=1, seeds=1, updates_per_episode=2,
                            updates_per_unroll=0, batch_size=4, progress=False)

    def run(state=None, stop_after=None):
        agent = EpisodeLog()

        def save(s):
            states.append(s)
            if stop_after is not None and s["episode"] == stop_after:
                raise KeyboardInterrupt

        try:
            adaptation.run("log", lambda num_problems: agent, env_vec, GOALS[:2], SPEC, 2,
                           np.random.default_rng(0), MemoryLogger(), save,
                           state)
        except KeyboardInterrupt:
            pass
        return agent.log

    def env_vec(goals, ids):
        return env().__class__(goals, ids, sparse=False, episode_length=LENGTH)

    whole = run()
    assert whole == [("episode", e, 2 * e) for e in range(4)]
    states.clear()
    first = run(stop_after=2)
    assert first == whole[:2]
    resumed = run(state=states[-1])
    assert resumed == whole                                   # the log is checkpointed too
