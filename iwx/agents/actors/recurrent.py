"""RL²'s acting: a recurrent Gaussian actor whose LSTM memory spans a trial.

The memory is reset when the rows start new tasks (``begin_tasks``) and carried
across the episodes played on them. In training the acting part also steps the
critic's core, so that every step stores the (h, c) of both cores *before* the
step and the previous action / reward / done its input held (the learner's
stored state, as R2D2); in adaptation it steps the actor's core only.
"""

from __future__ import annotations

import numpy as np
import torch

from iwx.agents.base import ActingPart, to_torch
from iwx.nets.recurrent import RecurrentCore, RecurrentGaussianPolicy


class RecurrentMemory:
    """What an RL² agent carries from one environment step to the next, one row per env.

    For each named core: its (h, c) [B, H]; shared: the previous action [B, A],
    reward [B] and done flag [B] that the next step's input holds. act() runs
    the cores one step (:meth:`step`) and keeps the new state *pending*;
    :meth:`commit` (from ``observe``) makes it the memory for the rows that
    were alive, so rows whose episode already ended do not move.
    """

    def __init__(self, cores: dict[str, RecurrentCore], action_dim: int, device: torch.device):
        self.cores, self.action_dim, self.device = cores, action_dim, device
        self.state: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
        self.prev: dict[str, torch.Tensor] | None = None
        self.pending: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def rows(self) -> int | None:
        return None if self.prev is None else self.prev["prev_reward"].shape[0]

    def reset(self, rows: int) -> None:
        """New tasks in every row: zero state, zero previous action / reward / done."""
        if rows < 1:
            raise ValueError(f"begin_tasks needs at least one row, got {rows}")
        self.state = {name: core.initial_state(rows, self.device)
                      for name, core in self.cores.items()}
        self.prev = {"prev_action": torch.zeros(rows, self.action_dim, device=self.device),
                     "prev_reward": torch.zeros(rows, device=self.device),
                     "prev_done": torch.zeros(rows, device=self.device)}
        self.pending = None

    def check_rows(self, rows: int, who: str) -> None:
        if self.prev is None:
            raise ValueError(f"{who}.act: no memory yet; call begin_tasks({rows}) first")
        if rows != self.rows:
            raise ValueError(f"{who}.act got {rows} rows but begin_tasks set up {self.rows}")

    def before(self) -> dict[str, torch.Tensor]:
        """The step's stored-state extras: previous inputs and (h, c) of every core."""
        out = dict(self.prev)
        for name, (h, c) in self.state.items():
            out[f"{name}_h"], out[f"{name}_c"] = h, c
        return out

    @torch.no_grad()
    def step(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step of every core from the memory. obs [B, ...] -> {name: h_t [B, H]}."""
        seq = {k: v.unsqueeze(1) for k, v in obs.items()}                    # [B, 1, ...]
        prev = {k: v.unsqueeze(1) for k, v in self.prev.items()}
        outs, self.pending = {}, {}
        for name, core in self.cores.items():
            out, new_state = core(seq, prev["prev_action"], prev["prev_reward"],
                                  prev["prev_done"], self.state[name])
            outs[name], self.pending[name] = out[:, 0], new_state
        return outs

    def commit(self, actions, rewards, done, alive) -> None:
        """After an environment step: the rows that acted keep their new state and inputs."""
        if self.pending is None:
            raise ValueError("observe() without a preceding act(): nothing to commit")
        alive = torch.as_tensor(np.asarray(alive, bool), device=self.device)
        a = torch.as_tensor(np.asarray(actions), dtype=torch.float32, device=self.device)
        r = torch.as_tensor(np.asarray(rewards), dtype=torch.float32, device=self.device)
        d = torch.as_tensor(np.asarray(done), dtype=torch.float32, device=self.device)
        for name, (h, c) in self.pending.items():
            old_h, old_c = self.state[name]
            self.state[name] = (torch.where(alive[:, None], h, old_h),
                                torch.where(alive[:, None], c, old_c))
        self.prev = {"prev_action": torch.where(alive[:, None], a, self.prev["prev_action"]),
                     "prev_reward": torch.where(alive, r, self.prev["prev_reward"]),
                     "prev_done": torch.where(alive, d, self.prev["prev_done"])}
        self.pending = None

    def state_dict(self) -> dict:
        if self.prev is None:
            return {"memory": None}
        return {"memory": {k: v.cpu().clone() for k, v in self.before().items()}}

    def load_state_dict(self, state: dict) -> None:
        memory = state["memory"]
        self.pending = None
        if memory is None:
            self.state = self.prev = None
            return
        memory = {k: v.to(self.device) for k, v in memory.items()}
        self.prev = {k: memory[k] for k in ("prev_action", "prev_reward", "prev_done")}
        self.state = {name: (memory[f"{name}_h"], memory[f"{name}_c"]) for name in self.cores}


class RecurrentActing(ActingPart):
    """a ~ π(·|h_t) for every row, h_t from the actor's LSTM memory (``explore`` is ignored:
    RL² has no prior).

    With ``critic_core`` (training) it returns (actions [B, A], extras): log π(a|h_t)
    and the stored state of both cores (``replay_extras``); without it (adaptation)
    actions [B, A], sampled or, with ``mean_actions``, the mean μ(h_t) (adaptation
    only: training's Retrace needs the behaviour density of a sample). ``owner`` names
    the agent in errors.
    """

    NETWORKS = ("actor", "critic_core")

    def __init__(self, actor: RecurrentGaussianPolicy, action_dim: int, *,
                 critic_core: RecurrentCore | None = None, device: torch.device, owner: str,
                 mean_actions: bool = False):
        if mean_actions and critic_core is not None:
            raise ValueError(f"{owner}: mean_actions is for adaptation only (training "
                             "samples: Retrace needs the behaviour density)")
        self.actor, self.critic_core, self.device, self.owner = actor, critic_core, device, owner
        self.mean_actions = mean_actions
        cores = {"actor": actor.core}
        if critic_core is not None:
            cores["critic"] = critic_core
            h_a, h_q = actor.core.hidden_size, critic_core.hidden_size
            self.replay_extras = {"log_prob": (), "prev_action": (action_dim,),
                                  "prev_reward": (), "prev_done": (), "actor_h": (h_a,),
                                  "actor_c": (h_a,), "critic_h": (h_q,), "critic_c": (h_q,)}
        self.memory = RecurrentMemory(cores, action_dim, device)

    def begin_tasks(self, num_rows: int) -> None:
        self.memory.reset(num_rows)

    def observe(self, obs, actions, rewards, next_obs, done, alive) -> None:
        del obs, next_obs
        self.memory.commit(actions, rewards, done, alive)

    @torch.no_grad()
    def act(self, obs, explore: bool = False):
        del explore
        obs = to_torch(obs, self.device)
        self.memory.check_rows(next(iter(obs.values())).shape[0], self.owner)
        if self.critic_core is None:
            dist = self.actor.distribution(self.memory.step(obs)["actor"])
            return (dist.mean if self.mean_actions else dist.sample()).cpu().numpy()
        extras = self.memory.before()
        out = self.memory.step(obs)
        dist = self.actor.distribution(out["actor"])
        actions = dist.sample()
        extras["log_prob"] = dist.log_prob(actions).sum(-1)
        return actions.cpu().numpy(), {k: v.cpu().numpy() for k, v in extras.items()}
