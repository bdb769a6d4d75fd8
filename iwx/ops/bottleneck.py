"""PEARL*'s stochastic context bottleneck (Rakelly et al. 2019, "Efficient
Off-Policy Meta-Reinforcement Learning via Probabilistic Context Variables";
paper §6 and appendix A: an LSTM encoder followed by a Gaussian layer of
dimension 5, whose KL to N(0, I) is weighted by the "bottleneck cost").

Shapes: ``mean`` and ``log_std`` are [..., Z] (Z = 5 in the paper).
"""

from __future__ import annotations

import torch


def gaussian_latent_kl(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) = ½ Σ_z (μ² + σ² − 1 − 2 log σ).  [..., Z] -> [...]."""
    return 0.5 * (mean ** 2 + torch.exp(2.0 * log_std) - 1.0 - 2.0 * log_std).sum(-1)


def reparameterised_latent(mean: torch.Tensor, log_std: torch.Tensor,
                           generator: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + exp(log σ) · ε with ε ~ N(0, I) of ``mean``'s shape, dtype and device.

    Gradients flow into ``mean`` (∂z/∂μ = 1) and ``log_std`` (∂z/∂log σ = σ ε).
    ``generator`` (on ``mean``'s device) makes ε reproducible.
    """
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(log_std) * eps
