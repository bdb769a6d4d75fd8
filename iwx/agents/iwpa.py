"""IWPA (Algorithm 2): adapt a critic on held-out tasks, acting through the frozen prior.

P adaptation problems (held-out task × adaptation seed) run side by side; the
critic has one row (member) per problem. Which critic is adapted is a gin
binding (``critic_fn``), which is what distinguishes the paper's variants:

    Shared Q + IW   critic_fn = @shared_features_critic   ψ reloaded, fresh w̃ ~ N(0, I/d)
    IW              critic_fn = @fresh_critic             a new Q network per problem

The TD(0) loss is eq. (13) with the target of eq. (14); only the adapted
critic's trainable parameters move (w̃, plus ψ when fine-tuning is bound on).

``proposal`` (figure 7's ablation, "ψ reloaded without the pretrained prior"): None
acts and bootstraps through K samples of the pretrained π0 (the paper's IWPA); a class
built as ``proposal(obs_spec, action_dim)``, e.g. ``@UniformProposal``
(iwx.nets.uniform_proposal), replaces π0 by that uninformed proposal everywhere π0
appears: the acting rule, the exploration episodes and the soft target's samples.

Fine-tuning ψ (Algorithm 2's optional step; paper §6, *Generalization*: "finetuning
of the shared features ... after 20 episodes of interaction"): ``finetune_after = N``
trains w̃ alone for the first N adaptation episodes and ψ too from episode N on (the
loop says when an episode starts: ``begin_episode``). ψ joins the same Adam as a
second parameter group at ``features_learning_rate`` (None: w̃'s ``learning_rate``,
as ``shared_features_critic.finetune_features = True`` trains both from the start).
From the switch on, the cache keeps the prior's samples only (ψ moves), drawing them
afresh for the transitions already stored. Only Shared Q + IW has a ψ to fine-tune.

``cache_frozen`` (issue 12, iwx.agents.frozen_cache): what depends only on a stored
transition and frozen networks is computed once per transition and reused by every
later update — the K prior samples a_k ~ π0(·|s') and log π0(a_k|s') always (π0 is
frozen), and ψ(s, a), ψ(s', a_k) when ψ is frozen (Shared Q + IW without
fine-tuning), which makes that update a few tensor operations on [P, 128, K, d];
Q'(s', a_k) is cached between target refreshes (for IW and fine-tuned ψ only where the
replay is small beside a target period's batches; else each update scores its own batch:
FrozenCache.per_batch).
The K samples at s' are then FIXED per transition (drawn once, when the transition
is first used) instead of redrawn at every update. Cost: 4 bytes × P · slots ·
steps · (K·A + 2K + (d + K·d) or |s'|), e.g. 44 MB on point navigation (P = 90, 10 × 20
steps, K = 16, d = 32); past ``cache_max_gb`` the first update fails. Checkpoints hold the samples,
not ψ (recomputed, bit-identically, on first use after a resume). ``cache_frozen =
False``: every update redraws the samples and recomputes everything, as before issue
12. Batches without ``index`` (built by hand, not by TaskReplay.sample) take that
path too.
"""

from __future__ import annotations

import copy

import gin
import torch

from iwx.agents.acting import score_prior_samples
from iwx.agents.actors.importance import FixedAlpha, ImportanceWeightedActing
from iwx.agents.base import Agent, Targets, adam, optimise, split_steps, to_torch
from iwx.agents.frozen_cache import FrozenCache, feature_q
from iwx.nets.critics import AdaptedFeatureCritic, shared_features_critic
from iwx.ops.importance import soft_value_logmeanexp
from iwx.ops.reduce import masked_mean
from iwx.ops.td import adaptation_critic_loss, soft_td_target


@gin.configurable
class IWPA(Agent):
    PARTS = ("critic", "target_critic", "optimizer", "updates", "cache")

    def __init__(self, pretrained, obs_spec, action_dim: int, num_problems: int, *,
                 device: torch.device, critic_fn=shared_features_critic, alpha: float = 0.1,
                 num_samples: int = 16, gamma: float = 0.99, learning_rate: float = 3e-2,
                 target_period: int = 10, soft_value=soft_value_logmeanexp,
                 cache_frozen: bool = True, cache_max_gb: float = 4.0,
                 finetune_after: int | None = None,
                 features_learning_rate: float | None = None, proposal=None):
        """``pretrained``: the multi-task agent whose ``prior`` (π0) and ``critic`` are reloaded."""
        if alpha <= 0:
            raise ValueError(f"IWPA.alpha must be > 0, got {alpha}")
        if pretrained is None or (pretrained.prior is None and proposal is None):
            raise ValueError(f"IWPA acts through a behaviour prior π0, and the pretrained agent "
                             f"{type(pretrained).__name__} has none: pretrain with IWPL or "
                             f"DISTRAL (an agent with a prior)")
        if finetune_after is not None and finetune_after < 0:
            raise ValueError(f"IWPA.finetune_after must be None or >= 0 episodes, got "
                             f"{finetune_after}")
        self.device = device
        if proposal is None:
            self.prior = copy.deepcopy(pretrained.prior).to(device).requires_grad_(False)  # π0
        else:           # an uninformed proposal instead of π0 (the module docstring)
            self.prior = proposal(obs_spec, action_dim).to(device).requires_grad_(False)
        self.critic = critic_fn(pretrained.critic, obs_spec, action_dim,
                                num_problems).to(device)
        self.targets = Targets(target_period, "IWPA")
        self.target_critic = self.targets.copy(self.critic)
        if finetune_after is not None:
            if not isinstance(self.critic, AdaptedFeatureCritic):
                raise ValueError(f"IWPA.finetune_after = {finetune_after} fine-tunes the shared "
                                 f"features ψ, but this variant adapts a "
                                 f"{type(self.critic).__name__} (critic_fn = "
                                 "@shared_features_critic has ψ: Shared Q + IW)")
            if any(p.requires_grad for p in self.critic.features.parameters()):
                raise ValueError("IWPA.finetune_after is set but ψ already trains from the "
                                 "start (shared_features_critic.finetune_features = True): "
                                 "bind one or the other")
        self.finetune_after, self.finetuning = finetune_after, False
        self.features_learning_rate = (learning_rate if features_learning_rate is None
                                       else features_learning_rate)
        trainable = [p for p in self.critic.parameters() if p.requires_grad]
        self.optimizer = adam(trainable, learning_rate)
        self.alpha, self.num_samples, self.gamma = alpha, num_samples, gamma
        self.soft_value = soft_value
        # The critic's rows are the problems: no task input (task_key None).
        self.acting = ImportanceWeightedActing(self.prior, self.critic, FixedAlpha(alpha),
                                               num_samples, task_key=None, device=device)
        self.updates = 0
        self.cache = None
        self.cache_max_gb, self.obs_spec = cache_max_gb, obs_spec
        self.num_problems, self.action_dim = num_problems, action_dim
        if cache_frozen:
            frozen_psi = (isinstance(self.critic, AdaptedFeatureCritic) and
                          not any(p.requires_grad for p in self.critic.features.parameters()))
            self.cache = self.frozen_cache(self.critic.features if frozen_psi else None)

    def frozen_cache(self, features) -> FrozenCache:
        """A cache of π0's samples at s' (and of ψ, when ``features`` is the frozen ψ)."""
        return FrozenCache(self.prior, features, self.num_problems, self.num_samples,
                           self.action_dim, device=self.device, max_gb=self.cache_max_gb,
                           obs_spec=self.obs_spec, refresh_period=self.targets.period)

    def update(self, batch: dict) -> dict:
        """One TD(0) step (eq. 13) on transitions [P, c, 1(+1), ...] of each problem's replay."""
        b = to_torch(batch, self.device)
        mask = b["mask"]
        now, nxt = split_steps(b["obs"])
        # Q' changes only when the targets refresh: its version is the count of refreshes.
        cached = (None if self.cache is None or "index" not in b else
                  self.cache.lookup(now, nxt, b["actions"], b["task"], b["index"], mask,
                                    self.target_critic, self.updates // self.targets.period))
        with torch.no_grad():
            if cached is None:
                _, log_prob, q_next = score_prior_samples(self.prior, self.target_critic, nxt,
                                                          None, self.num_samples)
            else:
                log_prob, q_next = cached["log_prob"], cached["q_next"]
            target = soft_td_target(b["rewards"], b["discounts"], q_next, log_prob,
                                    self.alpha, self.gamma, self.soft_value)
        if cached is not None and "psi" in cached:
            q = feature_q(cached["psi"], self.critic.weights)
        else:
            q = self.critic(now, b["actions"])
        loss = adaptation_critic_loss(q, target, mask)                  # eq. (13)
        optimise(loss, self.optimizer)
        self.count_update()
        return {"td_loss": loss.item() / mask.shape[0],
                "q_mean": float(masked_mean(q.detach(), mask))}

    def check_fits(self, num_problems: int, slots: int, steps: int) -> None:
        """The frozen cache at the full adaptation's size (and, with ``finetune_after``,
        the ψ-less cache it switches to), checked against ``cache_max_gb`` before any
        compute instead of at the first update (iwx.agents.base.contract)."""
        if self.cache is None:
            return
        self.cache.check(slots, steps, num_problems)
        if self.finetune_after is not None and self.cache.features is not None:
            self.frozen_cache(None).check(slots, steps, num_problems)

    # -- the fine-tuning schedule ------------------------------------------------------
    def begin_episode(self, episode: int) -> None:
        if (self.finetune_after is not None and episode >= self.finetune_after
                and not self.finetuning):
            self.start_finetuning()

    def start_finetuning(self) -> None:
        """ψ trains from now on, beside w̃ (see the module docstring)."""
        features = self.critic.features
        features.requires_grad_(True)
        self.optimizer.add_param_group({"params": list(features.parameters()),
                                        "lr": self.features_learning_rate})
        if self.cache is not None and self.cache.features is not None:
            self.cache = self.frozen_cache(None)
        self.finetuning = True

    def state_dict(self) -> dict:
        return {**super().state_dict(), "finetuning": self.finetuning}

    def load_state_dict(self, state: dict) -> None:
        """A checkpoint written after the switch needs ψ's parameter group and the
        ψ-less cache before the optimiser and the cache load (older checkpoints have
        no ``finetuning`` key: they were written before any switch)."""
        if state.get("finetuning", False) and not self.finetuning:
            self.start_finetuning()
        super().load_state_dict({k: v for k, v in state.items() if k != "finetuning"})
