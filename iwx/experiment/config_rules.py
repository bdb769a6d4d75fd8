"""Which values each configurable allows: declarative rules and small relations.

:data:`RULES` says, for each parameter of each ``@gin.configurable`` in iwx, which
values it allows (``MultiTaskTraining.batch_size``: an integer >= 1; a new parameter
with a literal default must get a rule: tests/test_config_validation.py checks that).
:mod:`iwx.experiment.config_relations` holds the relations between several values
(``exploration_episodes <= episodes``); :mod:`iwx.experiment.validate` applies both to
gin's parsed configuration.

:func:`seed_problem` is the one rule for a run's seed, in runs and in sweeps.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from iwx.experiment.gin_config import ConfigError

# ------------------------------------------------------------------------------ the seed
SEED_LIMIT = 2 ** 32
SEED_ALLOWED = f"an integer in [0, 2**32 - 1 = {SEED_LIMIT - 1}]"
# Why 2**32: a run's seed reaches numpy's SeedSequence (any integer >= 0), Python's
# random.seed (any integer) and torch.manual_seed (< 2**64); a sweep's first seed also
# seeds Optuna's sampler, which takes only [0, 2**32 - 1] (numpy's legacy RandomState).
# The narrowest consumer sets the one range for runs and sweeps alike; negative seeds,
# which numpy refuses, are out.


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def seed_problem(seed) -> str | None:
    """None for a seed every consumer accepts, else what is wrong (runs and sweeps)."""
    if _is_int(seed) and 0 <= seed < SEED_LIMIT:
        return None
    return f"{seed!r} is not a seed: expected {SEED_ALLOWED}"


def check_seed(seed, what: str = "seed") -> None:
    problem = seed_problem(seed)
    if problem:
        raise ConfigError(f"{what} {problem}")


# ------------------------------------------------------------------------------ rules
@dataclasses.dataclass(frozen=True)
class Rule:
    """Which values a parameter allows: ``test(value)``, and ``allowed`` in words (a
    callable for words that depend on the machine)."""

    allowed: str | Callable[[], str]
    test: Callable[[Any], bool]
    local: bool = False             # depends on this machine: checked only where it runs

    def words(self) -> str:
        return self.allowed() if callable(self.allowed) else self.allowed


def _real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value)


def optional(rule: Rule) -> Rule:
    return Rule(f"None or {rule.words()}", lambda v: v is None or rule.test(v), rule.local)


def one_of(*values) -> Rule:
    return Rule(" or ".join(map(repr, values)),
                lambda v: any(type(v) is type(x) and v == x for x in values))


POSITIVE_INT = Rule("an integer >= 1", lambda v: _is_int(v) and v >= 1)
COUNT = Rule("an integer >= 0", lambda v: _is_int(v) and v >= 0)
POSITIVE = Rule("a finite number > 0", lambda v: _real(v) and v > 0)
NONNEGATIVE = Rule("a finite number >= 0", lambda v: _real(v) and v >= 0)
REAL = Rule("a finite number", _real)
UNIT = Rule("a number in [0, 1]", lambda v: _real(v) and 0 <= v <= 1)
LEARNING_RATE = Rule("a learning rate: a finite number > 0", POSITIVE.test)
FLAG = Rule("True or False", lambda v: isinstance(v, bool))
TEXT = Rule("a string", lambda v: isinstance(v, str))
KEYS = Rule("a list or tuple of observation keys (strings), e.g. ('position',)",
            lambda v: isinstance(v, (list, tuple)) and all(isinstance(k, str) for k in v))
WIDTHS = Rule("a list or tuple of layer widths, each an integer >= 1, e.g. (64, 64)",
              lambda v: isinstance(v, (list, tuple)) and all(POSITIVE_INT.test(h) for h in v))
POINT3 = Rule("three finite numbers (x, y, z)",
              lambda v: isinstance(v, (list, tuple)) and len(v) == 3 and all(map(_real, v)))
SEED = Rule(SEED_ALLOWED, lambda v: seed_problem(v) is None)
SEEDS = Rule(f"a list or tuple of seeds, each {SEED_ALLOWED}",
             lambda v: isinstance(v, (list, tuple)) and all(SEED.test(s) for s in v))
TASK_COUNTS = {"num_train": POSITIVE_INT, "num_validation": COUNT, "num_test": COUNT,
               "seed": optional(SEED)}


def _device_ok(value) -> bool:
    """'auto', 'cpu', or a device torch can use on this machine."""
    if not isinstance(value, str):
        return False
    if value in ("auto", "cpu"):
        return True
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        return False
    if device.type == "cuda":
        return torch.cuda.is_available() and (device.index is None
                                              or device.index < torch.cuda.device_count())
    if device.type == "mps":
        return torch.backends.mps.is_available()
    return device.type == "cpu"


def _device_words() -> str:
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"'auto', 'cpu', 'cuda' or 'cuda:N' with N < {n} (the GPUs torch sees here)"
    return ("'auto' or 'cpu': torch sees no GPU on this machine, so 'cuda' cannot run here "
            "('auto' uses a GPU where there is one)")


DEVICE = Rule(_device_words, _device_ok, local=True)
GAUSSIAN_HEAD = {"log_std_min": REAL, "log_std_max": REAL, "init_std": optional(POSITIVE)}
TORSO = {"norm_width": POSITIVE_INT, "hidden": WIDTHS, "fast_tanh": FLAG}
SCHEDULE = {"updates": POSITIVE_INT, "batch_size": POSITIVE_INT,
            "chunks_per_task": POSITIVE_INT, "chunk_length": POSITIVE_INT,
            "log_period": POSITIVE_INT, "checkpoint_period": POSITIVE_INT,
            "episodes_per_task": POSITIVE_INT, "progress": FLAG}

# Configurable -> {parameter: rule}. tests/test_config_validation.py checks that every
# parameter with a literal default of every configurable is here (or in EXEMPT).
RULES: dict[str, dict[str, Rule]] = {
    # -- schedules and replay
    "MultiTaskTraining": {**SCHEDULE, "envs_per_iteration": POSITIVE_INT,
                          "updates_per_iteration": POSITIVE_INT},
    "DistributedTraining": {
        **{name: optional(rule) for name, rule in SCHEDULE.items()},
        "actors": POSITIVE_INT, "samples_per_insert": optional(POSITIVE),
        "envs_per_actor": optional(POSITIVE_INT), "min_size_to_sample": optional(POSITIVE_INT),
        "error_buffer": optional(POSITIVE), "publish_period": POSITIVE_INT,
        "address": optional(TEXT), "actor_cpus": POSITIVE, "max_restarts": COUNT},
    "Adaptation": {"episodes": POSITIVE_INT, "exploration_episodes": COUNT,
                   "seeds": POSITIVE_INT, "unroll_length": POSITIVE_INT,
                   "updates_per_unroll": COUNT, "updates_per_episode": COUNT,
                   "batch_size": POSITIVE_INT, "progress": FLAG, "video": FLAG,
                   "video_fps": POSITIVE_INT},
    "TaskReplay": {"capacity": POSITIVE_INT},
    "DivergenceGuard": {"max_abs": optional(POSITIVE)},
    "pretrain_and_adapt": {"device": DEVICE, "num_threads": POSITIVE_INT,
                           "adapt_on": one_of("test", "validation"),
                           "pretrained": optional(TEXT), "baseline_name": TEXT,
                           "train_tasks": optional(POSITIVE_INT)},
    # -- multi-task agents
    "IWPL": {"num_samples": POSITIVE_INT, "gamma": UNIT, "target_period": POSITIVE_INT,
             "critic_lr": LEARNING_RATE, "prior_lr": LEARNING_RATE},
    "MPO": {"kl_cost": NONNEGATIVE, "epsilon": POSITIVE, "epsilon_mean": POSITIVE,
            "epsilon_std": POSITIVE,
            "num_samples": Rule("an integer >= 2", lambda v: _is_int(v) and v >= 2),
            "initial_temperature": POSITIVE, "initial_multiplier_mean": POSITIVE,
            "initial_multiplier_std": POSITIVE, "dual_lr": LEARNING_RATE, "gamma": UNIT,
            "retrace_lambda": UNIT, "target_period": POSITIVE_INT,
            "critic_lr": LEARNING_RATE, "policy_lr": LEARNING_RATE,
            "prior_lr": LEARNING_RATE},
    "ActorCritic": {"kl_cost": NONNEGATIVE, "num_samples": POSITIVE_INT, "gamma": UNIT,
                    "retrace_lambda": UNIT, "target_period": POSITIVE_INT,
                    "critic_lr": LEARNING_RATE, "policy_lr": LEARNING_RATE,
                    "prior_lr": LEARNING_RATE},
    "RL2": {"num_samples": POSITIVE_INT, "gamma": UNIT, "retrace_lambda": UNIT,
            "target_period": POSITIVE_INT, "critic_lr": LEARNING_RATE,
            "policy_lr": LEARNING_RATE, "entropy_cost": NONNEGATIVE},
    "rl2_adaptation": {"mean_actions": FLAG},
    "PEARL": {"context_length": POSITIVE_INT, "kl_cost": NONNEGATIVE, "gamma": UNIT,
              "num_samples": POSITIVE_INT, "retrace_lambda": UNIT,
              "target_period": POSITIVE_INT, "critic_lr": LEARNING_RATE,
              "actor_lr": LEARNING_RATE, "entropy_cost": NONNEGATIVE},
    # -- adaptation agents and acting
    "IWPA": {"alpha": POSITIVE, "num_samples": POSITIVE_INT, "gamma": UNIT,
             "learning_rate": LEARNING_RATE, "target_period": POSITIVE_INT,
             "cache_frozen": FLAG, "cache_max_gb": POSITIVE,
             "finetune_after": optional(COUNT),
             "features_learning_rate": optional(LEARNING_RATE)},
    "ParametricAdaptation": {"use_prior": FLAG, "kl_cost": NONNEGATIVE,
                             "num_samples": POSITIVE_INT, "gamma": UNIT,
                             "learning_rate": LEARNING_RATE, "target_period": POSITIVE_INT},
    "ImportanceWeightedActing": {"fast": FLAG},
    "adam": {"fused": FLAG},
    # -- temperatures
    "FixedTemperature": {"alpha": POSITIVE},
    "ConstrainedTemperature": {"epsilon": POSITIVE, "initial_alpha": POSITIVE,
                               "learning_rate": LEARNING_RATE, "device": DEVICE},
    # -- networks
    "Torso": TORSO,
    "EnsembleTorso": TORSO,
    "GaussianPrior": {"inputs": KEYS, **GAUSSIAN_HEAD},
    # None: GaussianPrior's value (iwx.nets.mixture_prior.MixturePrior)
    "MixturePrior": {"inputs": optional(KEYS), "log_std_min": optional(REAL),
                     "log_std_max": optional(REAL), "init_std": optional(POSITIVE),
                     "components": POSITIVE_INT},
    "GaussianPolicy": {"num_tasks": POSITIVE_INT, "inputs": KEYS, "task_key": optional(TEXT),
                       "extra_dim": COUNT, **GAUSSIAN_HEAD},
    "EnsembleGaussianPolicy": {"inputs": KEYS, "norm_width": POSITIVE_INT, "hidden": WIDTHS,
                               **GAUSSIAN_HEAD},
    "Features": {"inputs": KEYS, "features_dim": POSITIVE_INT, "fused": FLAG},
    "PerTaskCritic": {"inputs": KEYS, "fused": FLAG},
    "AdaptedFeatureCritic": {"finetune_features": FLAG},
    "shared_features_critic": {"finetune_features": FLAG},
    "ContextEncoder": {"inputs": KEYS, "latent_dim": POSITIVE_INT, "lstm_size": POSITIVE_INT,
                       "log_std_min": REAL, "log_std_max": REAL,
                       "reward_key": optional(TEXT)},
    "ContextCritic": {"inputs": KEYS},
    "RecurrentCore": {"inputs": KEYS, "hidden_size": POSITIVE_INT},
    "RecurrentGaussianPolicy": {**GAUSSIAN_HEAD, "bound_mean": FLAG},
    # -- task distributions and environments
    "PointNavTasks": {**TASK_COUNTS, "radius": POSITIVE},
    "CheetahVelTasks": {**TASK_COUNTS, "low": REAL, "high": REAL},
    "GoToRingTasks": {**TASK_COUNTS, "min_radius": NONNEGATIVE, "max_radius": POSITIVE},
    "GTTTasks": {**TASK_COUNTS, "room_size": POSITIVE, "min_start_distance": NONNEGATIVE},
    "MoveBoxTasks": {**TASK_COUNTS, "room_size": POSITIVE, "margin": NONNEGATIVE,
                     "max_distance": POSITIVE, "min_distance": NONNEGATIVE},
    "ReachTasks": {**TASK_COUNTS, "low": POINT3, "high": POINT3},
    "PointNavVec": {"sparse": FLAG, "episode_length": POSITIVE_INT, "goal_radius": POSITIVE,
                    "expose_goal": FLAG, "emit_sparse_reward": FLAG},
    "CheetahVelEnv": {"episode_length": POSITIVE_INT, "ctrl_cost": NONNEGATIVE,
                      "reset_noise_scale": NONNEGATIVE},
    "GTTEnv": {"distance_tolerance": POSITIVE, "reach_reward": REAL, "step_penalty": REAL,
               "fall_penalty": REAL, "episode_seconds": POSITIVE, "steps_per_second": POSITIVE,
               "room_size": POSITIVE, "fixed_start": optional(FLAG),
               "floor_half_size": POSITIVE, "physics_timestep": POSITIVE},
    "GoToRingEnv": {"distance_tolerance": POSITIVE, "reach_reward": REAL,
                    "step_penalty": REAL, "episode_seconds": POSITIVE,
                    "steps_per_second": POSITIVE, "spawn_half_size": POSITIVE,
                    "floor_half_size": POSITIVE, "physics_timestep": POSITIVE},
    "MoveBoxEnv": {"success_radius": POSITIVE, "time_limit": POSITIVE,
                   "control_timestep": POSITIVE, "physics_timestep": POSITIVE,
                   "room_size": POSITIVE, "box_half_size": POSITIVE, "box_mass": POSITIVE,
                   "box_friction": NONNEGATIVE, "spawn_clearance": NONNEGATIVE},
    "ReachEnv": {"radius": POSITIVE, "time_limit": POSITIVE, "control_timestep": POSITIVE,
                 "max_reset_attempts": POSITIVE_INT},
    "standing_still_returns": {"seed": SEEDS},
    "run_identity": {"task": optional(TEXT), "method": optional(TEXT)},
    "RecordedMetrics": {"per_task": FLAG, "throughput": FLAG, "diagnostics": FLAG},
}

# Parameters with a literal default that are no value to check: passed by the caller
# (never bound), or taking a configurable (None: none), which gin itself resolves.
EXEMPT = {"CheetahVelVec.task_ids", "GTTVec.task_ids", "GoToRingVec.task_ids",
          "MoveBoxVec.task_ids", "ReachVec.task_ids", "PointNavVec.task_ids",
          "TaskReplay.extra_spec", "MPO.prior", "ActorCritic.prior",
          "pretrain_and_adapt.training", "pretrain_and_adapt.adaptation",
          "pretrain_and_adapt.training_env", "IWPA.proposal",
          "pretrain_and_adapt.oracle", "pretrain_and_adapt.baseline",
          "RecordedMetrics.log_scalar", "RecordedMetrics.info"}
