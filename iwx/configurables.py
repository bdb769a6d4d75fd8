"""Which iwx module defines each gin configurable, known without importing any of them.

Gin only knows a name once its module is imported, and only then can it check a
binding's parameter names at parse time. Importing every module would load
every physics engine (dm_control, MuJoCo) to parse a point-navigation file, so
instead:

* :func:`index` reads the source of every ``iwx/**/*.py`` as text (no import)
  and finds each ``@gin.configurable`` / ``@gin.register`` decorated class or
  function and each ``gin.external_configurable(...)`` call: {name: modules}.
  A new configurable is bindable the moment its module exists.
  ``tests/test_configurables.py`` checks this index against what gin registers
  when every module is imported.
* :func:`register_for` imports only the modules whose configurables a gin text
  names (``Name.param``, ``@Name``, ``scope/Name``, module-qualified
  ``iwx.x.Name``), so a name that no module defines still fails in gin's parse
  with its usual message ("No configurable matching 'Foo'").
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent          # the iwx package

# A decorator line, then (after more decorators or a multi-line argument list) the
# definition it decorates.
_DECORATOR = re.compile(r"^[ \t]*@(?:gin\.)?(?:configurable|register)\b(?P<args>[^\n]*)$",
                        re.M)
_DEFINITION = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(?P<name>\w+)", re.M)
_EXPLICIT = re.compile(r"^\(\s*(?:name\s*=\s*)?['\"](?P<name>\w+)['\"]")
_EXTERNAL = re.compile(r"gin\.external_configurable\(\s*(?P<obj>[\w.]+)"
                       r"(?:\s*,\s*(?:name\s*=\s*)?['\"](?P<name>\w+)['\"])?")
# Gin text: strings and comments are skipped, every other identifier is a candidate.
_GIN_TOKEN = re.compile(r"""('(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")|(#[^\n]*)|([A-Za-z_]\w*)""")


def module_name(path: Path) -> str:
    """iwx/agents/iwpl.py -> 'iwx.agents.iwpl'."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def configurables_in(source: str) -> list[str]:
    """Names of the configurables a module's source registers, in source order."""
    names = []
    for found in _DECORATOR.finditer(source):
        explicit = _EXPLICIT.match(found["args"].strip())
        definition = _DEFINITION.search(source, found.end())
        if explicit:
            names.append(explicit["name"])
        elif definition:
            names.append(definition["name"])
    for found in _EXTERNAL.finditer(source):
        names.append(found["name"] or found["obj"].rsplit(".", 1)[-1])
    return [name for name in names if name.isidentifier()]


@functools.lru_cache(maxsize=1)
def index() -> dict[str, tuple[str, ...]]:
    """{configurable name: modules defining it} over every iwx module (read, not imported)."""
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "configurable" not in source and "gin.register" not in source:
            continue
        for name in configurables_in(source):
            modules = found.setdefault(name, [])
            if module_name(path) not in modules:
                modules.append(module_name(path))
    return {name: tuple(modules) for name, modules in found.items()}


def names_in(text: str) -> set[str]:
    """Every identifier of a gin text outside its strings and comments (a superset of
    the configurables it names: parameter names and macros come along, harmlessly)."""
    return {m.group(3) for m in _GIN_TOKEN.finditer(text) if m.group(3)}


def modules_for(texts: Iterable[str]) -> list[str]:
    """The iwx modules defining a configurable that ``texts`` name, sorted."""
    known = index()
    names = set().union(*(names_in(t) for t in texts))
    return sorted({m for name in names & set(known) for m in known[name]})


def register_for(texts: Iterable[str]) -> list[str]:
    """Import the modules whose configurables ``texts`` (gin files, bindings) name, so
    that gin can check them; returns those modules."""
    modules = modules_for(texts)
    for module in modules:
        importlib.import_module(module)
    return modules


def register_all() -> list[str]:
    """Import every module that defines a configurable (slow: every physics engine)."""
    modules = sorted({m for ms in index().values() for m in ms})
    for module in modules:
        importlib.import_module(module)
    return modules
