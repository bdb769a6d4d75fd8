"""What the parametric-policy learners share: RS(0) / DISTRAL (actor_critic) and MPO /
MPO + DISTRAL (mpo) hold a task-conditioned Gaussian policy π_i, a critic Q_i and an
optional behaviour prior π0, with target copies and one Adam optimiser each, and act
the same way (:class:`iwx.agents.actors.gaussian.GaussianActing`: π_i, π0 when
exploring). Their losses differ and stay in their modules.
"""

from __future__ import annotations

import torch

from iwx.agents.actors.gaussian import GaussianActing
from iwx.agents.base import Agent, Targets, adam
from iwx.nets.prior import require_gaussian_prior


def check_information_asymmetry(prior, *privileged_nets) -> None:
    """π0 may not see what only the policy / critic may see (their ``task_key`` inputs)."""
    if prior is None:
        return
    privileged = {net.task_key for net in privileged_nets} - {None}
    if set(prior.inputs) & privileged:
        raise ValueError(f"the prior π0 sees {sorted(set(prior.inputs) & privileged)}, which "
                         f"only the policy / critic may see (information asymmetry): fix "
                         f"GaussianPrior.inputs")


class GaussianPolicyLearner(Agent):
    """π_i, Q_i, π0 (or None), their targets and optimisers; acting by :class:`GaussianActing`.

    ``NETWORK_PARTS``: their checkpoint names (the prior's are skipped without a prior).
    """

    NETWORK_PARTS = ("policy", "critic", "target_policy", "target_critic", "critic_opt",
                     "policy_opt", "prior", "target_prior", "prior_opt")

    def build_networks(self, obs_spec, action_dim: int, num_tasks: int, device: torch.device,
                       *, policy, critic, prior, target_period: int, critic_lr: float,
                       policy_lr: float, prior_lr: float) -> None:
        """Networks in the order of their random initialisations (π_i, Q_i, π0)."""
        self.device = device
        self.policy = policy(obs_spec, action_dim, num_tasks).to(device)
        self.critic = critic(obs_spec, action_dim, num_tasks).to(device)
        self.prior = None if prior is None else prior(obs_spec, action_dim).to(device)
        name = type(self).__name__
        require_gaussian_prior(
            self.prior, name, "the closed-form KL between π_i and π0, and exploring from "
            "π0.distribution", f"bind {name}.prior = @GaussianPrior (a MixturePrior is for "
            "IWPL / IWPA)")
        check_information_asymmetry(self.prior, self.critic, self.policy)
        self.targets = Targets(target_period, type(self).__name__)
        self.target_policy = self.targets.copy(self.policy)
        self.target_critic = self.targets.copy(self.critic)
        self.target_prior = self.targets.copy(self.prior)
        self.critic_opt = adam(self.critic.parameters(), critic_lr)
        self.policy_opt = adam(self.policy.parameters(), policy_lr)
        self.prior_opt = (None if self.prior is None
                          else adam(self.prior.parameters(), prior_lr))
        self.acting = GaussianActing(self.policy, self.prior, device=device)

    @classmethod
    def new_acting(cls, obs_spec, action_dim, num_tasks, device, *, policy, prior, **_):
        """π_i and π0 (None without a prior)."""
        return GaussianActing(policy(obs_spec, action_dim, num_tasks).to(device),
                              None if prior is None else prior(obs_spec, action_dim).to(device),
                              device=device)
