"""K actions per state scored through a critic's MLP in one fused pass (no gradient).

Every learner that scores K samples per state (IWPL's target and importance weights,
IWPA's target, MPO's E-step, DISTRAL's soft value) and the importance-weighted acting
rule evaluate Q(s, a_k) for k = 1..K at every state s. Written plainly, the state is
repeated K times, concatenated with the actions and pushed through the MLP as N·K
rows, and every element-wise step (LayerNorm, tanh, ELU) makes a fresh [N·K, H]
tensor that does not fit in any cache. Here the same numbers are computed:

- **first layer split** (eq. 12's ψ(s, a) on [s; a]):
  W [s; a] + b = (W_s s + b) + W_a a: the state part once per state [N, H], the
  action part per sample [N, K, H];
- **head folded into the task weights**: ψᵀw = (W_o h + b_o)ᵀ w = h·(W_oᵀ w) + b_oᵀ w,
  so the last matmul to ψ ∈ R^d and the product with w become one dot with
  v = W_oᵀ w [H] per row (for a per-problem ensemble, the member's head);
- **in blocks of about ``chunk_rows`` (state, sample) rows**: every intermediate stays
  in the core's cache and is updated in place (tanh as the torso computes it:
  2σ(2x) − 1 with ``fast_tanh``, iwx.nets.torso.sigmoid_tanh).

Only for evaluation without gradient: a caller that differentiates Q (SVG(0) through
the action) takes the plain path. :func:`wants_fused` says which path applies.
Shapes: ``state`` [N, S] (the observation parts the critic sees), ``actions``
[N, K, A] (clipped to [-1, 1] by the caller, as ``iwx.nets.inputs.state_action``
does), ``head`` v [N, H], ``bias`` c [N] -> Q [N, K].
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from iwx.nets.torso import tanh

CHUNK_ROWS = 4096   # (state, sample) rows per block: [4096, 128] float32 is 2 MiB


def wants_fused(enabled: bool, state: torch.Tensor, actions: torch.Tensor) -> bool:
    """True when ``actions`` [..., K, A] hold K samples per state [..., S], the fused path is
    bound on, and nothing will be differentiated."""
    return enabled and actions.dim() == state.dim() + 1 and not torch.is_grad_enabled()


def _mlp_block(h: torch.Tensor, norm: torch.nn.LayerNorm | None, norm_weight, norm_bias,
               hidden: list[tuple[torch.Tensor, torch.Tensor]], batched: bool,
               fast_tanh: bool) -> torch.Tensor:
    """LayerNorm → tanh → [Linear → ELU]* on first-layer pre-activations h [..., R, H]
    (``batched``: weights [M, in, out] per member, h [M, R, H]), in place where it can."""
    width = h.shape[-1]
    if batched:
        h = F.layer_norm(h, (width,)).mul_(norm_weight).add_(norm_bias)
    else:
        h = F.layer_norm(h, (width,), norm.weight, norm.bias, norm.eps)
    h = tanh(h, fast_tanh, inplace=True)
    for weight, bias in hidden:
        h = torch.baddbmm(bias, h, weight) if batched else F.linear(h, weight, bias)
        h = F.elu(h, inplace=True)
    return h


def torso_scores(torso, state: torch.Tensor, actions: torch.Tensor, head: torch.Tensor,
                 bias: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
    """Q [N, K] = v_n · Torso([s_n; a_nk]) + c_n for a shared :class:`~iwx.nets.torso.Torso`.

    state [N, S], actions [N, K, A], head v [N, H], bias c [N].
    """
    first, norm, layers = torso.parts()
    hidden = [(layer.weight, layer.bias) for layer in layers]
    s_dim = state.shape[-1]
    n, k = actions.shape[:2]
    state_part = F.linear(state, first.weight[:, :s_dim], first.bias)        # [N, H]
    action_weight = first.weight[:, s_dim:]                                 # [H, A]
    out = torch.empty(n, k, device=state.device, dtype=state.dtype)
    step = max(1, (chunk_rows or CHUNK_ROWS) // max(k, 1))
    for i in range(0, n, step):
        j = min(n, i + step)
        h = F.linear(actions[i:j], action_weight).add_(state_part[i:j, None])  # [n, K, H]
        h = _mlp_block(h, norm, None, None, hidden, batched=False,
                       fast_tanh=torso.fast_tanh)
        out[i:j] = h.mul_(head[i:j, None]).sum(-1).add_(bias[i:j, None])
    return out


def ensemble_scores(torso, state: torch.Tensor, actions: torch.Tensor, head: torch.Tensor,
                    bias: torch.Tensor, members: torch.Tensor | None = None,
                    chunk_rows: int | None = None) -> torch.Tensor:
    """Q [M, R, K] for a stacked :class:`~iwx.nets.torso.EnsembleTorso`, member m on row m.

    state [M, R, S], actions [M, R, K, A], head v [M, H], bias c [M]; ``members`` [M]
    picks which member each row is (None: row m is member m).
    """
    def pick(p):
        return p if members is None else p[members]

    first_w, first_b = pick(torso.first.weight), pick(torso.first.bias)   # [M, in, H], [M, 1, H]
    norm_w, norm_b = pick(torso.norm.weight), pick(torso.norm.bias)       # [M, 1, H]
    hidden = [(pick(layer.weight), pick(layer.bias)) for layer in torso.layers]
    s_dim = state.shape[-1]
    m, r, k = actions.shape[:3]
    state_part = torch.baddbmm(first_b, state, first_w[:, :s_dim])         # [M, R, H]
    action_weight = first_w[:, s_dim:]                                    # [M, A, H]
    out = torch.empty(m, r, k, device=state.device, dtype=state.dtype)
    step = max(1, (chunk_rows or CHUNK_ROWS) // max(r * k, 1))
    for i in range(0, m, step):
        j = min(m, i + step)
        h = torch.bmm(actions[i:j].reshape(j - i, r * k, -1), action_weight[i:j])
        h = h.view(j - i, r, k, -1).add_(state_part[i:j, :, None]).view(j - i, r * k, -1)
        h = _mlp_block(h, None, norm_w[i:j], norm_b[i:j],
                       [(w[i:j], b[i:j]) for w, b in hidden], batched=True,
                       fast_tanh=torso.fast_tanh)
        q = torch.bmm(h, head[i:j, :, None]).view(j - i, r, k)
        out[i:j] = q.add_(bias[i:j, None, None])
    return out
