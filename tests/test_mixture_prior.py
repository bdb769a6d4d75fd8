"""The mixture-of-Gaussians behaviour prior π0 (issue 18, iwx.nets.mixture_prior), in float32.

Its log-density against a hand computation and against GaussianPrior's (one component);
its samples' component frequencies against the mixture weights; GaussianPrior's clipping
convention; its initialisation; IWPL's update minimising eq. (11) with it; IWPL / IWPA
acting and IWPA's cache with it; exact resume of an agent and of a killed run; and a
clear refusal of bad settings and of the consumers that need a single Gaussian.
"""

from __future__ import annotations

import functools
import io
import math
import types

import gin
import numpy as np
import pytest
import torch

from cli import ROOT, iwx_run, read_json, run_cli, run_dirs
from iwx.agents.actor_critic import ActorCritic
from iwx.agents.base import obs_task
from iwx.agents.iwpa import IWPA
from iwx.agents.iwpl import IWPL
from iwx.agents.mpo import MPO
from iwx.agents.parametric_adaptation import ParametricAdaptation
from iwx.envs.point_nav import PointNavVec
from iwx.experiment.gin_config import ConfigError
from iwx.experiment.runner import RunSpec, prepare
from iwx.loops.episodes import play_episode
from iwx.nets.critics import FeatureCritic, Features, fresh_critic, shared_features_critic
from iwx.nets.mixture_prior import (MixturePrior, mixture_components, mixture_log_prob,
                                    spread_means)
from iwx.nets.policy import GaussianPolicy
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import Torso
from iwx.ops.importance import importance_weights
from iwx.ops.reduce import masked_mean
from iwx.replay.task_replay import TaskReplay

torch.set_num_threads(1)
CPU = torch.device("cpu")
SPEC = {"position": (2,)}
TASK_SPEC = {"position": (2,), "task_id": ()}
TINY = functools.partial(Torso, norm_width=8, hidden=(8,))
# Explicit settings: these tests do not depend on what gin holds for GaussianPrior.
EXPLICIT = dict(inputs=("position",), log_std_min=-3.0, log_std_max=0.5, init_std=0.8)


def mixture(components=3, action_dim=2, **kw):
    return MixturePrior(SPEC, action_dim, components=components, torso=TINY,
                        **{**EXPLICIT, **kw})


def constant(prior: MixturePrior, logits, means, raw_std):
    """Make ``prior`` the same mixture at every state: head weights 0, biases given."""
    with torch.no_grad():
        prior.head.weight.zero_()
        parts = [torch.as_tensor(x, dtype=torch.float32).reshape(-1)
                 for x in (logits, means, raw_std)]
        prior.head.bias.copy_(torch.cat(parts))
    return prior


def params(module):
    return [p.detach().clone() for p in module.parameters()]


# ------------------------------------------------------------------------ the log-density
def test_log_density_of_two_components_in_two_dims_is_the_hand_value():
    logits = [0.3, -0.5]
    means = [[0.1, -0.2], [-0.4, 0.5]]
    stds = [[0.5, 0.8], [0.3, 0.6]]
    actions = [[0.2, 0.1], [-0.5, 0.4], [1.0, -1.0]]

    def hand(a):   # Σ_m w_m Π_d N(a_d; μ_md, σ_md), in float64 with math only
        z = sum(math.exp(x) for x in logits)
        total = 0.0
        for m in range(2):
            density = math.exp(logits[m]) / z
            for d in range(2):
                u = (a[d] - means[m][d]) / stds[m][d]
                density *= math.exp(-0.5 * u * u) / (stds[m][d] * math.sqrt(2 * math.pi))
            total += density
        return math.log(total)

    got = mixture_log_prob(torch.tensor(logits), torch.tensor(means), torch.tensor(stds),
                           torch.tensor(actions))
    assert got.dtype == torch.float32 and got.shape == (3,)
    want = torch.tensor([hand(a) for a in actions])
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got, want)
    # batched: [B, M] with [B, K, A] gives [B, K], each row its own mixture (row 1: the
    # weights swapped between the components)
    batched = mixture_log_prob(torch.tensor([logits, logits[::-1]]), torch.tensor([means] * 2),
                               torch.tensor([stds] * 2), torch.tensor([actions] * 2))
    assert torch.allclose(batched[0], want, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched[1], want, rtol=1e-3, atol=1e-3)


def test_one_component_is_the_gaussian_priors_density():
    """M = 1 with GaussianPrior's torso and its head's μ, raw-σ rows: the same log π0."""
    torch.manual_seed(0)
    gaussian = GaussianPrior(SPEC, 2, torso=TINY, **{k: v for k, v in EXPLICIT.items()})
    single = mixture(components=1)
    single.torso.load_state_dict(gaussian.torso.state_dict())
    with torch.no_grad():
        single.head.weight[1:] = gaussian.head.weight
        single.head.bias[1:] = gaussian.head.bias
        single.head.weight[0].normal_()          # a lone logit must not matter
    obs = {"position": torch.randn(4, 3, 2)}
    actions = torch.rand(4, 3, 5, 2) * 2 - 1
    _, mean, std = single.mixture(obs)
    g_mean, g_std = gaussian.mean_std(obs)
    assert torch.equal(mean[..., 0, :], g_mean) and torch.equal(std[..., 0, :], g_std)
    assert torch.allclose(single.log_prob(obs, actions), gaussian.log_prob(obs, actions),
                          rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------ sampling
def test_component_frequencies_match_the_mixture_weights():
    """Components far apart with σ at its floor: every sample's nearest mean is its
    component. Frequencies over n draws lie within 4 binomial standard errors."""
    weights = [0.5, 0.3, 0.2]
    means = [[-0.7, -0.7], [0.0, 0.0], [0.7, 0.7]]
    prior = constant(mixture(log_std_min=-6.0, log_std_max=0.5),
                     np.log(weights), means, [[-30.0] * 2] * 3)        # σ = e^-6
    torch.manual_seed(5)
    obs = {"position": torch.randn(40, 2)}
    actions, log_prob = prior.sample(obs, 500)                           # [40, 500, 2]
    n = actions.shape[0] * actions.shape[1]
    nearest = torch.cdist(actions.reshape(-1, 2), torch.tensor(means)).argmin(-1)
    for m, w in enumerate(weights):
        freq = (nearest == m).float().mean().item()
        assert abs(freq - w) < 4 * math.sqrt(w * (1 - w) / n), (m, freq, w)
    assert torch.isfinite(log_prob).all()
    # the index draw alone, per state, with state-dependent weights
    torch.manual_seed(6)
    logits = torch.log(torch.tensor([[0.1, 0.9], [0.6, 0.4]]))
    index = mixture_components(logits, 20000)                            # [2, K]
    for row, w in ((0, 0.9), (1, 0.4)):
        freq = index[row].float().mean().item()
        assert abs(freq - w) < 4 * math.sqrt(w * (1 - w) / 20000), (row, freq)


def test_samples_are_clipped_and_scored_at_the_clipped_point():
    """Actions in [-1, 1]; those drawn outside land on the box's edge; log π0 is the
    mixture density evaluated at the clipped action (GaussianPrior's convention)."""
    means = [[0.9, -0.9], [-0.9, 0.0]]
    prior = constant(mixture(components=2, log_std_min=-1.0, log_std_max=1.0),
                     [0.2, -0.2], means, [[0.0, 0.0], [2.0, -1.0]])
    torch.manual_seed(1)
    obs = {"position": torch.randn(3, 2)}
    actions, log_prob = prior.sample(obs, 200)
    assert actions.shape == (3, 200, 2) and log_prob.shape == (3, 200)
    assert actions.min() >= -1.0 and actions.max() <= 1.0
    assert (actions.abs() == 1.0).any()                      # some were clipped
    assert not actions.requires_grad and log_prob.requires_grad
    assert torch.equal(log_prob, prior.log_prob(obs, actions))
    logits, mean, std = (t.detach() for t in prior.mixture(obs))
    edge = actions[0, (actions[0].abs() == 1.0).any(-1)][0].tolist()   # a clipped action

    def hand(a):
        weights = [math.exp(x) for x in (0.2, -0.2)]
        total = 0.0
        for m in range(2):
            density = weights[m] / sum(weights)
            for d in range(2):
                s, u = std[0, m, d].item(), (a[d] - means[m][d]) / std[0, m, d].item()
                density *= math.exp(-0.5 * u * u) / (s * math.sqrt(2 * math.pi))
            total += density
        return math.log(total)

    got = prior.log_prob({"position": obs["position"][:1]}, torch.tensor([[edge]]))
    assert got.item() == pytest.approx(hand(edge), rel=1e-5, abs=1e-5)


def test_sampling_is_reproducible_from_the_global_seed():
    prior = mixture()
    obs = {"position": torch.randn(6, 2)}
    torch.manual_seed(3)
    first = prior.sample(obs, 9)
    torch.manual_seed(3)
    again = prior.sample(obs, 9)
    assert all(torch.equal(a, b) for a, b in zip(first, again))


# ------------------------------------------------------------------------ initialisation
def test_the_initial_mixture_is_wide_with_distinct_equal_weight_components():
    torch.manual_seed(0)
    prior = MixturePrior(SPEC, 2, components=4, **EXPLICIT)
    m, a = 4, 2
    bias = prior.head.bias.detach()
    assert torch.equal(bias[:m], torch.zeros(m))                            # equal weights
    means = bias[m:m + m * a].reshape(m, a)
    assert torch.equal(means, spread_means(4, 2))
    assert len({round(x, 4) for x in means[:, 0].tolist()}) == m            # distinct ...
    assert len({round(x, 4) for x in means[:, 1].tolist()}) == m            # ... per dim
    assert sorted(means[:, 0].tolist()) == [-0.75, -0.25, 0.25, 0.75]       # strata of [-1, 1]
    with torch.no_grad():                                                    # σ = init_std at
        prior.head.weight.zero_()                                            # zero features
        _, _, std = prior.mixture({"position": torch.zeros(1, 2)})
    assert torch.allclose(std, torch.full_like(std, 0.8), atol=1e-6)
    assert spread_means(1, 3).abs().sum() == 0


def test_unbound_settings_are_gaussian_priors_and_a_binding_on_the_mixture_wins():
    gin.clear_config()
    try:
        gin.parse_config("\n".join([
            "GaussianPrior.inputs = ('position',)", "GaussianPrior.log_std_min = -1.5",
            "GaussianPrior.log_std_max = 0.25", "GaussianPrior.init_std = 0.6",
            "MixturePrior.log_std_max = 0.75", "MixturePrior.components = 2"]))
        prior = MixturePrior({"position": (2,), "task_id": ()}, 2, torso=TINY)
    finally:
        gin.clear_config()
    assert prior.inputs == ("position",)                 # never the task id
    assert (prior.log_std_min, prior.log_std_max, prior.init_std) == (-1.5, 0.75, 0.6)
    assert prior.components == 2 and prior.head.out_features == 2 * (1 + 2 * 2)
    unbound = MixturePrior(SPEC, 2, torso=TINY)          # no gin: GaussianPrior's defaults
    assert (unbound.inputs, unbound.log_std_min, unbound.log_std_max, unbound.init_std) == \
        (("position",), -3.0, 0.5, 0.8)


# ------------------------------------------------------------------------- IWPL learning
def iwpl_with_mixture(num_tasks=3, seed=0, **kw):
    torch.manual_seed(seed)
    goals = np.array([[1.0, 0.0], [0.0, 1.0], [-0.7, 0.7]])[:num_tasks]
    env = PointNavVec(goals, np.arange(num_tasks), sparse=False, episode_length=8)
    spec = env.observation_spec()
    agent = IWPL(spec, 2, num_tasks, device=CPU, num_samples=8,
                 prior=functools.partial(MixturePrior, torso=TINY, **EXPLICIT),
                 critic=functools.partial(FeatureCritic, features=functools.partial(
                     Features, torso=TINY, features_dim=4)), **kw)
    replay = TaskReplay(num_tasks, spec, 2, env.episode_length, capacity=4)
    for explore in (True, False):                        # π0 alone, then importance-weighted
        play_episode(env, lambda obs, e=explore: agent.act(obs, explore=e), replay=replay,
                     rows=np.arange(num_tasks))
    return agent, replay


def eq11(agent, batch, seed):
    """Eq. (11) by hand on the update's draws: −Σ_k w_k log π0(a_k|s), w = softmax(Q'/α)
    over K samples a_k ~ π0' (the target prior), masked mean over states."""
    obs = {k: torch.as_tensor(v) for k, v in batch["obs"].items()}
    mask = torch.as_tensor(batch["mask"])
    task = obs_task(obs, agent.critic.task_key)
    with torch.no_grad():
        torch.manual_seed(seed)
        samples, _ = agent.target_prior.sample(obs, agent.num_samples)
        q = agent.target_critic(obs, samples, task)
        w = importance_weights(q[:, :, :-1], agent.temperature.alpha)
        now = {k: v[:, :, :-1] for k, v in obs.items()}
        log_prior = agent.prior.log_prob(now, samples[:, :, :-1])
    return float(masked_mean(-(w * log_prior).sum(-1), mask))


def test_iwpl_update_with_a_mixture_minimises_eq_11():
    """The update's prior loss is eq. (11) computed by hand on the same draws, and repeated
    updates on one batch (same draws: same seed, targets held) decrease it."""
    agent, replay = iwpl_with_mixture(target_period=1000)
    batch = replay.sample(np.random.default_rng(0), np.arange(3), 4, 5)
    before = eq11(agent, batch, seed=11)
    prior0, bias0 = params(agent.prior), agent.prior.head.bias.detach().clone()
    losses = []
    for _ in range(30):
        torch.manual_seed(11)
        metrics = agent.update(batch)
        losses.append(metrics["prior_loss"])
        assert all(math.isfinite(v) for v in metrics.values()), metrics
    assert losses[0] == pytest.approx(before, rel=1e-5)
    assert eq11(agent, batch, seed=11) < before
    assert losses[-1] < losses[0] and sum(b < a for a, b in zip(losses, losses[1:])) >= 25
    assert not all(torch.equal(a, b) for a, b in zip(prior0, params(agent.prior)))
    m, a = agent.prior.components, agent.prior.action_dim       # every part of the head
    moved = (agent.prior.head.bias.detach() - bias0).abs()       # learns: weights, μ, σ
    assert moved[:m].min() > 0 and moved[m:m + m * a].min() > 0 and moved[m + m * a:].min() > 0
    assert 0 < metrics["prior_std"] < math.exp(0.5)


def test_iwpl_and_iwpa_act_and_adapt_through_a_mixture():
    """IWPL's acting rule and IWPA (both variants, cache on and off) with a MixturePrior π0."""
    agent, replay = iwpl_with_mixture()
    obs = {"position": np.random.default_rng(0).uniform(-1, 1, (3, 2)).astype(np.float32),
           "task_id": np.arange(3)}
    for explore in (False, True):
        actions = agent.act(obs, explore=explore)
        assert actions.shape == (3, 2) and np.abs(actions).max() <= 1.0
    goals = np.array([[0.8, 0.6], [-0.6, 0.8]])
    for critic_fn in (shared_features_critic, fresh_critic):
        for cache in (True, False):
            torch.manual_seed(2)
            iwpa = IWPA(agent, SPEC, 2, num_problems=2, device=CPU, critic_fn=critic_fn,
                        num_samples=8, cache_frozen=cache)
            assert isinstance(iwpa.prior, MixturePrior)
            env = PointNavVec(goals, None, sparse=False, episode_length=6)
            adapt_replay = TaskReplay(2, SPEC, 2, 6, capacity=2)
            for e in range(2):
                play_episode(env, lambda o, e=e: iwpa.act(o, explore=e == 0),
                             replay=adapt_replay, rows=np.arange(2))
            prior0 = params(iwpa.prior)
            for _ in range(3):
                m = iwpa.update(adapt_replay.sample(np.random.default_rng(1), np.arange(2), 4, 1))
                assert math.isfinite(m["td_loss"])
            assert all(torch.equal(a, b) for a, b in zip(prior0, params(iwpa.prior)))
            if cache:    # the cache holds the mixture's clipped samples and their densities
                c = iwpa.cache
                assert c.drawn.any()
                drawn = c.actions[c.drawn]
                assert drawn.abs().max() <= 1.0 and torch.isfinite(c.log_prob[c.drawn]).all()


# ------------------------------------------------------------------------- exact resume
def test_a_restored_iwpl_with_a_mixture_continues_bit_identically():
    agent, replay = iwpl_with_mixture(target_period=2)
    rng = np.random.default_rng(3)
    for _ in range(3):
        agent.update(replay.sample(rng, np.arange(3), 4, 5))
    saved = io.BytesIO()                                 # as a checkpoint holds it
    torch.save({"agent": agent.state_dict(), "torch": torch.get_rng_state(),
                "rng": rng.bit_generator.state}, saved)

    def go(a):
        out = [a.update(replay.sample(rng, np.arange(3), 4, 5)) for _ in range(4)]
        return out, params(a.prior) + params(a.target_prior) + params(a.critic)

    first, first_params = go(agent)
    restored, _ = iwpl_with_mixture(target_period=2, seed=99)     # another init
    assert not all(torch.equal(a, b) for a, b in zip(params(restored.prior),
                                                    params(agent.prior)))
    saved.seek(0)
    state = torch.load(saved, weights_only=False)
    restored.load_state_dict(state["agent"])
    torch.set_rng_state(state["torch"])
    rng.bit_generator.state = state["rng"]
    second, second_params = go(restored)
    assert first == second
    assert all(torch.equal(a, b) for a, b in zip(first_params, second_params))
    wrong = MixturePrior(TASK_SPEC, 2, torso=TINY, components=2, **EXPLICIT)
    with pytest.raises(RuntimeError, match="size mismatch"):
        wrong.load_state_dict(agent.prior.state_dict())


MIXTURE = ["IWPL.prior = @MixturePrior", "MixturePrior.components = 3"]


@pytest.fixture(scope="module")
def mixture_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("mixture_run")
    done = iwx_run(runs, params=MIXTURE)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = run_dirs(runs)
    return run


def test_a_run_with_a_mixture_prior_completes_and_records_it(mixture_run):
    assert read_json(mixture_run / "run.json")["status"] == "COMPLETED"
    bindings = read_json(mixture_run / "config.json")["bindings"]
    assert bindings["IWPL"]["prior"] == "@MixturePrior"
    assert bindings["MixturePrior"] == {"components": 3}
    model = torch.load(mixture_run / "model.pt", weights_only=False)
    assert model["prior_inputs"] == ["position"]          # protocol.gin's %INPUTS, inherited
    assert model["prior"]["head.weight"].shape[0] == 3 * (1 + 2 * 2)
    returns = read_json(mixture_run / "results.json")["returns"]
    assert set(returns) == {"Shared Q + IW", "IW"}


@pytest.mark.parametrize("kill_at", ["train:32", "adapt:IW:2"])
def test_a_killed_mixture_run_resumes_to_the_same_numbers(mixture_run, tmp_path, kill_at):
    killed = iwx_run(tmp_path, params=MIXTURE, env={"IWX_KILL_AFTER_CHECKPOINT": kill_at})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = iwx_run(tmp_path, params=MIXTURE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoint '{kill_at}'" in resumed.stdout
    _, second = run_dirs(tmp_path)
    assert (read_json(second / "results.json")["returns"]
            == read_json(mixture_run / "results.json")["returns"])
    for metric in ("train/critic_loss", "train/prior_loss", "adapt/IW/return"):
        assert (read_json(second / "metrics.json")[metric]["values"]
                == read_json(mixture_run / "metrics.json")[metric]["values"]), metric
    ours, theirs = (torch.load(r / "model.pt", weights_only=False)["prior"]
                    for r in (second, mixture_run))
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


# -------------------------------------------------------------------------- bad settings
def test_fewer_than_one_component_is_refused():
    with pytest.raises(ValueError, match=r"MixturePrior\.components must be an integer >= 1"):
        mixture(components=0)
    with pytest.raises(ConfigError) as error:
        prepare(RunSpec(gin_files=(str(ROOT / "gin/point_nav_iwpl.gin"),),
                        bindings=(*MIXTURE[:1], "MixturePrior.components = 0"), seed=0))
    first = str(error.value).splitlines()[0]
    assert first.startswith("MixturePrior.components = 0 is not allowed") and "integer >= 1" \
        in first, str(error.value)


def test_a_mixture_init_std_outside_the_inherited_range_is_refused():
    with pytest.raises(ConfigError) as error:
        prepare(RunSpec(gin_files=(str(ROOT / "gin/point_nav_iwpl.gin"),),
                        bindings=(*MIXTURE[:1], "MixturePrior.init_std = 5.0"), seed=0))
    message = str(error.value)
    assert "MixturePrior.init_std = 5.0" in message and "GaussianPrior.log_std_max" in message


def test_consumers_that_need_a_single_gaussian_refuse_a_mixture():
    mix = functools.partial(MixturePrior, torso=TINY, **EXPLICIT)
    nets = dict(policy=functools.partial(GaussianPolicy, torso=TINY),
                critic=functools.partial(FeatureCritic, features=functools.partial(
                    Features, torso=TINY, features_dim=4)))
    with pytest.raises(ValueError, match=r"ActorCritic needs a single-Gaussian.*"
                                         r"ActorCritic\.prior = @GaussianPrior"):
        ActorCritic(TASK_SPEC, 2, 3, device=CPU, prior=mix, kl_cost=0.01, **nets)
    with pytest.raises(ValueError, match=r"MPO\.prior = @GaussianPrior"):
        MPO(TASK_SPEC, 2, 3, device=CPU, prior=mix, kl_cost=0.1, **nets)
    agent, _ = iwpl_with_mixture()
    for critic_fn in (fresh_critic, shared_features_critic):         # DISTRAL, Shared Q
        with pytest.raises(ValueError, match=r"'DISTRAL' and 'Shared Q'.*MixturePrior.*"
                                             r"IWPL\.prior = @GaussianPrior"):
            ParametricAdaptation(agent, SPEC, 2, 1, device=CPU, critic_fn=critic_fn)
    # From Scratch does not reload π0: nothing to refuse
    ParametricAdaptation(types.SimpleNamespace(prior=None, critic=None), SPEC, 2, 1,
                         device=CPU, use_prior=False)


def test_figure_3s_parametric_variants_on_a_mixture_fail_before_any_compute(tmp_path):
    args = ["--gin", str(ROOT / "gin/point_nav_iwpl.gin"), "--gin",
            str(ROOT / "gin/common/figure3_variants.gin"), "--runs-dir", str(tmp_path),
            "--no-progress", "--gin_param", MIXTURE[0]]
    done = run_cli("iwx.run", args)
    assert done.returncode == 2, done.stderr[-3000:]      # refused, as a bad binding is
    assert "'DISTRAL' and 'Shared Q'" in done.stderr and "IWPL.prior = @GaussianPrior" \
        in done.stderr, done.stderr[-3000:]
    assert "[pretrain] start" not in done.stderr + done.stdout
    # one line that says what to change, not a traceback; the started record says so too
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "iwx.run: configuration error (run 1 recorded as FAILED before any compute): " \
        "ParametricAdaptation with use_prior=True" in done.stderr
    (run,) = run_dirs(tmp_path)
    record = read_json(run / "run.json")
    assert record["status"] == "FAILED" and "RefusedConfiguration" in record["fail_trace"][-1]
    assert not (run / "model.pt").exists()
