"""RL² (Duan et al. 2016; Wang et al. 2016) learned with RS(0), as in the paper's §6 / appendix A.

A recurrent actor and critic (iwx.nets.recurrent) see the observation parts
%INPUTS and the previous action, reward and done flag, never a task id: the
LSTM's memory is what tells the tasks apart. The memory is reset when the
environment rows start new tasks (``begin_tasks``) and carried across the
episodes played on the same tasks (an RL² *trial*: done only tells the next
step that a new episode began). At adaptation RL² takes no gradient step: the
frozen actor adapts through its memory alone (:class:`RL2Adaptation`).

Learning is RS(0) on replayed chunks, with recurrent networks:
- critic: Retrace (iwx.ops.retrace.retrace_targets) with target networks,
  Q_ret from Q'(h'_t, a_t), V(s_{t+1}) = mean over ``num_samples`` actions
  a' ~ π'(·|h'_{t+1}) of Q'(h'_{t+1}, a'), traces from
  log π'(a_t|h'_t) − log μ(a_t) (μ: the behaviour density stored at acting);
- actor: SVG(0) (iwx.ops.policy.svg0_policy_loss), −mean Q(h_t, a) over
  ``num_samples`` reparameterised samples a ~ π(·|h_t), the gradient reaching
  the actor's LSTM through time (the critic's h_t and parameters are held fixed).

Recurrent state in the learner: *stored state*, as R2D2 (Kapturowski et al.
2019) without burn-in. act() stores, for every step, the (h, c) of the actor
and critic cores *before* the step's input is consumed and the previous
action / reward / done that input held. The learner starts the online and
target networks of each chunk from the stored state at the chunk's first step
and unrolls them over its L (+1) steps. The stored state is *stale*: it was
computed by the networks of acting time, not by the current (or target)
parameters, and the chunk's first steps see that mismatch; within a chunk the
state is recomputed exactly. The inputs of step t+1 are (a_t, r_t, done = 0):
a chunk lies inside one episode, so no episode ends inside it; for steps < L
the stored inputs are used, which equal these and also carry done = 1 at an
episode's first step.
"""

from __future__ import annotations

import copy

import gin
import torch

from iwx.agents.actors.recurrent import RecurrentActing
from iwx.agents.base import (AdaptsWithoutLearning, Agent, Targets, adam, frozen, optimise,
                             to_torch)
from iwx.nets.recurrent import RecurrentCore, RecurrentCritic, RecurrentGaussianPolicy
from iwx.ops.policy import svg0_policy_loss
from iwx.ops.reduce import masked_mean
from iwx.ops.retrace import retrace_targets
from iwx.ops.td import critic_loss as td_critic_loss


def chunk_inputs(b: dict) -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Recurrent inputs of the L+1 steps of each chunk, rows flattened (N = nb·c).

    Steps t < L: the stored previous action / reward / done (exactly what the
    actor saw). Step L: (a_{L-1}, r_{L-1}, done = 0) — the chunk lies in one
    episode, and s_L is bootstrapped from as if the episode went on.
    Returns obs[k] [N, L+1, ...], prev_action [N, L+1, A], prev_reward, prev_done [N, L+1].
    """
    ex, actions = b["extras"], b["actions"]
    nb, c, length = b["mask"].shape
    n = nb * c
    obs = {k: v.reshape(n, length + 1, *v.shape[3:]) for k, v in b["obs"].items()}
    prev_action = torch.cat([ex["prev_action"], actions[:, :, -1:]], 2)
    prev_reward = torch.cat([ex["prev_reward"], b["rewards"][:, :, -1:]], 2)
    prev_done = torch.cat([ex["prev_done"], torch.zeros_like(ex["prev_done"][:, :, :1])], 2)
    return (obs, prev_action.reshape(n, length + 1, -1).float(),
            prev_reward.reshape(n, length + 1).float(), prev_done.reshape(n, length + 1).float())


def stored_state(b: dict, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(h, c) [N, H] of core ``name`` stored at each chunk's first step."""
    h, c = b["extras"][f"{name}_h"][:, :, 0], b["extras"][f"{name}_c"][:, :, 0]
    return h.reshape(-1, h.shape[-1]).float(), c.reshape(-1, c.shape[-1]).float()


def unroll(core: RecurrentCore, inputs: tuple, state, steps: int) -> torch.Tensor:
    """The core's outputs h over the first ``steps`` steps of every chunk. -> [N, steps, H]."""
    obs, prev_action, prev_reward, prev_done = inputs
    out, _ = core({k: v[:, :steps] for k, v in obs.items()}, prev_action[:, :steps],
                  prev_reward[:, :steps], prev_done[:, :steps], state)
    return out


@gin.configurable
class RL2(Agent):
    """RL²'s multi-task (meta-)training agent (iwx.agents.base.contract), learned by RS(0).

    Bindings: ``actor`` / ``critic`` the recurrent networks, ``num_samples`` the
    K actions per state for V(s') and for the SVG(0) loss, ``retrace_lambda``
    Retrace's λ, ``target_period`` the updates between target-network copies,
    learning rates 5e-4 (appendix A.2), ``entropy_cost`` an optional entropy
    bonus in the SVG(0) loss (the paper names none; 0 by default: on point_nav
    0.01 held σ at its ceiling and trained worse than 0, see gin/methods/rl2.gin).
    ``num_tasks`` is not used: RL² sees no task id.
    """

    PARTS = ("actor", "critic", "target_actor", "target_critic", "actor_opt", "critic_opt",
             "memory", "updates")

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 actor=RecurrentGaussianPolicy, critic=RecurrentCritic, num_samples: int = 4,
                 gamma: float = 0.99, retrace_lambda: float = 1.0, target_period: int = 100,
                 critic_lr: float = 5e-4, policy_lr: float = 5e-4, entropy_cost: float = 0.0):
        del num_tasks
        if num_samples < 1:
            raise ValueError(f"RL2.num_samples must be >= 1, got {num_samples}")
        if not 0.0 <= retrace_lambda <= 1.0:
            raise ValueError(f"RL2.retrace_lambda must lie in [0, 1], got {retrace_lambda}")
        if entropy_cost < 0:
            raise ValueError(f"RL2.entropy_cost must be >= 0, got {entropy_cost}")
        self.device, self.action_dim = device, action_dim
        self.actor = actor(obs_spec, action_dim).to(device)
        self.critic = critic(obs_spec, action_dim).to(device)
        self.targets = Targets(target_period, "RL2")
        self.target_actor = self.targets.copy(self.actor)
        self.target_critic = self.targets.copy(self.critic)
        self.actor_opt = adam(self.actor.parameters(), policy_lr)
        self.critic_opt = adam(self.critic.parameters(), critic_lr)
        self.num_samples, self.gamma, self.retrace_lambda = num_samples, gamma, retrace_lambda
        self.entropy_cost = entropy_cost
        self.acting = RecurrentActing(self.actor, action_dim, critic_core=self.critic.core,
                                      device=device, owner="RL2")
        self.updates = 0

    @property
    def memory(self):
        """The acting memory (h, c of both cores, previous inputs), one row per env."""
        return self.acting.memory

    @classmethod
    def new_acting(cls, obs_spec, action_dim, num_tasks, device, *, actor, critic, **_):
        """The actor and the critic's core (stepped for the stored state the replay keeps)."""
        del num_tasks
        return RecurrentActing(actor(obs_spec, action_dim).to(device), action_dim,
                               critic_core=critic(obs_spec, action_dim).core.to(device),
                               device=device, owner="RL2")

    # -- learning --------------------------------------------------------------
    def unroll(self, b: dict) -> dict[str, torch.Tensor]:
        """Outputs h of all four networks over each chunk, from the stored state.

        ``b``: a torch batch (iwx.replay.task_replay's layout). Online networks over the L
        steps (with gradients), target networks over L+1 (without). -> [N, L(+1), H].
        """
        length = b["mask"].shape[-1]
        inputs = chunk_inputs(b)
        actor_state, critic_state = stored_state(b, "actor"), stored_state(b, "critic")
        with torch.no_grad():
            target_actor = unroll(self.target_actor.core, inputs, actor_state, length + 1)
            target_critic = unroll(self.target_critic.core, inputs, critic_state, length + 1)
        return {"actor": unroll(self.actor.core, inputs, actor_state, length),
                "critic": unroll(self.critic.core, inputs, critic_state, length),
                "target_actor": target_actor, "target_critic": target_critic}

    def update(self, batch: dict) -> dict:
        """One RS(0) learner step on chunks [nb, c, L(+1), ...] with their stored extras."""
        b = to_torch(batch, self.device)
        nb, c, length = b["mask"].shape
        n, k = nb * c, self.num_samples
        mask = b["mask"].reshape(n, length).float()
        actions = b["actions"].reshape(n, length, -1).float()
        rewards = b["rewards"].reshape(n, length).float()
        discounts = b["discounts"].reshape(n, length).float()
        behaviour_log_prob = b["extras"]["log_prob"].reshape(n, length).float()
        h = self.unroll(b)

        with torch.no_grad():
            target_now = self.target_actor.distribution(h["target_actor"][:, :length])
            log_ratio = target_now.log_prob(actions).sum(-1) - behaviour_log_prob   # [N, L]
            q_taken = self.target_critic.q(h["target_critic"][:, :length], actions)  # [N, L]
            target_next = self.target_actor.distribution(h["target_actor"][:, 1:])
            next_actions = target_next.sample((k,)).movedim(0, -2)               # [N, L, K, A]
            v_next = self.target_critic.q(h["target_critic"][:, 1:], next_actions).mean(-1)
            target = retrace_targets(q_taken, v_next, rewards, discounts, log_ratio, mask,
                                     self.gamma, self.retrace_lambda)          # [N, L]

        q = self.critic.q(h["critic"], actions)                                 # [N, L]
        critic_loss = td_critic_loss(q, target, mask)                          # eq. (9)

        dist = self.actor.distribution(h["actor"])                              # [N, L, A]
        samples = dist.rsample((k,)).movedim(0, -2)                             # [N, L, K, A]
        with frozen(self.critic):
            q_pi = self.critic.q(h["critic"].detach(), samples)                 # [N, L, K]
        policy_loss = svg0_policy_loss(q_pi, mask=mask.unsqueeze(-1),
                                       entropy=dist.entropy().sum(-1, keepdim=True),
                                       entropy_cost=self.entropy_cost)

        # Both gradients before either step: the SVG(0) graph holds the critic's weights.
        # The losses share no parameters (critic frozen in q_pi, h detached).
        optimise((critic_loss, policy_loss), self.critic_opt, self.actor_opt)
        self.count_update()
        return {"critic_loss": critic_loss.item(), "policy_loss": policy_loss.item(),
                "q_mean": float(masked_mean(q.detach(), mask)),
                "policy_std": float(masked_mean(dist.scale.detach().mean(-1), mask))}


class RL2Adaptation(AdaptsWithoutLearning):
    """RL² on held-out tasks: the meta-trained actor, frozen, adapts through its memory.

    One memory row per adaptation problem, reset by ``begin_tasks`` and carried
    across all of a problem's episodes. ``learns = False``: the adaptation loop
    takes no gradient step, and :meth:`update` raises if called. ``explore`` is
    ignored: RL² has no prior, every episode acts from its actor, sampling (the paper's
    RL²) or, with ``mean_actions``, at its mean.
    """

    PARTS = ("memory", "updates")

    def __init__(self, actor: RecurrentGaussianPolicy, obs_spec, action_dim: int,
                 num_problems: int, *, device: torch.device, mean_actions: bool = False):
        missing = [k for k in actor.inputs if k not in obs_spec]
        if missing:
            raise ValueError(f"RL²'s actor reads {missing}, which the held-out tasks' "
                             f"observation {sorted(obs_spec)} lacks")
        self.device, self.updates = device, 0
        self.actor = copy.deepcopy(actor).to(device).requires_grad_(False)
        self.acting = RecurrentActing(self.actor, action_dim, device=device,
                                      owner="RL2Adaptation", mean_actions=mean_actions)
        self.acting.begin_tasks(num_problems)

    @property
    def memory(self):
        return self.acting.memory


@gin.configurable
def rl2_adaptation(pretrained, obs_spec, action_dim: int, num_problems: int, *,
                   device: torch.device, mean_actions: bool = False) -> RL2Adaptation:
    """The 'RL²' adaptation variant: a frozen copy of the meta-trained actor, fresh memory.
    ``mean_actions = True`` acts at the actor's mean instead of sampling: a diagnostic of
    what the policy's σ costs the adapted return (docs/DECISIONS.md), not the paper's."""
    if not isinstance(pretrained, RL2):   # a bad binding: ValueError, as every other one
        raise ValueError(  # noqa: TRY004
            f"rl2_adaptation needs an RL2 pretrained agent (bind pretrain_and_adapt.agent = "
            f"@RL2), got {type(pretrained).__name__}")
    return RL2Adaptation(pretrained.actor, obs_spec, action_dim, num_problems, device=device,
                         mean_actions=mean_actions)
