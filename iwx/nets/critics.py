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

K samples per state evaluated without gradient take the fused path of
:mod:`iwx.nets.fused` (the same numbers, computed per state once and in cache-sized
blocks); ``Features.fused = False`` / ``PerTaskCritic.fused = False`` turn it off.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn

from iwx.nets import fused as fused_scoring
from iwx.nets.inputs import observation_dim, select, state_action
from iwx.nets.torso import EnsembleLinear, EnsembleTorso, Torso


def _broadcast_rows(per_row: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """[n, d] -> [n, 1, ..., 1, d] to broadcast against ``like`` [n, *rest, d]."""
    return per_row.reshape(per_row.shape[0], *([1] * (like.dim() - 2)), per_row.shape[-1])


def _fused_inputs(obs, inputs, actions):
    """The fused path's inputs: state [n, R, S] and clipped actions [n, R, K, A] (R: the
    product of the axes between the row and the samples), and the output shape."""
    state = select(obs, inputs)
    n = state.shape[0]
    return (state.reshape(n, -1, state.shape[-1]),
            actions.clamp(-1.0, 1.0).reshape(n, -1, *actions.shape[-2:]), actions.shape[:-1])


@gin.configurable
class Features(nn.Module):
    """ψ(s, a; θ) ∈ R^d of eq. (12): torso on (observation parts, action), then linear."""

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, *,
                 inputs: Sequence[str] = ("position",), features_dim: int = 32, torso=Torso,
                 fused: bool = True):
        super().__init__()
        self.inputs = tuple(inputs)
        self.torso = torso(observation_dim(obs_spec, self.inputs) + action_dim)
        self.out = nn.Linear(self.torso.out_dim, features_dim)
        self.features_dim = features_dim
        self.fused = fused and isinstance(self.torso, Torso)

    def forward(self, obs, actions):
        return self.out(self.torso(state_action(obs, self.inputs, actions)))

    def values(self, obs, actions, weights: torch.Tensor) -> torch.Tensor:
        """ψ(s, a)ᵀ w_n with one weight vector per leading row. weights [n, d];
        obs [n, *rest, ·], actions [n, *rest, A] -> [n, *rest] (or [n, *rest, K, A] ->
        [n, *rest, K], fused without gradient: :mod:`iwx.nets.fused`)."""
        if fused_scoring.wants_fused(self.fused, obs[self.inputs[0]], actions):
            state, samples, shape = _fused_inputs(obs, self.inputs, actions)
            rows = state.shape[1]
            head = (weights @ self.out.weight).repeat_interleave(rows, 0)      # [n·R, H]
            bias = (weights @ self.out.bias).repeat_interleave(rows, 0)        # [n·R]
            q = fused_scoring.torso_scores(self.torso, state.flatten(0, 1),
                                           samples.flatten(0, 1), head, bias)
            return q.reshape(shape)
        psi = self(obs, actions)
        return (psi * _broadcast_rows(weights, psi)).sum(-1)


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
        return self.features.values(obs, actions, self.weights[task])     # [n, *rest(, K)]


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
        f = self.goal_out(self.goal_torso(task.float()))                # [n, d]
        return self.features.values(obs, actions, f)


@gin.configurable
class PerTaskCritic(nn.Module):
    """An independent Q network per task (no shared features), stacked.

    With ``task=None`` the leading rows are the members in order; this is the
    fresh critic of the "IW" adaptation variant, one per adaptation problem.
    """

    task_key = "task_id"

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *,
                 inputs: Sequence[str] = ("position",), torso=EnsembleTorso,
                 fused: bool = True):
        super().__init__()
        self.inputs = tuple(inputs)
        self.torso = torso(num_tasks, observation_dim(obs_spec, self.inputs) + action_dim)
        self.out = EnsembleLinear(num_tasks, self.torso.out_dim, 1)
        self.fused = fused and isinstance(self.torso, EnsembleTorso)

    def forward(self, obs, actions, task=None):
        if fused_scoring.wants_fused(self.fused, obs[self.inputs[0]], actions):
            state, samples, shape = _fused_inputs(obs, self.inputs, actions)
            head, bias = self.out.weight[..., 0], self.out.bias[:, 0, 0]      # [M, H], [M]
            if task is not None:
                head, bias = head[task], bias[task]
            return fused_scoring.ensemble_scores(self.torso, state, samples, head, bias,
                                                 task).reshape(shape)
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
        return self.features.values(obs, actions, self.weights)


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
