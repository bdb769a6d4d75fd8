"""PEARL* (the paper's re-implementation of PEARL, Rakelly et al. 2019) on RS(0).

Paper §6 and appendix A: PEARL with "a simple LSTM" context encoder, a Gaussian
latent z of dimension 5 whose KL to N(0, I) is weighted by a per-task
"bottleneck cost", and RS(0) as the base learner. The actor π(a | s, z) and
the critic Q(s, a, z) see z instead of a task id or goal: the task is inferred
from the context c of transitions (s, a, r, s') collected in it.

Learner (one step on chunks [nb, c, L(+1), ...] plus a context window per task):

    z ~ q(z | c)  by reparameterisation          (iwx.ops.bottleneck)        [nb, Z]
    critic + encoder:  ½ (Q(s_t, a_t, z) − Q_ret)² + β · KL(q(z|c) ‖ N(0, I))
    actor:             SVG(0), −Q(s_t, a ~ π(·|s_t, z̄), z̄) with z̄ = stop_grad(z)

- Q_ret are Retrace targets (iwx.ops.retrace) from the target critic and the
  target actor, both given the same z (detached): V(s') is the mean of
  Q'(s', a', z) over ``num_samples`` actions a' ~ π'(·|s', z), and the trace
  ratio is π'(a_t|s_t, z) / μ(a_t|s_t).
- As in PEARL, the critic's gradient trains the encoder (the KL keeps z close
  to the prior); the actor's does not (z is detached for it).
- The KL is the mean over the batch's task rows of the per-task
  KL(q(z|c_i) ‖ N(0, I)), times β = ``kl_cost`` (appendix A.2's bottleneck cost).

Decision (behaviour log-density vs. the learner's z): the behaviour policy μ
that acted is π(·|s, z_act), with z_act the latent drawn at the start of that
episode (from the prior in a trial's first episode, from the posterior later).
The learner evaluates the policy under a *different* z, drawn from q(z|c) for
the batch's context. The Retrace ratio is the honest one for that target
policy: log π'(a_t | s_t, z_learner) − log μ(a_t | s_t), where log μ is the
density stored at acting time (``replay_extras = {"log_prob": ()}``). No
latent is stored: a z far from the acting one only shortens the traces
(c ≤ 1 keeps Retrace safe for any behaviour policy).

Critic input: like every critic, Q sees clip(a, -1, 1), the action the
environment executes (``iwx.nets.inputs.state_action``); actions stay
unclipped everywhere else (replay, log-densities, SVG(0)'s sample).

Acting: PEARL's posterior sampling (:class:`iwx.agents.actors.posterior.PosteriorSampling`):
z ~ q(z | the row's context) drawn at each episode start and held for the
episode, from the acting part's own checkpointed generator. A trial is
``MultiTaskTraining.episodes_per_task`` episodes in training (methods/pearl.gin:
2, prior then posterior episode) and the whole of adaptation, where PEARL*
takes no gradient step (:class:`PEARLAdaptation`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import gin
import torch

from iwx.agents.actors.posterior import PosteriorSampling
from iwx.agents.base import (AdaptsWithoutLearning, Agent, Targets, adam, frozen, optimise,
                             split_steps, to_torch)
from iwx.nets.context import ContextCritic, ContextEncoder, context_transitions, rows_like
from iwx.nets.policy import GaussianPolicy
from iwx.ops.bottleneck import gaussian_latent_kl, reparameterised_latent
from iwx.ops.policy import svg0_policy_loss
from iwx.ops.reduce import masked_mean
from iwx.ops.retrace import retrace_targets
from iwx.ops.td import critic_loss as td_critic_loss


# ----------------------------------------------------------------------------- training
def latent_actor(actor, obs_spec, action_dim: int, encoder: ContextEncoder) -> GaussianPolicy:
    """π(a | s, z): the bound actor class without a task input, told the task by z."""
    return actor(obs_spec, action_dim, 1, task_key=None, extra_dim=encoder.latent_dim)


@gin.configurable
class PEARL(Agent):
    """Multi-task PEARL* learner (iwx.agents.base.contract). See the module docstring."""

    PARTS = ("encoder", "critic", "actor", "target_critic", "target_actor", "critic_opt",
             "actor_opt", "acting", "updates")

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 encoder=ContextEncoder, critic=ContextCritic, actor=GaussianPolicy,
                 context_length: int = 64, kl_cost: float = 0.1, gamma: float = 0.99,
                 num_samples: int = 4, retrace_lambda: float = 1.0, target_period: int = 100,
                 critic_lr: float = 5e-4, actor_lr: float = 5e-4, entropy_cost: float = 0.0):
        del num_tasks  # PEARL* never sees a task id: the task is inferred into z
        if context_length < 1:
            raise ValueError(f"PEARL.context_length must be >= 1, got {context_length}")
        if kl_cost < 0:
            raise ValueError(f"PEARL.kl_cost must be >= 0, got {kl_cost}")
        if num_samples < 1:
            raise ValueError(f"PEARL.num_samples must be >= 1, got {num_samples}")
        self.device = device
        self.encoder = encoder(obs_spec, action_dim).to(device)
        z_dim = self.encoder.latent_dim
        self.critic = critic(obs_spec, action_dim, z_dim).to(device)
        self.actor = latent_actor(actor, obs_spec, action_dim, self.encoder).to(device)
        self.targets = Targets(target_period, "PEARL")
        self.target_critic = self.targets.copy(self.critic)
        self.target_actor = self.targets.copy(self.actor)
        self.context_length, self.kl_cost, self.gamma = context_length, kl_cost, gamma
        self.num_samples, self.retrace_lambda = num_samples, retrace_lambda
        self.entropy_cost = entropy_cost
        self.critic_opt = adam([*self.critic.parameters(), *self.encoder.parameters()],
                               critic_lr)
        self.actor_opt = adam(self.actor.parameters(), actor_lr)
        self.acting = PosteriorSampling(self.encoder, self.actor, obs_spec, action_dim,
                                        context_length, device)
        self.updates = 0

    @classmethod
    def new_acting(cls, obs_spec, action_dim, num_tasks, device, *, encoder, actor,
                   context_length, **_):
        """The context encoder q(z|c) and the actor π(a|s, z)."""
        del num_tasks
        encoder = encoder(obs_spec, action_dim).to(device)
        return PosteriorSampling(encoder, latent_actor(actor, obs_spec, action_dim,
                                                       encoder).to(device),
                                 obs_spec, action_dim, context_length, device)

    # -- learning --------------------------------------------------------------
    def posterior(self, context: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ) [nb, Z] of q(z | c) for a batch's context (torch tensors)."""
        return self.encoder(*context_transitions(context))

    def q(self, critic, obs, actions, z) -> torch.Tensor:
        """Q(s, a, z) of ``critic`` (online or target); it sees clip(a, -1, 1)."""
        return critic(obs, actions, z)

    def critic_loss(self, b: dict) -> tuple[torch.Tensor, dict]:
        """Retrace loss + β KL on a torch batch. Returns (loss, parts); parts["z"] is detached.

        parts: "td" (the Retrace regression), "kl" (mean over task rows of
        KL(q(z|c_i) ‖ N(0, I))), "q" [nb, c, L], "z" [nb, Z], "log_std" [nb, Z].
        """
        obs, mask = b["obs"], b["mask"]
        now, nxt = split_steps(obs)                                     # s_t, s_{t+1} [nb, c, L, .]
        mean, log_std = self.posterior(b["context"])                    # [nb, Z]
        z = reparameterised_latent(mean, log_std)                        # [nb, Z]
        zd = z.detach()
        with torch.no_grad():
            pi = self.target_actor.distribution(now, rows_like(zd, 4))   # [nb, c, L, A]
            log_ratio = pi.log_prob(b["actions"]).sum(-1) - b["extras"]["log_prob"]
            nxt_pi = self.target_actor.distribution(nxt, rows_like(zd, 4))
            a_next = nxt_pi.sample((self.num_samples,)).movedim(0, -2)   # [nb, c, L, K, A]
            v_next = self.q(self.target_critic, nxt, a_next, zd).mean(-1)  # [nb, c, L]
            q_taken = self.q(self.target_critic, now, b["actions"], zd)
            target = retrace_targets(q_taken, v_next, b["rewards"], b["discounts"], log_ratio,
                                     mask, self.gamma, self.retrace_lambda)
        q = self.q(self.critic, now, b["actions"], z)                   # [nb, c, L]
        td = td_critic_loss(q, target, mask)                             # eq. (9)
        kl = gaussian_latent_kl(mean, log_std).mean()
        return td + self.kl_cost * kl, {"td": td, "kl": kl, "q": q.detach(), "z": zd,
                                        "log_std": log_std.detach(),
                                        "target": target.detach()}

    def actor_loss(self, b: dict, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SVG(0) at s_t with z held fixed (no gradient reaches the encoder or the critic)."""
        now, _ = split_steps(b["obs"])
        dist = self.actor.distribution(now, rows_like(z.detach(), 4))   # [nb, c, L, A]
        actions = dist.rsample()
        with frozen(self.critic):
            q = self.q(self.critic, now, actions, z.detach())
        loss = svg0_policy_loss(q, entropy=dist.entropy().sum(-1),
                                entropy_cost=self.entropy_cost, mask=b["mask"])
        return loss, dist.scale.detach()

    def update(self, batch: dict) -> dict:
        """One learner step on chunks [nb, c, L(+1), ...] with batch["context"]."""
        if "context" not in batch:
            raise ValueError("PEARL.update needs batch['context'] (the loops add it when "
                             "agent.context_length > 0)")
        b = to_torch(batch, self.device)
        loss, parts = self.critic_loss(b)
        optimise(loss, self.critic_opt)
        a_loss, std = self.actor_loss(b, parts["z"])
        optimise(a_loss, self.actor_opt)
        self.count_update()
        mask = b["mask"]
        return {"critic_loss": parts["td"].item(), "kl": parts["kl"].item(),
                "actor_loss": a_loss.item(), "q_mean": float(masked_mean(parts["q"], mask)),
                "posterior_std": float(parts["log_std"].exp().mean()),
                "policy_std": float(std.mean())}


# ----------------------------------------------------------------------------- adaptation
class PEARLAdaptation(AdaptsWithoutLearning):
    """PEARL* on held-out problems: no gradient step, z inferred from the collected context.

    Frozen copies of the pretrained encoder and actor; one context per problem,
    kept over every adaptation episode (the last ``context_length``
    transitions); z drawn per problem at each episode start from q(z | context)
    (the prior at the first) and held for the episode. ``explore`` is ignored:
    PEARL* has no behaviour prior, its first episode acts from N(0, I) anyway.
    """

    ADAPTS_BY = "by inferring z from its context"
    PARTS = ("acting",)

    def __init__(self, encoder: ContextEncoder, actor: GaussianPolicy, obs_spec,
                 action_dim: int, num_problems: int, *, context_length: int,
                 device: torch.device):
        self.encoder = copy.deepcopy(encoder).to(device).requires_grad_(False).eval()
        self.actor = copy.deepcopy(actor).to(device).requires_grad_(False).eval()
        self.updates = 0
        self.acting = PosteriorSampling(self.encoder, self.actor, obs_spec, action_dim,
                                        context_length, device)
        self.acting.begin_tasks(num_problems)


@gin.configurable
def pearl_adaptation(pretrained, obs_spec, action_dim: int, num_problems: int, *,
                     device: torch.device) -> PEARLAdaptation:
    """The "PEARL*" adaptation variant: infer z from context with the pretrained networks."""
    if not isinstance(pretrained, PEARL):
        raise ValueError(  # noqa: TRY004 (a bad binding, reported like every other)
            f"the PEARL* variant (pearl_adaptation) adapts a pretrained PEARL agent "
            f"(pretrain_and_adapt.agent = @PEARL), got {type(pretrained).__name__}")
    missing = sorted((set(pretrained.encoder.inputs) | set(pretrained.actor.inputs))
                     - set(obs_spec))
    if missing:
        raise ValueError(f"pearl_adaptation: the held-out observation {sorted(obs_spec)} lacks "
                         f"{missing}, which the pretrained encoder / actor read")
    return PEARLAdaptation(pretrained.encoder, pretrained.actor, obs_spec, action_dim,
                           num_problems, context_length=pretrained.context_length,
                           device=device)
