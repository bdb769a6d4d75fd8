"""What a sweep trial reserves: its learner's resources and its actors' (issue 13).

A trial whose configuration trains with ``DistributedTraining`` starts actor processes
of its own; the sweep reserves them with the trial (a placement group), so that trials
wait for free CPUs instead of oversubscribing the machine.
"""

from __future__ import annotations


def _value(name: str, default):
    """A binding's value with macros resolved (``default`` when unbound)."""
    import gin

    try:
        value = gin.query_parameter(name)
    except ValueError:
        return default
    while isinstance(value, gin.config.ConfigurableReference) and \
            value.selector == "gin.macro":
        value = gin.query_parameter(f"{value.scoped_selector}.value")
    return value


def trial_actors() -> tuple[int, float]:
    """(actors, CPUs per actor) of DistributedTraining when it is the training loop."""
    training = _value("pretrain_and_adapt.training", None)
    configurable = getattr(training, "configurable", None)
    if configurable is None or configurable.name != "DistributedTraining":
        return (0, 0.0)
    return (int(_value("DistributedTraining.actors", 2)),
            float(_value("DistributedTraining.actor_cpus", 1.0)))


def trial_bundles(resources: dict, actors: tuple[int, float]) -> list[dict]:
    """Ray resource bundles of one trial: the trial's own (its learner), then one per
    actor process it starts (a placement group: the trial starts when all are free)."""
    count, cpus = actors
    own = {"CPU": resources["cpu"], **({"GPU": resources["gpu"]} if resources["gpu"] else {})}
    return [own] + [{"CPU": cpus}] * count
