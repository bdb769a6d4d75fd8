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

Acting (PEARL's posterior sampling): per environment row, the transitions of
the current trial (since ``begin_tasks``) are kept, the last
``context_length`` of them. At the start of each episode (the first act after
``begin_tasks`` or after the row's episode ended) z ~ q(z | the row's context)
is drawn — the prior N(0, I) when the context is empty — and held for the
whole episode. A trial is ``MultiTaskTraining.episodes_per_task`` episodes in
training (methods/pearl.gin: 2, prior then posterior episode) and the whole of
adaptation, where PEARL* takes no gradient step (:class:`PEARLAdaptation`).
Acting draws (z and actions) come from the agent's own torch generator,
which is checkpointed, so a killed run resumes to the same numbers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import gin
import numpy as np
import torch

from iwx.agents.base import to_torch
from iwx.nets.context import ContextCritic, ContextEncoder, context_transitions, rows_like
from iwx.nets.policy import GaussianPolicy
from iwx.ops.bottleneck import gaussian_latent_kl, reparameterised_latent
from iwx.ops.policy import svg0_policy_loss
from iwx.ops.reduce import masked_mean
from iwx.ops.retrace import retrace_targets


# ----------------------------------------------------------------------------- acting
class ContextMemory:
    """Per-row context of the current trial and the latent each row acts with.

    Holds, for B rows, the last ``context_length`` transitions (oldest first) of
    the observation parts ``shapes``, and z [B, Z] with a flag saying which rows
    must draw a new z before their next action (start of an episode).
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], action_dim: int,
                 latent_dim: int, context_length: int):
        self.shapes, self.action_dim = dict(shapes), action_dim
        self.latent_dim, self.length_max = latent_dim, context_length
        self.rows = -1
        self.begin(0)

    def begin(self, rows: int) -> None:
        """Forget everything: ``rows`` empty contexts, every row draws z at its next act."""
        n, L = rows, self.length_max
        self.rows = rows
        self.obs = {k: np.zeros((n, L, *s), np.float32) for k, s in self.shapes.items()}
        self.next_obs = {k: np.zeros((n, L, *s), np.float32) for k, s in self.shapes.items()}
        self.actions = np.zeros((n, L, self.action_dim), np.float32)
        self.rewards = np.zeros((n, L), np.float32)
        self.length = np.zeros(n, np.int64)
        self.z = np.zeros((n, self.latent_dim), np.float32)
        self.needs_z = np.ones(n, bool)

    def add(self, obs, actions, rewards, next_obs, done, alive) -> None:
        """Append one transition to every alive row (dropping its oldest when full)."""
        alive = np.asarray(alive, bool)
        if alive.shape != (self.rows,):
            raise ValueError(f"observe() got {alive.shape[0]} rows, the memory holds {self.rows} "
                             f"(call begin_tasks with the number of environment rows)")
        full = alive & (self.length == self.length_max)
        arrays = [*self.obs.values(), *self.next_obs.values(), self.actions, self.rewards]
        if full.any():
            for a in arrays:
                a[full] = np.roll(a[full], -1, axis=1)
        rows = np.flatnonzero(alive)
        at = np.minimum(self.length[rows], self.length_max - 1)
        for k in self.shapes:
            self.obs[k][rows, at] = np.asarray(obs[k])[rows]
            self.next_obs[k][rows, at] = np.asarray(next_obs[k])[rows]
        self.actions[rows, at] = np.asarray(actions)[rows]
        self.rewards[rows, at] = np.asarray(rewards)[rows]
        self.length[rows] = np.minimum(self.length[rows] + 1, self.length_max)
        self.needs_z |= alive & np.asarray(done, bool)

    def context(self, rows: np.ndarray, device) -> tuple:
        """The encoder's arguments for ``rows``: obs, actions, rewards, next_obs, mask [n, L, ...]."""
        mask = (np.arange(self.length_max) < self.length[rows, None]).astype(np.float32)

        def t(x):
            return torch.as_tensor(x, device=device)

        return ({k: t(v[rows]) for k, v in self.obs.items()}, t(self.actions[rows]),
                t(self.rewards[rows]), {k: t(v[rows]) for k, v in self.next_obs.items()},
                t(mask))

    def state_dict(self) -> dict:
        return copy.deepcopy({"obs": self.obs, "next_obs": self.next_obs,
                              "actions": self.actions, "rewards": self.rewards,
                              "length": self.length, "z": self.z, "needs_z": self.needs_z})

    def load_state_dict(self, state: dict) -> None:
        state = copy.deepcopy(state)
        self.obs, self.next_obs = state["obs"], state["next_obs"]
        self.actions, self.rewards, self.length = state["actions"], state["rewards"], state["length"]
        self.z, self.needs_z = state["z"], state["needs_z"]
        self.rows = len(self.length)


class PosteriorSampling:
    """Acting of PEARL*: z ~ q(z | context) drawn per row at each episode start, held for the
    episode; a ~ π(·|s, z) unclipped, returned with log π(a|s, z) (the behaviour density)."""

    def __init__(self, encoder: ContextEncoder, actor: GaussianPolicy, obs_spec,
                 action_dim: int, context_length: int, device: torch.device):
        self.encoder, self.actor, self.device = encoder, actor, device
        keys = sorted(set(encoder.inputs))
        self.memory = ContextMemory({k: tuple(obs_spec[k]) for k in keys}, action_dim,
                                    encoder.latent_dim, context_length)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(int(torch.randint(2 ** 62, ()).item()))  # from the run seed

    def begin_tasks(self, num_rows: int) -> None:
        self.memory.begin(num_rows)

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        self.memory.add(obs, actions, rewards, next_obs, done, alive)

    @torch.no_grad()
    def act(self, obs: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        rows = len(next(iter(obs.values())))
        if self.memory.rows != rows:   # a loop that never called begin_tasks: a fresh trial
            self.memory.begin(rows)
        draw = np.flatnonzero(self.memory.needs_z)
        if len(draw):
            mean, log_std = self.encoder(*self.memory.context(draw, self.device))
            z = reparameterised_latent(mean, log_std, generator=self.generator)
            self.memory.z[draw] = z.cpu().numpy()
            self.memory.needs_z[draw] = False
        z = torch.as_tensor(self.memory.z, device=self.device)                 # [B, Z]
        dist = self.actor.distribution(to_torch(obs, self.device), z)          # [B, A]
        eps = torch.randn(dist.loc.shape, generator=self.generator, device=self.device)
        actions = dist.loc + dist.scale * eps
        log_prob = dist.log_prob(actions).sum(-1)
        return actions.cpu().numpy(), {"log_prob": log_prob.cpu().numpy()}

    def state_dict(self) -> dict:
        return {"memory": self.memory.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state["memory"])
        self.generator.set_state(state["generator"].cpu())


# ----------------------------------------------------------------------------- training
class ActsByPosteriorSampling:
    """The acting side PEARL and PEARLAdaptation share: everything goes to ``self.acting``
    (a :class:`PosteriorSampling`); ``explore`` is ignored (PEARL* has no prior)."""

    acting: PosteriorSampling

    def begin_tasks(self, num_rows: int) -> None:
        self.acting.begin_tasks(num_rows)

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        self.acting.observe(obs, actions, rewards, next_obs, done, alive)

    def act(self, obs: dict, explore: bool = False):
        """(actions [B, A], {"log_prob": [B]})."""
        del explore
        return self.acting.act(obs)


@gin.configurable
class PEARL(ActsByPosteriorSampling):
    """Multi-task PEARL* learner (docs/AGENTS.md contract). See the module docstring."""

    prior = None  # PEARL* has no behaviour prior

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
        self.actor = actor(obs_spec, action_dim, 1, task_key=None, extra_dim=z_dim).to(device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.target_actor = copy.deepcopy(self.actor).requires_grad_(False)
        self.context_length, self.kl_cost, self.gamma = context_length, kl_cost, gamma
        self.num_samples, self.retrace_lambda = num_samples, retrace_lambda
        self.target_period, self.entropy_cost = target_period, entropy_cost
        self.replay_extras = {"log_prob": ()}
        self.critic_opt = torch.optim.Adam([*self.critic.parameters(),
                                            *self.encoder.parameters()], lr=critic_lr)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=actor_lr)
        self.acting = PosteriorSampling(self.encoder, self.actor, obs_spec, action_dim,
                                        context_length, device)
        self.updates = 0

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
        now = {k: v[:, :, :-1] for k, v in obs.items()}                 # s_t      [nb, c, L, .]
        nxt = {k: v[:, :, 1:] for k, v in obs.items()}                  # s_{t+1}
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
        td = masked_mean(0.5 * (q - target) ** 2, mask)
        kl = gaussian_latent_kl(mean, log_std).mean()
        return td + self.kl_cost * kl, {"td": td, "kl": kl, "q": q.detach(), "z": zd,
                                        "log_std": log_std.detach(),
                                        "target": target.detach()}

    def actor_loss(self, b: dict, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """SVG(0) at s_t with z held fixed (no gradient reaches the encoder or the critic)."""
        now = {k: v[:, :, :-1] for k, v in b["obs"].items()}
        dist = self.actor.distribution(now, rows_like(z.detach(), 4))   # [nb, c, L, A]
        actions = dist.rsample()
        self.critic.requires_grad_(False)
        try:
            q = self.q(self.critic, now, actions, z.detach())
        finally:
            self.critic.requires_grad_(True)
        loss = svg0_policy_loss(q, entropy=dist.entropy().sum(-1),
                                entropy_cost=self.entropy_cost, mask=b["mask"])
        return loss, dist.scale.detach()

    def update(self, batch: dict) -> dict:
        """One learner step on chunks [nb, c, L(+1), ...] with batch["context"] (docs/AGENTS.md)."""
        if "context" not in batch:
            raise ValueError("PEARL.update needs batch['context'] (the loops add it when "
                             "agent.context_length > 0)")
        b = to_torch(batch, self.device)
        loss, parts = self.critic_loss(b)
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()

        a_loss, std = self.actor_loss(b, parts["z"])
        self.actor_opt.zero_grad()
        a_loss.backward()
        self.actor_opt.step()

        self.updates += 1
        if self.updates % self.target_period == 0:
            self.target_critic.load_state_dict(self.critic.state_dict())
            self.target_actor.load_state_dict(self.actor.state_dict())
        mask = b["mask"]
        return {"critic_loss": parts["td"].item(), "kl": parts["kl"].item(),
                "actor_loss": a_loss.item(), "q_mean": float(masked_mean(parts["q"], mask)),
                "posterior_std": float(parts["log_std"].exp().mean()),
                "policy_std": float(std.mean())}

    # -- checkpointing -----------------------------------------------------------
    NETS = ("encoder", "critic", "actor", "target_critic", "target_actor", "critic_opt",
            "actor_opt", "acting")

    def state_dict(self) -> dict:
        return {**{n: getattr(self, n).state_dict() for n in self.NETS}, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        for name in self.NETS:
            getattr(self, name).load_state_dict(state[name])
        self.updates = state["updates"]


# ----------------------------------------------------------------------------- adaptation
class PEARLAdaptation(ActsByPosteriorSampling):
    """PEARL* on held-out problems: no gradient step, z inferred from the collected context.

    Frozen copies of the pretrained encoder and actor; one context per problem,
    kept over every adaptation episode (the last ``context_length``
    transitions); z drawn per problem at each episode start from q(z | context)
    (the prior at the first) and held for the episode. ``explore`` is ignored:
    PEARL* has no behaviour prior, its first episode acts from N(0, I) anyway.
    """

    learns = False

    def __init__(self, encoder: ContextEncoder, actor: GaussianPolicy, obs_spec,
                 action_dim: int, num_problems: int, *, context_length: int,
                 device: torch.device):
        self.encoder = copy.deepcopy(encoder).to(device).requires_grad_(False).eval()
        self.actor = copy.deepcopy(actor).to(device).requires_grad_(False).eval()
        self.replay_extras = {"log_prob": ()}
        self.updates = 0
        self.acting = PosteriorSampling(self.encoder, self.actor, obs_spec, action_dim,
                                        context_length, device)
        self.acting.begin_tasks(num_problems)

    def update(self, batch: dict) -> dict:
        raise RuntimeError("PEARL* adapts without gradient steps (learns = False): "
                           "the adaptation loop must not call update()")

    def state_dict(self) -> dict:
        return {"acting": self.acting.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.acting.load_state_dict(state["acting"])


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
