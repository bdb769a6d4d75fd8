"""REFERENCE FOR TIMING ONLY: a compact, real SAC-style update.

Not used anywhere in training; it exists so that IWPL's learner cost can be read
against a standard actor-critic step on the same batch and network sizes. Built
while a gin file's bindings are in force, its networks are that file's
(:class:`GaussianPrior` and :class:`FeatureCritic` as configured there).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from iwx.agents.base import task_rows, to_torch
from iwx.nets.critics import FeatureCritic
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import Tanh
from iwx.ops.reduce import masked_mean


def plain(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` with iwx's fast paths off (torch.tanh, no fused scoring), as a CleanRL
    user would write it: the reference is what users would pick instead of iwx, so iwx's
    speed-ups must not make it faster (issue 12)."""
    for m in module.modules():
        if isinstance(m, Tanh):
            m.fast = False
        if hasattr(m, "fused"):
            m.fused = False
    return module

ALPHA = 0.1            # temperature (timing does not depend on it)
GAMMA = 0.99
TARGET_PERIOD = 100    # target critic copied every T updates, as IWPL's default
LEARNING_RATE = 1e-3   # as IWPL's default critic_lr / prior_lr


class SACReference:
    """SAC-style learner with the IWPL networks' sizes (single critic, fixed α).

    actor  : :class:`GaussianPrior` (same torso as π0), a tanh-squashed Gaussian
             π(a|s) = tanh(N(μ(s), σ(s)²)) with the change-of-variables log-density.
    critic : :class:`FeatureCritic` (ψ(s, a)ᵀ w_i, the IWPL critic), target copy.
    critic : one TD step on 0.5 (Q(s,a) − [r + γ d (Q'(s', ã') − α log π(ã'|s'))])²,
             ã' ~ π(·|s') one reparameterised sample (no gradient into the target).
    actor  : one step maximising Q(s, ã) − α log π(ã|s), ã = reparameterised sample,
             with the critic's parameters frozen for that step.
    target : hard copy of the critic every ``target_period`` updates.
    Input: the same batch dict as ``IWPL.update`` (chunks [nb, c, L(+1), ...]).
    """

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 alpha: float = ALPHA, gamma: float = GAMMA, target_period: int = TARGET_PERIOD,
                 lr: float = LEARNING_RATE):
        self.device = device
        self.actor = plain(GaussianPrior(obs_spec, action_dim).to(device))
        self.critic = plain(FeatureCritic(obs_spec, action_dim, num_tasks).to(device))
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.alpha, self.gamma, self.target_period = alpha, gamma, target_period
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.updates = 0

    def sample(self, obs):
        """One reparameterised tanh-Gaussian action and its log-density. -> [..., A], [...]."""
        dist = self.actor.distribution(obs)
        u = dist.rsample()
        a = torch.tanh(u)
        # log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)), numerically stable
        log_det = 2.0 * (np.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
        return a, (dist.log_prob(u) - log_det).sum(-1)

    def update(self, batch: dict) -> dict:
        b = to_torch(batch, self.device)
        obs, mask = b["obs"], b["mask"]
        task = task_rows(obs.get(self.critic.task_key), mask.shape[0], self.critic.task_key)
        now = {k: v[:, :, :-1] for k, v in obs.items()}                # s_t    [nb, c, L, ...]
        nxt = {k: v[:, :, 1:] for k, v in obs.items()}                 # s_t+1
        with torch.no_grad():
            a_next, logp_next = self.sample(nxt)
            v_next = self.target_critic(nxt, a_next, task) - self.alpha * logp_next
            target = b["rewards"] + self.gamma * b["discounts"] * v_next

        q = self.critic(now, b["actions"], task)
        critic_loss = masked_mean(0.5 * (q - target) ** 2, mask)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        a, logp = self.sample(now)
        actor_loss = masked_mean(self.alpha * logp - self.critic(now, a, task), mask)
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        self.updates += 1
        if self.updates % self.target_period == 0:
            self.target_critic.load_state_dict(self.critic.state_dict())
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}
