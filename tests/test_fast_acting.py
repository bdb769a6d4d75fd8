"""The fast acting path (``ImportanceWeightedActing.fast``) acts as the plain one.

The fast path draws the same random numbers from torch's global RNG in the same order
(the K prior samples' ε, then one Exp(1) per sample for the categorical choice), so for
the same seed it must give the same K samples, the same softmax weights and the same
actions as the plain path (Normal / Categorical objects), in training (IWPL, critic keyed
by task id), in adaptation (IWPA, critic rows are its problems) and when exploring from
π0 alone. The binding ``ImportanceWeightedActing.fast = False`` must bring the plain path
back. No timing here: speed is measured by ``python -m iwx.bench``.
"""

from __future__ import annotations

from pathlib import Path

import gin
import numpy as np
import pytest
import torch

import iwx.agents.actors.importance as importance
from iwx.agents.acting import (categorical_index, fast_importance_weighted_action,
                               importance_weighted_action, score_prior_samples)
from iwx.agents.base import obs_task, to_torch
from iwx.agents.iwpa import IWPA
from iwx.agents.iwpl import IWPL
from iwx.envs.point_nav import PointNavTasks, PointNavVec
from iwx.experiment.gin_config import parse
from iwx.nets.critics import FeatureCritic
from iwx.nets.prior import GaussianPrior, clipped_samples
from iwx.ops.importance import importance_weights

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["Torso.norm_width = 16", "Torso.hidden = (16, 16)", "PointNavTasks.num_train = 6"]
ROWS, K, A = 6, 16, 2


def iwpl(bindings=()) -> IWPL:
    """gin/point_nav_iwpl.gin's learner with small networks, its weights moved off the init
    so that π0's μ, σ and the critic's Q differ across rows and samples."""
    parse([str(ROOT / "gin/point_nav_iwpl.gin")], SMALL + list(bindings))
    try:
        torch.manual_seed(0)
        goals = PointNavTasks().split(0).train
        spec = PointNavVec(goals[:1], np.zeros(1, np.int64)).observation_spec()
        agent = IWPL(spec, A, len(goals), device=torch.device("cpu"))
    finally:
        gin.clear_config()          # the small Torso must not leak into other test files
    with torch.no_grad():
        for p in [*agent.prior.parameters(), *agent.critic.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    return agent


def observations(steps: int = 5) -> list[dict]:
    """A fixed sequence of training-task observations [ROWS, ...] (random moves)."""
    goals = PointNavTasks().split(0).train
    env = PointNavVec(goals[:ROWS], np.arange(ROWS))
    rng = np.random.default_rng(1)
    out = [env.reset(seed=3)]
    for _ in range(steps - 1):
        out.append(env.step(rng.uniform(-0.1, 0.1, (ROWS, A)))[0])
    return out


def act_sequence(acting, fast: bool, seed: int, explore: bool = False) -> list[np.ndarray]:
    acting.fast = fast
    torch.manual_seed(seed)
    return [acting.act(obs, explore=explore) for obs in observations()]


@pytest.fixture(scope="module")
def agent():
    return iwpl()


def test_prior_mean_std_are_the_distributions_numbers(agent):
    obs = to_torch(observations()[2], torch.device("cpu"))
    with torch.no_grad():
        dist = agent.prior.distribution(obs)
        mean, std = agent.prior.mean_std(obs)
    assert torch.equal(mean, dist.loc) and torch.equal(std, dist.scale)
    assert mean.shape == std.shape == (ROWS, A)


def test_prior_mean_std_with_gradients_and_another_torso():
    """With grad enabled mean_std runs the torso's own forward (gradients flow); a torso
    that is not a Torso runs its own forward too; the observation is never written."""
    import functools

    from iwx.nets.torso import Torso

    class Scaled(Torso):                  # a subclass: not interpreted, its forward runs
        def forward(self, x):
            return 2 * super().forward(x)

    spec = {"position": (2,)}
    obs = {"position": torch.tensor([[0.1, -0.3], [0.5, 0.2]])}
    before = obs["position"].clone()
    for torso in (functools.partial(Torso, norm_width=8, hidden=(8, 8)),
                  functools.partial(Scaled, norm_width=8, hidden=(8, 8))):
        torch.manual_seed(0)
        prior = GaussianPrior(spec, A, torso=torso)
        mean, std = prior.mean_std(obs)
        (mean.sum() + std.sum()).backward()
        assert all(p.grad is not None for p in prior.parameters())
        with torch.no_grad():
            lean, lean_std = prior.mean_std(obs)
            dist = prior.distribution(obs)
        for got in (mean, lean):
            assert torch.equal(got, dist.loc)
        for got in (std, lean_std):
            assert torch.equal(got, dist.scale)
    assert torch.equal(obs["position"], before)


def test_clipped_samples_are_the_priors_samples_for_the_same_seed(agent):
    obs = to_torch(observations()[1], torch.device("cpu"))
    with torch.no_grad():
        torch.manual_seed(7)
        plain, _ = agent.prior.sample(obs, K)
        torch.manual_seed(7)
        fast = clipped_samples(*agent.prior.mean_std(obs), K)
    assert fast.shape == (ROWS, K, A)
    assert torch.equal(fast, plain)
    assert fast.abs().max() <= 1.0 and (fast.abs() == 1.0).any()   # the clip is exercised


def test_categorical_index_is_categoricals_draw_and_distribution():
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        w = torch.softmax(3 * torch.randn(4, 5, K, generator=g), -1)
        torch.manual_seed(seed)
        plain = torch.distributions.Categorical(probs=w).sample()
        torch.manual_seed(seed)
        fast = categorical_index(w)
        assert fast.shape == (4, 5) and torch.equal(fast, plain), seed
    # and its frequencies are the weights (20k draws: 4 standard errors < 0.015)
    w = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    torch.manual_seed(0)
    draws = categorical_index(w.expand(20_000, 5))
    freq = torch.bincount(draws, minlength=5).double() / 20_000
    assert torch.allclose(freq, w.double(), atol=0.015) and freq[-1] == 0


def test_same_samples_and_weights_for_the_same_noise(agent):
    """Inside one act: the K samples, Q and softmax(Q/α) of both paths, same seed."""
    obs = to_torch(observations()[3], torch.device("cpu"))
    task = obs_task(obs, agent.critic.task_key)
    alpha = agent.temperature.alpha
    with torch.no_grad():
        torch.manual_seed(11)
        plain_a, _, plain_q = score_prior_samples(agent.prior, agent.critic, obs, task, K)
        torch.manual_seed(11)
        fast_a = clipped_samples(*agent.prior.mean_std(obs), K)
        fast_q = agent.critic(obs, fast_a, task)
    assert torch.equal(fast_a, plain_a)
    torch.testing.assert_close(importance_weights(fast_q, alpha),
                               importance_weights(plain_q, alpha), rtol=1e-6, atol=1e-7)
    assert importance_weights(fast_q, alpha).std(-1).min() > 0      # the weights do differ


def test_one_act_equals_the_plain_functions_action(agent):
    obs = to_torch(observations()[2], torch.device("cpu"))
    task = obs_task(obs, agent.critic.task_key)
    args = (agent.prior, agent.critic, obs, task, agent.temperature.alpha, K)
    picked = set()
    for seed in range(10):
        torch.manual_seed(seed)
        plain = importance_weighted_action(*args)
        torch.manual_seed(seed)
        with torch.no_grad():
            fast = fast_importance_weighted_action(*args)
        assert torch.equal(fast, plain), seed
        picked.add(tuple(fast.flatten().tolist()))
    assert len(picked) > 1


@pytest.mark.parametrize("explore", [False, True])
def test_iwpl_acts_the_same_on_both_paths(agent, explore):
    assert agent.acting.fast        # the default
    plain = act_sequence(agent.acting, False, 123, explore)
    fast = act_sequence(agent.acting, True, 123, explore)
    for a, b in zip(plain, fast):
        assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (ROWS, A)
        assert np.array_equal(a, b)
    # ... and the comparison can fail: another seed acts otherwise
    assert any(not np.array_equal(a, b) for a, b in zip(fast, act_sequence(agent.acting,
                                                                          True, 124, explore)))
    agent.acting.fast = True


def test_iwpa_acts_the_same_on_both_paths(agent):
    """Adaptation: a fresh w̃ per problem on the pretrained ψ, no task input (task_key None)."""
    spec = PointNavVec(PointNavTasks().split(0).train[:1], None).observation_spec()
    adapt = IWPA(agent, spec, A, ROWS, device=torch.device("cpu"), alpha=0.05, num_samples=K)
    assert adapt.acting.task_key is None and adapt.acting.fast
    obs = [{k: v for k, v in o.items() if k != "task_id"} for o in observations()]
    runs = {}
    for fast in (False, True):
        adapt.acting.fast = fast
        torch.manual_seed(9)
        runs[fast] = [adapt.acting.act(o) for o in obs]
    for a, b in zip(runs[False], runs[True]):
        assert np.array_equal(a, b)


def test_the_binding_turns_the_fast_path_off(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the fast path ran")

    monkeypatch.setattr(importance, "fast_importance_weighted_action", refuse)
    monkeypatch.setattr(importance, "fast_prior_action", refuse)
    obs = observations()[0]
    plain = iwpl(["ImportanceWeightedActing.fast = False"])
    assert plain.acting.fast is False
    plain.act(obs)                           # the plain path: refuse is not called
    plain.act(obs, explore=True)
    default = iwpl()
    assert default.acting.fast is True
    with pytest.raises(AssertionError, match="the fast path ran"):
        default.act(obs)
    with pytest.raises(AssertionError, match="the fast path ran"):
        default.act(obs, explore=True)


def test_a_prior_without_mean_std_acts_on_the_plain_path(agent, monkeypatch):
    """The fast path needs π0's μ, σ as tensors; any other prior keeps the plain path."""

    class DistributionOnly(torch.nn.Module):
        def __init__(self, prior: GaussianPrior):
            super().__init__()
            self.prior = prior

        def distribution(self, obs):
            return self.prior.distribution(obs)

        def sample(self, obs, num_samples):
            return self.prior.sample(obs, num_samples)

    acting = importance.ImportanceWeightedActing(
        DistributionOnly(agent.prior), agent.critic, agent.temperature, K,
        task_key=FeatureCritic.task_key, device=torch.device("cpu"))
    assert acting.fast
    torch.manual_seed(3)
    got = acting.act(observations()[0])
    torch.manual_seed(3)
    assert np.array_equal(got, agent.acting.act(observations()[0]))
