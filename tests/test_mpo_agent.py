"""The MPO / MPO + DISTRAL agent (iwx.agents.mpo): its E-step dual, its M-step trust
region, the DISTRAL terms against hand computations, and the agent contract.

Hand values are written out (or built from explicit ``math`` formulas), never by
re-calling the function under test.
"""

from __future__ import annotations

import copy
import functools
import math

import numpy as np
import pytest
import torch
from torch import nn

from iwx.agents.mpo import MPO
from iwx.nets.critics import FeatureCritic, Features
from iwx.nets.policy import GaussianPolicy
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import Torso

torch.set_num_threads(1)

OBS_SPEC = {"position": (2,), "task_id": ()}
A, NUM_TASKS = 2, 3
TINY = functools.partial(Torso, norm_width=8, hidden=(8,))
NETS = dict(policy=functools.partial(GaussianPolicy, torso=TINY),
            critic=functools.partial(FeatureCritic,
                                     features=functools.partial(Features, features_dim=4,
                                                                torso=TINY)))
CPU = torch.device("cpu")


def make_agent(with_prior=False, **kw):
    if with_prior:
        kw = {"prior": functools.partial(GaussianPrior, torso=TINY), "kl_cost": 0.1, **kw}
    return MPO(OBS_SPEC, A, NUM_TASKS, device=CPU, **NETS, **kw)


def make_batch(seed=0, nb=2, c=2, L=3):
    """A batch in the documented layout: obs [nb, c, L+1, ...], the rest [nb, c, L]."""
    rng = np.random.default_rng(seed)
    task = np.array([0, 2])[:nb]
    mask = np.ones((nb, c, L), np.float32)
    mask[0, 1, -1] = 0.0                                   # one padded step
    return {
        "obs": {"position": rng.normal(size=(nb, c, L + 1, 2)).astype(np.float32),
                "task_id": np.broadcast_to(task[:, None, None], (nb, c, L + 1)).copy()},
        "actions": rng.normal(size=(nb, c, L, A)).astype(np.float32),
        "rewards": rng.normal(size=(nb, c, L)).astype(np.float32) * mask,
        "discounts": mask.copy(),
        "mask": mask,
        "task": task,
        "extras": {"log_prob": rng.normal(-2.0, 0.5, size=(nb, c, L)).astype(np.float32)},
    }


def kl_to_uniform(w):
    k = w.shape[-1]
    return float((w * torch.log(w * k)).sum(-1).mean())


# ---------------------------------------------------------------- (a) E-step dual
@pytest.mark.parametrize("epsilon", [0.05, 0.5])
def test_temperature_dual_converges_to_the_kl_bound(epsilon):
    """Minimising the agent's dual in η on fixed Q gives weights with mean KL(w ‖ U_K) = ε."""
    torch.manual_seed(0)
    q = torch.randn(64, 20) * torch.linspace(0.2, 3.0, 64)[:, None]   # varied Q scales
    agent = make_agent(epsilon=epsilon, dual_lr=0.05)
    for _ in range(600):                                              # converged by ~300
        weights, _ = agent.estep(q)
    assert kl_to_uniform(weights) == pytest.approx(epsilon, rel=0.02)
    assert agent.temperature != pytest.approx(1.0)                    # η moved
    # a bound of log K or more can never bind
    with pytest.raises(ValueError, match="log K"):
        make_agent(epsilon=math.log(20), num_samples=20)


# ---------------------------------------------------------------- (b) M-step
def test_mstep_respects_the_decoupled_trust_regions_and_improves_the_likelihood():
    """600 M-steps on one batch: the KLs (averaged over the last 100 steps, since a
    Lagrangian oscillates around its bound) stay within 15% of ε_μ, ε_Σ, and the
    weighted log-likelihood of the samples rises."""
    torch.manual_seed(1)
    eps_mean, eps_std = 0.02, 0.002
    agent = make_agent(epsilon_mean=eps_mean, epsilon_std=eps_std, policy_lr=3e-3,
                       dual_lr=0.05)
    n, k = 32, 20
    obs = {"position": torch.randn(n, 2), "task_id": torch.randint(0, NUM_TASKS, (n,))}
    with torch.no_grad():
        old = agent.target_policy.distribution(obs)
        actions = old.loc[:, None] + old.scale[:, None] * torch.randn(n, k, A)
        # weights favour the samples nearest (1, 1): far from the old mean, so the
        # unconstrained maximum likelihood would move well beyond the bounds.
        weights = torch.softmax(-((actions - 1.0) ** 2).sum(-1) / 0.1, dim=-1)

    def weighted_log_lik():
        with torch.no_grad():
            d = agent.policy.distribution(obs)
            return float((weights * d.log_prob(actions.transpose(0, 1)).sum(-1).T).sum(-1).mean())

    before = weighted_log_lik()
    history = [agent.mstep(obs, actions, weights, old.loc, old.scale) for _ in range(600)]
    kl_mean = np.mean([m["kl_mean"] for m in history[-100:]])
    kl_std = np.mean([m["kl_std"] for m in history[-100:]])
    assert kl_mean <= 1.15 * eps_mean
    assert kl_std <= 1.15 * eps_std
    assert kl_mean >= 0.5 * eps_mean          # the bound binds (else the test proves nothing)
    assert history[-1]["multiplier_mean"] > 1.0
    assert weighted_log_lik() > before + 0.05


# ---------------------------------------------------------------- (c) DISTRAL terms
class FixedGaussian(nn.Module):
    """N(μ, diag σ²) with known parameters at every state (a stand-in policy / prior)."""

    inputs, task_key = ("position",), None

    def __init__(self, mean, std):
        super().__init__()
        self.mean = nn.Parameter(torch.tensor(mean))
        self.log_std = nn.Parameter(torch.tensor(std).log())

    def distribution(self, obs):
        shape = (*obs["position"].shape[:-1], self.mean.shape[0])
        return torch.distributions.Normal(self.mean.expand(shape), self.log_std.exp().expand(shape))


class LinearCritic(nn.Module):
    """Q(s, a) = 2 a_1 − a_2 + s_1: known values for any sample."""

    task_key = "task_id"

    def __init__(self):
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))    # the agent builds an optimiser for it

    def forward(self, obs, actions, task):
        s = obs["position"][..., 0]
        if actions.dim() == obs["position"].dim() + 1:
            s = s.unsqueeze(-1)
        return 2.0 * actions[..., 0] - actions[..., 1] + s


PI = ([0.5, -1.0], [1.0, 0.5])     # μ, σ of the policy
PI0 = ([0.0, 0.0], [2.0, 0.5])     # μ0, σ0 of the prior


def fixed_agent(alpha=0.3, prior=True, **kw):
    return MPO(OBS_SPEC, A, NUM_TASKS, device=CPU,
               policy=lambda *a: FixedGaussian(*PI), critic=lambda *a: LinearCritic(),
               prior=(lambda *a: FixedGaussian(*PI0)) if prior else None,
               kl_cost=alpha if prior else 0.0, **kw)


def log_normal(x, mu, sigma):
    return sum(-0.5 * ((xi - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
               for xi, m, s in zip(x, mu, sigma))


def test_distral_kl_penalty_by_hand():
    """KL(π ‖ π0) = Σ_d log(σ0/σ) + (σ² + (μ − μ0)²)/(2σ0²) − ½:
    d=1: log 2 + (1 + 0.25)/8 − 0.5 = 0.349397;  d=2: 0 + (0.25 + 1)/0.5 − 0.5 = 2.0.
    α = 0.3: 0.3 · 2.349397 = 0.704819."""
    agent = fixed_agent(alpha=0.3)
    obs = {"position": torch.zeros(4, 2), "task_id": torch.zeros(4, dtype=torch.long)}
    pi, pi0 = agent.policy.distribution(obs), agent.prior.distribution(obs)
    hand = 0.3 * (math.log(2.0) + 1.25 / 8 - 0.5 + 2.0)
    assert agent.kl_penalty(pi.loc, pi.scale, pi0.loc, pi0.scale).item() == \
        pytest.approx(hand, abs=1e-6)
    # ... and it is the term the M-step adds to the policy loss
    k = agent.num_samples
    metrics = agent.mstep(obs, torch.zeros(4, k, A), torch.full((4, k), 1.0 / k),
                          pi.loc.detach(), pi.scale.detach(), prior_dist=pi0)
    assert metrics["kl_penalty"] == pytest.approx(hand, abs=1e-6)
    assert agent.prior.mean.grad is None                 # π0 is not pulled towards π


def one_step_batch(extra_log_prob=0.0, L=1, reward=(0.7, -0.2), discount=(1.0, 1.0)):
    obs = torch.tensor([[[[0.3, 0.0], [-0.4, 0.0], [0.1, 0.0]][:L + 1]]])   # [1, 1, L+1, 2]
    return {"obs": {"position": obs, "task_id": torch.zeros(1, 1, L + 1, dtype=torch.long)},
            "actions": torch.tensor([[[[0.2, 0.1], [-0.3, 0.4]][:L]]]),
            "rewards": torch.tensor([[list(reward[:L])]]),
            "discounts": torch.tensor([[list(discount[:L])]]),
            "mask": torch.ones(1, 1, L),
            "extras": {"log_prob": torch.full((1, 1, L), extra_log_prob)}}


@pytest.mark.parametrize("with_prior", [True, False])
def test_soft_critic_target_one_step_by_hand(with_prior):
    """L = 1: Q̂ = r + γ d · mean_k [Q'(s1, a_k) − α (log π'(a_k|s1) − log π0'(a_k|s1))],
    a_k ~ π'(·|s1); without a prior the plain mean of Q'."""
    torch.manual_seed(3)
    alpha, gamma = 0.3, 0.9
    agent = fixed_agent(alpha, prior=with_prior, gamma=gamma, num_samples=5)
    b = one_step_batch()
    scored = agent.sample_and_score(b["obs"], torch.zeros(1, dtype=torch.long))
    samples = scored["actions"][0, 0, 1].tolist()                         # a_k at s1
    s1 = -0.4
    values = []
    for a in samples:
        q = 2.0 * a[0] - a[1] + s1
        if with_prior:
            q -= alpha * (log_normal(a, *PI) - log_normal(a, *PI0))
        values.append(q)
    hand = 0.7 + gamma * 1.0 * sum(values) / len(values)
    got = agent.critic_targets(b, torch.zeros(1, dtype=torch.long), scored)
    assert got.shape == (1, 1, 1)
    assert got.item() == pytest.approx(hand, abs=1e-5)


def test_retrace_trace_uses_the_stored_behaviour_density():
    """L = 2, no prior: Q̂_0 = r0 + γ [V(s1) + c1 (Q̂_1 − Q'(s1, a1))], c1 = min(1, π'(a1)/μ(a1)).
    μ(a1) far above π'(a1) cuts the trace (c1 ≈ 0); far below gives c1 = 1."""
    torch.manual_seed(4)
    gamma = 0.9
    agent = fixed_agent(prior=False, gamma=gamma, num_samples=5)
    task = torch.zeros(1, dtype=torch.long)
    for log_mu, c1 in ((50.0, 0.0), (-50.0, 1.0)):
        b = one_step_batch(extra_log_prob=log_mu, L=2)
        scored = agent.sample_and_score(b["obs"], task)
        v = [sum(2.0 * a[0] - a[1] + s for a in scored["actions"][0, 0, t].tolist()) / 5
             for t, s in ((1, -0.4), (2, 0.1))]
        q1 = 2.0 * -0.3 - 0.4 + -0.4                       # Q'(s1, a1)
        ret1 = -0.2 + gamma * v[1]
        hand = [0.7 + gamma * (v[0] + c1 * (ret1 - q1)), ret1]
        got = agent.critic_targets(b, task, scored)[0, 0].tolist()
        assert got == pytest.approx(hand, abs=1e-5)


# ---------------------------------------------------------------- (d) update contract
def params(module):
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


@pytest.mark.parametrize("with_prior", [True, False])
def test_update_moves_everything_and_reports_metrics(with_prior):
    torch.manual_seed(5)
    agent = make_agent(with_prior=with_prior, target_period=2)
    nets = {"policy": agent.policy, "critic": agent.critic}
    if with_prior:
        nets["prior"] = agent.prior
    before = {name: params(m) for name, m in nets.items()}
    duals = [float(getattr(agent, n).detach()) for n in agent.DUALS]
    metrics = agent.update(make_batch())
    expected = {"critic_loss", "policy_loss", "temperature", "estep_kl", "kl_mean", "kl_std",
                "q_mean"}
    assert expected <= set(metrics)
    assert all(math.isfinite(v) for v in metrics.values())
    assert ({"prior_loss", "kl_to_prior"} <= set(metrics)) == with_prior
    if not with_prior:
        assert "prior_loss" not in metrics and "kl_to_prior" not in metrics
    for name, m in nets.items():
        assert not torch.equal(before[name], params(m)), name
    assert all(float(getattr(agent, n).detach()) != d for n, d in zip(agent.DUALS, duals))
    assert 0.0 <= metrics["estep_kl"] <= math.log(agent.num_samples)
    assert agent.updates == 1
    agent.update(make_batch(1))                               # target refresh at 2
    assert torch.equal(params(agent.target_policy), params(agent.policy))
    assert torch.equal(params(agent.target_critic), params(agent.critic))


def test_act_returns_unclipped_actions_and_their_log_density():
    torch.manual_seed(6)
    agent = make_agent(with_prior=True)
    obs = {"position": np.zeros((3, 2), np.float32), "task_id": np.array([0, 1, 2])}
    for explore, actor in ((False, agent.policy), (True, agent.prior)):
        actions, extras = agent.act(obs, explore=explore)
        assert actions.shape == (3, A) and extras["log_prob"].shape == (3,)
        d = actor.distribution({k: torch.as_tensor(v) for k, v in obs.items()})
        mu, sigma = d.loc.detach().numpy(), d.scale.detach().numpy()
        hand = (-0.5 * ((actions - mu) / sigma) ** 2 - np.log(sigma)
                - 0.5 * math.log(2 * math.pi)).sum(-1)
        np.testing.assert_allclose(extras["log_prob"], hand, atol=1e-5)
    assert agent.replay_extras == {"log_prob": ()}


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="prior"):
        make_agent(kl_cost=0.1)                     # a KL cost with no prior
    with pytest.raises(ValueError, match="epsilon_std"):
        make_agent(epsilon_std=0.0)


# ---------------------------------------------------------------- (e) checkpoints
@pytest.mark.parametrize("with_prior", [True, False])
def test_state_dict_round_trip_gives_identical_updates(with_prior):
    torch.manual_seed(7)
    a = make_agent(with_prior=with_prior, target_period=3)
    for i in range(2):
        a.update(make_batch(i))
    state = copy.deepcopy(a.state_dict())
    torch.manual_seed(99)
    b = make_agent(with_prior=with_prior, target_period=3)       # other initial weights
    b.load_state_dict(state)
    for i in range(2, 4):
        torch.manual_seed(i)
        ma = a.update(make_batch(i))
        torch.manual_seed(i)
        mb = b.update(make_batch(i))
        assert ma == mb
    for name in ("policy", "critic", "target_policy", "target_critic") + (
            ("prior",) if with_prior else ()):
        assert torch.equal(params(getattr(a, name)), params(getattr(b, name))), name
    assert b.updates == a.updates == 4
