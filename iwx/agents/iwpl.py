"""IWPL (Algorithm 1): multi-task learner and acting rule.

There is no parametric task policy: every task acts through π0 re-weighted by
softmax(Q_i / α) over K prior samples. The learner fits Q_i to the soft target
of eq. (10) and π0 to the importance-weighted samples (eq. 11), both computed
with target networks (φ', θ') refreshed every ``target_period`` updates.

π0 is a GaussianPrior (the paper's) or any prior with ``sample`` and
``log_prob_and_std`` (iwx.nets.mixture_prior.MixturePrior: ``IWPL.prior =
@MixturePrior``); eq. (11) and the importance weights are the same for both.
"""

from __future__ import annotations

import gin
import torch

from iwx.agents.acting import score_prior_samples
from iwx.agents.actors.importance import ImportanceWeightedActing
from iwx.agents.base import Agent, Targets, adam, obs_task, optimise, split_steps, to_torch
from iwx.agents.temperature import FixedTemperature
from iwx.nets.critics import FeatureCritic
from iwx.nets.prior import GaussianPrior
from iwx.ops.importance import (importance_weights, kl_to_empirical_prior, prior_loss,
                                soft_value_logmeanexp)
from iwx.ops.policy import samples_log_prob
from iwx.ops.reduce import masked_mean
from iwx.ops.td import critic_loss as td_critic_loss
from iwx.ops.td import soft_td_target


@gin.configurable
class IWPL(Agent):
    """Acts through :class:`ImportanceWeightedActing` (π0 + critic + α); learns Q_i and π0."""

    PARTS = ("prior", "critic", "target_prior", "target_critic", "critic_opt", "prior_opt",
             "temperature", "updates")

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 prior=GaussianPrior, critic=FeatureCritic, temperature=FixedTemperature,
                 soft_value=soft_value_logmeanexp, num_samples: int = 16, gamma: float = 0.99,
                 target_period: int = 100, critic_lr: float = 1e-3, prior_lr: float = 1e-3):
        self.device = device
        self.prior = prior(obs_spec, action_dim).to(device)
        self.critic = critic(obs_spec, action_dim, num_tasks).to(device)
        self.targets = Targets(target_period, "IWPL")
        self.target_prior = self.targets.copy(self.prior)
        self.target_critic = self.targets.copy(self.critic)
        self.temperature = temperature()
        self.temperature.check(num_samples)
        self.soft_value, self.num_samples, self.gamma = soft_value, num_samples, gamma
        self.critic_opt = adam(self.critic.parameters(), critic_lr)
        self.prior_opt = adam(self.prior.parameters(), prior_lr)
        self.acting = ImportanceWeightedActing(self.prior, self.critic, self.temperature,
                                               num_samples, task_key=self.critic.task_key,
                                               device=device)
        self.updates = 0

    @classmethod
    def new_acting(cls, obs_spec, action_dim, num_tasks, device, *, prior, critic, num_samples,
                   **_):
        """π0 and the critic (eqs. 5–6); α comes with the parameters (``load_params``)."""
        critic = critic(obs_spec, action_dim, num_tasks).to(device)
        return ImportanceWeightedActing(prior(obs_spec, action_dim).to(device), critic,
                                        None, num_samples, task_key=critic.task_key,
                                        device=device)

    # -- learning --------------------------------------------------------------
    def update(self, batch: dict) -> dict:
        """One learner step on chunks [nb, c, L(+1), ...] (see iwx.replay).

        The K target-prior samples at every state s_t .. s_{t+L} are drawn and scored by
        the target critic once (fused: iwx.nets.fused); the TD target (eq. 10) reads
        them at s_{t+1} .. s_{t+L}, the importance weights of eq. (11) at s_t .. s_{t+L-1}.
        Metrics leave the device once, at the end.
        """
        b = to_torch(batch, self.device)
        obs, mask = b["obs"], b["mask"]
        task = obs_task(obs, self.critic.task_key)
        now, _ = split_steps(obs)                                        # s_t [nb, c, L, ...]
        alpha = self.temperature.alpha
        with torch.no_grad():
            samples, log_prob, q_k = score_prior_samples(
                self.target_prior, self.target_critic, obs, task, self.num_samples)
            target = soft_td_target(b["rewards"], b["discounts"], q_k[:, :, 1:],
                                    log_prob[:, :, 1:], alpha, self.gamma, self.soft_value)
            q_now = q_k[:, :, :-1]                                       # [nb, c, L, K]
            weights = importance_weights(q_now, alpha)                   # q̂'

        q = self.critic(now, b["actions"], task)                         # [nb, c, L]
        critic_loss = td_critic_loss(q, target, mask)                     # eq. (9)
        optimise(critic_loss, self.critic_opt)

        if hasattr(self.prior, "mean_std"):       # a single Gaussian π0 (GaussianPrior)
            mean, std = self.prior.mean_std(now)
            log_prior = samples_log_prob(mean, std, samples[:, :, :-1])  # [nb, c, L, K]
        else:                                     # any other π0, e.g. MixturePrior
            log_prior, std = self.prior.log_prob_and_std(now, samples[:, :, :-1])
        p_loss = masked_mean(prior_loss(weights, log_prior), mask)        # eq. (11)
        optimise(p_loss, self.prior_opt)

        metrics = self.temperature.update(q_now, mask)
        self.count_update()
        with torch.no_grad():
            kl = kl_to_empirical_prior(q_now, alpha)
            # σ before this update's step: the σ the loss saw (a mixture's: mean over σ_m)
            values = torch.stack([critic_loss.detach(), p_loss.detach(), masked_mean(kl, mask),
                                  masked_mean(q.detach(), mask), std.detach().mean()]).tolist()
        metrics.update(zip(("critic_loss", "prior_loss", "kl_to_prior", "q_mean", "prior_std"),
                           values), alpha=alpha)
        return metrics
