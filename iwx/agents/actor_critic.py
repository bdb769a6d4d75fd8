"""RS(0) and DISTRAL: the parametric multi-task baselines of the paper (§6, figure 1).

RS(0) is SVG(0) (Heess et al. 2015, ref. [35]): a task-conditioned Gaussian
policy π_i(a|s) = N(μ(s, i), σ(s, i)²) trained through the critic with
reparameterised samples a = μ + σ ε, and a critic Q_i(s, a) learned with
Retrace (ref. [36]) over replayed chunks, as in Riedmiller et al. 2018 (ref. [37]).

DISTRAL (continuous, on RS(0); refs. [15, 16]) adds a behaviour prior π0 that
sees only the task-agnostic observation (information asymmetry: no task id,
no goal) and regularises every π_i:

    policy (eq. 1):   min  −E_{a~π_i}[Q_i(s, a)] + α KL[π_i(·|s) ‖ π0(·|s)]
    prior  (eq. 2):   min  Σ_i KL[π_i(·|s) ‖ π0(·|s)]        (π_i held fixed)
    critic (eq. 3):   V(s') = E_{a'~π_i}[Q_i(s', a') − α log π_i(a'|s')/π0(a'|s')]
                      as the bootstrap value of the Retrace target.

Decisions (the paper is silent):
- KL in the policy and prior losses: the closed form for diagonal Gaussians
  (``gaussian_kl``), not a sample estimate: it is exact and adds no variance;
  the policy side sees π0 detached, the prior side sees π_i detached, so each
  loss moves only its own network. The soft critic target uses K samples of
  the target policy (``distral_soft_value``): the Retrace recursion needs a
  value per state, and its expectation is the same KL.
- One backward pass per update: critic, policy and prior losses are built from
  the same batch and each reaches only its own parameters (the critic is frozen
  while the policy loss is evaluated; gradient still flows through it to a).
- Target networks (critic, policy, prior) give the Retrace targets: Q(s_t, a_t),
  V(s_{t+1}) and the trace ratios π_target(a_t|s_t) / μ(a_t|s_t).
"""

from __future__ import annotations

import gin
import torch

from iwx.agents.acting import reparameterised_samples
from iwx.agents.base import frozen, obs_task, optimise, split_steps, to_torch
from iwx.agents.parametric import GaussianPolicyLearner
from iwx.nets.critics import FeatureCritic
from iwx.nets.policy import GaussianPolicy
from iwx.ops.policy import distral_soft_value, gaussian_kl, svg0_policy_loss
from iwx.ops.reduce import masked_mean
from iwx.ops.retrace import retrace_targets
from iwx.ops.td import critic_loss as td_critic_loss


def time_slice(dist: torch.distributions.Normal, sl: slice) -> torch.distributions.Normal:
    """The same Gaussian on the steps ``sl`` of axis 2 ([nb, c, T, A] layout)."""
    return torch.distributions.Normal(dist.loc[:, :, sl], dist.scale[:, :, sl])


@gin.configurable
class ActorCritic(GaussianPolicyLearner):
    """Multi-task RS(0) (``prior=None``) or DISTRAL (``prior=@GaussianPrior``, ``kl_cost`` = α).

    Acts through :class:`GaussianActing`: a ~ π_i(·|s), or π0 when ``explore`` (DISTRAL).
    """

    PARTS = (*GaussianPolicyLearner.NETWORK_PARTS, "updates")   # the prior's: DISTRAL only

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 policy=GaussianPolicy, critic=FeatureCritic, prior=None, kl_cost: float = 0.0,
                 num_samples: int = 4, gamma: float = 0.99, retrace_lambda: float = 1.0,
                 target_period: int = 100, critic_lr: float = 5e-4, policy_lr: float = 5e-4,
                 prior_lr: float = 5e-4):
        if kl_cost < 0:
            raise ValueError(f"ActorCritic.kl_cost must be >= 0, got {kl_cost}")
        if prior is None and kl_cost > 0:
            raise ValueError(f"ActorCritic.kl_cost={kl_cost} regularises towards a prior, but "
                             "ActorCritic.prior is None (RS(0)); bind prior=@GaussianPrior")
        if num_samples < 1:
            raise ValueError(f"ActorCritic.num_samples must be >= 1, got {num_samples}")
        if not 0.0 <= retrace_lambda <= 1.0:
            raise ValueError(f"ActorCritic.retrace_lambda must lie in [0, 1], got {retrace_lambda}")
        self.build_networks(obs_spec, action_dim, num_tasks, device, policy=policy,
                            critic=critic, prior=prior, target_period=target_period,
                            critic_lr=critic_lr, policy_lr=policy_lr, prior_lr=prior_lr)
        self.kl_cost, self.num_samples, self.gamma = kl_cost, num_samples, gamma
        self.retrace_lambda = retrace_lambda
        self.updates = 0

    # -- learning --------------------------------------------------------------
    @torch.no_grad()
    def critic_targets(self, b: dict, task) -> torch.Tensor:
        """Retrace targets Q_ret [nb, c, L] from the target networks (module docstring)."""
        obs = b["obs"]
        now, nxt = split_steps(obs)
        pi = self.target_policy.distribution(obs)                         # [nb, c, L+1, A]
        a_next, log_pi_next = reparameterised_samples(time_slice(pi, slice(1, None)),
                                                      self.num_samples)  # [nb, c, L, K(, A)]
        q_next = self.target_critic(nxt, a_next, task)                    # [nb, c, L, K]
        if self.prior is None:
            v_next = q_next.mean(-1)                                      # E_π Q(s', a')
        else:                                                             # eq. (3)
            log_prior_next = self.target_prior.log_prob(nxt, a_next)
            v_next = distral_soft_value(q_next, log_pi_next, log_prior_next, self.kl_cost)
        q_taken = self.target_critic(now, b["actions"], task)             # [nb, c, L]
        log_pi_taken = time_slice(pi, slice(None, -1)).log_prob(b["actions"]).sum(-1)
        log_ratio = log_pi_taken - b["extras"]["log_prob"]                # log π/μ at a_t
        return retrace_targets(q_taken, v_next, b["rewards"], b["discounts"], log_ratio,
                               b["mask"], self.gamma, self.retrace_lambda)

    def losses(self, b: dict, noise: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Critic, policy (and prior) losses on a torch batch; each reaches only its own net.

        ``noise``: ε [nb, c, L, K, A] of the policy's reparameterised samples (tests).
        """
        obs, mask, actions = b["obs"], b["mask"], b["actions"]
        if "log_prob" not in b.get("extras", {}):
            raise ValueError("ActorCritic needs batch['extras']['log_prob'] (log μ(a|s) of the "
                             "acting policy, for Retrace): the replay must store "
                             "ActorCritic.replay_extras")
        task = obs_task(obs, self.critic.task_key)
        now, _ = split_steps(obs)
        target = self.critic_targets(b, task)

        q = self.critic(now, actions, task)                               # [nb, c, L]
        out = {"critic_loss": td_critic_loss(q, target, mask), "q": q.detach()}  # eq. (9)

        dist = self.policy.distribution(now)                              # [nb, c, L, A]
        a, _ = reparameterised_samples(dist, self.num_samples, noise)     # [nb, c, L, K, A]
        with frozen(self.critic):
            q_pi = self.critic(now, a, task)                              # [nb, c, L, K]
        kl = None
        if self.prior is not None:
            p0 = self.prior.distribution(now)
            # eq. (1): gradient into π only (π0 detached)
            kl = gaussian_kl(dist.loc, dist.scale, p0.loc.detach(), p0.scale.detach())
            # eq. (2): distillation, gradient into π0 only (π detached)
            out["prior_loss"] = masked_mean(
                gaussian_kl(dist.loc.detach(), dist.scale.detach(), p0.loc, p0.scale), mask)
            out["kl_to_prior"] = masked_mean(kl.detach(), mask)
            kl = kl.unsqueeze(-1)                                         # [nb, c, L, 1]
        out["policy_loss"] = svg0_policy_loss(q_pi, kl=kl, kl_cost=self.kl_cost,
                                              mask=mask.unsqueeze(-1))
        out["policy_std"] = dist.scale.detach().mean()
        return out

    def update(self, batch: dict) -> dict:
        """One learner step on chunks [nb, c, L(+1), ...] (layout: iwx.replay.task_replay)."""
        b = to_torch(batch, self.device)
        out = self.losses(b)
        total = out["critic_loss"] + out["policy_loss"] + out.get("prior_loss", 0.0)
        optimise(total, self.critic_opt, self.policy_opt, self.prior_opt)
        self.count_update()
        metrics = {name: float(out[name].detach()) for name in
                   ("critic_loss", "policy_loss", "prior_loss", "kl_to_prior", "policy_std")
                   if name in out}
        metrics["q_mean"] = float(masked_mean(out["q"], b["mask"]))
        return metrics
