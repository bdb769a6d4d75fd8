"""Critics Q(s, a) for many tasks at once.

Convention: the leading axis of every input is the task axis — one row per
task in a training batch, one per environment while acting, one per
adaptation problem in IWPA. ``task`` says which task each leading row is:
an int id [n] for the critics keyed by task id, a goal descriptor [n, g] for
ψᵀf(g), or None for adaptation critics whose rows *are* their members.

    obs: dict of [n, *rest, ...]   actions: [n, *rest, A]   ->   Q: [n, *rest]
    (or actions [n, *rest, K, A] -> Q [n, *rest, K]: K samples per state)

Every critic names the observation key its ``task`` comes from in
``task_key`` (None: no privileged input).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn

from iwx.nets.inputs import observation_dim, state_action
from iwx.nets.torso import EnsembleLinear, EnsembleTorso, Torso


def _broadcast_rows(per_row: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[n, d] -> [n, 1, ..., 1, d] to broadcast against ``like`` [n, *rest, d]."""
    return per_row.reshape(per_row.shape[0], *([1] * (like.dim() - 2)), per_row.shape[-1])


@gin.configurable
class Features(nn.Module):
    """ψ(s, a; θ) ∈ R^d of eq. (12): torso on (observation parts, action), then linear."""

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, *,
                 inputs: Sequence[str] = ("position",), features_dim: int = 32, torso=Torso):
        super().__init__()
        self.inputs = tuple(inputs)
        self.torso = torso(observation_dim(obs_spec, self.inputs) + action_dim)
        self.out = nn.Linear(self.torso.out_dim, features_dim)
        self.features_dim = features_dim

    def forward(self, obs, actions):
        return self.out(self.torso(state_action(obs, self.inputs, actions)))


@gin.configurable
class FeatureCritic(nn.Module):
    """Q_i(s, a) = ψ(s, a)ᵀ w_i (eq. 12), one weight vector per training task."""

    task_key = "task_id"

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, features=Features):
        super().__init__()
        self.features = features(obs_spec, action_dim)
        d = self.features.features_dim
        self.weights = nn.Parameter(torch.randn(num_tasks, d) / math.sqrt(d))  # w_i ~ N(0, I/d)

    def forward(self, obs, actions, task):
        psi = self.features(obs, actions)                              # [n, *rest, d]
        return (psi * _broadcast_rows(self.weights[task], psi)).sum(-1)


@gin.configurable
class GoalFeatureCritic(nn.Module):
    """Q_i(s, a) = ψ(s, a)ᵀ f(g_i) for a goal descriptor g_i seen only in training (§4)."""

    task_key = "goal"

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, features=Features,
                 goal_torso=Torso):
        super().__init__()
        del num_tasks  # the goal descriptor replaces the task id
        self.features = features(obs_spec, action_dim)
        self.goal_torso = goal_torso(observation_dim(obs_spec, [self.task_key]))
        self.goal_out = nn.Linear(self.goal_torso.out_dim, self.features.features_dim)

    def forward(self, obs, actions, task):
        psi = self.features(obs, actions)
        f = self.goal_out(self.goal_torso(task.float()))                # [n, d]
        return (psi * _broadcast_rows(f, psi)).sum(-1)


@gin.configurable
class PerTaskCritic(nn.Module):
    """An independent Q network per task (no shared features), stacked.

    With ``task=None`` the leading rows are the members in order; this is the
    fresh critic of the "IW" adaptation variant, one per adaptation problem.
    """

    task_key = "task_id"

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *,
                 inputs: Sequence[str] = ("position",), torso=EnsembleTorso):
        super().__init__()
        self.inputs = tuple(inputs)
        self.torso = torso(num_tasks, observation_dim(obs_spec, self.inputs) + action_dim)
        self.out = EnsembleLinear(num_tasks, self.torso.out_dim, 1)

    def forward(self, obs, actions, task=None):
        x = state_action(obs, self.inputs, actions)                     # [n, *rest, in]
        flat = x.reshape(x.shape[0], -1, x.shape[-1])
        q = self.out(self.torso(flat, task), task)
        return q.reshape(x.shape[:-1])


@gin.configurable
class AdaptedFeatureCritic(nn.Module):
    """Q_w(s, a; θ) = ψ(s, a; θ*)ᵀ w̃ for each of ``num_problems`` held-out problems (eq. 13).

    w̃ ~ N(0, I/d); ψ is frozen unless ``finetune_features``.
    """

    task_key = None

    def __init__(self, features: Features, num_problems: int, *,
                 finetune_features: bool = False):
        super().__init__()
        self.features = features
        self.features.requires_grad_(finetune_features)
        d = features.features_dim
        self.weights = nn.Parameter(torch.randn(num_problems, d) / math.sqrt(d))

    def forward(self, obs, actions, task=None):
        del task
        psi = self.features(obs, actions)
        return (psi * _broadcast_rows(self.weights, psi)).sum(-1)


# -- the critic an adaptation variant adapts (``critic_fn`` of IWPA / ParametricAdaptation)
@gin.configurable
def shared_features_critic(pretrained_critic, obs_spec, action_dim: int, num_problems: int, *,
                           finetune_features: bool = False):
    """"Shared Q": ψ from pretraining (copied), a fresh w̃ per problem."""
    del obs_spec, action_dim
    if not hasattr(pretrained_critic, "features"):
        raise ValueError(f"{type(pretrained_critic).__name__} has no shared features ψ; "
                         "Shared Q needs FeatureCritic or GoalFeatureCritic in pretraining")
    return AdaptedFeatureCritic(copy.deepcopy(pretrained_critic.features), num_problems,
                                finetune_features=finetune_features)


@gin.configurable
def fresh_critic(pretrained_critic, obs_spec, action_dim: int, num_problems: int, *,
                 critic=PerTaskCritic):
    """A critic learned from scratch, one independent network per problem ("IW")."""
    del pretrained_critic
    return critic(obs_spec, action_dim, num_problems)
