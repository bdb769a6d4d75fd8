"""Acting from a parametric Gaussian policy (π0 in exploration episodes where there is one)."""

from __future__ import annotations

import numpy as np
import torch

from iwx.agents.acting import gaussian_action
from iwx.agents.base import ActingPart, to_torch


class GaussianActing(ActingPart):
    """a ~ π(·|s) unclipped, from ``policy`` (``prior`` when ``explore`` and there is one).

    With ``log_prob`` (learners that need the behaviour density μ(a|s), e.g. for
    Retrace) it returns (actions [B, A], {"log_prob": [B]}), else actions [B, A].
    ``policy`` / ``prior``: modules with ``distribution(obs)`` (a Normal over [B, A]).
    """

    NETWORKS = ("policy", "prior")

    def __init__(self, policy: torch.nn.Module, prior: torch.nn.Module | None = None, *,
                 log_prob: bool = True, device: torch.device):
        self.policy, self.prior, self.log_prob, self.device = policy, prior, log_prob, device
        self.replay_extras = {"log_prob": ()} if log_prob else {}

    def act(self, obs, explore: bool = False):
        net = self.prior if explore and self.prior is not None else self.policy
        obs = to_torch(obs, self.device)
        if self.log_prob:
            return gaussian_action(net, obs)
        with torch.no_grad():
            return net.distribution(obs).sample().cpu().numpy().astype(np.float32)
