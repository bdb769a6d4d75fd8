"""Relations between values: small functions over several values of one configurable.

``exploration_episodes <= episodes``; a KL-constrained temperature's ε against IWPL's K
(one configurable reading another's values where one depends on it). Each returns None or
a sentence naming every value it read (:class:`Values` remembers them, so the message
says where each was set). :mod:`iwx.experiment.validate` applies :data:`RELATIONS` after
the per-value rules of :mod:`iwx.experiment.config_rules`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from iwx.experiment.config_rules import RULES


class SkipRelation(Exception):
    """A relation reads a value that is unknown (a reference) or already refused."""


class Values:
    """The effective values of one configurable in one scope, as a relation reads them:
    ``v["episodes"]``, or another configurable's in the same scope with :meth:`of`.
    Remembers what it read, so a broken relation can say where each value was set."""

    def __init__(self, config, name: str, scope: str):
        self.config, self.name, self.scope = config, name, scope   # iwx.experiment.validate's
        self.read: list = []

    def of(self, name: str, param: str, scopes: Sequence[str] = (), *,
           reference: bool = False) -> Any:
        """``name.param`` in this scope (plus ``scopes``); a reference to a configurable
        (``@GaussianPrior``) only where ``reference`` says the relation expects one."""
        scope = "/".join(s for s in (self.scope, *scopes) if s)
        found = self.config.find(name, param, scope)
        if found is None or found.unknown or found.key() in self.config.refused \
                or (found.reference and not reference):
            raise SkipRelation
        self.read.append(found)
        return found.value

    def __getitem__(self, param: str) -> Any:
        return self.of(self.name, param)

    def ref(self, param: str) -> Any:
        """A parameter that takes a configurable (``prior``, ``agent``, ``tasks``): the
        reference, None, or the signature's default."""
        return self.of(self.name, param, reference=True)

    def shown(self, param: str, name: str | None = None) -> str:
        """'Adaptation.episodes = 3' for a value already read."""
        name = name or self.name
        for found in self.read:
            if found.name == name and found.param == param:
                return found.shown()
        raise KeyError(param)


def _within_episodes(v: Values) -> str | None:
    if v["exploration_episodes"] > v["episodes"]:
        return (f"{v.shown('exploration_episodes')} exceeds {v.shown('episodes')}: allowed is "
                "exploration_episodes <= episodes (the first exploration_episodes of the "
                "episodes act from the prior)")
    return None


def _whole_batches(v: Values) -> str | None:
    if v["batch_size"] % v["chunks_per_task"]:
        return (f"{v.shown('batch_size')} is not a multiple of {v.shown('chunks_per_task')}: "
                "each batch draws batch_size / chunks_per_task tasks")
    return None


def _distributed_whole_batches(v: Values) -> str | None:
    """DistributedTraining's unbound schedule knobs are MultiTaskTraining's."""
    def value(param):
        own = v[param]
        if own is not None:
            return own, v.shown(param)
        return v.of("MultiTaskTraining", param), v.shown(param, "MultiTaskTraining")

    (batch, batch_shown), (chunks, chunks_shown) = value("batch_size"), value("chunks_per_task")
    if batch % chunks:
        return (f"{batch_shown} is not a multiple of {chunks_shown} (DistributedTraining): "
                "each batch draws batch_size / chunks_per_task tasks")
    return None


def _epsilon_below_log_k(v: Values) -> str | None:
    """MPO's E-step bound: the KL of K sample weights to uniform is at most log K."""
    k, epsilon = v["num_samples"], v["epsilon"]
    if not epsilon < math.log(k):
        return (f"{v.shown('epsilon')} with {v.shown('num_samples')}: allowed is epsilon < "
                f"log K = {math.log(k):.3f} (it bounds the mean per-state KL of the K sample "
                "weights to uniform, which is at most log K)")
    return None


def _temperature_can_bind(v: Values) -> str | None:
    """A KL-constrained temperature's ε must be below log K of the agent's K samples."""
    temperature = v.ref("temperature")
    if getattr(getattr(temperature, "configurable", None), "name", None) \
            != "ConstrainedTemperature":
        return None
    epsilon = v.of("ConstrainedTemperature", "epsilon", temperature.scopes)
    k = v["num_samples"]
    if not epsilon < math.log(k):
        return (f"{v.shown('epsilon', 'ConstrainedTemperature')} can never bind with "
                f"{v.shown('num_samples')}: allowed is epsilon < log K = {math.log(k):.3f} "
                "nats (the largest KL that K prior samples can express; epsilon bounds the "
                "mean per-state KL, not a sum over tasks)")
    return None


def _kl_needs_prior(v: Values) -> str | None:
    if v["kl_cost"] > 0 and v.ref("prior") is None:
        return (f"{v.shown('kl_cost')} regularises towards a behaviour prior, but "
                f"{v.shown('prior')}: bind {v.name}.prior = @GaussianPrior or kl_cost = 0")
    return None


def _sigma_bounds(low: tuple, high: tuple, init: tuple) -> str | None:
    """The σ settings of a Gaussian head, each as (value, how it was bound): log_std_min <
    log_std_max, and init_std (None: unset) strictly inside (exp(min), exp(max))."""
    (low, low_shown), (high, high_shown), (init, init_shown) = low, high, init
    if not low < high:
        return f"{low_shown} is not below {high_shown}: allowed is log_std_min < log_std_max"
    if init is not None and not math.exp(low) < init < math.exp(high):
        return (f"{init_shown} lies outside the range of σ ({low_shown}, {high_shown}): "
                f"allowed is exp(log_std_min) = {math.exp(low):.4g} < init_std < "
                f"exp(log_std_max) = {math.exp(high):.4g}")
    return None


def _std_range(v: Values) -> str | None:
    return _sigma_bounds(*((v[p], v.shown(p)) for p in ("log_std_min", "log_std_max",
                                                         "init_std")))


def _mixture_std_range(v: Values) -> str | None:
    """:func:`_std_range` for MixturePrior, whose unbound (None) σ settings are
    GaussianPrior's (as iwx.nets.mixture_prior.MixturePrior resolves them)."""
    def value(param):
        own = v[param]
        return (own, v.shown(param)) if own is not None else \
            (v.of("GaussianPrior", param), v.shown(param, "GaussianPrior"))

    return _sigma_bounds(*(value(p) for p in ("log_std_min", "log_std_max", "init_std")))


def _latent_std_range(v: Values) -> str | None:
    if not v["log_std_min"] < 0.0 < v["log_std_max"]:
        return (f"{v.shown('log_std_min')} and {v.shown('log_std_max')}: allowed is "
                "log_std_min < 0 < log_std_max (the prior N(0, I) must be representable)")
    return None


def _ordered(low: str, high: str, strict: bool = False) -> Callable[[Values], str | None]:
    def relation(v: Values) -> str | None:
        a, b = v[low], v[high]
        pairs = list(zip(a, b)) if isinstance(a, (list, tuple)) else [(a, b)]
        if any((x >= y) if strict else (x > y) for x, y in pairs):
            return (f"{v.shown(low)} and {v.shown(high)}: allowed is {low} "
                    f"{'<' if strict else '<='} {high}")
        return None
    relation.__name__ = f"{low}_before_{high}"
    return relation


def _margin_inside_room(v: Values) -> str | None:
    if not v["margin"] < v["room_size"] / 2:
        return (f"{v.shown('margin')} leaves no room in {v.shown('room_size')}: allowed is "
                "margin < room_size / 2")
    return None


def _steps_fit(v: Values) -> str | None:
    if round(v["time_limit"] / v["control_timestep"]) < 1:
        return (f"{v.shown('time_limit')} is shorter than one {v.shown('control_timestep')}: "
                "an episode needs at least one control step")
    return None


def _physics_within_control(v: Values) -> str | None:
    if v["physics_timestep"] > v["control_timestep"]:
        return (f"{v.shown('physics_timestep')} exceeds {v.shown('control_timestep')}: allowed "
                "is physics_timestep <= control_timestep")
    return None


def _pretrained_needs_agent(v: Values) -> str | None:
    if v["pretrained"] is not None and v.ref("agent") is None:
        return (f"{v.shown('pretrained')} but {v.shown('agent')}: there is no agent to load "
                "it into")
    return None


def _split_has_adaptation_tasks(v: Values) -> str | None:
    tasks, adapt_on = v.ref("tasks"), v["adapt_on"]
    name = getattr(getattr(tasks, "configurable", None), "name", None)
    if name not in RULES or adapt_on not in ("test", "validation"):
        return None
    param = "num_test" if adapt_on == "test" else "num_validation"
    if v.of(name, param, tasks.scopes) < 1:
        return (f"{v.shown('adapt_on')} but {v.shown(param, name)}: the split has no "
                f"{adapt_on} task to adapt on; allowed is {name}.{param} >= 1")
    return None


RELATIONS: dict[str, tuple[Callable[[Values], str | None], ...]] = {
    "MultiTaskTraining": (_whole_batches,),
    "DistributedTraining": (_distributed_whole_batches,),
    "Adaptation": (_within_episodes,),
    "IWPL": (_temperature_can_bind,),
    "MPO": (_epsilon_below_log_k, _kl_needs_prior),
    "ActorCritic": (_kl_needs_prior,),
    "GaussianPrior": (_std_range,),
    "MixturePrior": (_mixture_std_range,),
    "GaussianPolicy": (_std_range,),
    "EnsembleGaussianPolicy": (_std_range,),
    "RecurrentGaussianPolicy": (_std_range,),
    "ContextEncoder": (_latent_std_range,),
    "CheetahVelTasks": (_ordered("low", "high"),),
    "ReachTasks": (_ordered("low", "high"),),
    "GoToRingTasks": (_ordered("min_radius", "max_radius"),),
    "MoveBoxTasks": (_ordered("min_distance", "max_distance", strict=True),
                     _margin_inside_room),
    "MoveBoxEnv": (_steps_fit, _physics_within_control),
    "ReachEnv": (_steps_fit,),
    "pretrain_and_adapt": (_pretrained_needs_agent, _split_has_adaptation_tasks),
}
