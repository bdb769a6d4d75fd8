"""IWPA's cache of what depends only on a stored transition and the frozen networks (issue 12).

With π0 frozen (always, in IWPA) and ψ frozen (Shared Q + IW without fine-tuning),
these do not change between updates, so they are computed once per stored
transition (s, a, s') of each problem's replay and reused by every later update:

    actions    a_k ~ π0(·|s'), clipped       [S, P, T, K, A]   drawn once: FIXED per transition
    log_prob   log π0(a_k|s')                 [S, P, T, K]
    psi        ψ(s, a)                        [S, P, T, d]      only when ψ is frozen
    psi_next   ψ(s', a_k)                     [S, P, T, K, d]   only when ψ is frozen
    next_obs   s'                             [S, P, T, ...]    only when ψ trains
    q_next     Q'(s', a_k)                    [S, P, T, K]      for the current target critic

S = the replay's capacity (episode slots; slot-major, so that a slot is contiguous),
P problems (the replay's rows), T = its max episode length, K prior samples, A
action dims, d = ψ's dimension. The target critic is frozen between two refreshes
(every ``IWPA.target_period`` updates), so ``q_next`` is too: it is recomputed slot by
slot when the target changes (``target_version``) or a slot gains entries — from the
cached ψ(s', a_k) and w̃' when ψ is frozen (Shared Q + IW), else by the target critic
itself on the slot's cached s' and samples (IW's fresh critic, fine-tuned ψ). An
update then gathers [P, c, K] values instead of scoring [P, c, K] (state, sample)
pairs. That pass over the whole replay is less work only while the replay is small
beside what one target period samples. With the target critic a network (ψ trains, or
IW) it is not always: a replay of S·T entries per problem against ``refresh_period``
updates of c·L transitions each; where S·T > refresh_period · c·L (Reach's 40-episode
adaptation: 40 · 250 = 10000 against 10 · 128 = 1280, ~8× the entries and measured 41×
the time (docs/experiments/iwpa_target_cost.py); point navigation: 10 · 20 = 200,
one pass is less), each update scores its own batch instead,
``Q'(s', a_k)`` on the batch's s' and the cached samples (:meth:`FrozenCache.per_batch`;
the same values up to float rounding). With ψ frozen the pass is one batched product,
always done. A
transition is keyed by the replay's ``batch["index"]`` (iwx.replay.task_replay):
its row (``batch["task"]``), slot, step and the slot's episode number; a slot that
now holds another episode (the ring buffer wrapped) has its entries dropped and
recomputed on first use. Steps with ``mask = 0`` (padding) are never cached; what
is returned for them is whatever the cache holds there (finite; masked out of the
loss).

Memory: 4 bytes × P·S·T · (K·A + 2K + (d + K·d) with ψ frozen, else |s'|). Point navigation (P = 90,
S·T = 10 × 20, K = 16, A = 2, d = 32): 3.5 MB of samples + 40 MB of ψ and Q';
half-cheetah velocity (S·T = 7 × 200, A = 6, d = 64): 56 MB + 556 MB. Past
``max_gb`` the first update fails, naming the bindings (``IWPA.cache_frozen``,
``IWPA.cache_max_gb``).

Exact resume: the samples (and which entries hold them) are checkpointed — they
were drawn from torch's global RNG, whose state the run checkpoints too — while ψ
is not: after ``load_state_dict`` it is recomputed on first use. A value never
depends on which batch first asked for it: entries are computed one replay
column (slot, step) at a time, as [P]-row network calls of a fixed shape (rows
without data are zeros and are not stored), so a recomputed ψ is bit-identical
to the one the uninterrupted run computed, and the samples are drawn in the same
order from the same RNG state.
"""

from __future__ import annotations

import math

import torch


def feature_q(psi: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Q = ψᵀw̃ (eq. 12) from cached features, one weight row per problem.

    psi [P, *rest, d], weights [P, d] -> [P, *rest] (one batched product w̃ᵀψ per problem).
    """
    p, d = weights.shape
    q = torch.bmm(weights.unsqueeze(1), psi.reshape(p, -1, d).transpose(1, 2))   # [P, 1, n]
    return q.reshape(psi.shape[:-1])


class FrozenCache:
    """Per-transition cache of IWPA's frozen quantities (see the module docstring).

    ``features``: ψ when it is frozen (its values cached), None when it trains
    (only the prior's samples and log-densities are cached). ``refresh_period``: the
    updates between two target refreshes (``IWPA.target_period``), which decides where
    Q' is scored (:meth:`per_batch`).
    """

    def __init__(self, prior: torch.nn.Module, features: torch.nn.Module | None,
                 num_problems: int, num_samples: int, action_dim: int, *,
                 device: torch.device, max_gb: float = 4.0, obs_spec=None,
                 refresh_period: int = 1):
        self.prior, self.features, self.obs_spec = prior, features, obs_spec
        self.refresh_period = refresh_period
        self.num_problems, self.num_samples, self.action_dim = num_problems, num_samples, action_dim
        self.device, self.max_gb = device, max_gb
        self.shape: tuple[int, int] | None = None    # (S, T): set by the first batch

    # -- storage ---------------------------------------------------------------------------
    def bytes_needed(self, slots: int, steps: int, num_problems: int | None = None) -> int:
        """4 bytes × P · slots · steps · (K·A + 2K + (d + K·d) or |s'|); P defaults to
        this cache's own number of problems."""
        k, a = self.num_samples, self.action_dim
        per_entry = k * a + 2 * k + (self._obs_size() if self.features is None
                                     else (1 + k) * self.features.features_dim)
        p = self.num_problems if num_problems is None else num_problems
        return 4 * p * slots * steps * per_entry

    def check(self, slots: int, steps: int, num_problems: int | None = None) -> None:
        """Raise when a replay of ``slots`` × ``steps`` for ``num_problems`` problems would
        need more than ``max_gb``: what the first update would raise, said before it."""
        p = self.num_problems if num_problems is None else num_problems
        gb = self.bytes_needed(slots, steps, p) / 1e9
        if gb > self.max_gb:
            raise ValueError(
                f"IWPA's cache of frozen quantities would need {gb:.2f} GB for "
                f"{p} problems × {slots} replay slots × {steps} steps "
                f"(K = {self.num_samples}), over IWPA.cache_max_gb = {self.max_gb:g}: set "
                f"IWPA.cache_frozen = False (recompute every update) or raise "
                f"IWPA.cache_max_gb")

    def _allocate(self, slots: int, steps: int) -> None:
        self.check(slots, steps)
        p, k, dev = self.num_problems, self.num_samples, self.device
        entries = (slots, p, steps)
        self.shape = (slots, steps)
        self.episode = torch.full((slots, p), -1, dtype=torch.int64, device=dev)
        self.drawn = torch.zeros(entries, dtype=torch.bool, device=dev)
        self.actions = torch.zeros((*entries, k, self.action_dim), device=dev)
        self.log_prob = torch.zeros((*entries, k), device=dev)
        self.ready = torch.zeros(entries, dtype=torch.bool, device=dev)
        if self.features is not None:
            d = self.features.features_dim
            self.psi = torch.zeros((*entries, d), device=dev)
            self.psi_next = torch.zeros((*entries, k, d), device=dev)
        else:
            self.next_obs = {key: torch.zeros((*entries, *shape), device=dev,
                                              dtype=torch.int64 if key == "task_id" else None)
                             for key, shape in self.obs_spec.items()}
        self.q_next = torch.zeros((*entries, k), device=dev)
        self._q_version: int | None = None            # the target q_next was computed with
        self._q_stale: set[int] = set(range(slots))   # slots whose q_next is out of date

    def _obs_size(self) -> int:
        return sum(math.prod(shape) for shape in self.obs_spec.values())

    def complete_entries(self) -> int:
        """Transitions held in full (samples, and ψ where cached); those of a slot the replay
        has since overwritten count until a batch shows the slot's new episode."""
        if self.shape is None:
            return 0
        full = self.drawn if self.features is None else self.drawn & self.ready
        return int(full.sum())

    # -- reading -----------------------------------------------------------------------------
    @torch.no_grad()
    def lookup(self, now: dict, nxt: dict, actions: torch.Tensor, rows: torch.Tensor,
               index: dict, mask: torch.Tensor, target_critic: torch.nn.Module,
               target_version: int) -> dict:
        """The cached entries of a batch, computing the missing ones first.

        now, nxt: obs dicts [P, c, L, ...] (s, s'); actions [P, c, L, A]; rows [P] (the
        replay rows, ``batch["task"]``: 0..P-1); index: ``batch["index"]`` of
        iwx.replay.task_replay; mask [P, c, L]; target_critic: Q' (rows = problems);
        target_version: changes exactly when Q' does (the count of target refreshes).
        Returns "log_prob" and "q_next" = Q'(s', a_k) [P, c, L, K] and, with ψ frozen,
        "psi" [P, c, L, d].
        """
        slots, steps = (int(x) for x in index["shape"])
        if self.shape is None:
            self._allocate(slots, steps)
        elif self.shape != (slots, steps):
            raise ValueError(f"IWPA's cache was built for a replay of {self.shape} "
                             f"(slots, steps), this batch comes from one of {(slots, steps)}")
        p = self.num_problems
        if not torch.equal(rows.cpu(), torch.arange(p)):
            raise ValueError(f"IWPA's cache keys transitions by replay row: the batch's rows "
                             f"(batch['task']) must be 0..{p - 1} in order, one per problem")
        slot, step, episode = index["slot"], index["step"], index["episode"]
        row = torch.arange(p, device=slot.device).reshape(-1, *([1] * (slot.dim() - 1)))
        row = row.expand_as(slot)
        stale = self.episode[slot, row] != episode           # the slot holds a newer episode
        if stale.any():
            s, r = slot[stale], row[stale]
            self.episode[s, r] = episode[stale]
            self.drawn[s, r] = False
            self.ready[s, r] = False
        entry = (slot * p + row) * steps + step              # [P, c, L] flat entry ids
        have = self.drawn.view(-1)[entry]
        if self.features is not None:
            have &= self.ready.view(-1)[entry]
        missing = (mask > 0) & ~have
        if missing.any():
            self._fill(now, nxt, actions, slot, step, missing)
        gather = lambda x: x.flatten(0, 2).index_select(0, entry.reshape(-1)).reshape(  # noqa
            *entry.shape, *x.shape[3:])
        if self.per_batch(mask[0].numel()):           # Q'(s', a_k) on this batch only
            q_next = target_critic(nxt, gather(self.actions))
        else:
            q_next = gather(self._target_q(target_critic, target_version))
        out = {"log_prob": gather(self.log_prob), "q_next": q_next}
        if self.features is not None:
            out["psi"] = gather(self.psi)
        return out

    def per_batch(self, batch_entries: int) -> bool:
        """Whether an update scores Q' on its own batch of ``batch_entries`` transitions
        per problem rather than reading a replay-wide ``q_next`` recomputed at every
        target refresh: only with the target critic a network (``features`` None), and
        only where that pass, S·T entries per problem, is more than the
        ``refresh_period`` batches between two refreshes score. Fixed for a run (the
        replay's and the batch's sizes), so a resumed run decides as the first did;
        both paths give one value per update whichever batch asked, so resume stays
        exact."""
        slots, steps = self.shape
        return (self.features is None
                and slots * steps > self.refresh_period * batch_entries)

    def _target_q(self, target_critic: torch.nn.Module, version: int) -> torch.Tensor:
        """q_next [S, P, T, K] under the target critic, recomputing out-of-date slots (one
        fixed-shape call per slot, so a value never depends on when it was computed)."""
        if version != self._q_version:
            self._q_version = version
            self._q_stale = set(range(self.shape[0]))
        for s in sorted(self._q_stale):
            if self.features is not None:            # ψ(s', a_k)ᵀ w̃'
                self.q_next[s] = feature_q(self.psi_next[s], target_critic.weights)
            else:                                    # Q'(s', a_k) of the slot's entries
                self.q_next[s] = target_critic({k: v[s] for k, v in self.next_obs.items()},
                                               self.actions[s])
        self._q_stale.clear()
        return self.q_next

    def _fill(self, now, nxt, actions, slot, step, missing) -> None:
        """Compute the missing entries, one replay column (slot, step) at a time, as
        fixed-shape [P]-row calls (see the module docstring: exact resume)."""
        p, steps = self.num_problems, self.shape[1]
        flat = lambda x: x.reshape(p, -1, *x.shape[slot.dim():])     # noqa: E731 [P, n, ...]
        now, nxt = ({k: flat(v) for k, v in o.items()} for o in (now, nxt))
        actions, column, missing = flat(actions), flat(slot * steps + step), flat(missing)
        problems = torch.arange(p, device=column.device)
        for col in torch.unique(column[missing]).tolist():
            s, t = divmod(col, steps)
            here = missing & (column == col)                          # [P, n]
            has = here.any(1)                                         # [P]
            first = here.to(torch.uint8).argmax(1)                    # a position per problem

            def take(x):   # [P, n, ...] -> [P, ...]: the column's data, zeros where none
                where = has.reshape(-1, *([1] * (x.dim() - 2)))
                return torch.where(where, x[problems, first],
                                   torch.zeros((), dtype=x.dtype, device=x.device))

            draw = has & ~self.drawn[s, :, t]
            if draw.any():
                next_obs = {k: take(v) for k, v in nxt.items()}
                a_k, log_prob = self.prior.sample(next_obs, self.num_samples)  # [P, K(, A)]
                self.actions[s, draw, t] = a_k[draw]
                self.log_prob[s, draw, t] = log_prob[draw]
                self.drawn[s, draw, t] = True
                if self.features is None:
                    for k, v in next_obs.items():
                        self.next_obs[k][s, draw, t] = v[draw]
                    self._q_stale.add(s)
            if self.features is not None:
                fill = has & ~self.ready[s, :, t]
                psi = self.features({k: take(v) for k, v in now.items()}, take(actions))
                psi_next = self.features({k: take(v) for k, v in nxt.items()},
                                         self.actions[s, :, t])       # [P, K, d]
                self.psi[s, fill, t] = psi[fill]
                self.psi_next[s, fill, t] = psi_next[fill]
                self.ready[s, fill, t] = True
                self._q_stale.add(s)

    # -- checkpointing: the samples, not ψ or Q' (recomputed on first use) -------------------
    def state_dict(self) -> dict:
        if self.shape is None:
            return {"shape": None}
        state = {"shape": self.shape, "episode": self.episode.clone(),
                 "drawn": self.drawn.clone(), "actions": self.actions.clone(),
                 "log_prob": self.log_prob.clone()}
        if self.features is None:
            state["next_obs"] = {k: v.clone() for k, v in self.next_obs.items()}
        return state

    def load_state_dict(self, state: dict) -> None:
        if state["shape"] is None:
            self.shape = None
            return
        self._allocate(*state["shape"])
        for name in ("episode", "drawn", "actions", "log_prob"):
            getattr(self, name).copy_(state[name])
        if self.features is None:
            for k, v in state["next_obs"].items():
                self.next_obs[k].copy_(v)
