"""IWPL (Algorithm 1): multi-task learner and acting rule.

There is no parametric task policy: every task acts through π0 re-weighted by
softmax(Q_i / α) over K prior samples. The learner fits Q_i to the soft target
of eq. (10) and π0 to the importance-weighted samples (eq. 11), both computed
with target networks (φ', θ') refreshed every ``target_period`` updates.
"""

from __future__ import annotations

import copy

import gin
import numpy as np
import torch

from iwx.agents.acting import importance_weighted_action, prior_action, score_prior_samples
from iwx.agents.base import task_rows, to_torch
from iwx.agents.temperature import FixedTemperature
from iwx.nets.critics import FeatureCritic
from iwx.nets.prior import GaussianPrior
from iwx.ops.importance import (importance_weights, kl_to_empirical_prior, prior_loss,
                                soft_value_logmeanexp)
from iwx.ops.reduce import masked_mean
from iwx.ops.td import critic_loss as td_critic_loss
from iwx.ops.td import soft_td_target


@gin.configurable
class IWPL:
    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 prior=GaussianPrior, critic=FeatureCritic, temperature=FixedTemperature,
                 soft_value=soft_value_logmeanexp, num_samples: int = 16, gamma: float = 0.99,
                 target_period: int = 100, critic_lr: float = 1e-3, prior_lr: float = 1e-3):
        self.device = device
        self.prior = prior(obs_spec, action_dim).to(device)
        self.critic = critic(obs_spec, action_dim, num_tasks).to(device)
        self.target_prior = copy.deepcopy(self.prior).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.temperature = temperature()
        self.temperature.check(num_samples)
        self.soft_value, self.num_samples, self.gamma = soft_value, num_samples, gamma
        self.target_period = target_period
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=critic_lr)
        self.prior_opt = torch.optim.Adam(self.prior.parameters(), lr=prior_lr)
        self.updates = 0

    # -- acting ----------------------------------------------------------------
    def act(self, obs: dict, explore: bool = False) -> np.ndarray:
        """Actions in [-1, 1] for a batch of states, one row per task. obs [B, ...] -> [B, A]."""
        obs = to_torch(obs, self.device)
        if explore:
            return prior_action(self.prior, obs).cpu().numpy()
        rows = next(iter(obs.values())).shape[0]
        task = task_rows(obs.get(self.critic.task_key), rows, self.critic.task_key)
        return importance_weighted_action(self.prior, self.critic, obs, task,
                                          self.temperature.alpha, self.num_samples).cpu().numpy()

    # -- learning --------------------------------------------------------------
    def update(self, batch: dict) -> dict:
        """One learner step on chunks [nb, c, L(+1), ...] (see iwx.replay)."""
        b = to_torch(batch, self.device)
        obs, mask = b["obs"], b["mask"]
        nb = mask.shape[0]
        task = task_rows(obs.get(self.critic.task_key), nb, self.critic.task_key)
        now = {k: v[:, :, :-1] for k, v in obs.items()}                # s_t      [nb, c, L, ...]
        alpha = self.temperature.alpha
        with torch.no_grad():
            # K samples from the target prior at s_t .. s_{t+L}, scored by the target critic.
            samples, log_prob, q_k = score_prior_samples(
                self.target_prior, self.target_critic, obs, task, self.num_samples)
            target = soft_td_target(b["rewards"], b["discounts"], q_k[:, :, 1:],
                                    log_prob[:, :, 1:], alpha, self.gamma, self.soft_value)
            weights = importance_weights(q_k[:, :, :-1], alpha)         # q̂'  [nb, c, L, K]

        q = self.critic(now, b["actions"], task)                         # [nb, c, L]
        critic_loss = td_critic_loss(q, target, mask)                     # eq. (9)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        dist = self.prior.distribution(now)
        log_prior = self.prior.samples_log_prob(dist, samples[:, :, :-1])  # [nb, c, L, K]
        p_loss = masked_mean(prior_loss(weights, log_prior), mask)        # eq. (11)
        self.prior_opt.zero_grad()
        p_loss.backward()
        self.prior_opt.step()

        valid = mask.bool()
        metrics = self.temperature.update(q_k[:, :, :-1][valid])
        self.updates += 1
        if self.updates % self.target_period == 0:
            self.target_prior.load_state_dict(self.prior.state_dict())
            self.target_critic.load_state_dict(self.critic.state_dict())
        with torch.no_grad():
            kl = kl_to_empirical_prior(q_k[:, :, :-1], alpha)
            std = dist.scale.detach()  # before this update's step: the σ the loss saw
        metrics.update(critic_loss=critic_loss.item(), prior_loss=p_loss.item(),
                       alpha=alpha, kl_to_prior=float(masked_mean(kl, mask)),
                       q_mean=float(masked_mean(q.detach(), mask)),
                       prior_std=float(std.mean()))
        return metrics

    # -- checkpointing -----------------------------------------------------------
    def state_dict(self) -> dict:
        return {"prior": self.prior.state_dict(), "critic": self.critic.state_dict(),
                "target_prior": self.target_prior.state_dict(),
                "target_critic": self.target_critic.state_dict(),
                "critic_opt": self.critic_opt.state_dict(),
                "prior_opt": self.prior_opt.state_dict(),
                "temperature": self.temperature.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in ("prior", "critic", "target_prior", "target_critic", "critic_opt",
                     "prior_opt", "temperature"):
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]
