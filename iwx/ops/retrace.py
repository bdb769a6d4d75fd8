"""Retrace targets for the critic of the parametric baselines (RS(0), DISTRAL, MPO).

The paper's RS(0) is SVG(0) (Heess et al. 2015) whose Q-function is learned with
Retrace (Munos et al., "Safe and Efficient Off-Policy Reinforcement Learning",
2016) over replayed chunks, as in Riedmiller et al. 2018 (paper §6, refs [35–37]).

Layout of a chunk of T steps (the replay layout, ``iwx.replay``): index t holds
the transition (s_t, a_t, r_t, d_t, s_{t+1}); every argument is [..., T]:

    q_taken[t]    Q(s_t, a_t)                     (target network)
    v_next[t]     V(s_{t+1}) = E_{a'~π} Q(s_{t+1}, a')   (or the soft value
                  E_π[Q − α log(π/π0)] for DISTRAL / MPO + DISTRAL, eq. (3))
    rewards[t]    r_t
    discounts[t]  d_t ∈ [0, 1]; 0 when s_{t+1} is terminal
    log_ratio[t]  log π(a_t|s_t) − log μ(a_t|s_t)  (π the current/target policy,
                  μ the behaviour policy that acted)
    mask[t]       1 for a real step, 0 for padding past the end of an episode

Recursion, computed from t = T−1 down to 0:

    Q_ret(t) = r_t + γ d_t [ V(s_{t+1}) + c_{t+1} (Q_ret(t+1) − Q(s_{t+1}, a_{t+1})) ]
    c_{t+1}  = λ · min(1, exp(log_ratio[t+1])) · mask[t+1]

i.e. the trace at step t+1 uses ``log_ratio[..., t+1]``, the ratio of the
*next* action a_{t+1} at s_{t+1}. ``log_ratio[..., 0]`` is therefore never used
(Q(s_0, a_0) is learned for the action taken, whatever its probability).
The last step bootstraps from V(s_T) only: Q_ret(T−1) = r_{T−1} + γ d_{T−1} V(s_T).
The trace is cut where d_t = 0 (episode end: nothing after t enters Q_ret(t))
and where mask[t+1] = 0 (padding: step t bootstraps from V(s_{t+1}) only).
Targets at masked steps are 0 (the critic loss masks them anyway); values at
padded steps never reach a real step's target, even when they are inf or NaN.
"""

from __future__ import annotations

import torch


def truncated_importance_weights(log_ratio: torch.Tensor,
                                 lam: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Retrace traces c = λ · min(1, π/μ) from log π − log μ, elementwise.

    ``lam`` is a float or a tensor broadcastable to ``log_ratio`` (λ = 0 gives
    one-step TD targets, λ = 1 full Retrace).
    Computed as λ · exp(min(log_ratio, 0)), which never overflows.
    """
    return lam * torch.exp(torch.clamp(log_ratio, max=0.0))


@torch.no_grad()
def retrace_targets(q_taken: torch.Tensor, v_next: torch.Tensor, rewards: torch.Tensor,
                    discounts: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor,
                    gamma: float, lam: float | torch.Tensor = 1.0) -> torch.Tensor:
    """Q_ret(s_t, a_t) for every step of a chunk (module docstring).  [..., T] -> [..., T].

    Runs under ``torch.no_grad``: the targets are constants (no gradient reaches
    any input), to be regressed on by Q(s_t, a_t) of the online critic.
    """
    shapes = {t.shape for t in (q_taken, v_next, rewards, discounts, log_ratio, mask)}
    if len(shapes) != 1:
        raise ValueError(f"retrace_targets: all inputs must share one shape [..., T], "
                         f"got {sorted(tuple(s) for s in shapes)}")
    valid = mask > 0                                             # [..., T]
    c = truncated_importance_weights(log_ratio, lam)             # [..., T]; c[t] = c_t
    n = q_taken.shape[-1]
    targets = torch.zeros_like(q_taken)                          # [..., T]
    # Q_ret(T-1): bootstrap from V(s_T) only
    ret = rewards[..., n - 1] + gamma * discounts[..., n - 1] * v_next[..., n - 1]
    targets[..., n - 1] = ret
    for t in range(n - 2, -1, -1):
        # torch.where, not a product, so that non-finite values on padding cannot leak
        correction = torch.where(valid[..., t + 1], c[..., t + 1] * (ret - q_taken[..., t + 1]),
                                 torch.zeros_like(ret))
        ret = rewards[..., t] + gamma * discounts[..., t] * (v_next[..., t] + correction)
        targets[..., t] = ret
    return torch.where(valid, targets, torch.zeros_like(targets))
