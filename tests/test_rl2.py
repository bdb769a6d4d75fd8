"""RL² (iwx.agents.rl2, iwx.nets.recurrent): memory across episodes, recurrent inputs,
the stored-state unroll of the learner, the RS(0) update and the gradient-free adaptation."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from iwx.agents.base import to_torch
from iwx.agents.actors.recurrent import RecurrentActing
from iwx.agents.rl2 import RL2, RL2Adaptation, rl2_adaptation
from iwx.nets.recurrent import RecurrentCore, RecurrentCritic, RecurrentGaussianPolicy
from iwx.nets.torso import Torso

torch.set_num_threads(1)
SPEC = {"position": (2,), "task_id": ()}
A, H = 2, 8


def tiny_core():
    return functools.partial(RecurrentCore, inputs=("position",), hidden_size=H,
                             torso=functools.partial(Torso, norm_width=8, hidden=(8, 8)))


def make_agent(**kwargs) -> RL2:
    torch.manual_seed(0)
    small = functools.partial(Torso, norm_width=8, hidden=(8,))
    return RL2(SPEC, A, 3, device=torch.device("cpu"),
               actor=functools.partial(RecurrentGaussianPolicy, core=tiny_core()),
               critic=functools.partial(RecurrentCritic, core=tiny_core(), head=small),
               **kwargs)


def observations(episode: int, t: int, rows: int) -> dict:
    rng = np.random.default_rng([episode, t])
    return {"position": rng.normal(size=(rows, 2)).astype(np.float32),
            "task_id": np.arange(rows)}


def play(agent, episodes: int, steps: int, rows: int, alive_until=None):
    """Hand-fed episodes without begin_tasks in between. Returns per-step records [e][t]."""
    records = []
    for e in range(episodes):
        ep = []
        alive = np.ones(rows, bool)
        for t in range(steps):
            obs = observations(e, t, rows)
            out = agent.act(obs)
            actions, extras = out if isinstance(out, tuple) else (out, {})
            rewards = np.sin(np.arange(rows) + 3 * t + 7 * e).astype(np.float32)
            done = np.full(rows, t == steps - 1)
            if alive_until is not None:
                done |= t + 1 == np.asarray(alive_until)
            agent.observe(obs, actions, rewards, observations(e, t + 1, rows), done, alive)
            ep.append({"obs": obs, "actions": actions, "rewards": rewards, "extras": extras,
                       "alive": alive.copy()})
            alive &= ~done
        records.append(ep)
    return records


def actor_state(agent):
    return tuple(x.clone() for x in agent.memory.state["actor"])


def replay_from_fresh_memory(agent, seed, steps, reference):
    """After begin_tasks the memory is zeros and, for the same seed, the episode
    ``reference`` is played again action for action (and extra for extra)."""
    agent.begin_tasks(3)
    for value in agent.memory.before().values():
        assert torch.count_nonzero(value) == 0
    torch.manual_seed(seed)
    again = play(agent, 1, steps, 3)[0]
    for a, b in zip(reference, again):
        np.testing.assert_array_equal(a["actions"], b["actions"])
        for key in a["extras"]:
            np.testing.assert_array_equal(a["extras"][key], b["extras"][key])


# (a) ------------------------------------------------------------------------------------
def test_memory_is_carried_across_episodes_and_reset_between_tasks():
    agent = make_agent()
    agent.begin_tasks(3)
    torch.manual_seed(1)
    first = play(agent, 1, 5, 3)[0]
    end_of_first = actor_state(agent)
    assert end_of_first[0].abs().sum() > 0
    start_of_second = play(agent, 1, 1, 3)[0][0]["extras"]
    np.testing.assert_allclose(start_of_second["actor_h"], end_of_first[0].numpy())
    np.testing.assert_allclose(start_of_second["actor_c"], end_of_first[1].numpy())
    np.testing.assert_array_equal(start_of_second["prev_done"], 1.0)   # a new episode began
    np.testing.assert_allclose(start_of_second["prev_action"], first[-1]["actions"])
    np.testing.assert_allclose(start_of_second["prev_reward"], first[-1]["rewards"])

    replay_from_fresh_memory(agent, 1, 5, first)               # new tasks: memory is zeros


def test_rows_whose_episode_ended_keep_their_memory():
    agent = make_agent()
    agent.begin_tasks(2)
    records = play(agent, 1, 4, 2, alive_until=[2, 4])[0]
    # row 0 ended after step 2: the state it keeps is the one after its second step
    np.testing.assert_allclose(agent.memory.state["actor"][0][0].numpy(),
                               records[2]["extras"]["actor_h"][0])
    assert agent.memory.prev["prev_reward"][0] == records[1]["rewards"][0]
    assert agent.memory.prev["prev_reward"][1] == records[3]["rewards"][1]


def test_act_without_begin_tasks_or_with_other_rows_is_an_error():
    agent = make_agent()
    with pytest.raises(ValueError, match="begin_tasks"):
        agent.act(observations(0, 0, 2))
    agent.begin_tasks(3)
    with pytest.raises(ValueError, match="rows"):
        agent.act(observations(0, 0, 2))


# (b) ------------------------------------------------------------------------------------
def test_previous_action_reward_and_done_are_inputs():
    agent = make_agent()
    agent.begin_tasks(5)
    prev = agent.memory.prev
    prev["prev_action"][2] = torch.tensor([0.5, -0.5])
    prev["prev_reward"][3] = 1.0
    prev["prev_done"][4] = 1.0
    obs = observations(0, 0, 1)
    obs = {k: np.repeat(v, 5, axis=0) for k, v in obs.items()}       # same s_t in every row
    out = agent.memory.step(to_torch(obs, agent.device))
    dist = agent.actor.distribution(out["actor"])
    mean, std = dist.loc, dist.scale
    torch.testing.assert_close(mean[1], mean[0])                      # same inputs, same π
    for row in (2, 3, 4):                                             # one input changed each
        assert (mean[row] - mean[0]).abs().max() > 1e-4 or (std[row] - std[0]).abs().max() > 1e-4
        assert (out["critic"][row] - out["critic"][0]).abs().max() > 1e-4


def test_observe_records_previous_inputs_of_alive_rows_only():
    agent = make_agent()
    agent.begin_tasks(2)
    obs = observations(0, 0, 2)
    actions, _ = agent.act(obs)
    agent.observe(obs, actions, np.array([3.0, 4.0]), obs, np.array([True, False]),
                  np.array([True, False]))
    np.testing.assert_allclose(agent.memory.prev["prev_reward"].numpy(), [3.0, 0.0])
    np.testing.assert_allclose(agent.memory.prev["prev_done"].numpy(), [1.0, 0.0])
    np.testing.assert_allclose(agent.memory.prev["prev_action"][0].numpy(), actions[0])
    np.testing.assert_array_equal(agent.memory.prev["prev_action"][1].numpy(), 0.0)
    assert torch.count_nonzero(agent.memory.state["actor"][0][1]) == 0
    with pytest.raises(ValueError, match="act"):
        agent.observe(obs, actions, np.zeros(2), obs, np.zeros(2, bool), np.ones(2, bool))


# (c) ------------------------------------------------------------------------------------
def chunk_batch(records, chunks, length):
    """Replay-layout batch (nb = 1 group per chunk, c = 1) from played records.

    ``chunks``: (episode, start) pairs; chunk steps are start .. start+length-1.
    """
    rows = []
    for e, start in chunks:
        ep = records[e]
        steps = range(start, start + length)
        obs_steps = [ep[t]["obs"] if t < len(ep) else observations(e, t, 1) for t in
                     range(start, start + length + 1)]
        rows.append({
            "obs": {k: np.stack([o[k][0] for o in obs_steps]) for k in SPEC},
            "actions": np.stack([ep[t]["actions"][0] for t in steps]),
            "rewards": np.stack([ep[t]["rewards"][0] for t in steps]),
            "discounts": np.ones(length, np.float32),
            "mask": np.ones(length, np.float32),
            "extras": {k: np.stack([ep[t]["extras"][k][0] for t in steps])
                       for k in ep[0]["extras"]},
        })

    def stack(key):
        return np.stack([r[key] for r in rows])[:, None]

    return {"obs": {k: np.stack([r["obs"][k] for r in rows])[:, None] for k in SPEC},
            "actions": stack("actions"), "rewards": stack("rewards"),
            "discounts": stack("discounts"), "mask": stack("mask"),
            "task": np.zeros(len(rows), np.int64),
            "extras": {k: np.stack([r["extras"][k] for r in rows])[:, None]
                       for k in rows[0]["extras"]}}


def played_batch(agent, length=3):
    agent.begin_tasks(1)
    records = play(agent, 2, 6, 1)
    # a chunk inside episode 1, and one at the start of episode 2 (carried state, done = 1)
    return records, chunk_batch(records, [(0, 1), (1, 0), (1, 3)], length)


def test_learner_rebuilds_the_recurrent_state_exactly():
    agent = make_agent()
    records, batch = played_batch(agent)
    b = to_torch(batch, agent.device)
    h = agent.unroll(b)
    stored = torch.as_tensor(batch["extras"]["log_prob"][:, 0])                 # [3, L]
    for name, net in (("actor", agent.actor), ("target_actor", agent.target_actor)):
        log_pi = net.distribution(h[name][:, :3]).log_prob(b["actions"][:, 0]).sum(-1)
        torch.testing.assert_close(log_pi, stored, rtol=1e-5, atol=1e-5)
    # the output at step t is the state stored at step t + 1 (critic too) ...
    for name in ("actor", "critic"):
        torch.testing.assert_close(h[name][:, :2], b["extras"][f"{name}_h"][:, 0, 1:3])
    # ... and step L's inputs (a_{L-1}, r_{L-1}, done 0) are those acting fed: chunk (0, 1)
    # covers steps 1..3, its step L is step 4, whose output step 5 stored
    for name in ("actor", "critic"):
        torch.testing.assert_close(h[f"target_{name}"][0, 3],
                                   torch.as_tensor(records[0][5]["extras"][f"{name}_h"][0]))


# (d) ------------------------------------------------------------------------------------
def test_update_moves_actor_and_critic_and_reports_metrics():
    agent = make_agent(target_period=2)
    _, batch = played_batch(agent)
    before = {name: [p.detach().clone() for p in getattr(agent, name).parameters()]
              for name in ("actor", "critic", "target_actor", "target_critic")}
    metrics = agent.update(batch)
    assert set(metrics) == {"critic_loss", "policy_loss", "q_mean", "policy_std"}
    assert all(np.isfinite(v) for v in metrics.values())

    def moved(name, part):
        params = dict(getattr(agent, name).named_parameters())
        old = dict(zip(params, before[name]))
        return any(not torch.equal(params[k], old[k]) for k in params if k.startswith(part))

    for part in ("core.lstm", "core.torso", "head"):   # SVG(0) reaches the LSTM through time
        assert moved("actor", part), part
    for part in ("core.lstm", "core.torso", "head", "out"):
        assert moved("critic", part), part
    assert not moved("target_actor", "") and not moved("target_critic", "")
    agent.update(batch)                                  # target_period = 2: copied now
    for p, q in zip(agent.actor.parameters(), agent.target_actor.parameters()):
        torch.testing.assert_close(p, q)


def test_policy_loss_sends_no_gradient_into_the_critic(monkeypatch):
    from iwx.agents import rl2

    def critic_grads(policy_loss=None):
        agent = make_agent(critic_lr=0.0, policy_lr=0.0)
        _, batch = played_batch(agent)
        if policy_loss is not None:
            monkeypatch.setattr(rl2, "svg0_policy_loss", policy_loss)
        torch.manual_seed(5)
        agent.update(batch)
        monkeypatch.undo()
        return [p.grad.clone() for p in agent.critic.parameters()], \
            [p.grad for p in agent.actor.parameters()]

    with_svg, actor_grads = critic_grads()
    alone, _ = critic_grads(lambda q, **kw: 0.0 * q.sum())    # the critic loss alone
    for g, h in zip(with_svg, alone):
        torch.testing.assert_close(g, h)
    assert all(g is not None and g.abs().sum() > 0 for g in actor_grads)


def test_state_dict_round_trips_with_the_memory():
    agent = make_agent()
    _, batch = played_batch(agent)
    agent.update(batch)
    clone = make_agent()
    clone.load_state_dict(agent.state_dict())
    for key, value in agent.memory.before().items():
        torch.testing.assert_close(clone.memory.before()[key], value)
    for p, q in zip(agent.critic.parameters(), clone.critic.parameters()):
        torch.testing.assert_close(p, q)
    assert clone.updates == 1


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="num_samples"):
        make_agent(num_samples=0)
    with pytest.raises(ValueError, match="retrace_lambda"):
        make_agent(retrace_lambda=1.5)
    with pytest.raises(ValueError, match="entropy_cost"):
        make_agent(entropy_cost=-0.1)


# (e) ------------------------------------------------------------------------------------
def test_adaptation_never_learns_and_carries_memory_within_a_task():
    agent = make_agent()
    adapt = rl2_adaptation(agent, {"position": (2,)}, A, 3, device=torch.device("cpu"))
    assert adapt.learns is False and adapt.replay_extras == {}
    assert not any(p.requires_grad for p in adapt.actor.parameters())
    with pytest.raises(RuntimeError, match="memory"):
        adapt.update({})
    with torch.no_grad():                               # a frozen copy, not the learner's actor
        next(agent.actor.parameters()).add_(1.0)
    assert not torch.equal(next(agent.actor.parameters()), next(adapt.actor.parameters()))

    adapt.begin_tasks(3)
    torch.manual_seed(2)
    first = play(adapt, 1, 4, 3)[0]
    carried = actor_state(adapt)
    assert carried[0].abs().sum() > 0                   # the next episode starts from here
    saved = adapt.state_dict()
    torch.manual_seed(3)
    second = play(adapt, 1, 4, 3)[0]

    resumed = rl2_adaptation(agent, {"position": (2,)}, A, 3, device=torch.device("cpu"))
    resumed.actor.load_state_dict(adapt.actor.state_dict())
    resumed.load_state_dict(saved)                      # a killed adaptation resumes exactly
    torch.manual_seed(3)
    again = play(resumed, 1, 4, 3)[0]
    for a, b in zip(second, again):
        np.testing.assert_array_equal(a["actions"], b["actions"])
    assert not np.allclose(first[0]["actions"], second[0]["actions"])

    replay_from_fresh_memory(adapt, 2, 4, first)        # a new task: memory back to zeros


def test_adaptation_factory_checks_its_inputs():
    with pytest.raises(ValueError, match="RL2"):
        rl2_adaptation(None, {"position": (2,)}, A, 1, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="position"):
        RL2Adaptation(make_agent().actor, {"proprio": (3,)}, A, 1, device=torch.device("cpu"))


def test_actor_mean_is_bounded_to_the_action_box_unless_unbound():
    for bound, expected in ((True, np.tanh(100.0)), (False, 100.0)):
        torch.manual_seed(0)
        actor = RecurrentGaussianPolicy(SPEC, A, core=tiny_core(), bound_mean=bound)
        with torch.no_grad():
            actor.head.weight.zero_()
            actor.head.bias[:A] = 100.0
        dist = actor.distribution(torch.randn(3, H))
        torch.testing.assert_close(dist.loc, torch.full((3, A), float(expected)))
        torch.testing.assert_close(dist.scale, torch.full((3, A), 0.8))   # init_std


def test_adaptation_at_the_mean_acts_at_mu_whatever_the_seed():
    """``rl2_adaptation.mean_actions``: every action is the actor's mean μ(h_t), the same
    for any torch seed (the sampled variant's differ, test above); the first step's by hand
    from zero memory. Training refuses it (Retrace needs a sample's density)."""
    agent = make_agent()
    adapt = rl2_adaptation(agent, {"position": (2,)}, A, 3, device=torch.device("cpu"),
                           mean_actions=True)
    runs = []
    for seed in (2, 3):
        adapt.begin_tasks(3)
        torch.manual_seed(seed)
        runs.append(play(adapt, 2, 4, 3))
    for first, second in zip(runs[0], runs[1]):
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a["actions"], b["actions"])
    with torch.no_grad():          # step 1 from zero memory: a sequence of length 1
        obs = {k: torch.as_tensor(v).unsqueeze(1) for k, v in observations(0, 0, 3).items()}
        out, _ = adapt.actor.core(obs, torch.zeros(3, 1, A), torch.zeros(3, 1),
                                  torch.zeros(3, 1),
                                  adapt.actor.core.initial_state(3, torch.device("cpu")))
        mu = adapt.actor.distribution(out[:, 0]).mean
    np.testing.assert_array_equal(runs[0][0][0]["actions"], mu.numpy())
    with pytest.raises(ValueError, match="adaptation only"):
        RecurrentActing(agent.actor, A, critic_core=agent.critic.core, device=torch.device("cpu"),
                        owner="RL2", mean_actions=True)
