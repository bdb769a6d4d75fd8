"""Acting by importance weighting over prior samples (eqs. 5–6): IWPL and IWPA."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gin
import numpy as np
import torch

from iwx.agents.acting import (fast_importance_weighted_action, fast_prior_action,
                               importance_weighted_action, prior_action)
from iwx.agents.base import ActingPart, obs_task, to_torch


@dataclasses.dataclass(frozen=True)
class FixedAlpha:
    """A temperature α that does not learn (IWPA's, or a learner's as it was published)."""

    alpha: float


@gin.configurable
class ImportanceWeightedActing(ActingPart):
    """â ~ Cat(softmax(Q(s, a_k) / α)) over K actions a_k ~ π0(·|s); one π0 sample when
    ``explore``. obs [B, ...] -> actions [B, A] in [-1, 1] (π0's samples are clipped).

    ``temperature``: anything with ``.alpha``, read at every act (a learner passes its
    own, so a learned α acts at once). ``task_key``: where the critic's task row comes
    from in the observation (None: the critic's rows are its members, as in IWPA).

    ``fast`` (default True; bind ``ImportanceWeightedActing.fast = False`` for the plain
    path): act from π0's μ, σ with plain tensor ops (no Distribution objects, no
    log-densities, one no_grad region), needs a prior with ``mean_std``; any other prior
    (a MixturePrior) acts on the plain path, through ``prior.sample``. Same random
    draws from torch's global RNG, hence the same actions for the same seed
    (tests/test_fast_acting.py).
    """

    NETWORKS = ("prior", "critic")

    def __init__(self, prior: torch.nn.Module, critic: torch.nn.Module, temperature,
                 num_samples: int, *, task_key: str | None, device: torch.device,
                 fast: bool = True):
        self.prior, self.critic, self.temperature = prior, critic, temperature
        self.num_samples, self.task_key, self.device = num_samples, task_key, device
        self.fast = fast

    def act(self, obs, explore: bool = False) -> np.ndarray:
        if self.fast and hasattr(self.prior, "mean_std"):
            with torch.no_grad():
                obs = to_torch(obs, self.device)
                if explore:
                    actions = fast_prior_action(self.prior, obs)
                else:
                    actions = fast_importance_weighted_action(
                        self.prior, self.critic, obs, obs_task(obs, self.task_key),
                        self.temperature.alpha, self.num_samples)
            return actions.cpu().numpy()
        obs = to_torch(obs, self.device)
        if explore:
            return prior_action(self.prior, obs).cpu().numpy()
        return importance_weighted_action(self.prior, self.critic, obs,
                                          obs_task(obs, self.task_key),
                                          self.temperature.alpha, self.num_samples).cpu().numpy()

    def params(self) -> dict[str, Any]:
        return {**super().params(), "alpha": float(self.temperature.alpha)}

    def load_params(self, params: Mapping[str, Any]) -> None:
        super().load_params(params)
        self.temperature = FixedAlpha(float(params["alpha"]))
