"""Hand-checked tests of the maths of IWPL / IWPA (paper §3–4, eqs. 6–14).

Every expected value is computed here from small explicit numbers with
``math`` (or an explicit formula), never by re-calling the function under test.
"""

from __future__ import annotations

import copy
import functools
import math

from types import SimpleNamespace
import numpy as np
import pytest
import torch

from iwx.agents.iwpa import IWPA
from iwx.agents.iwpl import IWPL
from iwx.agents.temperature import ConstrainedTemperature, FixedTemperature
from iwx.envs.point_nav import PointNavVec
from iwx.loops.episodes import play_episode
from iwx.nets.critics import FeatureCritic, fresh_critic, shared_features_critic
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import EnsembleTorso, Torso
from iwx.ops.importance import (importance_weights, kl_to_empirical_prior, prior_loss,
                                soft_value_literal, soft_value_logmeanexp)
from iwx.replay.task_replay import TaskReplay

torch.set_num_threads(1)

Q3 = [1.0, 2.0, 0.5]          # K = 3 Q-values used throughout
ALPHA = 0.5
LOG_PI0 = [-0.3, -1.2, -2.0]  # explicit log π0(a_k|s) (a density, any real number)


def hand_weights(q, alpha):
    """softmax(q / α) written out with math.exp."""
    e = [math.exp(x / alpha) for x in q]
    z = sum(e)
    return [x / z for x in e]


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


# --------------------------------------------------------------------------- eq. (6)
def test_importance_weights_match_hand_softmax():
    """q̂_k = exp(Q_k/α) / Σ_j exp(Q_j/α) for Q = [1, 2, 0.5], α = 0.5."""
    # exp(2), exp(4), exp(1) normalised
    z = math.exp(2.0) + math.exp(4.0) + math.exp(1.0)
    expected = [math.exp(2.0) / z, math.exp(4.0) / z, math.exp(1.0) / z]
    w = importance_weights(torch.tensor(Q3, dtype=torch.float64), ALPHA)
    assert w.tolist() == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx([0.1141952, 0.8437947, 0.0420101], abs=1e-6)


def test_importance_weights_sum_to_one_over_last_axis():
    """Weights over K sum to 1 for every state of a batched input."""
    q = torch.tensor([[1.0, 2.0, 0.5], [-3.0, 0.0, 7.0], [0.0, 0.0, 0.0]])
    w = importance_weights(q, 0.3)
    assert w.shape == (3, 3)
    assert torch.allclose(w.sum(-1), torch.ones(3), atol=1e-6)
    assert torch.allclose(w[2], torch.full((3,), 1 / 3))


def test_importance_weights_small_alpha_is_argmax():
    """As α → 0 the weights become one-hot on argmax Q; large α → uniform."""
    w = importance_weights(torch.tensor(Q3), 1e-3)
    assert w.tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-6)
    w_big = importance_weights(torch.tensor(Q3), 1e4)
    assert w_big.tolist() == pytest.approx([1 / 3] * 3, abs=1e-3)


# --------------------------------------------------------------------------- eq. (10)
def test_soft_value_literal_matches_hand_eq10():
    """Σ_k q̂_k (Q_k − α log(q̂_k / π0(a_k|s))) with explicit log π0 values."""
    w = hand_weights(Q3, ALPHA)
    expected = sum(wk * (qk - ALPHA * (math.log(wk) - lp))
                   for wk, qk, lp in zip(w, Q3, LOG_PI0))
    got = soft_value_literal(torch.tensor(Q3, dtype=torch.float64),
                             torch.tensor(LOG_PI0, dtype=torch.float64), ALPHA)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # The number itself, so a sign error in either log term cannot hide.
    assert expected == pytest.approx(1.5195068, abs=1e-6)


def test_soft_value_logmeanexp_matches_hand():
    """V = α log((1/K) Σ exp(Q_k/α)) for Q = [1, 2, 0.5], α = 0.5."""
    expected = ALPHA * math.log((math.exp(2.0) + math.exp(4.0) + math.exp(1.0)) / 3)
    got = soft_value_logmeanexp(torch.tensor(Q3, dtype=torch.float64), None, ALPHA)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    # prior_log_prob is documented as unused
    got2 = soft_value_logmeanexp(torch.tensor(Q3, dtype=torch.float64),
                                 torch.tensor(LOG_PI0, dtype=torch.float64), ALPHA)
    assert float(got2) == pytest.approx(expected, rel=1e-12)


def test_soft_value_logmeanexp_equals_literal_under_empirical_prior():
    """With log π0 = log(1/K) for every sample the two forms of eq. (10) agree."""
    q = torch.tensor([[1.0, 2.0, 0.5], [3.0, -1.0, 0.0]], dtype=torch.float64)
    uniform = torch.full_like(q, math.log(1 / 3))
    for alpha in (0.1, 0.5, 2.0):
        lit = soft_value_literal(q, uniform, alpha)
        lme = soft_value_logmeanexp(q, None, alpha)
        assert torch.allclose(lit, lme, rtol=0, atol=1e-10)
    # and it is *not* the same for the explicit density values above
    assert abs(float(soft_value_literal(q[0], torch.tensor(LOG_PI0, dtype=torch.float64), 0.5))
               - float(soft_value_logmeanexp(q[0], None, 0.5))) > 1e-2


# --------------------------------------------------------------------------- KL
def test_kl_to_empirical_prior_matches_hand():
    """KL(q̂ ‖ uniform) = Σ q̂_k log(K q̂_k) for Q = [1, 2, 0.5], α = 0.5."""
    w = hand_weights(Q3, ALPHA)
    expected = sum(wk * math.log(3 * wk) for wk in w)
    got = kl_to_empirical_prior(torch.tensor(Q3, dtype=torch.float64), ALPHA)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    assert 0 < expected < math.log(3)


def test_kl_to_empirical_prior_limits():
    """KL is 0 for equal Q-values and → log K when one Q dominates at small α."""
    assert float(kl_to_empirical_prior(torch.tensor([0.7, 0.7, 0.7, 0.7]), 0.1)) == \
        pytest.approx(0.0, abs=1e-6)
    kl = float(kl_to_empirical_prior(torch.tensor([10.0, 0.0, 0.0]), 0.01))
    assert kl == pytest.approx(math.log(3), abs=1e-5)


# (TD targets and critic losses, eqs. (7), (9), (10), (13), (14): tests/test_ops_td.py)


# --------------------------------------------------------------------------- eq. (11)
def test_prior_loss_matches_hand():
    """J_π0 = −Σ q̂_k log π0(a_k) = −(0.2·−1 + 0.5·−2 + 0.3·−0.5) = 1.35."""
    w = torch.tensor([[0.2, 0.5, 0.3]])
    lp = torch.tensor([[-1.0, -2.0, -0.5]])
    assert prior_loss(w, lp).tolist() == pytest.approx([1.35], abs=1e-6)


def test_prior_loss_gradient_stops_at_weights():
    """Gradient flows into log π0 (as −q̂) but never into the weights."""
    w = torch.tensor([0.2, 0.5, 0.3], requires_grad=True)
    lp = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    prior_loss(w, lp).backward()
    assert w.grad is None
    assert lp.grad.tolist() == pytest.approx([-0.2, -0.5, -0.3], abs=1e-7)


# --------------------------------------------------------------------------- eq. (8): α
# (the dual itself: tests/test_ops_temperature.py)
@pytest.mark.parametrize("epsilon", [0.5, 1.5])
def test_constrained_temperature_meets_kl_bound(epsilon):
    """Descending the dual on a fixed batch drives mean KL(q̂‖uniform) to ε."""
    torch.manual_seed(0)
    q = torch.randn(256, 16) * 3
    temp = ConstrainedTemperature(epsilon=epsilon)
    temp.check(16)
    kl0 = float(kl_to_empirical_prior(q, temp.alpha).mean())
    assert abs(kl0 - epsilon) > 0.1  # the starting α = 1 does not already satisfy it
    for _ in range(800):
        temp.update(q)
    kl = float(kl_to_empirical_prior(q, temp.alpha).mean())
    assert kl == pytest.approx(epsilon, abs=0.02)


def test_constrained_temperature_check_rejects_unbindable_epsilon():
    """ε ≥ log K can never bind: check() raises and names log K."""
    temp = ConstrainedTemperature(epsilon=math.log(16))
    with pytest.raises(ValueError, match="log K"):
        temp.check(16)
    with pytest.raises(ValueError, match="log K"):
        ConstrainedTemperature(epsilon=3.0).check(16)  # log 16 ≈ 2.77
    ConstrainedTemperature(epsilon=2.7).check(16)       # just below: fine


def test_fixed_temperature_rejects_non_positive_alpha():
    """FixedTemperature(α ≤ 0) raises; α > 0 is kept as given."""
    for bad in (0.0, -0.1):
        with pytest.raises(ValueError):
            FixedTemperature(bad)
    assert FixedTemperature(0.25).alpha == 0.25


# --------------------------------------------------------------------------- IWPA
SPEC = {"position": (2,)}
P, C = 4, 3


def _adaptation_batch(seed=0, rewards=None, mask=None):
    """Transitions in the replay layout: obs [P, c, 2, 2], actions [P, c, 1, 2], ..."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(P, C, 2, 2, generator=g) * 2 - 1
    return {
        "obs": {"position": pos.numpy()},
        "actions": (torch.rand(P, C, 1, 2, generator=g) * 2 - 1).numpy(),
        "rewards": (np.ones((P, C, 1), np.float32) if rewards is None else rewards),
        "discounts": np.ones((P, C, 1), np.float32),
        "mask": (np.ones((P, C, 1), np.float32) if mask is None else mask),
    }


def _pretrained():
    torch.manual_seed(1)
    return GaussianPrior(SPEC, 2), FeatureCritic(SPEC, 2, 5)


@pytest.mark.parametrize("finetune", [False, True])
def test_iwpa_shared_q_moves_w_and_psi_only_when_finetuning(finetune):
    """Shared Q + IW: w̃ moves; ψ moves only with finetune_features; π0 and the pretrained
    critic never do."""
    prior, critic = _pretrained()
    prior0, critic0 = params(prior), params(critic)
    agent = IWPA(SimpleNamespace(prior=prior, critic=critic), SPEC, 2, num_problems=4,
                 device=torch.device("cpu"),
                 critic_fn=functools.partial(shared_features_critic,
                                             finetune_features=finetune))
    # ψ starts as a copy of the pretrained features, w̃ has one row per problem
    assert same(params(agent.critic.features), params(critic.features))
    assert agent.critic.weights.shape == (4, critic.features.features_dim)
    w0, psi0, aprior0 = (agent.critic.weights.detach().clone(),
                         params(agent.critic.features), params(agent.prior))
    for step in range(3):
        m = agent.update(_adaptation_batch(step))
        assert math.isfinite(m["td_loss"]) and math.isfinite(m["q_mean"])
    assert not torch.allclose(agent.critic.weights.detach(), w0)
    assert same(params(agent.critic.features), psi0) == (not finetune)
    assert same(params(agent.prior), aprior0)
    assert same(params(prior), prior0)
    assert same(params(critic), critic0)
    # the caller's modules are not even re-flagged (IWPA works on copies)
    assert agent.prior is not prior and agent.critic.features is not critic.features
    assert all(p.requires_grad for p in prior.parameters())
    assert all(p.requires_grad for p in critic.parameters())


def test_iwpa_fresh_critic_masked_problems_get_zero_gradient():
    """IW variant: with mask = 0 for problems 1..3 their ensemble slices get exactly zero grad."""
    prior, critic = _pretrained()
    agent = IWPA(SimpleNamespace(prior=prior, critic=critic), SPEC, 2, num_problems=4,
                 device=torch.device("cpu"),
                 critic_fn=fresh_critic)
    rewards = np.zeros((P, C, 1), np.float32)
    rewards[0] = 1.0
    mask = np.zeros((P, C, 1), np.float32)
    mask[0] = 1.0
    before = params(agent.critic)
    agent.update(_adaptation_batch(0, rewards=rewards, mask=mask))
    # Adam's first step leaves .grad in place: that is the gradient of this update.
    named = dict(agent.critic.named_parameters())
    assert named["out.weight"].grad.shape[0] == 4
    assert named["out.weight"].grad[0].abs().sum() > 0
    for name, p in named.items():
        assert p.shape[0] == 4, name  # every parameter is stacked per member
        assert torch.count_nonzero(p.grad[1:]) == 0, name
    after = params(agent.critic)
    for b, a in zip(before, after):
        assert torch.equal(b[1:], a[1:])
        assert not torch.equal(b[0], a[0]) or b[0].numel() == 0


def test_iwpa_fresh_critic_problems_are_independent():
    """Changing problem 2's data changes only member 2's gradient."""
    prior, critic = _pretrained()
    torch.manual_seed(3)
    agent_a = IWPA(SimpleNamespace(prior=prior, critic=critic), SPEC, 2, num_problems=4,
                 device=torch.device("cpu"),
                   critic_fn=fresh_critic)
    agent_b = copy.deepcopy(agent_a)
    batch_a = _adaptation_batch(0)
    batch_b = copy.deepcopy(batch_a)
    batch_b["obs"]["position"][2] += 0.3
    batch_b["rewards"][2] = -2.0
    torch.manual_seed(7)
    agent_a.update(batch_a)
    torch.manual_seed(7)
    agent_b.update(batch_b)
    for (name, pa), pb in zip(agent_a.critic.named_parameters(), agent_b.critic.parameters()):
        for m in (0, 1, 3):
            assert torch.allclose(pa.grad[m], pb.grad[m], atol=1e-6), (name, m)
    ga, gb = agent_a.critic.out.weight.grad[2], agent_b.critic.out.weight.grad[2]
    assert not torch.allclose(ga, gb)


# --------------------------------------------------------------------------- IWPL
def test_iwpl_update_on_replay_and_target_refresh():
    """IWPL.update runs on real replay chunks; targets sync exactly every target_period."""
    torch.manual_seed(0)
    num_tasks = 3
    goals = np.array([[1.0, 0.0], [0.0, 1.0], [-0.7, 0.7]])
    env = PointNavVec(goals, np.arange(num_tasks), sparse=False, episode_length=8)
    spec = env.observation_spec()
    agent = IWPL(spec, 2, num_tasks, device=torch.device("cpu"), num_samples=8,
                 target_period=3)
    replay = TaskReplay(num_tasks, spec, 2, env.episode_length, capacity=4)
    for _ in range(2):
        play_episode(env, agent.act, replay=replay, rows=np.arange(num_tasks))
    assert replay.steps_per_task().tolist() == [16, 16, 16]
    rng = np.random.default_rng(0)

    def synced():
        return (same(params(agent.critic), params(agent.target_critic))
                and same(params(agent.prior), params(agent.target_prior)))

    assert synced()
    for step in range(1, 7):
        batch = replay.sample(rng, np.arange(num_tasks), 4, 5)
        metrics = agent.update(batch)
        assert all(math.isfinite(v) for v in metrics.values()), metrics
        assert agent.updates == step
        if step % 3 == 0:
            assert synced(), step
        else:
            assert not same(params(agent.critic), params(agent.target_critic)), step
            assert not same(params(agent.prior), params(agent.target_prior)), step
    assert {"critic_loss", "prior_loss", "alpha", "kl_to_prior"} <= set(metrics)


# --------------------------------------------------------------------------- replay
def _filled_replay():
    """Task 0: two full 6-step episodes, then a partial 2-step one written over the oldest
    (so its padded steps sit on stale data); task 1: 6 steps + 3 (terminated).

    Dynamics position' = position + action; reward = position'[0]; obs also carry
    the step index and an episode code (position[1]) so every chunk can be located.
    """
    spec = {"position": (2,), "step": (), "task_id": ()}
    replay = TaskReplay(2, spec, 2, 6, capacity=2)
    lengths = {}

    def run(task, code, n, terminate_last=False, end=True):
        pos = np.array([[0.0, float(code)]], np.float32)
        replay.begin_episodes(np.array([task]), {"position": pos, "step": np.zeros(1),
                                                 "task_id": np.array([task])})
        for t in range(n):
            a = np.array([[0.1 * (t + 1) + code, 0.0]], np.float32)
            pos = pos + a
            disc = np.zeros(1) if (terminate_last and t == n - 1) else np.ones(1)
            replay.append(np.array([task]), a, pos[:, 0], disc,
                          {"position": pos, "step": np.array([t + 1.0]),
                           "task_id": np.array([task])})
        if end:
            replay.end_episodes(np.array([task]))
        lengths[code] = n

    run(0, 1, 6)
    run(0, 5, 6)
    run(1, 2, 6)
    run(1, 3, 3, terminate_last=True)
    run(0, 4, 2, end=False)  # partly played, in the slot of episode 1 (ring of 2)
    del lengths[1]
    return replay, lengths


def test_replay_sample_layout_and_task_separation():
    """Chunk shapes follow the docstring; each row only ever holds its requested task."""
    replay, lengths = _filled_replay()
    tasks = np.array([1, 0])
    b = replay.sample(np.random.default_rng(0), tasks, 50, 4)
    assert b["obs"]["position"].shape == (2, 50, 5, 2)
    assert b["obs"]["step"].shape == (2, 50, 5)
    assert b["obs"]["task_id"].shape == (2, 50, 5)
    assert b["actions"].shape == (2, 50, 4, 2)
    for k in ("rewards", "discounts", "mask"):
        assert b[k].shape == (2, 50, 4), k
    assert b["task"].tolist() == [1, 0]
    # observations that exist: s_t of the chunk start and s_{t+1} of every existing step
    # (padded steps past the end of a short episode read unwritten slots and are masked)
    obs_valid = np.concatenate([np.ones((2, 50, 1), bool), b["mask"].astype(bool)], axis=-1)
    assert (b["obs"]["task_id"][0][obs_valid[0]] == 1).all()
    assert (b["obs"]["task_id"][1][obs_valid[1]] == 0).all()
    assert (b["obs"]["position"][0][obs_valid[0]][:, 1] != 1).all()   # no task-0 episode
    assert (b["obs"]["position"][1][obs_valid[1]][:, 1] != 2).all()   # no task-1 episode
    assert (b["obs"]["position"][1][obs_valid[1]][:, 1] != 1).all()   # overwritten episode
    codes = b["obs"]["position"][..., 0, 1]
    assert set(np.unique(codes[0]).tolist()) == {2.0, 3.0}
    assert set(np.unique(codes[1]).tolist()) == {4.0, 5.0}


def test_replay_sample_mask_and_offsets():
    """mask = 0 exactly on padded steps; obs[t+1], reward[t] match the stored transition."""
    replay, lengths = _filled_replay()
    b = replay.sample(np.random.default_rng(1), np.array([0, 1]), 200, 4)
    pos, step = b["obs"]["position"], b["obs"]["step"]
    code = pos[..., 0, 1]
    length = np.vectorize(lengths.get)(code)                           # [nb, c]
    start = step[..., 0]
    expected_mask = (start[..., None] + np.arange(4)) < length[..., None]
    np.testing.assert_array_equal(b["mask"], expected_mask.astype(np.float32))
    assert (b["mask"] == 0).any() and (b["mask"] == 1).any()
    partial = code == 4  # the 2-step episode still being written
    assert partial.any()
    np.testing.assert_array_equal(b["mask"][partial], np.tile([1, 1, 0, 0], (partial.sum(), 1)))
    # start must lie inside the episode and chunks of long episodes are never padded
    assert ((start >= 0) & (start <= np.maximum(length - 4, 0))).all()
    valid = b["mask"].astype(bool)
    # consecutive steps on valid entries
    np.testing.assert_array_equal(step[..., 1:][valid], step[..., :-1][valid] + 1)
    # s_{t+1} = s_t + a_t and r_t = s_{t+1}[0] on every existing step
    np.testing.assert_allclose((pos[..., :-1, :] + b["actions"])[valid], pos[..., 1:, :][valid],
                               atol=1e-5)
    np.testing.assert_allclose(b["rewards"][valid], pos[..., 1:, 0][valid], atol=1e-6)
    # padded steps carry no reward or bootstrap
    assert (b["rewards"][~valid] == 0).all() and (b["discounts"][~valid] == 0).all()
    # discount 0 only at the terminal step of episode 3 (length 3)
    term = valid & (code[..., None] == 3) & (step[..., :-1] == 2)
    assert term.any()
    assert (b["discounts"][term] == 0).all()
    assert (b["discounts"][valid & ~term] == 1).all()


# --------------------------------------------------------------------------- torso
def test_torso_distinguishes_scaled_2d_inputs():
    """(0.1, 0.2) and (0.3, 0.6) give different outputs (a bare LayerNorm would collapse them)."""
    torch.manual_seed(0)
    x = torch.tensor([[0.1, 0.2], [0.3, 0.6]])
    bare = torch.nn.LayerNorm(2)(x)
    assert torch.allclose(bare[0], bare[1], atol=5e-3)  # why the norm sits after a linear map
    out = Torso(2)(x)
    assert out.shape == (2, 64)
    assert (out[0] - out[1]).abs().max() > 1e-3


def test_ensemble_torso_member_equals_manual_computation():
    """Member m of EnsembleTorso equals Linear→LayerNorm→tanh→(Linear→ELU)* with its own weights."""
    torch.manual_seed(0)
    net = EnsembleTorso(3, 4, norm_width=8, hidden=(5, 6))
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        net.norm.weight.copy_(torch.rand(3, 1, 8) + 0.5)
        net.norm.bias.copy_(torch.randn(3, 1, 8) * 0.1)
    x = torch.randn(3, 7, 4)

    def manual(m, xm):
        h = xm @ net.first.weight[m] + net.first.bias[m, 0]
        mu = h.mean(-1, keepdim=True)
        var = ((h - mu) ** 2).mean(-1, keepdim=True)
        h = (h - mu) / torch.sqrt(var + 1e-5) * net.norm.weight[m, 0] + net.norm.bias[m, 0]
        h = torch.tanh(h)
        for layer in net.layers:
            z = h @ layer.weight[m] + layer.bias[m, 0]
            h = torch.where(z > 0, z, torch.exp(z) - 1)
        return h

    with torch.no_grad():
        out = net(x)
        assert out.shape == (3, 7, 6)
        for m in range(3):
            assert torch.allclose(out[m], manual(m, x[m]), atol=1e-5), m
        # picking members per leading row: row 0 -> member 2, row 1 -> member 0
        picked = net(x[:2], torch.tensor([2, 0]))
        assert torch.allclose(picked[0], manual(2, x[0]), atol=1e-5)
        assert torch.allclose(picked[1], manual(0, x[1]), atol=1e-5)


# --------------------------------------------------------------------------- prior
def test_gaussian_prior_sample_shapes_clipping_and_log_prob():
    """Samples in [-1, 1], shape [..., K, A]; log π0 is the Normal density at the clipped point."""
    torch.manual_seed(0)
    prior = GaussianPrior(SPEC, 2, log_std_min=0.3, log_std_max=1.0, init_std=2.0)  # wide: clips
    obs = {"position": torch.randn(5, 3, 2)}
    actions, log_prob = prior.sample(obs, 16)
    assert actions.shape == (5, 3, 16, 2)
    assert log_prob.shape == (5, 3, 16)
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (actions.abs() == 1.0).any()  # some samples were clipped
    with torch.no_grad():
        dist = prior.distribution(obs)
        mu, std = dist.loc.unsqueeze(-2), dist.scale.unsqueeze(-2)
        assert (std >= math.exp(0.3) - 1e-5).all() and (std <= math.exp(1.0) + 1e-5).all()
        z = (actions - mu) / std
        hand = (-0.5 * z ** 2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    assert torch.allclose(log_prob, hand, atol=1e-5)
    assert torch.allclose(prior.log_prob(obs, actions), hand, atol=1e-5)
