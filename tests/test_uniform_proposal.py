"""The uninformed proposal of figure 7's ablation (iwx.nets.uniform_proposal), in float32."""

from __future__ import annotations

import math

import pytest
import torch

from iwx.nets.uniform_proposal import UniformProposal

SPEC = {"position": (2,), "task_id": ()}


def test_samples_fill_the_box_uniformly_with_the_constant_density():
    torch.manual_seed(0)
    proposal = UniformProposal(SPEC, 3)
    obs = {"position": torch.zeros(4, 5, 2), "task_id": torch.zeros(4, 5)}
    actions, log_prob = proposal.sample(obs, 2000)
    assert actions.shape == (4, 5, 2000, 3) and log_prob.shape == (4, 5, 2000)
    assert actions.dtype == torch.float32 and log_prob.dtype == torch.float32
    assert actions.abs().max() <= 1.0
    # U(-1, 1): mean 0, variance 1/3; 120k draws per dimension: standard errors 0.0017, 0.0009
    flat = actions.reshape(-1, 3)
    assert flat.mean(0).abs().max() < 0.01
    assert (flat.var(0) - 1 / 3).abs().max() < 0.006
    # by hand: 3 dimensions of width 2 -> density 1/8, log 1/8 = −2.0794415
    assert torch.all(log_prob == torch.tensor(-3 * math.log(2.0), dtype=torch.float32))
    assert log_prob[0, 0, 0].item() == pytest.approx(-2.0794415, abs=1e-6)


def test_log_prob_is_the_constant_inside_and_minus_infinity_outside():
    proposal = UniformProposal(SPEC, 2)
    actions = torch.tensor([[[0.0, 0.0], [1.0, -1.0], [1.01, 0.0]]])       # [1, 3, 2]
    got = proposal.log_prob({"position": torch.zeros(1, 2)}, actions)
    assert got[0, :2].tolist() == pytest.approx([-math.log(4.0)] * 2)
    assert got[0, 2].item() == -math.inf


def test_it_sees_nothing_and_learns_nothing():
    proposal = UniformProposal(SPEC, 2)
    assert proposal.inputs == () and list(proposal.parameters()) == []
    torch.manual_seed(1)
    a, _ = proposal.sample({"position": torch.zeros(3, 2)}, 4)
    torch.manual_seed(1)
    b, _ = proposal.sample({"position": torch.ones(3, 2) * 7, "task_id": torch.ones(3)}, 4)
    assert torch.equal(a, b)        # the observation changes nothing; the seed fixes it
    with pytest.raises(ValueError, match="action_dim"):
        UniformProposal(SPEC, 0)


# --------------------------------------------------------------------------- in IWPA
def pretrained_agent():
    from types import SimpleNamespace

    from iwx.nets.critics import FeatureCritic
    from iwx.nets.prior import GaussianPrior

    torch.manual_seed(1)
    prior = GaussianPrior({"position": (2,)}, 2, log_std_min=-5.0, init_std=0.01)
    with torch.no_grad():                        # π0: a point mass near (0.5, 0.5)
        prior.head.weight.zero_()
        prior.head.bias[:2] = 0.5
    return SimpleNamespace(prior=prior, critic=FeatureCritic({"position": (2,)}, 2, 5))


def iwpa(pre, **kw):
    from iwx.agents.iwpa import IWPA
    from iwx.nets.critics import shared_features_critic

    torch.manual_seed(3)
    return IWPA(pre, {"position": (2,)}, 2, num_problems=4, device=torch.device("cpu"),
                critic_fn=shared_features_critic, num_samples=8, alpha=0.1, gamma=0.9, **kw)


def test_iwpa_with_the_proposal_never_samples_the_pretrained_prior():
    import numpy as np

    pre = pretrained_agent()
    obs = {"position": np.zeros((4, 2), np.float32)}
    with_prior = np.stack([iwpa(pre).act(obs, explore=True)[0] for _ in range(50)])
    assert np.abs(with_prior - 0.5).max() < 0.1                   # π0's point mass
    agent = iwpa(pre, proposal=UniformProposal)
    assert isinstance(agent.prior, UniformProposal)
    explore = np.stack([agent.act(obs, explore=True)[0] for _ in range(50)])
    act = np.stack([agent.act(obs)[0] for _ in range(50)])
    for actions in (explore, act):               # the whole box, nothing like π0
        assert actions.min() < -0.8 and actions.max() > 0.8
    # ψ is the pretrained one (copied) and frozen; only w̃ trains
    torch.testing.assert_close(agent.critic.features.state_dict(),
                               pre.critic.features.state_dict())
    assert [n for n, p in agent.critic.named_parameters() if p.requires_grad] == ["weights"]


@pytest.mark.parametrize("cache", [True, False])
def test_iwpa_with_the_proposal_learns_w_on_a_real_replay(cache):
    import numpy as np

    from iwx.envs.point_nav import PointNavVec
    from iwx.loops.episodes import play_episode
    from iwx.replay.task_replay import TaskReplay

    pre = pretrained_agent()
    agent = iwpa(pre, proposal=UniformProposal, cache_frozen=cache)
    goals = np.array([[0.3, 0.0], [0.0, 0.3], [-0.3, 0.0], [0.2, 0.2]])
    vec = PointNavVec(goals, None, sparse=False, episode_length=6)
    replay = TaskReplay(4, {"position": (2,)}, 2, 6, capacity=2)
    rows = np.arange(4)
    for e in range(2):
        play_episode(vec, lambda o: agent.act(o, explore=e == 0), replay=replay, rows=rows,
                     seed=[0, 2, e])
    w0 = agent.critic.weights.detach().clone()
    rng = np.random.default_rng(0)
    for _ in range(5):
        metrics = agent.update(replay.sample(rng, rows, 8, 1))
        assert math.isfinite(metrics["td_loss"])
    assert not torch.equal(agent.critic.weights, w0)


def test_the_figure7_variants_run_end_to_end(tmp_path):
    from cli import iwx_run, read_json, run_dirs

    proc = iwx_run(tmp_path, "gin/point_nav_iwpl.gin",
                   extra=["--gin", "gin/common/figure7_variants.gin"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    returns = read_json(run / "results.json")["returns"]
    assert list(returns) == ["Shared Q + IW", "IW", "ψ without π0"]
    operative = (run / "operative_config.gin").read_text()
    assert "psi_without_prior/IWPA.proposal = @UniformProposal" in operative
