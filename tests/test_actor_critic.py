"""RS(0) / DISTRAL (ActorCritic) and the parametric adaptation baselines, against hand numbers.

Hand-set networks (a Gaussian with fixed mean and std at every state, a critic
given as a formula of (x, a)) make every term computable on paper; tiny real
networks check what an update moves and what it leaves alone.
"""

from __future__ import annotations

import copy
import functools
import math
import types

import numpy as np
import pytest
import torch
from torch import nn

from iwx.agents.actor_critic import ActorCritic
from iwx.agents.parametric_adaptation import ParametricAdaptation
from iwx.nets.critics import (FeatureCritic, Features, PerTaskCritic, fresh_critic,
                              shared_features_critic)
from iwx.nets.ensemble_policy import EnsembleGaussianPolicy
from iwx.nets.policy import GaussianPolicy
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import EnsembleTorso, Torso

torch.set_num_threads(1)
CPU = torch.device("cpu")
SPEC = {"position": (2,), "task_id": ()}
HELD_OUT = {"position": (2,)}


# -- hand-set networks -------------------------------------------------------------
class ConstantGaussian(nn.Module):
    """N(mean, std²) at every state, 1-D actions."""

    def __init__(self, mean: float, std: float, task_key=None):
        super().__init__()
        self.mean = nn.Parameter(torch.tensor([mean]))
        self.log_std = nn.Parameter(torch.tensor([math.log(std)]))
        self.inputs, self.task_key = ("position",), task_key

    def distribution(self, obs):
        shape = (*obs["position"].shape[:-1], 1)
        return torch.distributions.Normal(self.mean.expand(shape), self.log_std.exp().expand(shape))

    def log_prob(self, obs, actions):                   # actions [..., K, A] -> [..., K]
        d = self.distribution(obs)
        return torch.distributions.Normal(d.loc.unsqueeze(-2),
                                          d.scale.unsqueeze(-2)).log_prob(actions).sum(-1)


class HandCritic(nn.Module):
    """Q(s, a) = w · fn(x, a) with x the first position coordinate, 1-D actions."""

    task_key = "task_id"

    def __init__(self, fn):
        super().__init__()
        self.w, self.fn = nn.Parameter(torch.tensor(1.0)), fn

    def forward(self, obs, actions, task=None):
        x = obs["position"][..., 0]
        if actions.dim() == x.dim() + 2:                # K samples per state
            x = x.unsqueeze(-1)
        return self.w * self.fn(x, actions[..., 0])


def hand_agent(policy=(0.0, 0.5), prior=None, fn=lambda x, a: -(a - 2.0) ** 2, **kw):
    return ActorCritic(
        SPEC, 1, 3, device=CPU,
        policy=lambda *_: ConstantGaussian(*policy, task_key="task_id"),
        critic=lambda *_: HandCritic(fn),
        prior=None if prior is None else (lambda *_: ConstantGaussian(*prior)), **kw)


def log_normal(a, mean, std):
    return -0.5 * ((a - mean) / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)


def chunk(xs, actions, rewards, discounts=None, log_prob=None):
    """A batch of one chunk (nb = c = 1) in the replay layout: x_0..x_L, a_0..a_{L-1}."""
    L = len(actions)
    position = torch.zeros(1, 1, L + 1, 2)
    position[0, 0, :, 0] = torch.tensor(xs)
    return {"obs": {"position": position, "task_id": torch.zeros(1, 1, L + 1, dtype=torch.long)},
            "actions": torch.tensor(actions, dtype=torch.float32).reshape(1, 1, L, 1),
            "rewards": torch.tensor([[rewards]], dtype=torch.float32),
            "discounts": torch.tensor([[discounts or [1.0] * L]], dtype=torch.float32),
            "mask": torch.ones(1, 1, L),
            "extras": {"log_prob": (torch.zeros(1, 1, L) if log_prob is None
                                    else torch.tensor([[log_prob]], dtype=torch.float32))},
            "task": torch.zeros(1, dtype=torch.long)}


# -- (a) SVG(0) -------------------------------------------------------------------------
def test_svg0_gradient_on_a_quadratic_q_is_the_hand_value_and_moves_mu_to_the_peak():
    mu, std = 0.0, 0.5
    agent = hand_agent(policy=(mu, std), num_samples=3, policy_lr=0.1)
    eps = torch.tensor([0.3, -1.2, 0.7]).reshape(1, 1, 1, 3, 1)
    out = agent.losses(chunk([0.0, 0.0], [0.1], [0.0]), noise=eps)
    out["policy_loss"].backward()
    # loss = mean_k (μ + σ ε_k − 2)²  ->  ∂/∂μ = mean_k 2(μ + σ ε_k − 2),
    #                                     ∂/∂log σ = mean_k 2(μ + σ ε_k − 2) σ ε_k
    e = [0.3, -1.2, 0.7]
    d_mu = sum(2 * (mu + std * k - 2) for k in e) / 3
    d_log_std = sum(2 * (mu + std * k - 2) * std * k for k in e) / 3
    assert agent.policy.mean.grad.item() == pytest.approx(d_mu, rel=1e-5)
    assert agent.policy.log_std.grad.item() == pytest.approx(d_log_std, rel=1e-5)
    assert agent.critic.w.grad is None                   # the policy loss never moves Q

    for start in (0.0, 3.0):                             # one step: μ goes towards a* = 2
        agent = hand_agent(policy=(start, 0.5), num_samples=8, policy_lr=0.1)
        agent.update(chunk([0.0, 0.0], [0.1], [0.0]))
        assert abs(agent.policy.mean.item() - 2.0) < abs(start - 2.0)


# -- (b) DISTRAL ------------------------------------------------------------------------
def test_distral_kl_term_and_policy_loss_are_the_closed_form():
    (mu, s), (mu0, s0), alpha = (0.5, 0.8), (-0.5, 0.4), 0.3
    agent = hand_agent(policy=(mu, s), prior=(mu0, s0), fn=lambda x, a: 0.0 * a,
                       kl_cost=alpha)
    out = agent.losses(chunk([0.0, 0.0], [0.1], [0.0]))
    kl = math.log(s0 / s) + (s ** 2 + (mu - mu0) ** 2) / (2 * s0 ** 2) - 0.5   # 3.931853
    assert out["kl_to_prior"].item() == pytest.approx(kl, rel=1e-5)
    assert out["policy_loss"].item() == pytest.approx(alpha * kl, rel=1e-5)   # Q ≡ 0
    assert out["prior_loss"].item() == pytest.approx(kl, rel=1e-5)


def test_distral_soft_target_on_a_one_step_chunk_is_the_hand_value():
    (mu, s), (mu0, s0), alpha, gamma, K = (0.5, 0.8), (-0.5, 0.4), 0.3, 0.9, 5
    fn = lambda x, a: x - (a - 1.0) ** 2
    agent = hand_agent(policy=(mu, s), prior=(mu0, s0), fn=fn, kl_cost=alpha,
                       num_samples=K, gamma=gamma)
    b = chunk([0.2, 0.7], [0.1], [1.5])
    torch.manual_seed(3)
    target = agent.critic_targets(b, b["task"]).item()
    torch.manual_seed(3)
    eps = torch.randn(1, 1, 1, K, 1).flatten().tolist()  # the same draw of a'_k ~ π(·|s_1)
    v = 0.0
    for e in eps:
        a = mu + s * e
        v += (0.7 - (a - 1.0) ** 2) - alpha * (log_normal(a, mu, s) - log_normal(a, mu0, s0))
    assert target == pytest.approx(1.5 + gamma * v / K, rel=1e-5)


def test_distillation_moves_the_prior_mean_towards_the_policy_and_not_the_reverse():
    agent = hand_agent(policy=(0.5, 0.5), prior=(-0.5, 0.5), fn=lambda x, a: 0.0 * a,
                       kl_cost=0.1, prior_lr=0.05, policy_lr=0.0)
    b = chunk([0.0, 0.0], [0.1], [0.0])
    out = agent.losses(b)
    out["prior_loss"].backward()
    assert agent.policy.mean.grad is None                # distillation never moves π
    agent = hand_agent(policy=(0.5, 0.5), prior=(-0.5, 0.5), fn=lambda x, a: 0.0 * a,
                       kl_cost=0.1, prior_lr=0.05, policy_lr=0.0)
    agent.update(b)
    assert agent.prior.mean.item() == pytest.approx(-0.45, abs=1e-4)  # Adam's first step: lr
    assert agent.policy.mean.item() == 0.5


# -- (c) Retrace ------------------------------------------------------------------------
def test_retrace_with_pi_equal_mu_and_lambda_one_gives_the_hand_n_step_target():
    mu, s, gamma, K = 0.1, 0.5, 0.5, 4
    fn = lambda x, a: x + 3.0 * a
    agent = hand_agent(policy=(mu, s), fn=fn, num_samples=K, gamma=gamma)
    xs, acts, rews, disc = [0.0, 1.0, 2.0, 4.0], [0.5, -0.2, 0.9], [1.0, 2.0, 3.0], [1, 1, 1]
    log_mu = [log_normal(a, mu, s) for a in acts]        # μ = π: every log ratio is 0
    b = chunk(xs, acts, rews, disc, log_prob=log_mu)
    torch.manual_seed(0)
    got = agent.critic_targets(b, b["task"])[0, 0].tolist()
    torch.manual_seed(0)
    eps = torch.randn(1, 1, 3, K, 1)[0, 0, :, :, 0]      # a'_k at s_1, s_2, s_3
    v = [xs[t + 1] + 3.0 * float((mu + s * eps[t]).mean()) for t in range(3)]  # V(s_{t+1})
    q = [xs[t] + 3.0 * acts[t] for t in range(3)]        # Q(s_t, a_t)
    ret2 = rews[2] + gamma * v[2]
    ret1 = rews[1] + gamma * (v[1] + ret2 - q[2])
    ret0 = rews[0] + gamma * (v[0] + ret1 - q[1])
    assert got == pytest.approx([ret0, ret1, ret2], rel=1e-5)

    # μ far more likely than π on a_1, a_2: traces ≈ 0, the targets fall back to TD(0)
    b = chunk(xs, acts, rews, disc, log_prob=[lm + 30.0 for lm in log_mu])
    torch.manual_seed(0)
    got = agent.critic_targets(b, b["task"])[0, 0].tolist()
    assert got == pytest.approx([rews[t] + gamma * v[t] for t in range(3)], rel=1e-5)


# -- (d) updates on real (tiny) networks ---------------------------------------------------
TINY = functools.partial(Torso, norm_width=8, hidden=(8,))
TINY_ENSEMBLE = functools.partial(EnsembleTorso, norm_width=8, hidden=(8,))


def tiny_agent(with_prior=True, **kw):
    return ActorCritic(
        SPEC, 2, 3, device=CPU, policy=functools.partial(GaussianPolicy, torso=TINY),
        critic=functools.partial(FeatureCritic,
                                 features=functools.partial(Features, torso=TINY, features_dim=4)),
        prior=functools.partial(GaussianPrior, torso=TINY) if with_prior else None,
        kl_cost=0.01 if with_prior else 0.0, **kw)


def training_batch(rng, nb=3, c=2, L=4, A=2):
    return {"obs": {"position": rng.normal(size=(nb, c, L + 1, 2)).astype(np.float32),
                    "task_id": np.repeat(np.arange(nb), c * (L + 1)).reshape(nb, c, L + 1)},
            "actions": rng.uniform(-1, 1, (nb, c, L, A)).astype(np.float32),
            "rewards": rng.normal(size=(nb, c, L)).astype(np.float32),
            "discounts": np.ones((nb, c, L), np.float32),
            "mask": np.concatenate([np.ones((nb, c, L - 1)), np.zeros((nb, c, 1))],
                                   -1).astype(np.float32),
            "extras": {"log_prob": rng.normal(-2, 0.5, (nb, c, L)).astype(np.float32)},
            "task": np.arange(nb)}


def flat(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


def assert_resumes_exactly(agent, clone, batch, seed):
    """``clone`` loaded from ``agent``'s state dict takes the very same next update."""
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))
    torch.manual_seed(seed)
    a = agent.update(batch)
    torch.manual_seed(seed)
    assert clone.update(batch) == a


def test_actor_critic_update_moves_its_nets_copies_targets_and_round_trips():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    agent = tiny_agent(target_period=2)
    before = {n: flat(getattr(agent, n)) for n in
              ("policy", "critic", "prior", "target_policy", "target_critic", "target_prior")}
    metrics = agent.update(training_batch(rng))
    assert set(metrics) == {"critic_loss", "policy_loss", "prior_loss", "kl_to_prior",
                            "q_mean", "policy_std"}
    assert all(np.isfinite(v) for v in metrics.values())
    for n in ("policy", "critic", "prior"):
        assert not torch.equal(flat(getattr(agent, n)), before[n]), n
        assert torch.equal(flat(getattr(agent, "target_" + n)), before["target_" + n]), n
    agent.update(training_batch(rng))                    # update 2: targets := online nets
    for n in ("policy", "critic", "prior"):
        assert torch.equal(flat(getattr(agent, "target_" + n)), flat(getattr(agent, n))), n

    actions, extras = agent.act({"position": np.zeros((3, 2), np.float32),
                                 "task_id": np.arange(3)})
    assert actions.shape == (3, 2) and extras["log_prob"].shape == (3,)

    clone = tiny_agent(target_period=2)
    assert_resumes_exactly(agent, clone, training_batch(rng), seed=5)
    assert clone.updates == agent.updates == 3

    rs0 = tiny_agent(with_prior=False)
    assert rs0.prior is None
    assert "prior_loss" not in rs0.update(training_batch(rng))


def test_actor_critic_rejects_bad_settings():
    with pytest.raises(ValueError, match="prior is None"):
        ActorCritic(SPEC, 2, 3, device=CPU, kl_cost=0.1)
    with pytest.raises(ValueError, match="information"):
        ActorCritic(SPEC, 2, 3, device=CPU, prior=functools.partial(
            GaussianPrior, inputs=("position", "task_id"), torso=TINY))
    with pytest.raises(ValueError, match="log_prob"):
        batch = training_batch(np.random.default_rng(0))
        del batch["extras"]
        tiny_agent().update(batch)


def adaptation_batch(rng, P=3, n=5, A=2):
    return {"obs": {"position": rng.normal(size=(P, n, 2, 2)).astype(np.float32)},
            "actions": rng.uniform(-1, 1, (P, n, 1, A)).astype(np.float32),
            "rewards": rng.normal(size=(P, n, 1)).astype(np.float32),
            "discounts": np.ones((P, n, 1), np.float32),
            "mask": np.ones((P, n, 1), np.float32), "task": np.arange(P)}


TINY_FRESH = functools.partial(fresh_critic, critic=functools.partial(PerTaskCritic,
                                                                      torso=TINY_ENSEMBLE))


@pytest.mark.parametrize("variant", ["DISTRAL", "Shared Q", "From Scratch"])
def test_adaptation_update_moves_only_what_the_variant_adapts(variant):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    pretrained = tiny_agent()
    pretrained_state = copy.deepcopy(pretrained.state_dict())
    kw = {"DISTRAL": {"critic_fn": TINY_FRESH},
          "Shared Q": {"critic_fn": shared_features_critic},
          "From Scratch": {"critic_fn": TINY_FRESH, "use_prior": False}}[variant]
    agent = ParametricAdaptation(None if variant == "From Scratch" else pretrained, HELD_OUT, 2,
                                 3, device=CPU, learning_rate=1e-2, **kw)
    assert agent.learns
    obs = {"position": torch.as_tensor(rng.normal(size=(3, 4, 2)), dtype=torch.float32)}
    if agent.prior is not None:                           # π_p starts as a copy of π0
        torch.testing.assert_close(agent.policy.distribution(obs).loc,
                                   agent.prior.distribution(obs).loc, rtol=1e-5, atol=1e-6)
    out = agent.losses({k: torch.as_tensor(v) for k, v in adaptation_batch(rng).items()
                        if k != "obs"} | {"obs": {"position": torch.as_tensor(
                            rng.normal(size=(3, 5, 2, 2)), dtype=torch.float32)}})
    out["policy_loss"].backward()                         # the policy loss never moves Q
    assert all(p.grad is None for p in agent.critic.parameters())
    agent.policy.zero_grad(set_to_none=True)
    prior0 = None if agent.prior is None else flat(agent.prior)
    policy0, critic0 = flat(agent.policy), flat(agent.critic)
    psi0 = flat(agent.critic.features) if variant == "Shared Q" else None
    w0 = agent.critic.weights.detach().clone() if variant == "Shared Q" else None
    metrics = agent.update(adaptation_batch(rng))
    assert {"critic_loss", "policy_loss", "q_mean"} <= set(metrics)
    assert ("kl_to_prior" in metrics) == (variant != "From Scratch")
    assert not torch.equal(flat(agent.policy), policy0)
    assert not torch.equal(flat(agent.critic), critic0)
    if prior0 is not None:
        assert torch.equal(flat(agent.prior), prior0)     # frozen π0
    if variant == "Shared Q":
        assert torch.equal(flat(agent.critic.features), psi0)   # frozen ψ
        assert not torch.equal(agent.critic.weights, w0)         # w̃ moves, every problem
        assert (agent.critic.weights - w0).abs().sum(-1).gt(0).all()
    for k, v in pretrained.state_dict().items():          # the pretrained agent is untouched
        if k in ("policy", "critic", "prior"):
            for name, t in v.items():
                assert torch.equal(t, pretrained_state[k][name]), (k, name)

    obs = {"position": rng.normal(size=(3, 2)).astype(np.float32)}
    assert agent.act(obs).shape == agent.act(obs, explore=True).shape == (3, 2)
    clone = ParametricAdaptation(None if variant == "From Scratch" else pretrained, HELD_OUT, 2,
                                 3, device=CPU, learning_rate=1e-2, **kw)
    assert_resumes_exactly(agent, clone, adaptation_batch(rng), seed=2)


def test_adaptation_explores_with_the_prior_and_needs_one_where_it_uses_it():
    torch.manual_seed(0)
    pretrained = tiny_agent()
    agent = ParametricAdaptation(pretrained, HELD_OUT, 2, 3, device=CPU, critic_fn=TINY_FRESH)
    with torch.no_grad():                                 # move π away from π0
        agent.policy.head.bias.add_(5.0)
    obs = {"position": np.random.default_rng(0).normal(size=(3, 2)).astype(np.float32)}
    torch.manual_seed(7)
    explored = agent.act(obs, explore=True)
    torch.manual_seed(7)
    expected = agent.prior.distribution({"position": torch.as_tensor(obs["position"])}).sample()
    np.testing.assert_allclose(explored, expected.numpy(), rtol=1e-6)
    assert np.abs(agent.act(obs) - explored).min() > 1.0  # otherwise from π_p

    with pytest.raises(ValueError, match="no pretrained agent"):
        ParametricAdaptation(None, HELD_OUT, 2, 3, device=CPU, critic_fn=TINY_FRESH)
    with pytest.raises(ValueError, match="has no prior"):
        ParametricAdaptation(tiny_agent(with_prior=False), HELD_OUT, 2, 3, device=CPU,
                             critic_fn=TINY_FRESH)


def test_adaptation_soft_td0_target_and_kl_are_the_hand_values():
    """critic loss of one transition with π, π0 hand-set: ½(Q − [r + γ V(s')])², V soft."""
    (mu, s), (mu0, s0), alpha, gamma, K = (0.3, 0.6), (-0.2, 0.9), 0.5, 0.8, 3
    pretrained = types.SimpleNamespace(prior=GaussianPrior(HELD_OUT, 1, torso=TINY), critic=None)
    agent = ParametricAdaptation(pretrained, HELD_OUT, 1, 1, device=CPU,
                                 critic_fn=lambda *_: HandCritic(lambda x, a: x + 2.0 * a),
                                 kl_cost=alpha, num_samples=K, gamma=gamma)
    agent.prior = ConstantGaussian(mu0, s0).requires_grad_(False)  # hand-set π0
    agent.policy = agent.target_policy = ConstantGaussian(mu, s)   # hand-set π_p
    b = {"obs": {"position": torch.tensor([[[[0.4, 0.0], [1.0, 0.0]]]])},
         "actions": torch.tensor([[[[0.25]]]]), "rewards": torch.tensor([[[2.0]]]),
         "discounts": torch.ones(1, 1, 1), "mask": torch.ones(1, 1, 1)}
    torch.manual_seed(4)
    eps_next = torch.randn(1, 1, 1, K, 1).flatten().tolist()       # drawn for V(s') first
    torch.manual_seed(4)
    out = agent.losses(b)
    v = sum((1.0 + 2.0 * (mu + s * e)) - alpha * (log_normal(mu + s * e, mu, s)
                                                  - log_normal(mu + s * e, mu0, s0))
            for e in eps_next) / K
    q = 0.4 + 2.0 * 0.25
    assert out["critic_loss"].item() == pytest.approx(0.5 * (q - (2.0 + gamma * v)) ** 2,
                                                      rel=1e-5)
    kl = math.log(s0 / s) + (s ** 2 + (mu - mu0) ** 2) / (2 * s0 ** 2) - 0.5
    assert out["kl_to_prior"].item() == pytest.approx(kl, rel=1e-5)


# -- (e) ensemble policy ---------------------------------------------------------------------
def test_ensemble_policy_from_a_prior_is_that_prior_in_every_member():
    torch.manual_seed(0)
    prior = GaussianPrior(HELD_OUT, 3, torso=TINY)
    with torch.no_grad():                                 # not the default LayerNorm / bias
        for p in prior.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ensemble = EnsembleGaussianPolicy.like(prior, HELD_OUT, members=4)
    x = torch.randn(5, 2)
    want = prior.distribution({"position": x})
    got = ensemble.distribution({"position": x.expand(4, 5, 2)})  # [M, 5, 3]
    for m in range(4):
        torch.testing.assert_close(got.loc[m], want.loc, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(got.scale[m], want.scale, rtol=1e-5, atol=1e-6)

    fresh = EnsembleGaussianPolicy.like(prior, HELD_OUT, members=4, copy_weights=False)
    d = fresh.distribution({"position": x.expand(4, 5, 2)})
    assert not torch.allclose(d.loc[0], d.loc[1])         # independent members
    with pytest.raises(ValueError, match="task input"):
        EnsembleGaussianPolicy.like(GaussianPolicy(SPEC, 3, 2, torso=TINY), SPEC, 2)
