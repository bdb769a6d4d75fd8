"""One experiment: multi-task pretraining, then adaptation on held-out tasks.

Every piece is a gin binding (task distribution, environment, agent, replay,
schedules, the adaptation variants); this function only wires them, seeds
every random source from one seed, and checkpoints the whole state so a killed
run restarted with the same command continues exactly where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import random
from pathlib import Path

import gin
import numpy as np
import torch

from iwx.agents.base import MultiTaskAgent
from iwx.agents.iwpl import IWPL
from iwx.envs.tasks import first_train_tasks
from iwx.loops.adaptation import Adaptation
from iwx.loops.checkpoint import Checkpointer, rng_state, set_rng_state
from iwx.loops.guard import DivergenceGuard
from iwx.loops.logger import ResumableLogger
from iwx.loops.training import MultiTaskTraining
from iwx.replay.task_replay import TaskReplay


class RefusedConfiguration(ValueError):
    """A configuration refused while the run was being built, before any compute: a
    wrong binding, a training environment that differs in more than its reward, a
    variant that cannot adapt this agent. Its message says what to change."""


@contextlib.contextmanager
def refused_before_compute():
    """Re-raise a ValueError of the block as :class:`RefusedConfiguration`."""
    try:
        yield
    except RefusedConfiguration:
        raise
    except ValueError as exc:
        raise RefusedConfiguration(str(exc)) from exc


def slug(name: str) -> str:
    """'Shared Q + IW' -> 'shared_q_iw' (file names of per-variant artifacts)."""
    return "_".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_record(learner: MultiTaskAgent, obs_spec, action_dim: int, num_tasks: int) -> dict:
    """What ``model.pt`` holds: the whole agent, plus its π0 and critic on their own
    and what they see (so a reader can check information asymmetry)."""
    prior, critic = learner.prior, learner.critic
    return {"agent_class": type(learner).__name__, "agent": learner.state_dict(),
            "prior": None if prior is None else prior.state_dict(),
            "critic": None if critic is None else critic.state_dict(),
            "obs_spec": obs_spec, "action_dim": action_dim, "num_tasks": num_tasks,
            "prior_inputs": None if prior is None else list(prior.inputs),
            "critic_task_key": None if critic is None else critic.task_key}


@gin.configurable
def pretrain_and_adapt(seed: int, logger: ResumableLogger, checkpointer: Checkpointer,
                       outputs: Path, *,
                       tasks=gin.REQUIRED, env=gin.REQUIRED, variants=gin.REQUIRED,
                       agent=IWPL, replay=TaskReplay, training=None, adaptation=None,
                       oracle=None, baseline=None, baseline_name: str = "baseline",
                       training_env=None, pretrained: str | None = None, device: str = "auto",
                       num_threads: int = 1, adapt_on: str = "test",
                       train_tasks: int | None = None) -> dict:
    """Returns {"returns": {variant: [tasks, seeds, episodes]}, "oracle": [tasks] | None, ...}.

    ``oracle(test_params, env)`` and ``baseline(test_params, env)`` give per-task
    returns of reference policies: an upper one (e.g. knowing the goal) and a
    lower one named ``baseline_name`` (e.g. standing still).
    ``training_env``: the environment multi-task training acts in, when it differs from
    the one adaptation acts in (``env``): PEARL meta-trains on navigation's dense reward
    and adapts on the sparse one (paper §6). ``None``: ``env`` for both. It must see the
    same observations and act on the same action space as ``env``.
    ``pretrained``: path of a ``model.pt`` written by an earlier run; training
    is then skipped and its agent (π0, critic, ...) is loaded instead.
    ``agent=None``: no pretraining at all (From Scratch); the variants then get
    ``pretrained=None``. ``variants={}``: multi-task training only (figure 1).
    Each variant is a factory ``(pretrained, obs_spec, action_dim, num_problems,
    device=)`` (iwx.agents.base.contract).
    ``adapt_on``: the split the variants adapt on, ``"test"`` (the held-out tasks)
    or ``"validation"`` (appendix A.2 chooses adaptation hyperparameters on a few
    validation tasks; sweeps use it so held-out tasks never pick a configuration).
    ``train_tasks``: train on the first ``train_tasks`` of the split's training tasks
    only, adapting on the same held-out tasks as with all of them (figure 4's few-task
    regime; iwx.envs.tasks.first_train_tasks). None: all.
    """
    # Everything up to the first sample is checking and building: a ValueError here is a
    # configuration refused before any compute (the runner says it in one line).
    with refused_before_compute():
        if adapt_on not in ("test", "validation"):
            raise ValueError(f"pretrain_and_adapt.adapt_on must be 'test' or 'validation', "
                             f"got {adapt_on!r}")
        torch.set_num_threads(num_threads)
        training = training or MultiTaskTraining()
        adaptation = adaptation or Adaptation()
        dev = resolve_device(device)
        torch.manual_seed(seed)
        random.seed(seed)
        rng = np.random.default_rng(np.random.SeedSequence(seed))

        split = first_train_tasks(tasks.split(seed), train_tasks)
        num_train = len(split.train)
        adapt_tasks = split.test if adapt_on == "test" else split.validation
        if len(adapt_tasks) == 0:
            raise ValueError(f"pretrain_and_adapt.adapt_on = {adapt_on!r} but the task split "
                             f"has no {adapt_on} tasks")
        train_env = env if training_env is None else training_env
        probe = train_env(split.train[:1], np.zeros(1, np.int64))
        obs_spec, action_dim = probe.observation_spec(), probe.action_dim
        horizon = probe.episode_length
        held_out = env(adapt_tasks[:1], None)
        held_out_spec = held_out.observation_spec()
        if training_env is not None:
            same = env(split.train[:1], np.zeros(1, np.int64))
            if (same.observation_spec(), same.action_dim) != (obs_spec, action_dim):
                raise ValueError(
                    f"pretrain_and_adapt.training_env sees {obs_spec} and acts in "
                    f"{action_dim} dimensions, pretrain_and_adapt.env sees "
                    f"{same.observation_spec()} and acts in {same.action_dim}: a training "
                    "environment may change the reward only")
        learner = None if agent is None else agent(obs_spec, action_dim, num_train, device=dev)
        store = None if learner is None else replay(
            num_train, obs_spec, action_dim, horizon,
            extra_spec=learner.replay_extras)
        if learner is None and pretrained is not None:
            raise ValueError("pretrain_and_adapt.pretrained is set but agent is None: "
                             "there is no agent to load it into")

        # Build every adaptation variant once, tiny, so a bad binding fails before any
        # compute, and ask it whether the full adaptation will fit (its replay holds every
        # episode of every task × seed).
        for make_agent in variants.values():
            tiny = make_agent(learner, held_out_spec, action_dim, num_problems=1, device=dev)
            tiny.check_fits(len(adapt_tasks) * adaptation.seeds, adaptation.episodes,
                            held_out.episode_length)

    saved = checkpointer.load()
    results: dict[str, np.ndarray] = {}
    phase, phase_state = "train", None
    guard = DivergenceGuard()   # names this checkpoint and its last label on divergence
    guard.checkpoint_path = getattr(checkpointer, "path", None)
    if saved is not None:
        guard.saved(saved.get("label", "(unlabelled)"))
        if learner is not None:
            learner.load_state_dict(saved["agent"])
        if saved["replay"] is not None:
            store.load_state_dict(saved["replay"])
        results = saved["results"]
        phase, phase_state = saved["phase"], saved["phase_state"]
        logger.load_state_dict(saved["logger"])
        set_rng_state(saved["rng"], rng)

    def save(phase_name, state, label, with_replay):
        checkpointer.save({"phase": phase_name, "phase_state": state,
                           "agent": None if learner is None else learner.state_dict(),
                           "replay": store.state_dict() if with_replay else None,
                           "results": results, "rng": rng_state(rng),
                           "logger": logger.state_dict()}, label)
        guard.saved(label)

    if phase == "train" and learner is not None:
        if pretrained is not None:
            model = torch.load(pretrained, map_location=dev, weights_only=False)
            if "agent" in model:
                learner.load_state_dict(model["agent"])
            else:   # written before model.pt held the whole agent
                learner.prior.load_state_dict(model["prior"])
                learner.critic.load_state_dict(model["critic"])
            guard.watch(learner, suspects=[f"pretrain_and_adapt.pretrained = {pretrained!r} "
                                           "(the model holds it)"]).state(
                lambda: f"loading the pretrained model {pretrained}")
        else:
            training.run(learner, train_env, split.train, store, rng, logger,
                         lambda s: save("train", s, f"train:{learner.updates}", True),
                         phase_state, env_seed=seed, guard=guard)
        phase_state = None
        save("adapt", None, "pretrained", False)
    if learner is not None:
        # Written by every run, resumed ones included, for a later run to adapt from.
        torch.save(model_record(learner, obs_spec, action_dim, num_train),
                   Path(outputs) / "model.pt")

    for name, make_agent in variants.items():
        if name in results:
            continue
        factory = functools.partial(make_agent, learner, held_out_spec, action_dim, device=dev)
        state, phase_state = phase_state, None
        results[name] = adaptation.run(
            name, factory, env, adapt_tasks, held_out_spec, action_dim, rng, logger,
            lambda s, name=name: save("adapt", s, f"adapt:{name}:{s['episode']}", False), state,
            env_seed=seed, video_path=Path(outputs) / f"video_{slug(name)}", guard=guard)
        save("adapt", None, f"adapted:{name}", False)

    return {"returns": results,
            "oracle": None if oracle is None else oracle(adapt_tasks, env),
            "baseline": None if baseline is None else (baseline_name, baseline(adapt_tasks, env)),
            "test_goals": adapt_tasks, "adapt_on": adapt_on,
            "exploration_episodes": adaptation.exploration_episodes}
