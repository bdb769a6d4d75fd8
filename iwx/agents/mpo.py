"""MPO and MPO + DISTRAL: the multi-task baselines of the paper's figure 1 (§6, ref. [3]).

MPO (Abdolmaleki et al., "Maximum a Posteriori Policy Optimisation", 2018) with
the decoupled Gaussian trust region, on one task-conditioned Gaussian policy
π_i(a|s) = π(a|s, task id) for every training task. One learner step on chunks
[nb, c, L(+1), ...] (iwx.replay.task_replay), with target networks (π', Q', π0')
refreshed every ``target_period`` updates:

  Critic   Q(s_t, a_t) regressed on Retrace targets (iwx.ops.retrace) from Q',
           with V(s') = mean over K samples a'_k ~ π'(·|s') of Q'(s', a'_k)
           and traces from log π'(a_t|s_t) − log μ(a_t|s_t) (μ: the behaviour
           density that ``act`` stored in ``extras["log_prob"]``).
  E-step   at each s_t the same K samples a_k ~ π'(·|s_t), scored by Q', give
           the non-parametric policy w = softmax(Q'/η) (iwx.ops.mpo.estep_weights);
           η = exp(log η) takes one Adam step on the dual (temperature_dual) per
           update, so that the mean per-state KL(w ‖ uniform over K) → ε.
  M-step   weighted maximum likelihood of the a_k under the decoupled policies
           π_μ = N(μ_θ, σ') and π_Σ = N(μ', σ_θ) (mstep_loss), with the trust
           regions E_s KL_μ ≤ ε_μ and E_s KL_Σ ≤ ε_Σ (decoupled_gaussian_kl) as
           Lagrangians with learned multipliers β_μ, β_Σ (lagrangian_terms).

MPO + DISTRAL (paper §6): a behaviour prior π0 (GaussianPrior: the task-agnostic
inputs only, information asymmetry) learned alongside by distillation, min
E_s KL(sg π_θ ‖ π0) (eq. 2, analytic for Gaussians); the M-step adds the soft
penalty α · E_s KL(π_θ ‖ sg π0) (α = ``kl_cost``), and the critic bootstraps
from the soft value E_{a'~π'}[Q'(s', a') − α log(π'/π0')(a'|s')]
(iwx.ops.policy.distral_soft_value, eq. 3). ``prior=None`` or ``kl_cost=0``
is plain MPO (with ``kl_cost=0`` a given prior is still distilled, unused).

Decisions where the papers are silent (defaults):
- duals in log space (η = exp(log η), β = exp(log β)), one Adam step per
  update at ``dual_lr``; β_Σ starts high (``initial_multiplier_std``) because
  ε_Σ is tiny and an early std collapse is hard to undo.
- the "old" policy of the trust region and the E-step sampler is the target
  policy π' (no separate copy).
- the E-step weights use η after this update's dual step.
"""

from __future__ import annotations

import math

import gin
import torch

from iwx.agents.acting import reparameterised_samples
from iwx.agents.base import Adam, obs_task, optimise, split_steps, to_torch
from iwx.agents.parametric import GaussianPolicyLearner
from iwx.nets.critics import FeatureCritic
from iwx.nets.policy import GaussianPolicy
from iwx.ops.importance import kl_to_empirical_prior
from iwx.ops.mpo import decoupled_gaussian_kl, estep_weights, lagrangian_terms, mstep_loss
from iwx.ops.policy import distral_soft_value, gaussian_kl, samples_log_prob
from iwx.ops.reduce import masked_mean
from iwx.ops.retrace import retrace_targets
from iwx.ops.td import critic_loss as td_critic_loss
from iwx.ops.temperature import temperature_dual


@gin.configurable
class MPO(GaussianPolicyLearner):
    """Multi-task MPO (``prior=None``) or MPO + DISTRAL (``prior=GaussianPrior``, ``kl_cost`` α).

    ``epsilon``: E-step bound on the mean per-state KL(w ‖ uniform over the K
    samples), nats, < log K. ``epsilon_mean`` / ``epsilon_std``: M-step bounds on
    the mean decoupled KL of the mean and of the std. ``num_samples`` K.
    ``retrace_lambda`` λ of the traces (0: one-step targets). Acts through
    :class:`GaussianActing`: one unclipped action per row with its log-density,
    from π0 when ``explore`` and there is one (its density is then the behaviour's).
    """

    DUALS = ("log_temperature", "log_multiplier_mean", "log_multiplier_std")
    PARTS = (*GaussianPolicyLearner.NETWORK_PARTS, "temperature_opt", "multiplier_opt",
             *DUALS, "updates")                  # the prior's: MPO + DISTRAL only

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 policy=GaussianPolicy, critic=FeatureCritic, prior=None, kl_cost: float = 0.0,
                 epsilon: float = 0.1, epsilon_mean: float = 0.01, epsilon_std: float = 1e-4,
                 num_samples: int = 20, initial_temperature: float = 1.0,
                 initial_multiplier_mean: float = 1.0, initial_multiplier_std: float = 10.0,
                 dual_lr: float = 1e-2, gamma: float = 0.99, retrace_lambda: float = 1.0,
                 target_period: int = 100, critic_lr: float = 5e-4, policy_lr: float = 5e-4,
                 prior_lr: float = 5e-4):
        if num_samples < 2:
            raise ValueError(f"MPO.num_samples must be >= 2, got {num_samples}")
        if not 0 < epsilon < math.log(num_samples):
            raise ValueError(
                f"MPO.epsilon = {epsilon} must lie in (0, log K = {math.log(num_samples):.3f}): "
                f"it bounds the mean per-state KL of the E-step weights to uniform over the "
                f"K = {num_samples} samples, which is at most log K")
        for name, value in (("epsilon_mean", epsilon_mean), ("epsilon_std", epsilon_std),
                            ("initial_temperature", initial_temperature),
                            ("initial_multiplier_mean", initial_multiplier_mean),
                            ("initial_multiplier_std", initial_multiplier_std)):
            if value <= 0:
                raise ValueError(f"MPO.{name} must be > 0, got {value}")
        if kl_cost < 0:
            raise ValueError(f"MPO.kl_cost must be >= 0, got {kl_cost}")
        if kl_cost > 0 and prior is None:
            raise ValueError(f"MPO.kl_cost = {kl_cost} regularises towards a behaviour prior, "
                             f"but MPO.prior is None: bind MPO.prior = @GaussianPrior "
                             f"(MPO + DISTRAL) or set kl_cost = 0 (plain MPO)")
        if not 0 <= retrace_lambda <= 1:
            raise ValueError(f"MPO.retrace_lambda must lie in [0, 1], got {retrace_lambda}")
        self.build_networks(obs_spec, action_dim, num_tasks, device, policy=policy,
                            critic=critic, prior=prior, target_period=target_period,
                            critic_lr=critic_lr, policy_lr=policy_lr, prior_lr=prior_lr)
        self.kl_cost, self.epsilon = float(kl_cost), float(epsilon)
        self.epsilon_mean, self.epsilon_std = float(epsilon_mean), float(epsilon_std)
        self.num_samples, self.gamma, self.retrace_lambda = num_samples, gamma, retrace_lambda

        def log_param(value):
            return torch.tensor(math.log(value), device=device, requires_grad=True)

        self.log_temperature = log_param(initial_temperature)         # log η
        self.log_multiplier_mean = log_param(initial_multiplier_mean)  # log β_μ
        self.log_multiplier_std = log_param(initial_multiplier_std)    # log β_Σ
        self.temperature_opt = Adam([self.log_temperature], lr=dual_lr)
        self.multiplier_opt = Adam(
            [self.log_multiplier_mean, self.log_multiplier_std], lr=dual_lr)
        self.updates = 0

    @property
    def temperature(self) -> float:
        return float(self.log_temperature.detach().exp())

    # -- the pieces of one update ------------------------------------------------
    @torch.no_grad()
    def sample_and_score(self, obs: dict, task) -> dict:
        """K actions from the target policy π' at every state s_0..s_L, scored by Q'.

        obs [nb, c, L+1, ...] -> mean, std [.., L+1, A], actions [.., L+1, K, A],
        q, log_pi, log_prior (None without a prior) [.., L+1, K].
        """
        dist = self.target_policy.distribution(obs)
        mean, std = dist.loc, dist.scale
        actions, log_pi = reparameterised_samples(dist, self.num_samples)
        out = {"mean": mean, "std": std, "actions": actions,
               "q": self.target_critic(obs, actions, task),
               "log_pi": log_pi, "log_prior": None}
        if self.target_prior is not None:
            prior = self.target_prior.distribution(obs)
            out["log_prior"] = samples_log_prob(prior.loc, prior.scale, actions)
        return out

    @torch.no_grad()
    def critic_targets(self, b: dict, task, scored: dict) -> torch.Tensor:
        """Retrace targets [nb, c, L] from Q' and V(s_{t+1}) (soft with a prior and α > 0)."""
        now, _ = split_steps(b["obs"])
        q_next = scored["q"][:, :, 1:]                                  # [nb, c, L, K]
        if scored["log_prior"] is not None and self.kl_cost > 0:
            v_next = distral_soft_value(q_next, scored["log_pi"][:, :, 1:],
                                        scored["log_prior"][:, :, 1:], self.kl_cost)
        else:
            v_next = q_next.mean(-1)                                     # [nb, c, L]
        q_taken = self.target_critic(now, b["actions"], task)             # [nb, c, L]
        log_pi_taken = torch.distributions.Normal(
            scored["mean"][:, :, :-1], scored["std"][:, :, :-1]).log_prob(b["actions"]).sum(-1)
        log_ratio = log_pi_taken - b["extras"]["log_prob"]
        return retrace_targets(q_taken, v_next, b["rewards"], b["discounts"], log_ratio,
                               b["mask"], self.gamma, self.retrace_lambda)

    def estep(self, q: torch.Tensor, mask: torch.Tensor | None = None):
        """One Adam step on the temperature dual, then w = softmax(Q/η).

        q [N, K] (constants), mask [N] -> weights [N, K] (detached), dual value.
        """
        dual = temperature_dual(q, self.log_temperature.exp(), self.epsilon, mask)
        optimise(dual, self.temperature_opt)
        return estep_weights(q, self.log_temperature.exp()), float(dual.detach())

    def kl_penalty(self, mean, std, prior_mean, prior_std, mask=None) -> torch.Tensor:
        """α · E_s KL(π_θ ‖ π0) with π0 held fixed (the DISTRAL term of the M-step)."""
        kl = gaussian_kl(mean, std, prior_mean.detach(), prior_std.detach())
        return self.kl_cost * masked_mean(kl, mask)

    def mstep(self, obs: dict, actions, weights, old_mean, old_std, mask=None,
              prior_dist=None) -> dict:
        """One step of the policy on the decoupled weighted likelihood + trust regions
        (+ the DISTRAL penalty), and one on the multipliers β_μ, β_Σ.

        obs [..., ·] (states s), actions [..., K, A] (the E-step samples),
        weights [..., K], old_mean / old_std [..., A] (π'), mask [...].
        """
        dist = self.policy.distribution(obs)
        mean, std = dist.loc, dist.scale
        old_mean, old_std = old_mean.detach(), old_std.detach()
        log_pi_mean = samples_log_prob(mean, old_std, actions)      # π_μ = N(μ_θ, σ')
        log_pi_std = samples_log_prob(old_mean, std, actions)       # π_Σ = N(μ', σ_θ)
        kl_mean, kl_std = decoupled_gaussian_kl(old_mean, old_std, mean, std)
        tr_mean, dual_mean = lagrangian_terms(kl_mean, self.epsilon_mean,
                                              self.log_multiplier_mean, mask)
        tr_std, dual_std = lagrangian_terms(kl_std, self.epsilon_std,
                                            self.log_multiplier_std, mask)
        loss = (mstep_loss(log_pi_mean, weights, mask) + mstep_loss(log_pi_std, weights, mask)
                + tr_mean + tr_std)
        metrics = {}
        if prior_dist is not None:
            penalty = self.kl_penalty(mean, std, prior_dist.loc, prior_dist.scale, mask)
            loss = loss + penalty
            metrics["kl_penalty"] = float(penalty.detach())
        optimise(loss, self.policy_opt)
        optimise(dual_mean + dual_std, self.multiplier_opt)
        metrics.update(policy_loss=float(loss.detach()),
                       kl_mean=float(masked_mean(kl_mean.detach(), mask)),
                       kl_std=float(masked_mean(kl_std.detach(), mask)),
                       multiplier_mean=float(self.log_multiplier_mean.detach().exp()),
                       multiplier_std=float(self.log_multiplier_std.detach().exp()))
        return metrics

    def distill(self, prior_dist, mean, std, mask=None) -> float:
        """One step of π0 on E_s KL(sg π_θ ‖ π0) (eq. 2, analytic for Gaussians)."""
        loss = masked_mean(gaussian_kl(mean.detach(), std.detach(), prior_dist.loc,
                                       prior_dist.scale), mask)
        optimise(loss, self.prior_opt)
        return float(loss.detach())

    # -- learning --------------------------------------------------------------
    def update(self, batch: dict) -> dict:
        """One learner step on chunks [nb, c, L(+1), ...] (layout: iwx.replay.task_replay)."""
        b = to_torch(batch, self.device)
        obs, mask = b["obs"], b["mask"]
        task = obs_task(obs, self.critic.task_key)
        now, _ = split_steps(obs)                                          # s_t [nb, c, L, ...]
        scored = self.sample_and_score(obs, task)
        target = self.critic_targets(b, task, scored)

        q = self.critic(now, b["actions"], task)                           # [nb, c, L]
        critic_loss = td_critic_loss(q, target, mask)                      # eq. (9)
        optimise(critic_loss, self.critic_opt)

        # E-step on the K samples at s_0..s_{L-1}, flattened to [N, K].
        k = self.num_samples
        q_now = scored["q"][:, :, :-1]                                      # [nb, c, L, K]
        flat_mask = mask.reshape(-1)
        weights, dual = self.estep(q_now.reshape(-1, k), flat_mask)
        weights = weights.reshape(q_now.shape)

        prior_dist = None if self.prior is None else self.prior.distribution(now)
        metrics = self.mstep(now, scored["actions"][:, :, :-1], weights,
                             scored["mean"][:, :, :-1], scored["std"][:, :, :-1], mask,
                             prior_dist if self.kl_cost > 0 else None)
        if self.prior is not None:
            with torch.no_grad():
                dist = self.policy.distribution(now)  # after the M-step
            metrics["prior_loss"] = self.distill(prior_dist, dist.loc, dist.scale, mask)
            metrics["kl_to_prior"] = metrics["prior_loss"]

        self.count_update()
        metrics.update(critic_loss=float(critic_loss.detach()), temperature=self.temperature,
                       temperature_dual=dual,
                       estep_kl=float(masked_mean(kl_to_empirical_prior(q_now, self.temperature),
                                                  mask)),
                       q_mean=float(masked_mean(q.detach(), mask)))
        return metrics
