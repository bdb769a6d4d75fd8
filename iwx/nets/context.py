"""PEARL*'s networks: the context encoder q(z | c) and the critic Q(s, a, z).

PEARL (Rakelly et al. 2019) infers a task from a *context* c, a set of
transitions (s, a, r, s') of that task, through a Gaussian latent z. The
paper's re-implementation (PEARL*, §6 and appendix A) encodes the context with
"a simple LSTM" followed by "a one-dimensional stochastic layer encoding a
Gaussian distribution" of dimension 5 (appendix A.2). Here:

    e_t   = Torso([s_t, a_t, r_t, s_{t+1}])          one row per transition
    h_t   = LSTM(e_t, h_{t-1})                        in time order, oldest first
    (μ, log σ) = Linear(h_T)                          q(z | c) = N(μ, diag σ²)

Decisions (where the paper is silent):
- Padded steps (mask = 0) leave the LSTM state as it was, wherever they sit
  in the window, so a context padded at its end (a short episode) or in its
  middle gives the posterior of its real steps only.
- An empty context (no real step) gives exactly the prior N(0, I): μ = 0,
  log σ = 0. This is where every trial starts (PEARL's first episode acts
  from the prior).
- log σ is clamped into [log_std_min, log_std_max] = [-5, 2] so that the
  bottleneck's KL cannot overflow; inside the range it is the linear output.
- The encoder sees the observation parts ``inputs`` only (never a task id or
  goal: PEARL* must infer the task from rewards).
- ``reward_key``: the context's r_t is ``next_obs[reward_key]`` instead of the reward the
  learner trains on. PEARL's code meta-trains sparse navigation on the dense reward
  and gives the encoder the sparse one (its ``sparse_rewards`` option), so a context
  looks the same in meta-training and in adaptation, where only the sparse reward
  exists. The environment must emit that key (``PointNavVec.emit_sparse_reward``).

Shapes: obs[k] / next_obs[k] [n, L, ...], actions [n, L, A], rewards [n, L],
mask [n, L] -> mean, log_std [n, Z].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn

from iwx.nets.inputs import observation_dim, select, state_action
from iwx.nets.torso import Torso


@gin.configurable
class ContextEncoder(nn.Module):
    """q(z | c) = N(μ(c), diag σ(c)²) from an LSTM over the context's transitions."""

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, *,
                 inputs: Sequence[str] = ("position",), latent_dim: int = 5,
                 lstm_size: int = 64, torso=Torso, log_std_min: float = -5.0,
                 log_std_max: float = 2.0, reward_key: str | None = None):
        super().__init__()
        if latent_dim < 1:
            raise ValueError(f"ContextEncoder.latent_dim must be >= 1, got {latent_dim}")
        if not log_std_min < 0.0 < log_std_max:
            raise ValueError(f"ContextEncoder needs log_std_min < 0 < log_std_max (the prior "
                             f"N(0, I) must be representable), got {log_std_min}, {log_std_max}")
        self.inputs, self.latent_dim, self.action_dim = tuple(inputs), latent_dim, action_dim
        obs_dim = observation_dim(obs_spec, self.inputs)
        self.torso = torso(2 * obs_dim + action_dim + 1)
        self.lstm = nn.LSTM(self.torso.out_dim, lstm_size, batch_first=True)
        self.out = nn.Linear(lstm_size, 2 * latent_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        if reward_key is not None and reward_key not in obs_spec:
            raise ValueError(f"ContextEncoder.reward_key = {reward_key!r} but the environment "
                             f"observes only {sorted(obs_spec)} (PointNavVec emits "
                             "'sparse_reward' with PointNavVec.emit_sparse_reward = True)")
        self.reward_key = reward_key

    @property
    def context_keys(self) -> tuple[str, ...]:
        """The observation parts a context must keep: ``inputs`` and ``reward_key``."""
        extra = () if self.reward_key in (None, *self.inputs) else (self.reward_key,)
        return self.inputs + extra

    def forward(self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor,
                rewards: torch.Tensor, next_obs: Mapping[str, torch.Tensor],
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, log σ) of q(z | c), each [n, Z]. See the module docstring for shapes."""
        valid = mask > 0                                                   # [n, L]
        if self.reward_key is not None:
            rewards = next_obs[self.reward_key]                            # r_t rides on s_t+1
        x = torch.cat([select(obs, self.inputs), actions.float(), rewards.float()[..., None],
                       select(next_obs, self.inputs)], dim=-1)            # [n, L, D]
        x = torch.where(valid[..., None], x, torch.zeros_like(x))          # no junk from padding
        e = self.torso(x)                                                  # [n, L, H]
        n = e.shape[0]
        size = self.lstm.hidden_size
        h = e.new_zeros(1, n, size)
        c = e.new_zeros(1, n, size)
        # Steps after the last real step of every row cannot change any state: skip them.
        steps = int(valid.any(0).nonzero().max().item()) + 1 if valid.any() else 0
        if steps and bool(valid[:, :steps].all()):
            _, (h, c) = self.lstm(e[:, :steps], (h, c))                   # no padding: one call
        else:
            for t in range(steps):
                _, (h_new, c_new) = self.lstm(e[:, t:t + 1], (h, c))
                keep = valid[None, :, t, None]                             # [1, n, 1]
                h = torch.where(keep, h_new, h)
                c = torch.where(keep, c_new, c)
        mean, log_std = self.out(h[0]).chunk(2, dim=-1)                    # [n, Z] each
        log_std = log_std.clamp(self.log_std_min, self.log_std_max)
        empty = ~valid.any(-1, keepdim=True)                               # [n, 1]
        mean = torch.where(empty, torch.zeros_like(mean), mean)
        log_std = torch.where(empty, torch.zeros_like(log_std), log_std)
        return mean, log_std


def context_transitions(context: Mapping) -> tuple:
    """A replay context (``batch["context"]``: obs [n, 1, L+1, ...], actions [n, 1, L, A],
    rewards / mask [n, 1, L]) as the encoder's arguments (obs, actions, rewards, next_obs,
    mask), each [n, L, ...]."""
    obs = {k: v[:, 0] for k, v in context["obs"].items()}
    return ({k: v[:, :-1] for k, v in obs.items()}, context["actions"][:, 0],
            context["rewards"][:, 0], {k: v[:, 1:] for k, v in obs.items()},
            context["mask"][:, 0])


def rows_like(z: torch.Tensor, dims: int) -> torch.Tensor:
    """z [n, Z] -> [n, 1, ..., 1, Z] with ``dims`` axes in all, to broadcast per leading row."""
    return z.reshape(z.shape[0], *([1] * (dims - 2)), z.shape[-1])


@gin.configurable
class ContextCritic(nn.Module):
    """Q(s, a, z) = Linear(Torso([s, a, z])): one critic for every task, told the task by z.

    obs [n, *rest, ...], actions [n, *rest, A] (or [n, *rest, K, A]), z [n, Z] (one latent
    per leading row) -> Q [n, *rest] (or [n, *rest, K]).
    """

    task_key = None  # no privileged input: the task is z

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int,
                 latent_dim: int, *, inputs: Sequence[str] = ("position",), torso=Torso):
        super().__init__()
        self.inputs, self.latent_dim = tuple(inputs), latent_dim
        self.torso = torso(observation_dim(obs_spec, self.inputs) + action_dim + latent_dim)
        self.out = nn.Linear(self.torso.out_dim, 1)

    def forward(self, obs, actions, z):
        x = state_action(obs, self.inputs, actions)                        # [n, *rest, S + A]
        z = rows_like(z, x.dim()).expand(*x.shape[:-1], self.latent_dim)
        return self.out(self.torso(torch.cat([x, z], dim=-1))).squeeze(-1)
