"""A ``pretrained`` model checked before compute: it loads, and it fits the configuration.

:func:`load_model` reads a ``model.pt`` (iwx.loops.pipeline.model_record) on the CPU
after checking the zip container torch.save writes, so garbage or a truncated file is
refused without unpickling it, and refuses non-finite weights. :func:`fit_problem`
compares the agent class and the task's observation and action sizes (one training
task's environment, as the pipeline's probe), then builds the agent the configuration
would build (on the CPU), compares the networks' keys and shapes with the file's, and
loads the file into it as the pipeline will.
"""

from __future__ import annotations

from iwx.experiment.gin_config import ConfigError


def _architecture(agent_class, obs_spec, action_dim, num_tasks) -> str:
    return (f"{agent_class} on observations {obs_spec}, {action_dim}-dim actions, "
            f"{num_tasks} training tasks")


def load_model(path: str):
    """The record of a ``model.pt`` (iwx.loops.pipeline.model_record), or a ConfigError
    saying what is wrong with the file. Checks the zip container torch.save writes before
    unpickling, so garbage or a truncated file is refused without reading it as a pickle."""
    import zipfile
    from pathlib import Path

    import torch

    file = Path(path)
    if not file.exists():
        raise ConfigError("the file does not exist")
    if not file.is_file():
        raise ConfigError("it is a directory, not a model file" if file.is_dir()
                          else "it is not a regular file")
    if not zipfile.is_zipfile(file):
        raise ConfigError("not a model written by torch.save (no zip archive: truncated, "
                          "or another kind of file)")
    try:
        record = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 (torch raises many kinds for a damaged file)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(f"torch.load cannot read it ({type(exc).__name__}: {first})") \
            from None
    if not isinstance(record, dict) or not ("agent" in record
                                            or {"prior", "critic"} <= set(record)):
        keys = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise ConfigError(f"not a model.pt written by iwx (expected the agent's record, "
                          f"found {keys})")
    networks = record.get("agent") or record
    for part, state in networks.items():   # a diverged run's model
        for key, tensor in (state.items() if isinstance(state, dict) else ()):
            if torch.is_tensor(tensor) and tensor.is_floating_point() \
                    and not bool(torch.isfinite(tensor).all()):
                raise ConfigError(f"{part}.{key} holds non-finite values (NaN or inf): the "
                                  "model of a run that diverged?")
    return record


def _networks(record: dict) -> dict:
    """The file's network states by part name (the older format: π0 and critic only)."""
    return record.get("agent") or {p: record[p] for p in ("prior", "critic")}


def _module_mismatch(part: str, module, theirs) -> str | None:
    """How the file's state of ``part`` differs from ``module``'s keys and shapes."""
    if not isinstance(theirs, dict):
        return f"the file has no {part!r}, which this configuration's agent has"
    mine = module.state_dict()
    for key, tensor in mine.items():
        if key not in theirs:
            return f"{part}.{key} is in the configuration but not in the file"
        if tuple(theirs[key].shape) != tuple(tensor.shape):
            return (f"{part}.{key} has shape {tuple(theirs[key].shape)} in the file, "
                    f"{tuple(tensor.shape)} in the configuration")
    extra = sorted(set(theirs) - set(mine))
    return f"{part}.{extra[0]} is in the file but not in the configuration" if extra else None


def _acting_mismatch(record: dict, agent_class, obs_spec, action_dim, num_tasks):
    """The acting networks alone (iwx.agents.base: no optimiser, no replay) against the
    file's parts of the same name; None when they fit or cannot be built this way (the
    full build then judges)."""
    import torch

    from iwx.agents.base.agent import configured_arguments

    try:
        acting = agent_class.new_acting(obs_spec, action_dim, num_tasks, torch.device("cpu"),
                                        **configured_arguments(agent_class))
        networks = acting.networks()
    except Exception:  # noqa: BLE001 (no separable acting part, or another signature)
        return None
    saved = _networks(record)
    for part, module in networks.items():
        if part in saved:
            problem = _module_mismatch(part, module, saved[part])
            if problem:
                return problem
    return None


def _fit(record: dict, learner) -> str | None:
    """The first way the record does not fit ``learner``, or None: every network part's
    keys and shapes, then loading it as the pipeline will."""
    import torch

    from iwx.agents.base import Adam

    saved = _networks(record)
    parts = learner.PARTS if "agent" in record else ("prior", "critic")
    for part in parts:
        module = getattr(learner, part, None)
        if isinstance(module, torch.nn.Module):
            problem = _module_mismatch(part, module, saved.get(part))
            if problem:
                return problem
        elif hasattr(module, "state_dict") and isinstance(saved.get(part), dict) \
                and not isinstance(module, Adam):   # e.g. the temperature
            mine, theirs = sorted(module.state_dict()), sorted(saved[part])
            if mine != theirs:
                return (f"{part} holds {theirs} in the file, {mine} in the configuration "
                        f"({type(module).__name__})")
    try:   # what the pipeline will do with it
        if "agent" in record:
            learner.load_state_dict(record["agent"])
        else:
            learner.prior.load_state_dict(record["prior"])
            learner.critic.load_state_dict(record["critic"])
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).strip().splitlines() or [""])[0]
        return f"loading it fails ({type(exc).__name__}: {first})"
    return None


def _io_mismatch(record: dict, obs_spec: dict, action_dim: int) -> str | None:
    """Where the weights fit but the task does not: other actions, or an observation the
    two share with another shape."""
    saved_dim, saved_spec = record.get("action_dim"), record.get("obs_spec") or {}
    if saved_dim is not None and saved_dim != action_dim:
        return f"it acts in {saved_dim} dimensions, this configuration's task in {action_dim}"
    for key in sorted(set(saved_spec) & set(obs_spec)):
        if tuple(saved_spec[key]) != tuple(obs_spec[key]):
            return (f"its observation {key!r} has shape {tuple(saved_spec[key])}, this "
                    f"configuration's {tuple(obs_spec[key])}")
    return None


def fit_problem(record: dict, tasks, env, agent, agent_class, *,
                scoped: bool = False, train_tasks: int | None = None) -> str | None:
    """None if ``record`` fits the ``agent_class`` learner that ``agent(obs_spec,
    action_dim, num_tasks)`` builds for ``tasks`` and ``env`` (what gin passes the
    pipeline), else what does not fit and both architectures. Cheapest first: the agent
    class and the task's observation and action sizes, then the acting networks (unless
    the agent is ``scoped``: they are built from its unscoped bindings), then the whole
    learner. ``train_tasks``: the pipeline's (its learner has that many training tasks).
    torch's RNG is left as it was."""
    import numpy as np
    import torch

    from iwx.envs.tasks import first_train_tasks

    with torch.random.fork_rng(devices=[]):
        split = first_train_tasks(tasks.split(0), train_tasks)
        probe = env(split.train[:1], np.zeros(1, np.int64))
        obs_spec, action_dim = probe.observation_spec(), probe.action_dim
        num_tasks = len(split.train)
        close = getattr(probe, "close", None)
        if callable(close):
            close()
        agent_name, saved_class = agent_class.__name__, record.get("agent_class")
        problem = None
        if saved_class is not None and saved_class != agent_name:
            problem = f"it holds a {saved_class} agent, this configuration trains {agent_name}"
        problem = problem or _io_mismatch(record, obs_spec, action_dim)
        if problem is None and not scoped:
            problem = _acting_mismatch(record, agent_class, obs_spec, action_dim, num_tasks)
        if problem is None:
            learner = agent(obs_spec, action_dim, num_tasks, device=torch.device("cpu"))
            problem = _fit(record, learner)
    if problem is None:
        return None
    mine = _architecture(agent_name, obs_spec, action_dim, num_tasks)
    theirs = _architecture(record.get("agent_class", "?"), record.get("obs_spec", "?"),
                           record.get("action_dim", "?"), record.get("num_tasks", "?"))
    return "\n".join([f"the model does not fit this configuration: {problem}",
                      f"  the file holds:        {theirs}",
                      f"  this configuration:    {mine}"])
