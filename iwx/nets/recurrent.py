"""Recurrent actor and critic of RL² (Duan et al. 2016; Wang et al. 2016), paper §6 / appendix A.

Appendix A: "the actor and critic networks are 2-dimensional multi layer
perceptrons with ELU activations, followed by an LSTM". Each network here is

    RecurrentCore:  x_t = [obs parts (INPUTS), a_{t-1}, r_{t-1}, done_{t-1}]
                    → Torso (Linear → LayerNorm → tanh → 2 × [Linear → ELU])
                    → nn.LSTM (hidden size ``hidden_size``)  → h_t
    Actor:          h_t → Linear → N(μ, diag σ²)   (σ squashed as in GaussianPolicy,
                    μ = tanh(·) by default: RecurrentGaussianPolicy.bound_mean)
    Critic:         its own core → h_t;  [h_t, a] → Torso → Linear → Q(h_t, a)

Decisions (the paper is silent):
- The memory is the only way RL² can tell tasks apart: neither network sees
  a task id or a goal, only the observation parts ``inputs`` (%INPUTS) and
  the previous action, reward and done flag.
- The LSTM is torch's standard cell (tanh inside), so that cuDNN runs it; the
  appendix's "LSTM with elu activations" is read as the ELU MLP in front of it.
- The critic's action enters *after* its LSTM, in an MLP head on [h_t, a]:
  Q of K sampled actions at one state then costs one LSTM step, not K, and the
  critic's memory does not depend on the action it scores.
- The previous reward enters raw: the torso's normalising layer sits after
  its first linear map (iwx.nets.torso), which absorbs the reward's scale.

Shapes: obs[k] [N, T, ...], prev_action [N, T, A], prev_reward / prev_done [N, T],
state (h, c) each [N, H]  →  out [N, T, H], new state (h, c) each [N, H].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

import gin
from iwx.nets.gaussian_head import init_std_bias, squashed_gaussian
from iwx.nets.inputs import observation_dim, select
from iwx.nets.torso import Torso

State = tuple[torch.Tensor, torch.Tensor]   # (h [N, H], c [N, H])


@gin.configurable
class RecurrentCore(nn.Module):
    """Torso on [observation parts, previous action, reward, done] followed by an LSTM."""

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, *,
                 inputs: Sequence[str] = ("position",), hidden_size: int = 64, torso=Torso):
        super().__init__()
        if hidden_size < 1:
            raise ValueError(f"RecurrentCore.hidden_size must be >= 1, got {hidden_size}")
        self.inputs, self.action_dim, self.hidden_size = tuple(inputs), action_dim, hidden_size
        self.torso = torso(observation_dim(obs_spec, self.inputs) + action_dim + 2)
        self.lstm = nn.LSTM(self.torso.out_dim, hidden_size, batch_first=True)

    def initial_state(self, rows: int, device: torch.device | None = None) -> State:
        """The memory of a new task: zeros."""
        zeros = torch.zeros(rows, self.hidden_size, device=device)
        return zeros, zeros.clone()

    def forward(self, obs: Mapping[str, torch.Tensor], prev_action: torch.Tensor,
                prev_reward: torch.Tensor, prev_done: torch.Tensor,
                state: State) -> tuple[torch.Tensor, State]:
        """Unroll over T steps from ``state``. Returns out [N, T, H] and the state after step T."""
        x = torch.cat([select(obs, self.inputs), prev_action.float(),
                       prev_reward.float().unsqueeze(-1), prev_done.float().unsqueeze(-1)], -1)
        h, c = state
        out, (h, c) = self.lstm(self.torso(x), (h.unsqueeze(0).contiguous(),
                                               c.unsqueeze(0).contiguous()))
        return out, (h[0], c[0])


@gin.configurable
class RecurrentGaussianPolicy(nn.Module):
    """RL²'s actor π(a_t | h_t): a RecurrentCore and a diagonal Gaussian head.

    Samples are not clipped (the acting loop clips), as for GaussianPolicy.
    ``bound_mean``: μ = tanh(raw) in [−1, 1] (samples may still leave the box
    by σ). Without it SVG(0) drove μ far outside the action box, where every
    sample clips to the same action, the true Q is flat and the critic only
    extrapolates: on point_nav μ reached (0.8, −16.8) within 4k updates and no
    goal was found again (docs in gin/methods/rl2.gin).
    """

    def __init__(self, obs_spec, action_dim: int, *, core=RecurrentCore,
                 log_std_min: float = -3.0, log_std_max: float = 0.5,
                 init_std: float | None = 0.8, bound_mean: bool = True):
        super().__init__()
        self.bound_mean = bound_mean
        self.core = core(obs_spec, action_dim)
        self.head = nn.Linear(self.core.hidden_size, 2 * action_dim)
        self.action_dim = action_dim
        self.log_std_min, self.log_std_max = log_std_min, log_std_max
        init_std_bias(self.head, action_dim, init_std, log_std_min, log_std_max,
                      "RecurrentGaussianPolicy")

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.core.inputs

    def distribution(self, out: torch.Tensor) -> torch.distributions.Normal:
        """π(·|h) from the core's output h [..., H] -> a Normal over [..., A]."""
        mean, raw = self.head(out).chunk(2, dim=-1)
        if self.bound_mean:
            mean = torch.tanh(mean)
        return squashed_gaussian(mean, raw, self.log_std_min, self.log_std_max)


@gin.configurable
class RecurrentCritic(nn.Module):
    """RL²'s critic Q(h_t, a): its own RecurrentCore, then an MLP head on [h_t, a]."""

    task_key = None  # no privileged input: the task is in the memory

    def __init__(self, obs_spec, action_dim: int, *, core=RecurrentCore, head=Torso):
        super().__init__()
        self.core = core(obs_spec, action_dim)
        self.head = head(self.core.hidden_size + action_dim)
        self.out = nn.Linear(self.head.out_dim, 1)

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.core.inputs

    def q(self, out: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """out [..., H] and actions [..., A] -> Q [...]; or actions [..., K, A] -> Q [..., K]
        (K actions at one state share its h). Like every critic it sees the action
        clipped to the box the environment executes (``iwx.nets.inputs.state_action``)."""
        actions = actions.clamp(-1.0, 1.0)
        if actions.dim() == out.dim() + 1:
            out = out.unsqueeze(-2).expand(*actions.shape[:-1], out.shape[-1])
        return self.out(self.head(torch.cat([out, actions], -1))).squeeze(-1)
