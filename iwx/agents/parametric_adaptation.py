"""Parametric adaptation baselines of the paper (§6, figures 2–3): "DISTRAL", "Shared Q",
"From Scratch".

P adaptation problems (held-out task × adaptation seed) run side by side, each
with its own Gaussian policy π_p (an :class:`EnsembleGaussianPolicy` member)
and its own critic row. The critic is learned with TD(0) as in IWPA (no
Retrace: adaptation batches are single transitions), the policy with SVG(0):

    critic:  ½ (Q_p(s, a) − [r + γ d V_p(s')])²,
             V_p(s') = mean_k [Q'_p(s', a'_k) − α (log π'_p(a'_k|s') − log π0(a'_k|s'))],
             a'_k ~ π'_p(·|s')                     (soft TD(0) target, eq. 3; no KL
                                                    term without a prior)
    policy:  −mean_k Q_p(s, μ_p + σ_p ε_k) + α KL[π_p(·|s) ‖ π0(·|s)]    (eq. 1, π0 frozen)

Variants (gin bindings of one class):

    DISTRAL       use_prior=True,  critic_fn=@fresh_critic            π0 reloaded, π_p := π0
    Shared Q      use_prior=True,  critic_fn=@shared_features_critic  + ψ reloaded (frozen), fresh w̃
    From Scratch  use_prior=False, critic_fn=@fresh_critic            nothing reloaded (RS(0))

Each loss is the sum over problems of that problem's masked mean, so Adam
treats the problems independently (as IWPA does).
"""

from __future__ import annotations

import copy

import gin
import torch

from iwx.agents.acting import reparameterised_samples
from iwx.agents.actors.gaussian import GaussianActing
from iwx.agents.base import Agent, Targets, adam, frozen, optimise, split_steps, to_torch
from iwx.nets.critics import fresh_critic
from iwx.nets.ensemble_policy import EnsembleGaussianPolicy
from iwx.nets.policy import GaussianPolicy
from iwx.nets.prior import require_gaussian_prior
from iwx.ops.policy import gaussian_kl
from iwx.ops.reduce import masked_mean, per_problem_mean
from iwx.ops.td import adaptation_critic_loss


@gin.configurable
class ParametricAdaptation(Agent):
    """Acts through :class:`GaussianActing` (π_p, or π0 in exploration episodes where there
    is one); no behaviour density is stored (TD(0) needs none)."""

    PARTS = ("policy", "critic", "target_policy", "target_critic", "critic_opt", "policy_opt",
             "updates")

    def __init__(self, pretrained, obs_spec, action_dim: int, num_problems: int, *,
                 device: torch.device, critic_fn=fresh_critic, use_prior: bool = True,
                 kl_cost: float = 0.1, num_samples: int = 4, gamma: float = 0.99,
                 learning_rate: float = 5e-4, target_period: int = 10):
        """``pretrained``: the multi-task agent whose ``prior`` (and, through ``critic_fn``,
        ``critic``) is reloaded; None with ``use_prior=False`` ("From Scratch")."""
        if kl_cost < 0:
            raise ValueError(f"ParametricAdaptation.kl_cost must be >= 0, got {kl_cost}")
        if num_samples < 1:
            raise ValueError(f"ParametricAdaptation.num_samples must be >= 1, got {num_samples}")
        prior = None if pretrained is None else pretrained.prior
        if use_prior and prior is None:
            what = ("no pretrained agent" if pretrained is None
                    else f"the pretrained {type(pretrained).__name__} has no prior")
            raise ValueError(f"ParametricAdaptation.use_prior=True reloads the behaviour prior "
                             f"π0, but there is {what}: pretrain with DISTRAL / IWPL, or bind "
                             f"use_prior=False (From Scratch)")
        if use_prior:
            owner = type(pretrained).__name__
            require_gaussian_prior(
                prior, "ParametricAdaptation with use_prior=True (the 'DISTRAL' and 'Shared Q' "
                "adaptation variants)", "each policy π_p starts as an exact copy of π0 and "
                "is regularised by the closed-form Gaussian KL to it",
                f"pretrain with {owner}.prior = @GaussianPrior, or adapt the "
                f"{type(prior).__name__} with IWPA only (leave these variants out of "
                "pretrain_and_adapt.variants, e.g. do not include "
                "gin/common/figure3_variants.gin)")
        self.device, self.use_prior = device, use_prior
        if use_prior:
            self.prior = copy.deepcopy(prior).to(device).requires_grad_(False)  # frozen π0
            self.policy = EnsembleGaussianPolicy.like(self.prior, obs_spec, num_problems)
        else:
            self.prior = None
            template = GaussianPolicy(obs_spec, action_dim, 1, task_key=None)
            self.policy = EnsembleGaussianPolicy.like(template, obs_spec, num_problems,
                                                      copy_weights=False)
        self.policy = self.policy.to(device)
        pretrained_critic = None if pretrained is None else pretrained.critic
        self.critic = critic_fn(pretrained_critic, obs_spec, action_dim, num_problems).to(device)
        self.targets = Targets(target_period, "ParametricAdaptation")
        self.target_policy = self.targets.copy(self.policy)
        self.target_critic = self.targets.copy(self.critic)
        trainable = [p for p in self.critic.parameters() if p.requires_grad]
        self.critic_opt = adam(trainable, learning_rate)
        self.policy_opt = adam(self.policy.parameters(), learning_rate)
        self.kl_cost = kl_cost if use_prior else 0.0
        self.num_samples, self.gamma = num_samples, gamma
        self.acting = GaussianActing(self.policy, self.prior, log_prob=False, device=device)
        self.updates = 0

    def losses(self, b: dict, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """TD(0) critic loss and SVG(0) (+ α KL) policy loss on transitions [P, c, 1(+1)].

        ``noise``: ε [P, c, 1, K, A] of the policy's reparameterised samples (tests).
        """
        obs, mask, actions = b["obs"], b["mask"], b["actions"]
        now, nxt = split_steps(obs)
        with torch.no_grad():
            a_next, log_pi_next = reparameterised_samples(self.target_policy.distribution(nxt),
                                                          self.num_samples)
            v_next = self.target_critic(nxt, a_next)                       # [P, c, 1, K]
            if self.prior is not None:
                v_next = v_next - self.kl_cost * (log_pi_next - self.prior.log_prob(nxt, a_next))
            target = b["rewards"] + self.gamma * b["discounts"] * v_next.mean(-1)
        q = self.critic(now, actions)                                      # [P, c, 1]
        out = {"critic_loss": adaptation_critic_loss(q, target, mask), "q": q.detach()}

        dist = self.policy.distribution(now)                               # [P, c, 1, A]
        a, _ = reparameterised_samples(dist, self.num_samples, noise)
        with frozen(self.critic):
            q_pi = self.critic(now, a).mean(-1)                            # [P, c, 1]
        objective = q_pi
        if self.prior is not None:
            with torch.no_grad():
                p0 = self.prior.distribution(now)
            kl = gaussian_kl(dist.loc, dist.scale, p0.loc, p0.scale)       # [P, c, 1]
            objective = q_pi - self.kl_cost * kl
            out["kl_to_prior"] = masked_mean(kl.detach(), mask)
        out["policy_loss"] = -per_problem_mean(objective, mask)
        out["policy_std"] = dist.scale.detach().mean()
        return out

    def update(self, batch: dict) -> dict:
        b = to_torch(batch, self.device)
        out = self.losses(b)
        optimise(out["critic_loss"] + out["policy_loss"], self.critic_opt, self.policy_opt)
        self.count_update()
        problems = b["mask"].shape[0]
        metrics = {"critic_loss": out["critic_loss"].item() / problems,
                   "policy_loss": out["policy_loss"].item() / problems,
                   "policy_std": float(out["policy_std"]),
                   "q_mean": float(masked_mean(out["q"], b["mask"]))}
        if "kl_to_prior" in out:
            metrics["kl_to_prior"] = float(out["kl_to_prior"])
        return metrics
