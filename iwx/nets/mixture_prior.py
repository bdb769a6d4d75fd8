"""A mixture-of-Gaussians behaviour prior π0 (issue 18): ``IWPL.prior = @MixturePrior``.

    π0(a|s) = Σ_m π_m(s) N(a; μ_m(s), diag σ_m(s)²),   m = 1 .. M (``components``)

with mixture weights π(s) = softmax(logits(s)). Logits, means and σ's come from one
linear head on the same torso as :class:`iwx.nets.prior.GaussianPrior`'s, and each σ_m
is squashed into [exp(log_std_min), exp(log_std_max)] as GaussianPrior's is. Why: on
sparse 2D navigation a single Gaussian that sees only the position cannot spread over
the half circle of goals (docs/DECISIONS.md); a mixture can put a mode on each
direction that paid off in training.

What IWPL / IWPA do with π0 is unchanged: the importance weights softmax(Q/α) over K
samples of π0 and eq. (11)'s loss −Σ_k w_k log π0(a_k|s) only need samples and
log-densities, which :meth:`MixturePrior.sample` and :meth:`MixturePrior.log_prob` give
with GaussianPrior's conventions: actions live in [-1, 1]^A, samples are clipped to
that box and log-densities are evaluated at the clipped points.

MixturePrior deliberately has no ``mean_std`` and no ``distribution``: code that needs
a single Gaussian π0 (the fast acting path, DISTRAL's analytic KL, MPO, parametric
adaptation) looks for them, and either takes its prior-agnostic path or refuses the
prior at construction (:func:`iwx.nets.prior.require_gaussian_prior`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import gin
import torch
from torch import nn

from iwx.nets.gaussian_head import raw_std_for, squashed_std
from iwx.nets.inputs import observation_dim, select
from iwx.nets.prior import GaussianPrior
from iwx.nets.torso import Torso
from iwx.ops.policy import samples_log_prob

# The settings a MixturePrior takes from GaussianPrior when they are not bound on it.
INHERITED = ("inputs", "log_std_min", "log_std_max", "init_std")


# -- the mixture's math: pure functions of tensors ---------------------------------------
def mixture_log_prob(logits: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                     actions: torch.Tensor) -> torch.Tensor:
    """log π0(a_k|s) = logsumexp_m [ log softmax(logits)_m + log N(a_k; μ_m, diag σ_m²) ].

    logits [..., M], μ, σ [..., M, A], a [..., K, A] -> [..., K] (every sample's density
    under its state's mixture). Gradients flow into all four arguments.
    """
    log_weights = torch.log_softmax(logits, dim=-1)                           # [..., M]
    log_normal = samples_log_prob(mean, std, actions.unsqueeze(-3))           # [..., M, K]
    return torch.logsumexp(log_weights.unsqueeze(-1) + log_normal, dim=-2)


def mixture_components(logits: torch.Tensor, num_samples: int) -> torch.Tensor:
    """K component indices c_k ~ Cat(softmax(logits)) per state, by an exponential race:
    c_k = argmax_m π_m / E_km, E_km ~ Exp(1) from torch's global RNG (P(c_k = m) = π_m).
    logits [..., M] -> [..., K] (int64)."""
    weights = torch.softmax(logits, dim=-1).unsqueeze(-2)                     # [..., 1, M]
    race = torch.empty((*logits.shape[:-1], num_samples, logits.shape[-1]),
                       device=logits.device).exponential_()
    return (weights / race).argmax(-1)


def mixture_samples(logits: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                    num_samples: int) -> torch.Tensor:
    """K actions a_k = clip(μ_{c_k} + σ_{c_k} ε_k, -1, 1) per state: first the components
    c_k (:func:`mixture_components`), then ε_k ~ N(0, I), both from torch's global RNG.
    logits [..., M], μ, σ [..., M, A] -> [..., K, A]. Not reparameterised (the choice of
    component is discrete): call it on detached parameters."""
    component = mixture_components(logits, num_samples)                       # [..., K]
    index = component.unsqueeze(-1).expand(*component.shape, mean.shape[-1])  # [..., K, A]
    loc, scale = mean.gather(-2, index), std.gather(-2, index)               # [..., K, A]
    noise = torch.randn(loc.shape, device=loc.device)
    return noise.mul_(scale).add_(loc).clamp_(-1.0, 1.0)


def spread_means(components: int, action_dim: int) -> torch.Tensor:
    """Initial component means [M, A]: a Latin-square layout over the action box.

    Each dimension's M values are the centres of M equal strata of [-1, 1],
    c_j = −1 + (2j + 1)/M, and component m takes stratum (m + d·⌊M/2⌋) mod M in
    dimension d. Every dimension's marginal is covered evenly and no two components
    share a value in any dimension (distinct components), e.g. M = 4, A = 2: (−¾, ¼),
    (−¼, ¾), (¼, −¾), (¾, −¼) — the corners of a tilted square. M = 1 gives 0.
    """
    centres = -1.0 + (2 * torch.arange(components, dtype=torch.float64) + 1) / components
    m = torch.arange(components).unsqueeze(-1)                                # [M, 1]
    d = torch.arange(action_dim).unsqueeze(0)                                 # [1, A]
    return centres[(m + d * (components // 2)) % components].float()


def gaussian_prior_settings() -> dict:
    """GaussianPrior's ``inputs``, ``log_std_min``, ``log_std_max``, ``init_std`` as a
    GaussianPrior built here (in the current gin scope) would get them: its gin bindings,
    else its signature's defaults."""
    defaults = {name: p.default
                for name, p in inspect.signature(GaussianPrior.__init__).parameters.items()
                if name in INHERITED}
    bound = gin.get_bindings("GaussianPrior")
    return {name: bound.get(name, defaults[name]) for name in INHERITED}


@gin.configurable
class MixturePrior(nn.Module):
    """π0(a|s) = Σ_m π_m(s) N(μ_m(s), diag σ_m(s)²), M = ``components`` Gaussians.

    ``inputs``, ``log_std_min``, ``log_std_max``, ``init_std``: as GaussianPrior's. Left
    unbound (None) each is GaussianPrior's own value — its gin binding (the task files
    bind it from INPUTS, LOG_STD_MIN, LOG_STD_MAX, INIT_STD in gin/common/protocol.gin),
    else its default — so the one binding ``IWPL.prior = @MixturePrior`` swaps the
    prior's family and nothing else (the prior still sees only the task's %INPUTS:
    information asymmetry). Bind ``MixturePrior.<name>`` to differ.
    ``components``: M >= 1 (M = 1 is a GaussianPrior's density, with another head).

    Initialisation (at zero torso features; the head's weights keep torch's default
    init): equal mixture weights (logit biases 0), every σ_m = ``init_std`` (wide: the
    first episodes explore with π0 alone and rewards are sparse), and component means'
    biases spread over the action box by :func:`spread_means`. Why spread: components
    that start (nearly) equal get (nearly) equal gradients from eq. (11) and would move
    together — a mixture fitted from a symmetric start stays near that symmetric
    point for a long time; distinct starts let each component claim its own region,
    and with σ_m = init_std the mixture starts at least as wide as GaussianPrior's π0.
    The layout is deterministic (no draw from the RNG beyond torch's default layer
    init), so it is the same for every seed.

    Head layout: [M logits | M·A means | M·A raw σ's].
    """

    def __init__(self, obs_spec: Mapping[str, tuple[int, ...]], action_dim: int, *,
                 inputs: Sequence[str] | None = None, torso=Torso,
                 log_std_min: float | None = None, log_std_max: float | None = None,
                 init_std: float | None = None, components: int = 4):
        super().__init__()
        if not (isinstance(components, int) and components >= 1):
            raise ValueError(f"MixturePrior.components must be an integer >= 1, "
                             f"got {components!r}")
        given = {"inputs": inputs, "log_std_min": log_std_min, "log_std_max": log_std_max,
                 "init_std": init_std}
        if any(value is None for value in given.values()):
            inherited = gaussian_prior_settings()
            given = {k: inherited[k] if v is None else v for k, v in given.items()}
        if not given["log_std_min"] < given["log_std_max"]:
            raise ValueError(f"MixturePrior: log_std_min={given['log_std_min']} must be below "
                             f"log_std_max={given['log_std_max']}")
        self.inputs = tuple(given["inputs"])
        self.log_std_min, self.log_std_max = given["log_std_min"], given["log_std_max"]
        self.init_std = given["init_std"]
        self.action_dim, self.components = action_dim, components
        self.torso = torso(observation_dim(obs_spec, self.inputs))
        m, a = components, action_dim
        self.head = nn.Linear(self.torso.out_dim, m * (1 + 2 * a))
        with torch.no_grad():
            self.head.bias[:m] = 0.0                                          # equal weights
            self.head.bias[m:m + m * a] = spread_means(m, a).reshape(-1)
            if self.init_std is not None:
                self.head.bias[m + m * a:] = raw_std_for(self.init_std, self.log_std_min,
                                                         self.log_std_max, "MixturePrior")

    def mixture(self, obs: Mapping[str, torch.Tensor]):
        """The mixture at each state: logits [..., M], μ [..., M, A], σ [..., M, A]."""
        out = self.head(self.torso(select(obs, self.inputs)))
        m, a = self.components, self.action_dim
        logits, mean, raw = out.split((m, m * a, m * a), dim=-1)
        shape = (*out.shape[:-1], m, a)
        return (logits, mean.reshape(shape),
                squashed_std(raw.reshape(shape), self.log_std_min, self.log_std_max))

    def sample(self, obs: Mapping[str, torch.Tensor], num_samples: int):
        """K actions per state, clipped to [-1, 1]. Returns actions [..., K, A] (no gradient:
        not reparameterised) and log π0(a_k|s) [..., K] at the clipped actions (with
        gradients into π0's parameters when enabled)."""
        logits, mean, std = self.mixture(obs)
        actions = mixture_samples(logits.detach(), mean.detach(), std.detach(), num_samples)
        return actions, mixture_log_prob(logits, mean, std, actions)

    def log_prob(self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor) -> torch.Tensor:
        """log π0(a|s) for actions [..., K, A] given states [...]. -> [..., K]."""
        return mixture_log_prob(*self.mixture(obs), actions)

    def log_prob_and_std(self, obs: Mapping[str, torch.Tensor], actions: torch.Tensor):
        """:meth:`log_prob` [..., K] and the components' σ_m(s) [..., M, A] from one forward
        pass (IWPL's update: eq. (11) and its ``prior_std`` metric)."""
        logits, mean, std = self.mixture(obs)
        return mixture_log_prob(logits, mean, std, actions), std
