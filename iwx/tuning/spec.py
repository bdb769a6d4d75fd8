"""Sweep files (``sweeps/*.yaml``): reading and checking them before anything runs.

A sweep file names a base gin file, what varies (a grid, or a search space for
Optuna), the seeds, the metric and its mode, and the resources of a trial::

    gin: gin/point_nav_iwpl.gin          # one file (or a list, later ones override)
    bindings:                            # fixed for every trial (optional)
      - MultiTaskTraining.updates = 10000
    grid:                                # every combination, each on every seed
      IWPA.alpha: [100, 10, 1, 0.1]
      "IWPL.critic_lr, IWPL.prior_lr": [1e-3, 5e-4]    # tied: one value for both
    seeds: [0, 1, 2]                     # or a count: 3 means 0, 1, 2
    metric: adapt/Shared Q + IW/last3    # see METRICS
    mode: max
    split: validation                    # the tasks trials adapt on (appendix A.2)
    pretrain: {seed: 0}                  # optional: pretrain once, adapt in every trial
    resources: {cpu: 1, gpu: 0}          # per trial (its learner; DistributedTraining
                                         # trials also reserve actor_cpus per actor)
    max_concurrent: 2                    # optional cap on trials at once
    address: auto                        # optional: a Ray cluster to run on

or, instead of ``grid``, a search run by Optuna through Ray Tune::

    search:
      IWPA.alpha: {loguniform: [0.0001, 100]}
      IWPA.learning_rate: {choice: [0.003, 0.01, 0.03]}
      IWPA.num_samples: {int: [4, 32]}
      Features.features_dim: {int: [16, 64]}
    num_samples: 20                      # configurations Optuna proposes

Values are written into gin as they stand: numbers and booleans as literals,
strings verbatim (so ``"@soft_value_literal"`` or ``"%GAMMA"`` are references and
a gin string needs its own quotes, ``"'validation'"``). YAML reads ``1e-3``
(no dot) as a string; written verbatim it is still gin's float 0.001.

Everything is checked here, before Ray starts: unknown keys, empty grids,
malformed search spaces, seeds (by the one rule a run's seed obeys too), and
every binding is parsed by gin against the base file and its values checked by the
same validation as a run's (an unknown configurable or parameter fails with gin's
message naming it; ``IWPA.alpha: [-1]`` is refused), so a typo costs seconds, not a
cluster's worth of trials. With ``address:`` what depends on the machine (a GPU for
``device = 'cuda'``, a pretrained model's file) is left to the trials, which run
elsewhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import re
from pathlib import Path

import yaml

from iwx.experiment import shipped
from iwx.experiment.validate import seed_problem

KEYS = {"name", "description", "gin", "bindings", "grid", "search", "num_samples", "seeds",
        "metric", "mode", "split", "pretrain", "resources", "max_concurrent", "address"}
DISTRIBUTIONS = {"loguniform", "uniform", "int", "choice"}
RESOURCES = {"cpu", "gpu"}
# adapt/<variant>/last3: mean return of the last 3 adaptation episodes (appendix A.2's
# headline); adapt/<variant>/after_exploration: mean over the episodes after the
# exploration episodes; train/final_return: mean of the last 10 logged training returns.
METRICS = re.compile(r"^(adapt/(?P<variant>.+)/(?P<stat>last3|after_exploration)"
                     r"|train/final_return)$")


class SpecError(Exception):
    """A sweep file that cannot run; the message names the file and the key."""


@dataclasses.dataclass(frozen=True)
class Axis:
    """One varied quantity: its bindings (several when tied) and its values or distribution."""

    key: str                      # as written in the file
    bindings: tuple[str, ...]     # gin names, e.g. ("IWPL.critic_lr", "IWPL.prior_lr")
    values: tuple = ()            # grid values
    distribution: tuple = ()      # (kind, args) for a search

    def gin(self, value) -> list[str]:
        return [f"{name} = {render(value)}" for name in self.bindings]


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    path: Path
    text: str
    name: str
    gin_files: tuple[Path, ...]
    bindings: tuple[str, ...]
    axes: tuple[Axis, ...]
    search: bool
    num_samples: int
    seeds: tuple[int, ...]
    metric: str
    mode: str
    split: str
    pretrain_seed: int | None
    resources: dict
    max_concurrent: int | None
    address: str | None
    description: str = ""

    def sweep_id(self) -> str:
        """Same file, same gin text -> same id (so running it again resumes it)."""
        texts = [self.text] + [p.read_text() for p in self.gin_files]
        return f"{self.name}-{hashlib.sha256(chr(0).join(texts).encode()).hexdigest()[:8]}"

    def grid_points(self) -> list[dict[str, object]]:
        """Every combination of the grid's values, {axis key: value}."""
        keys = [a.key for a in self.axes]
        return [dict(zip(keys, combo))
                for combo in itertools.product(*(a.values for a in self.axes))]

    def point_bindings(self, point: dict) -> list[str]:
        return point_bindings(self.axes, point)

    def fixed_bindings(self) -> list[str]:
        """The file's bindings plus the adaptation split."""
        return [*self.bindings, f"pretrain_and_adapt.adapt_on = '{self.split}'"]


def point_bindings(axes, point: dict) -> list[str]:
    """The gin bindings of one configuration ({axis key: value}); axes it leaves out
    keep the gin file's value."""
    return [b for axis in axes if axis.key in point for b in axis.gin(point[axis.key])]


def render(value) -> str:
    """A YAML value as gin text (module docstring)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{render(k)}: {render(v)}" for k, v in value.items()) + "}"
    raise SpecError(f"cannot write {value!r} ({type(value).__name__}) as a gin value")


def _number(value, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{where}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SpecError(f"{where}: {value!r} is not finite")
    return number


def _bindings_of(key: str, where: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in str(key).split(","))
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][\w/.]*\.[A-Za-z_]\w*", name):
            raise SpecError(f"{where}: {name!r} is not a gin binding name "
                            "(expected Configurable.parameter or scope/Configurable.parameter)")
    return names


def _distribution(spec, where: str) -> tuple:
    if not isinstance(spec, dict) or len(spec) != 1:
        raise SpecError(f"{where}: expected one of {{{', '.join(sorted(DISTRIBUTIONS))}}} "
                        f"with its arguments, e.g. {{loguniform: [0.0001, 100]}}; got {spec!r}")
    (kind, args), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise SpecError(f"{where}: unknown distribution {kind!r}; "
                        f"known: {', '.join(sorted(DISTRIBUTIONS))}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SpecError(f"{where}.choice: expected a non-empty list of values")
        return kind, tuple(args)
    if not isinstance(args, list) or len(args) != 2:
        raise SpecError(f"{where}.{kind}: expected [low, high]")
    low, high = (_number(a, f"{where}.{kind}") for a in args)
    if not low < high:
        raise SpecError(f"{where}.{kind}: low {low} must be below high {high}")
    if kind == "loguniform" and low <= 0:
        raise SpecError(f"{where}.loguniform: bounds must be > 0")
    if kind == "int":
        if low != int(low) or high != int(high):
            raise SpecError(f"{where}.int: bounds must be integers")
        return kind, (int(low), int(high))
    return kind, (low, high)


def _resolve(name: str, base: Path) -> Path:
    """A gin path relative to the working directory or the sweep file, or a shipped name."""
    for candidate in (Path(name), base / name, base.parent / name):
        if candidate.is_file():
            return candidate
    if (found := shipped.find(name, "gin")) is None:   # 'point_nav_iwpl'
        raise SpecError(f"gin: {name!r} is in neither the working directory, {base} nor "
                        f"{base.parent}: {shipped.not_found(name, 'gin')}")
    return found


def load(path: str | Path, gin_override=None) -> SweepSpec:
    """Read and check a sweep file's structure (gin bindings are checked by
    :func:`check_bindings`). ``gin_override``: gin files replacing the file's ``gin:``."""
    try:   # a path as before, else a shipped sweep's name ('adapt_alpha')
        path = shipped.resolve(path, "sweeps")
    except shipped.UnknownName as exc:
        raise SpecError(str(exc)) from None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start:exc.start + 1].hex()
        raise SpecError(f"{path}: not a sweep file: byte 0x{byte} at offset {exc.start} is "
                        "not UTF-8 text (a sweep file is YAML text)") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: expected a mapping of keys ({', '.join(sorted(KEYS))})")
    where = lambda key: f"{path}: {key}"  # noqa: E731
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise SpecError(f"{path}: unknown key(s) {unknown}; allowed: {', '.join(sorted(KEYS))}")
    for required in ("gin", "metric"):
        if required not in raw:
            raise SpecError(f"{where(required)}: missing (required)")

    gin = list(gin_override) if gin_override else raw["gin"]
    gin_list = [gin] if isinstance(gin, str) else gin
    if not isinstance(gin_list, list) or not gin_list or not all(isinstance(g, str) for g in gin_list):
        raise SpecError(f"{where('gin')}: expected a gin file path or a list of them")
    gin_files = tuple(_resolve(g, path.parent) for g in gin_list)

    bindings = raw.get("bindings") or []
    if not isinstance(bindings, list) or not all(isinstance(b, str) for b in bindings):
        raise SpecError(f"{where('bindings')}: expected a list of 'Name.param = value' strings")

    if ("grid" in raw) and ("search" in raw):
        raise SpecError(f"{path}: give either grid or search, not both")
    axes = []
    is_search = "search" in raw
    section = "search" if is_search else "grid"
    space = raw.get(section)
    if space is None:
        space = {}
    if not isinstance(space, dict) or (section in raw and not space):
        raise SpecError(f"{where(section)}: expected a non-empty mapping of binding -> "
                        + ("distribution" if is_search else "list of values"))
    for key, values in space.items():
        names = _bindings_of(key, where(f"{section}.{key}"))
        if is_search:
            axes.append(Axis(str(key), names, distribution=_distribution(
                values, where(f"search.{key}"))))
        else:
            if not isinstance(values, list) or not values:
                raise SpecError(f"{where(f'grid.{key}')}: expected a non-empty list of values, "
                                f"got {values!r}")
            if len(set(map(render, values))) != len(values):
                raise SpecError(f"{where(f'grid.{key}')}: repeated values {values!r}")
            for v in values:
                render(v)
            axes.append(Axis(str(key), names, values=tuple(values)))
    num_samples = raw.get("num_samples", 1 if not is_search else None)
    if is_search and (not isinstance(num_samples, int) or isinstance(num_samples, bool)
                      or num_samples < 1):
        raise SpecError(f"{where('num_samples')}: a search needs a positive integer number "
                        f"of configurations to try, got {num_samples!r}")
    if not is_search and "num_samples" in raw:
        raise SpecError(f"{where('num_samples')}: only a search takes num_samples "
                        "(a grid runs every combination)")

    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SpecError(f"{where('seeds')}: a count must be >= 1")
        problem = seed_problem(seeds - 1)   # the largest seed of the count
        if problem:
            raise SpecError(f"{where('seeds')}: a count of {seeds} means seeds 0 to "
                            f"{seeds - 1}; seed {problem}")
        seeds = list(range(seeds))
    if not isinstance(seeds, list) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SpecError(f"{where('seeds')}: expected a list of integers or a count")
    for seed in seeds:
        problem = seed_problem(seed)
        if problem:
            raise SpecError(f"{where('seeds')}: seed {problem}")
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"{where('seeds')}: repeated seeds {seeds}")

    metric = raw["metric"]
    if not isinstance(metric, str) or not METRICS.match(metric):
        raise SpecError(f"{where('metric')}: {metric!r} is not a metric; expected "
                        "adapt/<variant>/last3, adapt/<variant>/after_exploration or "
                        "train/final_return")
    mode = raw.get("mode", "max")
    if mode not in ("max", "min"):
        raise SpecError(f"{where('mode')}: expected max or min, got {mode!r}")
    split = raw.get("split", "validation")
    if split not in ("validation", "test"):
        raise SpecError(f"{where('split')}: expected validation or test, got {split!r}")
    pretrain = raw.get("pretrain")
    pretrain_seed = None
    if pretrain is not None:
        if not isinstance(pretrain, dict) or set(pretrain) != {"seed"} \
                or not isinstance(pretrain["seed"], int):
            raise SpecError(f"{where('pretrain')}: expected {{seed: N}}")
        pretrain_seed = pretrain["seed"]
        problem = seed_problem(pretrain_seed)
        if problem:
            raise SpecError(f"{where('pretrain.seed')}: {problem}")

    resources = raw.get("resources", {"cpu": 1})
    if not isinstance(resources, dict) or set(resources) - RESOURCES:
        raise SpecError(f"{where('resources')}: expected a mapping with keys cpu and/or gpu, "
                        f"got {resources!r}")
    resources = {"cpu": resources.get("cpu", 1), "gpu": resources.get("gpu", 0)}
    for k, v in resources.items():
        _number(v, where(f"resources.{k}"))
        if v < 0 or (k == "cpu" and v <= 0):
            raise SpecError(f"{where(f'resources.{k}')}: must be positive, got {v}")
    max_concurrent = raw.get("max_concurrent")
    if max_concurrent is not None and (not isinstance(max_concurrent, int) or max_concurrent < 1):
        raise SpecError(f"{where('max_concurrent')}: expected a positive integer")
    address = raw.get("address")
    if address is not None and not isinstance(address, str):
        raise SpecError(f"{where('address')}: expected a Ray address string (e.g. auto, "
                        "ray://HOST:10001)")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not re.fullmatch(r"[\w.-]+", name):
        raise SpecError(f"{where('name')}: use letters, digits, '_', '-', '.' only")
    return SweepSpec(path=path, text=text, name=name, gin_files=gin_files,
                     bindings=tuple(bindings), axes=tuple(axes), search=is_search,
                     num_samples=num_samples or 1, seeds=tuple(seeds), metric=metric,
                     mode=mode, split=split, pretrain_seed=pretrain_seed,
                     resources=resources, max_concurrent=max_concurrent, address=address,
                     description=str(raw.get("description", "")))


def check_bindings(spec: SweepSpec) -> dict:
    """Parse the base file with the fixed bindings, then with each value of each axis
    (one axis at a time: as many parses as values, not combinations). Returns facts
    the sweep needs: the adaptation variants and the task-distribution name."""
    import gin

    from iwx.experiment.gin_config import ConfigError, parse
    from iwx.tuning.resources import trial_actors

    files = [str(p) for p in spec.gin_files]
    local = spec.address is None   # trials on a cluster: its machines judge device, files
    try:
        parse(files, spec.fixed_bindings(), local=local)
    except ConfigError as exc:
        raise SpecError(f"{spec.path}: bindings: {exc}") from None
    facts = {"variants": _variants(), "tasks": _tasks_name(), "actors": trial_actors()}
    for axis in spec.axes:
        # a search checks its choices, or both ends of its range
        samples = axis.distribution[1] if spec.search else axis.values
        for value in samples:
            try:
                parse(files, [*spec.fixed_bindings(), *axis.gin(value)], local=local)
            except ConfigError as exc:
                section = "search" if spec.search else "grid"
                raise SpecError(f"{spec.path}: {section}.{axis.key} = {value!r}: {exc}") from None
            facts["actors"] = max(facts["actors"], trial_actors())
    match = METRICS.match(spec.metric)
    variant = match.group("variant")
    if variant is not None and variant not in facts["variants"]:
        raise SpecError(f"{spec.path}: metric: no adaptation variant {variant!r} in "
                        f"{', '.join(files)}; its variants are {sorted(facts['variants'])}")
    if spec.pretrain_seed is not None and facts["tasks"] is None:
        raise SpecError(f"{spec.path}: pretrain: the gin files bind no pretrain_and_adapt.tasks")
    gin.clear_config()
    return facts


def _variants() -> list[str]:
    import gin

    try:
        variants = gin.query_parameter("pretrain_and_adapt.variants")
    except ValueError:
        return []
    return list(variants or {})


def _tasks_name() -> str | None:
    """The configurable name of the task distribution (to pin its split's seed)."""
    import gin

    try:
        ref = gin.query_parameter("pretrain_and_adapt.tasks")
    except ValueError:
        return None
    configurable = getattr(ref, "configurable", None)
    return None if configurable is None else configurable.name
