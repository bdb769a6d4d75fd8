"""The importance-weighted policy (eqs. 5–6); its soft TD target is iwx.ops.td.soft_td_target.

Shared by IWPL (training) and IWPA (adaptation). The plain functions need only
``prior.sample`` (any π0: GaussianPrior, MixturePrior); the fast ones need a single
Gaussian's ``prior.mean_std``.
"""

from __future__ import annotations

import numpy as np
import torch

from iwx.nets.prior import clipped_samples
from iwx.ops.importance import importance_weights
from iwx.ops.policy import samples_log_prob


def score_prior_samples(prior, critic, obs, task, num_samples: int):
    """Draw K actions from π0 at every state and score them with the critic.

    obs [n, *rest, ...] -> actions [n, *rest, K, A], log π0 [n, *rest, K], Q [n, *rest, K].
    """
    actions, log_prob = prior.sample(obs, num_samples)
    q = critic(obs, actions, task)
    return actions, log_prob, q


@torch.no_grad()
def importance_weighted_action(prior, critic, obs, task, alpha: float, num_samples: int):
    """Sample â ~ Cat(q̂) over K actions drawn from π0 (eqs. 5–6). obs [B, ...] -> [B, A]."""
    actions, _, q = score_prior_samples(prior, critic, obs, task, num_samples)
    return pick(actions,
                torch.distributions.Categorical(probs=importance_weights(q, alpha)).sample())


@torch.no_grad()
def prior_action(prior, obs):
    """One action from π0 (exploration episodes of IWPA). obs [B, ...] -> [B, A]."""
    actions, _ = prior.sample(obs, 1)
    return actions.squeeze(-2)


# -- the fast acting path: the same draws from plain tensor ops ----------------------------
# No Distribution objects (their argument checks cost more than the arithmetic at acting
# batch sizes) and no log-densities (acting does not need them). Call under torch.no_grad().
# ``ImportanceWeightedActing.fast`` chooses this path or the plain one above.

def categorical_index(weights: torch.Tensor) -> torch.Tensor:
    """k ~ Cat(weights) per row by an exponential race: k = argmax_k w_k / E_k, E_k ~ Exp(1)
    from torch's global RNG (P(k) = w_k / Σ w). [..., K] -> [...] (int64).

    This is what ``torch.multinomial(w, 1)`` (hence ``Categorical(probs=w).sample()``)
    computes for one draw per row, without its argument checks (host syncs on a GPU):
    the same E, the same k. Unlike them it does not reject NaN weights (argmax picks a
    NaN entry)."""
    race = torch.empty_like(weights).exponential_()
    return (weights / race).argmax(-1)


def pick(actions: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The index-th of K actions per row. actions [..., K, A], index [...] -> [..., A]."""
    return actions.gather(-2, index[..., None, None].expand(*index.shape, 1,
                                                           actions.shape[-1])).squeeze(-2)


def fast_importance_weighted_action(prior, critic, obs, task, alpha: float,
                                    num_samples: int) -> torch.Tensor:
    """:func:`importance_weighted_action` from π0's μ, σ (``prior.mean_std``): the same K
    samples, Q and softmax weights for the same seed. obs [B, ...] -> [B, A]."""
    mean, std = prior.mean_std(obs)
    actions = clipped_samples(mean, std, num_samples)           # [B, K, A]
    q = critic(obs, actions, task)                                    # [B, K]
    return pick(actions, categorical_index(importance_weights(q, alpha)))


def fast_prior_action(prior, obs) -> torch.Tensor:
    """:func:`prior_action` from π0's μ, σ: the same sample. obs [B, ...] -> [B, A]."""
    mean, std = prior.mean_std(obs)
    return clipped_samples(mean, std, 1).squeeze(-2)


def reparameterised_samples(dist: torch.distributions.Normal, num_samples: int,
                            noise: torch.Tensor | None = None):
    """K samples a_k = μ + σ ε_k per state and their log-densities.

    dist [..., A] -> actions [..., K, A], log π(a_k|s) [..., K]. ``noise`` (ε, [..., K, A])
    may be given to fix the draw (tests). Gradients flow into μ and σ through a_k.
    """
    mean, std = dist.loc.unsqueeze(-2), dist.scale.unsqueeze(-2)       # [..., 1, A]
    if noise is None:
        noise = torch.randn((*mean.shape[:-2], num_samples, mean.shape[-1]), device=mean.device)
    actions = mean + std * noise
    return actions, samples_log_prob(dist.loc, dist.scale, actions)


@torch.no_grad()
def gaussian_action(net, obs) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One unclipped action per row from ``net.distribution(obs)`` and its log-density
    (the behaviour density Retrace needs). obs [B, ...] -> [B, A], {"log_prob": [B]}."""
    dist = net.distribution(obs)
    actions = dist.sample()
    log_prob = dist.log_prob(actions).sum(-1)
    return (actions.cpu().numpy().astype(np.float32),
            {"log_prob": log_prob.cpu().numpy().astype(np.float32)})
