"""IWPA (Algorithm 2): adapt a critic on held-out tasks, acting through the frozen prior.

P adaptation problems (held-out task × adaptation seed) run side by side; the
critic has one row (member) per problem. Which critic is adapted is a gin
binding (``critic_fn``), which is what distinguishes the paper's variants:

    Shared Q + IW   critic_fn = @shared_features_critic   ψ reloaded, fresh w̃ ~ N(0, I/d)
    IW              critic_fn = @fresh_critic             a new Q network per problem

The TD(0) loss is eq. (13) with the target of eq. (14); only the adapted
critic's trainable parameters move (w̃, plus ψ when fine-tuning is bound on).
"""

from __future__ import annotations

import copy

import gin
import numpy as np
import torch

from iwx.agents.acting import importance_weighted_action, prior_action, score_prior_samples
from iwx.agents.base import to_torch
from iwx.nets.critics import AdaptedFeatureCritic, PerTaskCritic
from iwx.ops.importance import soft_value_logmeanexp
from iwx.ops.reduce import masked_mean
from iwx.ops.td import adaptation_critic_loss, soft_td_target


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


@gin.configurable
class IWPA:
    def __init__(self, pretrained, obs_spec, action_dim: int, num_problems: int, *,
                 device: torch.device, critic_fn=shared_features_critic, alpha: float = 0.1,
                 num_samples: int = 16, gamma: float = 0.99, learning_rate: float = 3e-2,
                 target_period: int = 10, soft_value=soft_value_logmeanexp):
        """``pretrained``: the multi-task agent whose ``prior`` (π0) and ``critic`` are reloaded."""
        if alpha <= 0:
            raise ValueError(f"IWPA.alpha must be > 0, got {alpha}")
        if getattr(pretrained, "prior", None) is None:
            raise ValueError(f"IWPA acts through a behaviour prior π0, and the pretrained agent "
                             f"{type(pretrained).__name__} has none: pretrain with IWPL or "
                             f"DISTRAL (an agent with a prior)")
        self.device = device
        self.prior = copy.deepcopy(pretrained.prior).to(device).requires_grad_(False)  # frozen π0
        self.critic = critic_fn(pretrained.critic, obs_spec, action_dim,
                                num_problems).to(device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        trainable = [p for p in self.critic.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=learning_rate)
        self.alpha, self.num_samples, self.gamma = alpha, num_samples, gamma
        self.target_period, self.soft_value = target_period, soft_value
        self.updates = 0

    def act(self, obs: dict, explore: bool = False) -> np.ndarray:
        obs = to_torch(obs, self.device)
        if explore:
            return prior_action(self.prior, obs).cpu().numpy()
        return importance_weighted_action(self.prior, self.critic, obs, None, self.alpha,
                                          self.num_samples).cpu().numpy()

    def update(self, batch: dict) -> dict:
        """One TD(0) step (eq. 13) on transitions [P, c, 1(+1), ...] of each problem's replay."""
        b = to_torch(batch, self.device)
        obs, mask = b["obs"], b["mask"]
        with torch.no_grad():
            _, log_prob, q_next = score_prior_samples(
                self.prior, self.target_critic, {k: v[:, :, 1:] for k, v in obs.items()},
                None, self.num_samples)
            target = soft_td_target(b["rewards"], b["discounts"], q_next, log_prob,
                                    self.alpha, self.gamma, self.soft_value)
        q = self.critic({k: v[:, :, :-1] for k, v in obs.items()}, b["actions"])
        loss = adaptation_critic_loss(q, target, mask)                  # eq. (13)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        if self.updates % self.target_period == 0:
            self.target_critic.load_state_dict(self.critic.state_dict())
        return {"td_loss": loss.item() / mask.shape[0],
                "q_mean": float(masked_mean(q.detach(), mask))}

    def state_dict(self) -> dict:
        return {"critic": self.critic.state_dict(),
                "target_critic": self.target_critic.state_dict(),
                "optimizer": self.optimizer.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in ("critic", "target_critic", "optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]
