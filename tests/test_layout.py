"""The package's layout rules, read from the source with ``ast`` (nothing is imported):
command lines are imported by no module, method modules stand alone, and modules stay small."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "iwx"
COMMAND_LINES = {"iwx.run", "iwx.sweep", "iwx.report", "iwx.compare", "iwx.bench", "iwx.db",
                 "iwx.resync", "iwx.runs", "iwx.figure"}
MAX_LINES = 400
# Environment definitions may be longer (issue 11).
LONG_ALLOWED = ("iwx/envs/",)
# One module per method family: each imports the toolkit (iwx.agents.base, .actors), nets and
# ops, never another method, so a method can be read, changed or removed on its own.
METHODS = ("iwpl", "iwpa", "actor_critic", "mpo", "rl2", "pearl", "parametric_adaptation")


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str | None = None) -> set[str]:
    """Every module an iwx module imports, anywhere in it (functions included): for
    ``from a import b`` both ``a`` and ``a.b`` (b may be a module); relative imports
    resolved against the package of module ``name`` (default: the path's)."""
    package = (name or module_name(path)).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                prefix = ".".join(package[:len(package) - node.level + 1])
                base = f"{prefix}.{base}" if base else prefix
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_the_import_reader_sees_every_form(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import iwx.run\nfrom iwx import compare\nfrom iwx.db import main\n"
                     "def f():\n    from .. import sweep\n    from . import mongo\n")
    names = imported(probe, "iwx.experiment.probe")
    assert {"iwx.run", "iwx.compare", "iwx.db", "iwx.sweep", "iwx.experiment.mongo"} <= names
    assert names & COMMAND_LINES == {"iwx.run", "iwx.compare", "iwx.db", "iwx.sweep"}


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_command_line(path):
    """iwx.run, iwx.sweep, ... are imported by nothing but their own ``__main__``: the
    library is what they call, never the other way round."""
    wrong = sorted(imported(path) & COMMAND_LINES - {module_name(path)})
    assert not wrong, f"{path.relative_to(ROOT)} imports the command line(s) {wrong}"


def test_every_module_is_at_most_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in modules()
            if (n := len(p.read_text().splitlines())) > MAX_LINES
            and not str(p.relative_to(ROOT)).startswith(LONG_ALLOWED)}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


@pytest.mark.parametrize("method", METHODS)
def test_no_method_module_imports_another(method):
    others = {f"iwx.agents.{m}" for m in METHODS if m != method}
    path = PACKAGE / "agents" / f"{method}.py"
    wrong = sorted({name for name in imported(path)
                    if any(name == o or name.startswith(o + ".") for o in others)})
    assert not wrong, f"iwx/agents/{method}.py imports the method module(s) {wrong}"
