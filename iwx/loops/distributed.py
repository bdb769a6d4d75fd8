"""Multi-task training (Algorithm 1) as the paper runs it: many actors, one learner.

``pretrain_and_adapt.training = @DistributedTraining()`` replaces the
single-process loop (:class:`~iwx.loops.training.MultiTaskTraining`) for every
multi-task agent. This process is the learner: it owns the agent (on the GPU when
``device = 'auto'`` finds one), the per-task replay and the run's record.
``actors`` Ray actor processes (:class:`~iwx.loops.actor_process.EpisodeActor`, on
the CPU) each rebuild the agent's acting part from the parameters the learner publishes
every ``publish_period`` updates, and play whole episodes on ``envs_per_actor``
uniformly drawn training tasks at a time; the learner replays each as it arrives.

**The replay ratio is a number the user sets**: ``samples_per_insert``
transitions sampled by the learner per transition inserted, held by
:class:`~iwx.loops.rate_limiter.SampleToInsertRatio` — the learner waits when it
is ahead, an actor is not given its next episode when the learner is behind. Its
default is the ratio the single-process loop has with the same bindings
(``updates_per_iteration · batch_size · chunk_length / (envs_per_iteration ·
episode_length)``), so switching loops keeps the replay ratio.

Every schedule knob left unbound (``updates``, ``batch_size``, ``chunks_per_task``,
``chunk_length``, ``log_period``, ``checkpoint_period``, ``episodes_per_task``,
``progress``; ``envs_per_actor`` from ``envs_per_iteration``) takes
``MultiTaskTraining``'s binding, so a task's gin file configures both loops.

Not bit-reproducible: which parameters an episode is played with, and the order
in which episodes arrive, depend on timing. The single-process loop stays the
exact, default path. Checkpoints (every ``checkpoint_period`` updates) hold the
learner, its optimisers, the replay, the counters, the limiter's counts and the
learner's RNG; episodes in flight are lost with a killed run, and actors restart
with new seeds (``incarnation``).
"""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict

import gin
import numpy as np

from iwx.loops.guard import DivergenceGuard
from iwx.loops.logger import Logger
from iwx.loops.progress import progress_bar
from iwx.loops.rate_limiter import SampleToInsertRatio
from iwx.loops.ray_start import init_ray
from iwx.loops.training import MultiTaskTraining

SCHEDULE = ("updates", "batch_size", "chunks_per_task", "chunk_length", "log_period",
            "checkpoint_period", "episodes_per_task", "progress")


def single_process_ratio(schedule: MultiTaskTraining, episode_length: int) -> float:
    """Samples per insert of the single-process loop: each iteration inserts
    ``envs_per_iteration`` episodes and samples ``updates_per_iteration`` batches."""
    return (schedule.updates_per_iteration * schedule.batch_size * schedule.chunk_length
            / (schedule.envs_per_iteration * episode_length))


@gin.configurable
class DistributedTraining:
    def __init__(self, *, actors: int = 2, samples_per_insert: float | None = None,
                 envs_per_actor: int | None = None, min_size_to_sample: int | None = None,
                 error_buffer: float | None = None, publish_period: int = 10,
                 address: str | None = None, actor_cpus: float = 1.0,
                 max_restarts: int = 10, updates: int | None = None,
                 batch_size: int | None = None, chunks_per_task: int | None = None,
                 chunk_length: int | None = None, log_period: int | None = None,
                 checkpoint_period: int | None = None, episodes_per_task: int | None = None,
                 progress: bool | None = None):
        base = MultiTaskTraining()   # the bindings of the single-process loop
        given = dict(updates=updates, batch_size=batch_size, chunks_per_task=chunks_per_task,
                     chunk_length=chunk_length, log_period=log_period,
                     checkpoint_period=checkpoint_period, episodes_per_task=episodes_per_task,
                     progress=progress)
        for name in SCHEDULE:
            setattr(self, name, getattr(base, name) if given[name] is None else given[name])
        self.base = base
        self.envs_per_actor = base.envs_per_iteration if envs_per_actor is None else envs_per_actor
        self.actors, self.publish_period = actors, publish_period
        for name in ("actors", "publish_period", "envs_per_actor", "updates", "batch_size",
                     "chunks_per_task", "chunk_length", "log_period", "checkpoint_period",
                     "episodes_per_task"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DistributedTraining.{name} must be an integer >= 1, "
                                 f"got {value!r}")
        if self.batch_size % self.chunks_per_task:
            raise ValueError(f"DistributedTraining.batch_size={self.batch_size} must be a "
                             f"multiple of chunks_per_task={self.chunks_per_task}")
        if samples_per_insert is not None and not samples_per_insert > 0:
            raise ValueError(f"DistributedTraining.samples_per_insert must be > 0, got "
                             f"{samples_per_insert!r}")
        if not actor_cpus > 0:
            raise ValueError(f"DistributedTraining.actor_cpus must be > 0, got {actor_cpus!r}")
        if not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"DistributedTraining.max_restarts must be an integer >= 0, "
                             f"got {max_restarts!r}")
        self.samples_per_insert = samples_per_insert
        self.min_size_to_sample, self.error_buffer = min_size_to_sample, error_buffer
        self.address, self.actor_cpus, self.max_restarts = address, actor_cpus, max_restarts

    # -- the rate limiter, from the schedule -------------------------------------------
    def limiter(self, rows: int, episode_length: int) -> SampleToInsertRatio:
        """The limiter for episodes of ``rows`` tasks × ``episode_length`` steps."""
        insert, sample = rows * episode_length, self.batch_size * self.chunk_length
        ratio = self.samples_per_insert or single_process_ratio(self.base, episode_length)
        buffer = self.error_buffer
        if buffer is None:   # every actor keeps an episode in flight while the learner
            # has data (2b >= (A + 1) r n + s), plus half an episode and a batch: DECISIONS
            buffer = (self.actors / 2 + 1) * ratio * insert + sample
        limiter = SampleToInsertRatio(ratio, self.min_size_to_sample or insert, buffer)
        try:
            limiter.check(insert, sample)
        except ValueError as exc:
            raise ValueError(f"DistributedTraining: {exc}") from None
        return limiter

    # -- the learner ---------------------------------------------------------------------
    def run(self, agent, make_env, goals: np.ndarray, replay, rng: np.random.Generator,
            logger: Logger, save_checkpoint, state: dict | None = None,
            env_seed: int = 0, guard: DivergenceGuard | None = None) -> dict:
        """``MultiTaskTraining.run``'s contract; ``state``: from this loop's checkpoint.
        ``guard`` checks on the learner (an actor's NaN error arrives here via Ray)."""
        num_tasks = len(goals)
        rows = min(self.envs_per_actor, num_tasks)
        episode_length = replay.max_len
        limiter = self.limiter(rows, episode_length)
        state = state or {"counters": {"env_steps": 0, "episodes": 0, "restarts": 0,
                                       "starts": 0}, "window": {}}
        if "limiter" in state:
            limiter.load_state_dict(state["limiter"])
        counters = dict(state["counters"])
        window = defaultdict(list, {k: list(v) for k, v in state["window"].items()})
        watch = (guard or DivergenceGuard()).watch(agent, schedule={
            f"DistributedTraining.{name}": getattr(self, name)
            for name in ("chunk_length", "batch_size", "chunks_per_task")})

        def where() -> str:
            return f"update {agent.updates} of distributed pretraining (env step " \
                   f"{counters['env_steps']})"

        with RayActors(self, agent, make_env, goals, replay, rows, env_seed, counters) as team:
            try:
                self._learn(agent, team, goals, replay, rng, logger, save_checkpoint, limiter,
                            counters, window, rows * episode_length, watch, where)
            except (ValueError, RuntimeError, FloatingPointError) as exc:
                watch.translate(exc, lambda: f"after {where()}")
                raise
            except SystemError as exc:   # a stop signal's exception raised inside Ray's C
                raise exc.__cause__ or exc  # code (ray.wait) arrives wrapped: unwrap it
        return {"counters": counters, "window": dict(window), "limiter": limiter.state_dict()}

    def _learn(self, agent, team, goals, replay, rng, logger, save_checkpoint, limiter,
               counters, window, insert_size, watch, where):
        num_tasks = len(goals)
        sample_size = self.batch_size * self.chunk_length
        period = team.period = Period(team, limiter, counters, agent.updates)
        with progress_bar(self.updates, "pretrain", "upd", initial=agent.updates,
                          enabled=self.progress) as bar:   # closed however it ends
            team.publish(agent)
            while agent.updates < self.updates:
                team.dispatch(limiter, insert_size)
                for episode in team.arrived(timeout=0):
                    self._insert(episode, agent, replay, limiter, insert_size, counters,
                                 window, period, watch, where)
                team.dispatch(limiter, insert_size)
                if not limiter.can_sample(sample_size):
                    waited = time.perf_counter()
                    arrived = team.arrived(timeout=30.0, wait_for_one=True)
                    period.learner_wait += time.perf_counter() - waited
                    for episode in arrived:
                        self._insert(episode, agent, replay, limiter, insert_size, counters,
                                     window, period, watch, where)
                    continue
                filled = np.flatnonzero(replay.steps_per_task()[:num_tasks] > 0)
                tasks = rng.choice(filled, size=self.batch_size // self.chunks_per_task)
                batch = replay.sample(rng, tasks, self.chunks_per_task, self.chunk_length)
                if agent.context_length:
                    batch["context"] = replay.sample(rng, tasks, 1, agent.context_length)
                metrics = agent.update(batch)
                watch.update(metrics, where)          # Python floats: no device work
                limiter.sample(sample_size)
                for name, value in metrics.items():
                    window[name].append(value)
                if agent.updates % self.publish_period == 0:
                    team.publish(agent)
                bar.update(1)
                if agent.updates % self.log_period == 0:
                    counters["restarts"] = team.restarts
                    watch.state(where)
                    self._log(logger, window, counters, agent.updates, period.close(agent.updates),
                              watch, where)
                    bar.set_postfix(env_steps=counters["env_steps"],
                                    ret=f"{np.mean(window.get('return', [0])):.2f}",
                                    spi=f"{limiter.measured():.2f}")
                    window.clear()
                if agent.updates % self.checkpoint_period == 0 or agent.updates >= self.updates:
                    counters["restarts"] = team.restarts
                    watch.state(where, everything=True)   # never save a diverged state
                    save_checkpoint({"counters": counters, "window": dict(window),
                                     "limiter": limiter.state_dict()})

    @staticmethod
    def _insert(episode, agent, replay, limiter, insert_size, counters, window, period,
                watch, where):
        if episode is None:      # its actor died; the limiter's reservation is released
            limiter.release(insert_size)
            return
        recorder = episode["episode"]
        recorder.into(replay)
        limiter.insert(recorder.transitions, insert_size)
        counters["env_steps"] += episode["env_steps"]
        counters["episodes"] += len(episode["rows"])
        watch.logged({f"return/task_{row:03d}": r
                      for row, r in zip(episode["rows"], episode["returns"])}, where)
        window["return"].extend(episode["returns"])
        window["success"].extend(episode["success"])
        window["episode_steps"].extend(replay.last_episode_lengths(episode["rows"]))
        for row, ret in zip(episode["rows"], episode["returns"]):
            window[f"return/task_{row:03d}"].append(ret)
        window["param_lag"].append(agent.updates - episode["version"])
        period.actor_steps[episode["index"]] += episode["env_steps"]

    @staticmethod
    def _log(logger: Logger, window, counters, step, rates: dict, watch, where):
        # env steps first: the recording layer plots this period's series against them
        values = {"train/env_steps": counters["env_steps"],
                  **{f"train/{name}": float(np.mean(v)) for name, v in window.items() if v}}
        values["train/actor_restarts"] = counters["restarts"]
        watch.logged(values, where)    # nothing non-finite is recorded
        for name, value in values.items():
            logger.scalar(name, value, step)
        for name, value in rates.items():   # a rate of an empty period is left out
            if value is not None and np.isfinite(value):
                logger.scalar(f"train/{name}", value, step)


class Period:
    """What one logging period measured: rates, waiting, the replay ratio."""

    def __init__(self, team: "RayActors", limiter: SampleToInsertRatio, counters: dict,
                 updates: int):
        self.team, self.limiter, self.counters = team, limiter, counters
        self.indices = list(team.indices)
        self._open(updates)

    def count_wait(self, index: int, idle_since: float) -> None:
        """Actor ``index`` was idle from ``idle_since`` until now (this period's part)."""
        self.actor_wait[index] += time.perf_counter() - max(idle_since, self.start)

    def _open(self, updates: int):
        self.start = time.perf_counter()
        self.updates, self.env_steps = updates, self.counters["env_steps"]
        self.inserted, self.sampled = self.limiter.inserted, self.limiter.sampled
        self.learner_wait = 0.0
        self.actor_steps = defaultdict(int)
        self.actor_wait = defaultdict(float)

    def close(self, updates: int) -> dict:
        for index, since in self.team.idle_since.items():   # still idle now
            self.count_wait(index, since)
        wall = max(time.perf_counter() - self.start, 1e-9)
        inserted = self.limiter.inserted - self.inserted
        rates = {"samples_per_insert": self.limiter.measured(),   # over the run
                 "samples_per_insert_period": (self.limiter.sampled - self.sampled) / inserted
                 if inserted else None,
                 "updates_per_s": (updates - self.updates) / wall,
                 "env_steps_per_s": (self.counters["env_steps"] - self.env_steps) / wall,
                 "learner_wait_fraction": self.learner_wait / wall,
                 "actor_wait_fraction": float(np.mean([self.actor_wait[i] for i in self.indices]))
                 / wall}
        for i in self.indices:
            rates[f"actor_{i:02d}/env_steps_per_s"] = self.actor_steps[i] / wall
        self._open(updates)
        return rates


class RayActors:
    """The actor processes, their episodes in flight and their supervision.

    Connects to Ray (``DistributedTraining.address``, the process's existing Ray
    context — e.g. a sweep trial's — or a local instance it starts with the CPUs its
    actors need and stops at the end). Inside a placement group (a sweep trial's),
    the actors are placed in it. An actor that dies is started again (a new
    incarnation, new seeds), at most ``max_restarts`` times in a run.
    """

    def __init__(self, config: DistributedTraining, agent, make_env, goals, replay, rows: int,
                 env_seed: int, counters: dict):
        self.config, self.agent_cls, self.make_env = config, type(agent), make_env
        self.goals, self.rows, self.env_seed, self.counters = goals, rows, env_seed, counters
        self.obs_spec = {k: tuple(v.shape[3:]) for k, v in replay.obs.items()}
        self.action_dim = replay.actions.shape[-1]
        self.indices = range(config.actors)
        self.restarts = counters.get("restarts", 0)
        self.pending: dict = {}          # object ref -> actor index
        self.idle_since: dict[int, float] = {}
        self.period: Period | None = None   # where waiting is counted (the learner's)
        self.params = self.version = None

    def __enter__(self):
        import ray

        self.ray = ray
        self.owns_ray = False
        if not ray.is_initialized():
            need = math.ceil(self.config.actors * self.config.actor_cpus) + 1
            init_ray(self.config.address, need)
            self.owns_ray = True
        self.gin_text = gin.config_str()
        kill = os.environ.get("IWX_KILL_ACTOR_AT_EPISODE")
        self.kill_at = None if kill is None else int(kill)
        self.handles = {i: self._start(i) for i in self.indices}
        now = time.perf_counter()
        self.idle_since = {i: now for i in self.indices}
        return self

    def __exit__(self, *exc):
        for handle in self.handles.values():
            try:
                self.ray.kill(handle)
            except Exception:  # noqa: BLE001  (already dead)
                pass
        if self.owns_ray:
            self.ray.shutdown()
        return False

    def _start(self, index: int):
        from ray.util import get_current_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        from iwx.loops.actor_process import EpisodeActor

        options = {"num_cpus": self.config.actor_cpus, "max_restarts": 0}
        group = get_current_placement_group()
        if group is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(group)
        incarnation = self.counters["starts"]   # unique over the run, resumes included
        self.counters["starts"] += 1
        remote = self.ray.remote(EpisodeActor).options(**options)
        return remote.remote(self.gin_text, self.agent_cls, self.make_env, self.obs_spec,
                             self.action_dim, self.goals, rows=self.rows,
                             episodes_per_task=self.config.episodes_per_task,
                             env_seed=self.env_seed, index=index, incarnation=incarnation,
                             kill_at_episode=self.kill_at if index == 0 else None)

    def publish(self, agent) -> None:
        """Put the learner's acting parameters where actors fetch them between episodes."""
        self.params = self.ray.put(agent.acting_params())
        self.version = agent.updates

    def dispatch(self, limiter: SampleToInsertRatio, insert_size: int) -> None:
        """Give idle actors their next episode, longest idle first, while the limiter
        allows inserts."""
        for index in sorted(self.idle_since, key=self.idle_since.get):
            if not limiter.can_insert(insert_size):
                return
            limiter.reserve(insert_size)
            ref = self.handles[index].play.remote(self.params, self.version)
            self.pending[ref] = index
            since = self.idle_since.pop(index)
            if self.period is not None:
                self.period.count_wait(index, since)

    def arrived(self, timeout: float, wait_for_one: bool = False) -> list:
        """Episodes that came back (None for each actor found dead, then restarted)."""
        if not self.pending:
            if wait_for_one:
                raise RuntimeError("DistributedTraining: the learner waits for episodes but "
                                   "no actor is playing one (rate limiter deadlock)")
            return []
        refs = list(self.pending)
        ready, _ = self.ray.wait(refs, num_returns=1 if wait_for_one else len(refs),
                                 timeout=timeout)
        out = []
        for ref in ready:
            index = self.pending.pop(ref)
            try:
                episode = self.ray.get(ref)
            except self.ray.exceptions.RayActorError:
                self._restart(index)
                episode = None
            out.append(episode)
            self.idle_since[index] = time.perf_counter()
        return out

    def _restart(self, index: int) -> None:
        self.restarts += 1
        if self.restarts > self.config.max_restarts:
            raise RuntimeError(f"DistributedTraining: actor {index} died and the run has "
                               f"restarted actors {self.restarts - 1} times "
                               f"(max_restarts = {self.config.max_restarts})")
        print(f"[iwx] actor {index} died; starting it again (restart {self.restarts})",
              flush=True)
        self.handles[index] = self._start(index)
