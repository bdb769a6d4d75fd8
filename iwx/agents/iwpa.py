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
import torch

from iwx.agents.acting import score_prior_samples
from iwx.agents.actors.importance import FixedAlpha, ImportanceWeightedActing
from iwx.agents.base import Agent, Targets, optimise, split_steps, to_torch
from iwx.nets.critics import shared_features_critic
from iwx.ops.importance import soft_value_logmeanexp
from iwx.ops.reduce import masked_mean
from iwx.ops.td import adaptation_critic_loss, soft_td_target


@gin.configurable
class IWPA(Agent):
    PARTS = ("critic", "target_critic", "optimizer", "updates")

    def __init__(self, pretrained, obs_spec, action_dim: int, num_problems: int, *,
                 device: torch.device, critic_fn=shared_features_critic, alpha: float = 0.1,
                 num_samples: int = 16, gamma: float = 0.99, learning_rate: float = 3e-2,
                 target_period: int = 10, soft_value=soft_value_logmeanexp):
        """``pretrained``: the multi-task agent whose ``prior`` (π0) and ``critic`` are reloaded."""
        if alpha <= 0:
            raise ValueError(f"IWPA.alpha must be > 0, got {alpha}")
        if pretrained is None or pretrained.prior is None:
            raise ValueError(f"IWPA acts through a behaviour prior π0, and the pretrained agent "
                             f"{type(pretrained).__name__} has none: pretrain with IWPL or "
                             f"DISTRAL (an agent with a prior)")
        self.device = device
        self.prior = copy.deepcopy(pretrained.prior).to(device).requires_grad_(False)  # frozen π0
        self.critic = critic_fn(pretrained.critic, obs_spec, action_dim,
                                num_problems).to(device)
        self.targets = Targets(target_period, "IWPA")
        self.target_critic = self.targets.copy(self.critic)
        trainable = [p for p in self.critic.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(trainable, lr=learning_rate)
        self.alpha, self.num_samples, self.gamma = alpha, num_samples, gamma
        self.soft_value = soft_value
        # The critic's rows are the problems: no task input (task_key None).
        self.acting = ImportanceWeightedActing(self.prior, self.critic, FixedAlpha(alpha),
                                               num_samples, task_key=None, device=device)
        self.updates = 0

    def update(self, batch: dict) -> dict:
        """One TD(0) step (eq. 13) on transitions [P, c, 1(+1), ...] of each problem's replay."""
        b = to_torch(batch, self.device)
        mask = b["mask"]
        now, nxt = split_steps(b["obs"])
        with torch.no_grad():
            _, log_prob, q_next = score_prior_samples(self.prior, self.target_critic, nxt, None,
                                                      self.num_samples)
            target = soft_td_target(b["rewards"], b["discounts"], q_next, log_prob,
                                    self.alpha, self.gamma, self.soft_value)
        q = self.critic(now, b["actions"])
        loss = adaptation_critic_loss(q, target, mask)                  # eq. (13)
        optimise(loss, self.optimizer)
        self.count_update()
        return {"td_loss": loss.item() / mask.shape[0],
                "q_mean": float(masked_mean(q.detach(), mask))}
