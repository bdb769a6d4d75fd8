"""Critic parameterisations: Q = ψᵀw_i, ψᵀf(g_i), per-task networks; task rows never mix."""

from __future__ import annotations

import torch

from iwx.nets.critics import FeatureCritic, GoalFeatureCritic, PerTaskCritic

torch.set_num_threads(1)
SPEC = {"position": (2,), "task_id": (), "goal": (2,)}


def _inputs(n=3, k=4):
    torch.manual_seed(0)
    position, actions = torch.randn(n, 5, 2), torch.rand(n, 5, k, 2) * 2 - 1  # K = 4 per state
    position[2], actions[2] = position[0], actions[0]       # rows 0 and 2: identical inputs
    return {"position": position}, actions


def test_feature_critic_is_psi_dot_task_weights():
    critic = FeatureCritic(SPEC, 2, num_tasks=6)
    obs, actions = _inputs()
    task = torch.tensor([4, 0, 4])
    q = critic(obs, actions, task)                          # [3, 5, 4]
    psi = critic.features(obs, actions)                     # [3, 5, 4, d]
    for row, t in enumerate(task.tolist()):
        assert torch.allclose(q[row], psi[row] @ critic.weights[t], atol=1e-6)
    assert torch.allclose(q[0], q[2])                       # same task, same inputs


def test_goal_feature_critic_is_psi_dot_goal_embedding():
    critic = GoalFeatureCritic(SPEC, 2, num_tasks=6)
    obs, actions = _inputs()
    goal = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    q = critic(obs, actions, goal)
    f = critic.goal_out(critic.goal_torso(goal))            # [3, d]
    psi = critic.features(obs, actions)
    for row in range(3):
        assert torch.allclose(q[row], psi[row] @ f[row], atol=1e-6)
    q.sum().backward()                                      # both ψ and f learn
    assert critic.goal_out.weight.grad.abs().sum() > 0
    assert critic.features.out.weight.grad.abs().sum() > 0


def test_per_task_critic_rows_use_their_own_network():
    critic = PerTaskCritic(SPEC, 2, num_tasks=4)
    obs, actions = _inputs()
    q = critic(obs, actions, torch.tensor([1, 3, 1]))
    assert torch.allclose(q[0], q[2])
    assert not torch.allclose(q[0], q[1])
    # a row evaluated alone (rows = members, task=None) matches the gathered evaluation
    alone = PerTaskCritic(SPEC, 2, num_tasks=1)
    state = {k: v[3:4] for k, v in critic.state_dict().items()}
    alone.load_state_dict(state)
    single = alone({"position": obs["position"][1:2]}, actions[1:2])
    assert torch.allclose(single[0], q[1], atol=1e-6)


def test_prior_starts_at_the_requested_width_and_rejects_an_impossible_one():
    import pytest

    from iwx.nets.prior import GaussianPrior

    torch.manual_seed(0)
    prior = GaussianPrior({"position": (2,)}, 2, log_std_min=-1.5, log_std_max=0.5,
                          init_std=0.8)
    with torch.no_grad():
        std = prior.distribution({"position": torch.randn(256, 2)}).scale
    # only the head's random weights move σ away from 0.8 at initialisation
    assert 0.6 < float(std.median()) < 1.0
    assert float(std.min()) >= torch.exp(torch.tensor(-1.5)) - 1e-6
    with pytest.raises(ValueError, match="init_std"):
        GaussianPrior({"position": (2,)}, 2, log_std_min=-1.5, log_std_max=0.5, init_std=0.1)


def test_every_critic_sees_the_action_clipped_to_the_box():
    """Q beyond [-1, 1] is Q at the box's edge: what the environment executes
    (parametric policies sample unclipped actions; iwx.nets.inputs.state_action)."""
    from iwx.nets.context import ContextCritic
    from iwx.nets.critics import AdaptedFeatureCritic, Features

    obs = {"position": torch.randn(3, 5, 2)}
    edge = torch.tensor([1.0, -1.0]).expand(3, 5, 2)
    beyond = torch.tensor([7.0, -1.5]).expand(3, 5, 2)
    inside = torch.tensor([0.5, -1.0]).expand(3, 5, 2)
    critics = {
        "ψᵀw": (FeatureCritic(SPEC, 2, num_tasks=3), torch.tensor([0, 1, 2])),
        "ψᵀf(g)": (GoalFeatureCritic(SPEC, 2, num_tasks=3), torch.randn(3, 2)),
        "per task": (PerTaskCritic(SPEC, 2, num_tasks=3), None),
        "adapted ψᵀw̃": (AdaptedFeatureCritic(Features(SPEC, 2), 3), None),
        "Q(s, a, z)": (ContextCritic(SPEC, 2, latent_dim=5), torch.randn(3, 5)),
    }
    for name, (critic, task) in critics.items():
        q_edge, q_beyond = critic(obs, edge, task), critic(obs, beyond, task)
        assert torch.equal(q_beyond, q_edge), name
        assert not torch.allclose(critic(obs, inside, task), q_edge), name
