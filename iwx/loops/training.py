"""Multi-task training (Algorithm 1), single process: act, store, learn, repeat.

One iteration plays one whole episode in each of ``envs_per_iteration``
distinct training tasks drawn uniformly, then runs ``updates_per_iteration``
learner steps on batches of ``batch_size`` chunks. Chunks come from tasks
drawn uniformly with replacement (``chunks_per_task`` chunks per drawn task).

Its replay ratio follows from the schedule: ``updates_per_iteration · batch_size ·
chunk_length`` transitions sampled per ``envs_per_iteration · episode_length``
inserted (fewer where episodes terminate early); it is logged as
``train/samples_per_insert`` (transitions sampled / stored, over the run).
:class:`~iwx.loops.distributed.DistributedTraining` sets it as a number instead.

Agents with memory (RL², PEARL*) see ``episodes_per_task`` consecutive
iterations on the same drawn tasks — a trial — and are told when the tasks
change (``agent.begin_tasks``). Agents with a ``context_length`` get a context
window from each batch task's replay (iwx.agents.base.contract).
"""

from __future__ import annotations

from collections import defaultdict

import gin
import numpy as np

from iwx.agents.base import MultiTaskAgent
from iwx.loops.episodes import play_episode
from iwx.loops.guard import DivergenceGuard
from iwx.loops.logger import Logger
from iwx.loops.progress import progress_bar
from iwx.replay.task_replay import TaskReplay


@gin.configurable
class MultiTaskTraining:
    def __init__(self, *, updates: int = 25000, envs_per_iteration: int = 8,
                 updates_per_iteration: int = 8, batch_size: int = 32,
                 chunks_per_task: int = 1, chunk_length: int = 10, log_period: int = 250,
                 checkpoint_period: int = 2500, episodes_per_task: int = 1,
                 progress: bool = True):
        if batch_size % chunks_per_task:
            raise ValueError(f"MultiTaskTraining.batch_size={batch_size} must be a multiple "
                             f"of chunks_per_task={chunks_per_task}")
        self.updates, self.envs_per_iteration = updates, envs_per_iteration
        self.updates_per_iteration, self.batch_size = updates_per_iteration, batch_size
        self.chunks_per_task, self.chunk_length = chunks_per_task, chunk_length
        self.log_period, self.checkpoint_period = log_period, checkpoint_period
        if episodes_per_task < 1:
            raise ValueError(f"MultiTaskTraining.episodes_per_task={episodes_per_task} must be "
                             f">= 1")
        self.episodes_per_task = episodes_per_task
        self.progress = progress

    def run(self, agent: MultiTaskAgent, make_env, goals: np.ndarray, replay: TaskReplay,
            rng: np.random.Generator, logger: Logger, save_checkpoint,
            state: dict | None = None, env_seed: int = 0,
            guard: DivergenceGuard | None = None) -> dict:
        """Train until ``agent.updates == self.updates``. ``state``: from a checkpoint.

        Episode e starts from ``reset(seed=[env_seed, 1, e])``, so start states
        depend on the run's seed and the episode count only (exact on resume).
        ``guard`` (a default :class:`~iwx.loops.guard.DivergenceGuard` when None) checks
        every update's metrics and every episode's returns, the logged values and the
        agent's state at every logging period, all of it before every checkpoint, and
        turns a NaN torch raises on into the same :class:`~iwx.loops.guard.DivergenceError`.
        """
        num_tasks = len(goals)
        k = min(self.envs_per_iteration, num_tasks)
        state = state or {"counters": {"env_steps": 0, "episodes": 0}, "window": {}}
        counters = dict(state["counters"])
        window = defaultdict(list, {k: list(v) for k, v in state["window"].items()})
        watch = (guard or DivergenceGuard()).watch(agent, schedule={
            f"MultiTaskTraining.{name}": getattr(self, name)
            for name in ("chunk_length", "batch_size", "chunks_per_task")})
        updating = False

        def where() -> str:
            return f"update {agent.updates} of pretraining (env step {counters['env_steps']})"

        def where_raised() -> str:
            at = (f"update {agent.updates + 1}" if updating
                  else f"an episode after update {agent.updates}")
            return f"{at} of pretraining (env step {counters['env_steps']})"

        bar = progress_bar(self.updates, "pretrain", "upd", initial=agent.updates,
                           enabled=self.progress)
        env = None
        context_length = agent.context_length
        iteration = counters["episodes"] // k
        rows = state.get("rows")   # the current trial's tasks (a resumed run continues it)
        try:
            while agent.updates < self.updates:
                new_tasks = rows is None or iteration % self.episodes_per_task == 0
                if new_tasks:
                    rows = rng.choice(num_tasks, size=k, replace=False)
                if env is None:   # built once: physics-based envs are re-pointed, not rebuilt
                    env = make_env(goals[rows], rows)
                elif new_tasks:
                    env.set_tasks(goals[rows], rows)
                if new_tasks:
                    agent.begin_tasks(k)
                updating = False
                returns, success = play_episode(env, agent.act, replay=replay, rows=rows,
                                                seed=[env_seed, 1, counters["episodes"]],
                                                observe=agent.observe)
                iteration += 1
                # Steps played: a row that terminated early (reached, fell) stops there.
                lengths = replay.last_episode_lengths(rows)
                played = int(lengths.sum())
                counters["env_steps"] += played
                counters["inserted"] = counters.get("inserted", 0) + played
                counters["episodes"] += k
                watch.logged({f"return/task_{row:03d}": r for row, r in zip(rows, returns)},
                             where)
                window["return"].extend(returns)
                window["success"].extend(success)
                window["episode_steps"].extend(lengths)
                for row, ret in zip(rows, returns):
                    window[f"return/task_{row:03d}"].append(ret)

                updating = True
                filled = np.flatnonzero(replay.steps_per_task()[:num_tasks] > 0)
                for _ in range(min(self.updates_per_iteration, self.updates - agent.updates)):
                    tasks = rng.choice(filled, size=self.batch_size // self.chunks_per_task)
                    batch = replay.sample(rng, tasks, self.chunks_per_task, self.chunk_length)
                    if context_length:
                        batch["context"] = replay.sample(rng, tasks, 1, context_length)
                    metrics = agent.update(batch)
                    watch.update(metrics, where)      # Python floats: no device work
                    counters["sampled"] = counters.get("sampled", 0) + self.batch_size * \
                        self.chunk_length
                    for name, value in metrics.items():
                        window[name].append(value)
                    bar.update(1)
                    if agent.updates % self.log_period == 0:
                        watch.state(where)
                        self._log(logger, window, counters, agent.updates, watch, where)
                        bar.set_postfix(ret=f"{np.mean(window.get('return', [0])):.2f}")
                        window.clear()
                if agent.updates % self.checkpoint_period < self.updates_per_iteration \
                        or agent.updates >= self.updates:
                    watch.state(where, everything=True)   # never save a diverged state
                    save_checkpoint({"counters": counters, "window": dict(window),
                                     "rows": rows})
        except (ValueError, RuntimeError, FloatingPointError) as exc:
            watch.translate(exc, where_raised)   # raises DivergenceError when it is one
            raise
        finally:
            bar.close()
        return {"counters": counters, "window": dict(window), "rows": rows}

    @staticmethod
    def _log(logger: Logger, window, counters, step, watch, where):
        # env steps first: the recording layer plots this period's series against them
        values = {"train/env_steps": counters["env_steps"],
                  **{f"train/{name}": float(np.mean(v)) for name, v in window.items() if v}}
        if counters.get("inserted"):   # the replay ratio this schedule has (transitions)
            values["train/samples_per_insert"] = counters["sampled"] / counters["inserted"]
        watch.logged(values, where)    # nothing non-finite is recorded
        for name, value in values.items():
            logger.scalar(name, value, step)
