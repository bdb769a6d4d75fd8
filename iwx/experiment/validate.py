"""Every configured value checked before compute, on gin's parsed configuration.

:func:`check_configuration` runs at the end of :func:`iwx.experiment.gin_config.parse`
(so runs, ``iwx.compare`` and every sweep axis value get it) and applies the rules and
relations of :mod:`iwx.experiment.config_rules` to the value each knob will actually
have:

* its binding, with gin's scope inheritance (``iw/IWPA.learning_rate`` overrides
  ``IWPA.learning_rate`` in the ``iw`` scope), or the signature's default when nothing
  binds it; the unscoped value and every scope a binding names are checked;
* macros resolved (``IWPL.num_samples = %K`` is checked as K's value), inside tuples
  too; a reference to a configurable (``@f()``) is known only when gin calls it, so no
  rule judges it;
* a configurable whose module the configuration never imported has nothing bound: its
  defaults hold, and it is skipped.

Checks that depend on this machine run only for a configuration that runs here
(``local``): a GPU for ``device = 'cuda'``, and the ``pretrained`` model
(:mod:`iwx.experiment.model_check`).

Every problem is reported at once, each first as one line naming the binding, the
value and what is allowed, then where the values were set (file and line, or
--gin_param; a macro's line too).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Sequence
from typing import Any

from iwx.experiment.config_relations import RELATIONS, SkipRelation, Values
from iwx.experiment.config_rules import RULES
from iwx.experiment.config_rules import check_seed, seed_problem  # noqa: F401 (the API)
from iwx.experiment.gin_config import ConfigError

# ------------------------------------------------------------------------------ gin's state
_UNKNOWN = object()


@dataclasses.dataclass
class _Found:
    """One parameter's effective value in one scope, and where it came from."""

    name: str                     # the configurable's short name
    param: str
    scope: str                    # the scope it was asked for
    value: Any
    bound_in: str | None          # the scope of the binding that set it; None: the default
    macros: tuple[str, ...] = ()  # macros it went through, outermost first
    unknown: bool = False         # an undefined macro, or a reference inside a tuple
    reference: bool = False       # a reference to a configurable: known when gin calls it

    def binding(self) -> str:
        scope = self.bound_in if self.bound_in is not None else self.scope
        return f"{scope + '/' if scope else ''}{self.name}.{self.param}"

    def key(self) -> tuple:
        return (self.name, self.param, self.bound_in)

    def shown(self) -> str:
        via = "".join(f"%{m} = " for m in self.macros)
        default = " (its default)" if self.bound_in is None else ""
        return f"{self.binding()} = {via}{self.value!r}{default}"


def _resolve(value, macros: list[str]):
    """``value`` with every macro replaced by its value (recursively, inside tuples, lists
    and dicts); _UNKNOWN where a reference to a configurable (or an unknown macro) sits."""
    import gin

    if isinstance(value, gin.config.ConfigurableReference):
        if value.selector != "gin.macro":
            return _UNKNOWN
        name = "/".join(value.scopes)
        try:
            inner = gin.config._CONFIG[(name, value.configurable.selector)]["value"]
        except KeyError:
            return _UNKNOWN
        macros.append(name)
        return _resolve(inner, macros)
    if isinstance(value, (list, tuple)):
        items = [_resolve(v, macros) for v in value]
        return _UNKNOWN if any(i is _UNKNOWN for i in items) else type(value)(items)
    if isinstance(value, dict):
        items = {k: _resolve(v, macros) for k, v in value.items()}
        return _UNKNOWN if any(i is _UNKNOWN for i in items.values()) else items
    return value


class _Config:
    """Gin's parsed configuration as effective values (what each call will receive)."""

    def __init__(self):
        import gin

        self.registry, self.bindings = gin.config._REGISTRY, gin.config._CONFIG
        self.refused: set[tuple] = set()

    def configurable(self, name: str):
        matches = self.registry.matching_selectors(name)
        return self.registry[matches[0]] if len(matches) == 1 else None

    def scopes(self, selector: str) -> list[str]:
        return [""] + sorted({scope for scope, sel in self.bindings if sel == selector and scope})

    def find(self, name: str, param: str, scope: str) -> _Found | None:
        """The value ``name.param`` gets when called in ``scope``; None when the
        configurable is not imported or has no such parameter or default."""
        configurable = self.configurable(name)
        if configurable is None:
            return None
        parts = scope.split("/") if scope else []
        bound_in, raw = None, _UNKNOWN
        for i in range(len(parts) + 1):   # gin: the innermost scope's binding wins
            partial = "/".join(parts[:i])
            params = self.bindings.get((partial, configurable.selector), {})
            if param in params:
                bound_in, raw = partial, params[param]
        if bound_in is None:
            raw = _defaults(configurable.wrapped).get(param, _UNKNOWN)
            if raw is _UNKNOWN:
                return None
        macros: list[str] = []
        import gin

        if isinstance(raw, gin.config.ConfigurableReference) and raw.selector != "gin.macro":
            return _Found(name, param, scope, raw, bound_in, reference=True)
        value = _resolve(raw, macros)
        return _Found(name, param, scope, value, bound_in, tuple(macros),
                      unknown=value is _UNKNOWN)


def _defaults(fn) -> dict:
    try:
        parameters = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {name: p.default for name, p in parameters.items() if p.default is not p.empty}


# ------------------------------------------------------------------------------ where
_COMMENT = re.compile(r"\s+#.*$")   # a trailing comment, left out of the line shown


def _line_of(sources: Sequence[tuple[str, str]], pattern: re.Pattern) -> str | None:
    """'FILE, line N: TEXT' (or '--gin_param ...') of the last line ``pattern`` matches."""
    found = None
    for label, text in sources:
        lines = text.splitlines()
        for number, line in enumerate(lines, 1):
            if pattern.match(line):
                where = label if label.startswith("--gin_param") and len(lines) == 1 \
                    else f"{label}, line {number}"
                found = f"{where}: {_COMMENT.sub('', line).strip()}"
    return found


def _where(found: _Found, sources) -> list[str]:
    lines = []
    if found.bound_in is not None:
        scope = re.escape(found.bound_in + "/") if found.bound_in else ""
        pattern = re.compile(rf"^\s*{scope}(?:[A-Za-z_][\w.]*\.)?{re.escape(found.name)}"
                             rf"\.{re.escape(found.param)}\s*=")
        line = _line_of(sources, pattern)
        lines.append(f"  {found.binding()} set in {line}" if line else
                     f"  {found.binding()} is bound (where: see the gin files)")
    for macro in found.macros:
        line = _line_of(sources, re.compile(rf"^\s*{re.escape(macro)}\s*="))
        if line:
            lines.append(f"  {macro} set in {line}")
    return lines


# ------------------------------------------------------------------------------ checking
def _scoped(config, table: dict):
    """(name, scope, entry) for every configurable of ``table`` the configuration knows,
    in every scope a binding names (rules and relations are applied alike)."""
    for name, entry in table.items():
        configurable = config.configurable(name)
        if configurable is not None:
            for scope in config.scopes(configurable.selector):
                yield name, scope, entry


def check_configuration(sources: Sequence[tuple[str, str]] = (), *, local: bool = True) -> None:
    """Check gin's parsed configuration against :data:`RULES` and :data:`RELATIONS`, and
    (``local``) the device and the ``pretrained`` model; raise :class:`ConfigError`
    listing every problem. ``sources``: (label, text) of each gin file and binding in
    parse order, to say where a value was set."""
    config = _Config()
    problems: list[str] = []
    seen: set[tuple] = set()
    for name, scope, rules in _scoped(config, RULES):
        for param, rule in rules.items():
            found = config.find(name, param, scope)
            if found is None or found.unknown or found.reference \
                    or (rule.local and not local):
                continue
            if found.key() in seen:
                continue
            seen.add(found.key())
            if not rule.test(found.value):
                config.refused.add(found.key())
                problems.append("\n".join([f"{found.shown()} is not allowed: expected "
                                           f"{rule.words()}", *_where(found, sources)]))
    reported: set[str] = set()
    for name, scope, relations in _scoped(config, RELATIONS):
        for relation in relations:
            values = Values(config, name, scope)
            try:
                message = relation(values)
            except SkipRelation:
                continue
            if message and message not in reported:
                reported.add(message)
                where = [w for found in values.read for w in _where(found, sources)]
                problems.append("\n".join([message, *dict.fromkeys(where)]))
    if not problems and local:
        problem = _pretrained_problem(config, sources)
        if problem:
            problems.append(problem)
    if problems:
        raise ConfigError("\n".join(problems))


def _passed(found: _Found | None):
    """What gin passes for a parameter that takes a configurable: the call's result for a
    bound ``@f()``, ``f`` for ``@f``, the signature's default otherwise (None when there
    is nothing to call: gin.REQUIRED unbound, or None)."""
    if found is None or found.unknown:
        return None
    if found.reference:
        ref = found.value
        return ref.scoped_configurable_fn() if ref.evaluate else ref.scoped_configurable_fn
    return found.value if callable(found.value) else None


def _pretrained_problem(config: _Config, sources) -> str | None:
    """``pretrain_and_adapt.pretrained``: the file loads and fits this configuration's
    agent (:mod:`iwx.experiment.model_check`)."""
    from iwx.experiment.model_check import fit_problem, load_model

    found = config.find("pretrain_and_adapt", "pretrained", "")
    if found is None or found.unknown or found.value is None:
        return None
    head = f"{found.shown()} cannot be used"
    where = _where(found, sources)
    try:
        record = load_model(found.value)
    except ConfigError as exc:
        return "\n".join([f"{head}: {exc}", *where])
    parts = {p: config.find("pretrain_and_adapt", p, "") for p in ("tasks", "env", "agent")}
    if any(p is None or p.unknown or p.value is None for p in parts.values()):
        return None   # no agent (a relation refuses that), or gin refuses it itself
    try:
        tasks, env, agent = (_passed(parts[p]) for p in ("tasks", "env", "agent"))
        if tasks is None or env is None or agent is None:
            return None
        ref = parts["agent"].value
        count = config.find("pretrain_and_adapt", "train_tasks", "")
        count = None if count is None or count.unknown else count.value
        if parts["agent"].reference:
            problem = fit_problem(record, tasks, env, agent, ref.configurable.wrapper,
                                  scoped=bool(ref.scopes), train_tasks=count)
        else:
            problem = fit_problem(record, tasks, env, agent, ref, train_tasks=count)
    except Exception as exc:  # noqa: BLE001 (a part the rules could not judge)
        return "\n".join([f"{head}: building this configuration's agent to compare it "
                          f"failed ({type(exc).__name__}: {exc})", *where])
    return None if problem is None else "\n".join([f"{head}: {problem}", *where])
