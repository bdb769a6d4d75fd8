"""PEARL* (iwx.agents.pearl, iwx.nets.context): the bottleneck, the posterior, acting
with posterior sampling, the learner's gradient paths and the frozen adaptation agent.

Batches are built by hand in the layout of docs/AGENTS.md; networks are tiny.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
import torch

from iwx.agents.base import to_torch
from iwx.agents.pearl import PEARL, PEARLAdaptation, pearl_adaptation
from iwx.nets.context import ContextCritic, ContextEncoder
from iwx.nets.policy import GaussianPolicy
from iwx.nets.torso import Torso

torch.set_num_threads(1)

SPEC = {"position": (2,), "task_id": ()}
A, Z = 2, 5
TINY = functools.partial(Torso, norm_width=8, hidden=(8,))
CPU = torch.device("cpu")


def tiny_agent(**kw) -> PEARL:
    torch.manual_seed(0)
    return PEARL(SPEC, A, 3, device=CPU,
                 encoder=functools.partial(ContextEncoder, lstm_size=8, torso=TINY),
                 critic=functools.partial(ContextCritic, torso=TINY),
                 actor=functools.partial(GaussianPolicy, torso=TINY, log_std_min=-1.5,
                                         log_std_max=0.5, init_std=0.8),
                 context_length=6, num_samples=3, **kw)


def chunk(rng, nb, c, L, lengths=None):
    """Replay layout: obs [nb, c, L+1, ·], actions [nb, c, L, A], rewards/discounts/mask [nb, c, L]."""
    mask = np.ones((nb, c, L), np.float32)
    if lengths is not None:
        mask = (np.arange(L) < np.asarray(lengths)[:, None, None]).astype(np.float32)
        mask = np.broadcast_to(mask, (nb, c, L)).copy()
    return {
        "obs": {"position": rng.normal(size=(nb, c, L + 1, 2)).astype(np.float32),
                "task_id": np.broadcast_to(np.arange(nb)[:, None, None], (nb, c, L + 1)).copy()},
        "actions": rng.normal(size=(nb, c, L, A)).astype(np.float32),
        "rewards": (rng.random((nb, c, L)) * mask).astype(np.float32),
        "discounts": mask.copy(),
        "mask": mask,
        "task": np.arange(nb),
    }


def batch(seed=0, nb=3, c=2, L=4, context_lengths=(6, 3, 1)):
    rng = np.random.default_rng(seed)
    b = chunk(rng, nb, c, L)
    b["extras"] = {"log_prob": (rng.normal(size=(nb, c, L)) - 2.0).astype(np.float32)}
    b["context"] = chunk(rng, nb, 1, 6, lengths=context_lengths)
    return b


def encode(encoder, obs, actions, rewards, mask):
    """Encoder on a single chunk of transitions [n, L(+1), ...] (replay layout, no c axis)."""
    o = {k: torch.as_tensor(v) for k, v in obs.items()}
    return encoder({k: v[:, :-1] for k, v in o.items()}, torch.as_tensor(actions),
                   torch.as_tensor(rewards), {k: v[:, 1:] for k, v in o.items()},
                   torch.as_tensor(mask))


# --------------------------------------------------------------------------- (a) bottleneck
MU = [0.5, -1.0, 0.0, 2.0, 0.1]
LOG_STD = [0.0, math.log(2.0), -0.5, 0.3, -1.0]
# ½ Σ (μ² + σ² − 1 − 2 log σ), term by term:
#   0.25 + 1 − 1 − 0                 = 0.25
#   1 + 4 − 1 − 2 ln 2               = 2.6137056
#   0 + e^-1 − 1 + 1                 = 0.3678794
#   4 + e^0.6 − 1 − 0.6              = 4.2221188
#   0.01 + e^-2 − 1 + 2              = 1.1453353
KL_BY_HAND = 0.5 * (0.25 + (4.0 - 2.0 * math.log(2.0)) + math.exp(-1.0)
                    + (2.4 + math.exp(0.6)) + (1.01 + math.exp(-2.0)))


def hand_set_encoder(agent):
    with torch.no_grad():
        agent.encoder.out.weight.zero_()
        agent.encoder.out.bias.copy_(torch.tensor(MU + LOG_STD))


def test_kl_bottleneck_is_the_hand_kl_times_kl_cost():
    assert KL_BY_HAND == pytest.approx(0.5 * 8.599039, abs=1e-6)
    losses = {}
    for cost in (0.1, 0.7):
        agent = tiny_agent(kl_cost=cost)
        hand_set_encoder(agent)
        b = to_torch(batch(), CPU)
        mean, log_std = agent.posterior(b["context"])
        assert mean.tolist() == [pytest.approx(MU)] * 3
        assert log_std.tolist() == [pytest.approx(LOG_STD, abs=1e-6)] * 3
        torch.manual_seed(1)
        loss, parts = agent.critic_loss(b)
        assert parts["kl"].item() == pytest.approx(KL_BY_HAND, rel=1e-5)
        assert loss.item() == pytest.approx(parts["td"].item() + cost * KL_BY_HAND, rel=1e-5)
        losses[cost] = loss.item()
    # Same networks, same noise: the losses differ by exactly Δβ · KL.
    assert losses[0.7] - losses[0.1] == pytest.approx(0.6 * KL_BY_HAND, rel=1e-4)


# --------------------------------------------------------------------------- (b) posterior
def test_an_empty_context_is_exactly_the_prior():
    torch.manual_seed(0)
    enc = ContextEncoder(SPEC, A, lstm_size=8, torso=TINY)
    c = chunk(np.random.default_rng(0), 2, 1, 5, lengths=[0, 0])
    mean, log_std = encode(enc, {k: v[:, 0] for k, v in c["obs"].items()}, c["actions"][:, 0],
                           c["rewards"][:, 0], c["mask"][:, 0])
    assert mean.shape == (2, Z)
    assert torch.equal(mean, torch.zeros(2, Z)) and torch.equal(log_std, torch.zeros(2, Z))
    # ... whereas a context with one real step moves away from it
    c["mask"][1, 0, 0] = 1.0
    mean, _ = encode(enc, {k: v[:, 0] for k, v in c["obs"].items()}, c["actions"][:, 0],
                     c["rewards"][:, 0], c["mask"][:, 0])
    assert torch.equal(mean[0], torch.zeros(Z)) and not torch.equal(mean[1], torch.zeros(Z))


def test_padded_context_steps_do_not_change_the_posterior():
    """Transitions 0, 1, 3 real (2 and 4 padding with junk) == the three real ones alone."""
    torch.manual_seed(0)
    enc = ContextEncoder(SPEC, A, lstm_size=8, torso=TINY)
    rng = np.random.default_rng(3)
    s = rng.normal(size=(1, 6, 2)).astype(np.float32)            # s_0 .. s_5
    a = rng.normal(size=(1, 5, A)).astype(np.float32)
    r = rng.random((1, 5)).astype(np.float32)
    a[0, [2, 4]], r[0, [2, 4]] = 1e3, -1e3                        # junk on the padded steps
    mask = np.array([[1, 1, 0, 1, 0]], np.float32)
    t = torch.as_tensor
    padded = enc({"position": t(s[:, :-1])}, t(a), t(r), {"position": t(s[:, 1:])}, t(mask))
    keep = [0, 1, 3]
    alone = enc({"position": t(s[:, keep])}, t(a[:, keep]), t(r[:, keep]),
                {"position": t(s[:, [k + 1 for k in keep]])}, t(np.ones((1, 3), np.float32)))
    torch.testing.assert_close(padded, alone)
    # and the padding really was different data: unmasking it changes the posterior
    unmasked = enc({"position": t(s[:, :-1])}, t(a), t(r), {"position": t(s[:, 1:])},
                   t(np.ones((1, 5), np.float32)))
    assert not torch.allclose(unmasked[0], alone[0])


# --------------------------------------------------------------------------- (c) acting
def step_arrays(rng, rows):
    obs = {"position": rng.normal(size=(rows, 2)).astype(np.float32),
           "task_id": np.arange(rows)}
    return obs, rng.normal(size=(rows, A)).astype(np.float32), rng.random(rows).astype(np.float32)


def test_posterior_sampling_holds_z_per_episode_and_begin_tasks_forgets():
    agent = tiny_agent()
    rng = np.random.default_rng(0)
    agent.begin_tasks(2)
    mem = agent.acting.memory
    obs, _, _ = step_arrays(rng, 2)
    actions, extras = agent.act(obs)
    assert actions.shape == (2, A) and extras["log_prob"].shape == (2,)
    z0 = mem.z.copy()
    prior = agent.encoder(*mem.context(np.arange(2), CPU))
    assert torch.equal(prior[0], torch.zeros(2, Z)) and torch.equal(prior[1], torch.zeros(2, Z))

    for _ in range(3):   # within an episode z is held, whatever is observed
        nxt, a, r = step_arrays(rng, 2)
        agent.observe(obs, a, r, nxt, done=np.zeros(2, bool), alive=np.array([True, False]))
        obs = nxt
        agent.act(obs)
        np.testing.assert_array_equal(mem.z, z0)
    assert mem.length.tolist() == [3, 0]                         # a dead row stores nothing
    post = agent.encoder(*mem.context(np.arange(2), CPU))
    assert not torch.allclose(post[0][0], torch.zeros(Z))        # the posterior moved
    assert torch.equal(post[0][1], torch.zeros(Z))

    # Row 0's episode ends: it alone draws a new z at its next act, then holds it.
    nxt, a, r = step_arrays(rng, 2)
    agent.observe(obs, a, r, nxt, done=np.array([True, False]), alive=np.array([True, True]))
    agent.act(nxt)
    assert not np.allclose(mem.z[0], z0[0])
    np.testing.assert_array_equal(mem.z[1], z0[1])
    z1 = mem.z.copy()
    agent.act(nxt)
    np.testing.assert_array_equal(mem.z, z1)

    # The context keeps the last context_length (6) transitions, oldest first.
    rewards = []
    for _ in range(8):
        nxt, a, r = step_arrays(rng, 2)
        agent.observe(obs, a, r, nxt, done=np.zeros(2, bool), alive=np.ones(2, bool))
        rewards.append(r[0])
    assert mem.length.tolist() == [6, 6]
    np.testing.assert_array_equal(mem.rewards[0], np.array(rewards[-6:], np.float32))

    agent.begin_tasks(2)
    assert mem.length.tolist() == [0, 0] and mem.needs_z.all()
    cleared = agent.encoder(*mem.context(np.arange(2), CPU))
    assert torch.equal(cleared[0], torch.zeros(2, Z))


# --------------------------------------------------------------------------- (d) learner
def params(module):
    return [p.detach().clone() for p in module.parameters()]


def moved(before, module):
    return any(not torch.equal(a, b.detach()) for a, b in zip(before, module.parameters()))


def test_update_moves_encoder_actor_and_critic():
    agent = tiny_agent(kl_cost=0.01)
    before = {n: params(getattr(agent, n)) for n in ("encoder", "actor", "critic")}
    target_before = params(agent.target_critic)
    metrics = agent.update(batch())
    assert {"critic_loss", "kl", "actor_loss", "q_mean"} <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    for name, b in before.items():
        assert moved(b, getattr(agent, name)), name
    assert not moved(target_before, agent.target_critic)        # until target_period
    assert agent.updates == 1
    with pytest.raises(ValueError, match="context"):
        agent.update({k: v for k, v in batch().items() if k != "context"})


def test_the_actor_loss_does_not_reach_the_encoder_but_the_critic_loss_does():
    agent = tiny_agent(kl_cost=0.0)                 # so the encoder's gradient is the critic's
    b = to_torch(batch(), CPU)
    loss, parts = agent.critic_loss(b)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.parameters())
    for module in (agent.encoder, agent.critic, agent.actor):
        module.zero_grad(set_to_none=True)
    assert not parts["z"].requires_grad          # update() hands the actor a detached z
    mean, log_std = agent.posterior(b["context"])
    z = mean + log_std.exp() * torch.randn_like(mean)    # ... and even a z that carries grad
    actor_loss, _ = agent.actor_loss(b, z)
    actor_loss.backward()
    assert all(p.grad is None for p in agent.encoder.parameters())
    assert all(p.grad is None for p in agent.critic.parameters())
    assert all(p.requires_grad for p in agent.critic.parameters())   # unfrozen again
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.actor.parameters())


def test_the_critic_sees_actions_clipped_to_the_box():
    """Q(s, a) beyond [-1, 1] is Q at the box's edge (what the environment executes)."""
    agent = tiny_agent()
    obs = {"position": torch.randn(2, 3, 2)}
    z = torch.randn(2, Z)
    edge = torch.tensor([1.0, -1.0]).expand(2, 3, A)
    beyond = torch.tensor([7.0, -1.5]).expand(2, 3, A)
    inside = torch.tensor([0.5, -1.0]).expand(2, 3, A)
    q = functools.partial(agent.q, agent.critic, obs, z=z)
    assert torch.equal(q(actions=beyond), q(actions=edge))
    assert not torch.allclose(q(actions=inside), q(actions=edge))


def test_state_dict_round_trip_gives_the_same_next_update():
    agent = tiny_agent()
    agent.update(batch(1))
    clone = tiny_agent()
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))   # as if saved to disk
    torch.manual_seed(5)
    m1 = agent.update(batch(2))
    torch.manual_seed(5)
    m2 = clone.update(batch(2))
    assert m1 == m2


# --------------------------------------------------------------------------- (e) adaptation
def play(adapt, rng, steps, rows, done_every=4):
    out = []
    obs, _, _ = step_arrays(rng, rows)
    for t in range(steps):
        actions, extras = adapt.act(obs, explore=t < 4)
        nxt, _, r = step_arrays(rng, rows)
        adapt.observe(obs, actions, r, nxt, done=np.full(rows, (t + 1) % done_every == 0),
                      alive=np.ones(rows, bool))
        out.append((actions, extras["log_prob"]))
        obs = nxt
    return out


def test_pearl_adaptation_never_updates_and_resumes_exactly():
    agent = tiny_agent()
    agent.update(batch())
    adapt = pearl_adaptation(agent, {"position": (2,)}, A, 3, device=CPU)
    assert isinstance(adapt, PEARLAdaptation) and adapt.learns is False
    assert adapt.replay_extras == {"log_prob": ()}
    frozen = {n: params(getattr(adapt, n)) for n in ("encoder", "actor")}
    assert not any(p.requires_grad for p in adapt.encoder.parameters())
    with pytest.raises(RuntimeError, match="without gradient steps"):
        adapt.update(batch())
    agent.update(batch(3))                          # the pretrained agent moving is not seen
    adapt.begin_tasks(3)
    rng = np.random.default_rng(0)
    play(adapt, rng, 10, 3)
    for name, before in frozen.items():
        assert not moved(before, getattr(adapt, name)), name
    assert adapt.acting.memory.length.tolist() == [6, 6, 6]

    # A killed adaptation resumes exactly: same contexts, same z, same random stream.
    saved = adapt.state_dict()
    torch.manual_seed(123)                          # the global stream plays no part
    resumed = pearl_adaptation(agent, {"position": (2,)}, A, 3, device=CPU)
    resumed.acting.encoder.load_state_dict(adapt.encoder.state_dict())
    resumed.acting.actor.load_state_dict(adapt.actor.state_dict())
    resumed.load_state_dict(saved)
    ahead = play(adapt, np.random.default_rng(9), 6, 3)
    again = play(resumed, np.random.default_rng(9), 6, 3)
    for (a1, l1), (a2, l2) in zip(ahead, again):
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(l1, l2)


def test_pearl_adaptation_rejects_other_pretrained_agents():
    with pytest.raises(ValueError, match="pretrained PEARL"):
        pearl_adaptation(object(), {"position": (2,)}, A, 2, device=CPU)
    with pytest.raises(ValueError, match="lacks"):
        pearl_adaptation(tiny_agent(), {"velocity": (2,)}, A, 2, device=CPU)


# --------------------------------------------------------------------------- (e) dense meta-training
def test_a_reward_key_gives_the_encoder_that_observation_instead_of_the_reward():
    """PEARL's code on sparse navigation: the critic learns from the dense reward, the
    encoder sees the sparse one, carried by s_{t+1} (ContextEncoder.reward_key)."""
    spec = {**SPEC, "sparse_reward": ()}
    torch.manual_seed(0)
    plain = ContextEncoder(SPEC, A, lstm_size=8, torso=TINY)
    keyed = ContextEncoder(spec, A, lstm_size=8, torso=TINY, reward_key="sparse_reward")
    keyed.load_state_dict(plain.state_dict())        # same weights: only the input differs
    assert keyed.context_keys == ("position", "sparse_reward")
    assert plain.context_keys == ("position",)
    rng = np.random.default_rng(1)
    t = torch.as_tensor
    s = t(rng.normal(size=(2, 5, 2)).astype(np.float32))
    a = t(rng.normal(size=(2, 4, A)).astype(np.float32))
    dense = t(-rng.random((2, 4)).astype(np.float32))
    sparse = t(np.array([[0, 0, 0.9, 0.95], [0, 0, 0, 0]], np.float32))
    mask = t(np.ones((2, 4), np.float32))
    obs = {"position": s[:, :-1], "sparse_reward": torch.zeros(2, 4)}
    nxt = {"position": s[:, 1:], "sparse_reward": sparse}
    got = keyed(obs, a, dense, nxt, mask)
    want = plain({"position": s[:, :-1]}, a, sparse, {"position": s[:, 1:]}, mask)
    torch.testing.assert_close(got, want)
    # the dense reward would have been a different posterior: the key is really what is read
    assert not torch.allclose(plain({"position": s[:, :-1]}, a, dense,
                                    {"position": s[:, 1:]}, mask)[0], want[0])
    with pytest.raises(ValueError, match="emit_sparse_reward"):
        ContextEncoder(SPEC, A, reward_key="sparse_reward")


def test_posterior_sampling_keeps_the_reward_key_in_its_context_memory():
    spec = {**SPEC, "sparse_reward": ()}
    torch.manual_seed(0)
    enc = ContextEncoder(spec, A, lstm_size=8, torso=TINY, reward_key="sparse_reward")
    actor = GaussianPolicy(spec, A, 1, task_key=None, extra_dim=Z, torso=TINY)
    from iwx.agents.actors.posterior import PosteriorSampling
    acting = PosteriorSampling(enc, actor, spec, A, context_length=4, device=CPU)
    acting.begin_tasks(1)
    obs = {"position": np.zeros((1, 2), np.float32), "sparse_reward": np.zeros(1, np.float32),
           "task_id": np.zeros(1, np.int64)}
    nxt = {**obs, "sparse_reward": np.array([0.7], np.float32)}
    acting.observe(obs, np.zeros((1, A), np.float32), np.array([-0.3], np.float32), nxt,
                   np.array([False]), np.array([True]))
    o, _, r, n, m = acting.memory.context(np.array([0]), CPU)
    assert set(o) == {"position", "sparse_reward"}
    assert n["sparse_reward"][0, 0].item() == pytest.approx(0.7)
    assert r[0, 0].item() == pytest.approx(-0.3)     # the memory keeps both; the encoder picks


def test_point_nav_pearl_meta_trains_dense_and_adapts_sparse(tmp_path):
    """gin/point_nav_pearl.gin end to end: training returns are the dense reward's
    (negative distances), adaptation's the sparse reward's (never negative)."""
    from cli import iwx_run, read_json, run_dirs

    proc = iwx_run(tmp_path, "gin/point_nav_pearl.gin")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    series = read_json(run / "series.json")
    train = series["train/return"]["values"]
    assert train and all(v < -0.5 for v in train), train     # 20 steps, each −‖s − g‖ < 0
    adapt = series["adapt/PEARL*/return"]["values"]
    assert adapt and all(v >= 0.0 for v in adapt), adapt
    operative = (run / "operative_config.gin").read_text()
    assert "dense/PointNavVec.sparse = False" in operative
    assert "ContextEncoder.reward_key = 'sparse_reward'" in operative


def test_a_training_env_that_sees_other_observations_is_refused(tmp_path):
    from cli import iwx_run, run_dirs

    proc = iwx_run(tmp_path, "gin/point_nav_iwpl.gin",
                   ["pretrain_and_adapt.training_env = @other/PointNavVec",
                    "other/PointNavVec.expose_goal = True"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "training environment may change the reward only" in proc.stderr
    assert "Traceback" not in proc.stderr
    for run in run_dirs(tmp_path):
        assert not (run / "model.pt").exists()
