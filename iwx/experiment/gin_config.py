"""Reading gin files and bindings, with errors that name file, line and binding."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import tokenize
from collections.abc import Sequence
from pathlib import Path

import gin

from iwx.experiment import shipped


class ConfigError(Exception):
    """A configuration problem found before any compute is spent."""


@dataclasses.dataclass(frozen=True)
class GinConfig:
    files: tuple[str, ...]
    params: tuple[str, ...]
    text: str                      # every file's text, then the command-line bindings

    def key(self, seed: int, extra: str = "") -> str:
        """Identifies a run's configuration: same command, same key (used to resume)."""
        digest = hashlib.sha256(f"{self.text}\n#seed={seed}\n{extra}".encode()).hexdigest()
        return digest[:16]


def _last_statement(text: str) -> tuple[int, str]:
    """Line number and text of the last binding that starts at column 0."""
    found = (1, "")
    for number, line in enumerate(text.splitlines(), 1):
        if line[:1] not in ("", " ", "\t", "#"):
            found = (number, line)
    return found


def _where(exc: BaseException, source: str, text: str = "") -> str:
    if isinstance(exc, tokenize.TokenError):
        # The tokenizer reports the end of the file; the culprit is the statement
        # that was still open there.
        number, line = _last_statement(text)
        return (f"{exc.args[0]} (a bracket or string opened here is never closed)\n"
                f"  In {source}, line {number}\n    {line}")
    if isinstance(exc, SyntaxError):
        return f"{exc.msg}\n  In {source}, line {exc.lineno}\n    {(exc.text or '').rstrip()}"
    message = str(exc)
    return message if source in message or "In bindings" in message else f"{message}\n  In {source}"


_INCLUDE = re.compile(r"^include\s+['\"]([^'\"]+)['\"]", re.M)


def read_text(path: str | Path) -> str:
    """A gin file's text; a file that is not UTF-8 text (a binary file, another
    encoding) is a ConfigError naming the file and the first byte that is not."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start:exc.start + 1].hex()
        raise ConfigError(f"{path}: not a gin file: byte 0x{byte} at offset {exc.start} is "
                          "not UTF-8 text (gin files are UTF-8 text)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def resolve_include(name: str, including: Path) -> Path:
    """An ``include`` names a file relative to the working directory, the including
    file's folder, or the folder above it — the order in which gin looks (``parse``
    adds those folders to gin's search path)."""
    for base in (Path.cwd(), including.parent, including.parent.parent):
        if (base / name).is_file():
            return base / name
    raise ConfigError(f"{including}: include {name!r} not found next to it, one folder "
                      f"above it, or in {Path.cwd()}")


def expanded_text(path: str | Path) -> str:
    """A gin file's text with every file it includes before it (what a run records)."""
    return "\n".join(_texts_with_includes(Path(path)))


def flattened_text(path: str | Path, seen: tuple[Path, ...] = ()) -> str:
    """A gin file's text with each ``include`` line replaced by the included file's
    (flattened) text: one self-contained file that parses exactly as the original,
    wherever it is written (a sweep sends it to Ray workers)."""
    path = Path(path)
    if path.resolve() in seen:
        raise ConfigError(f"{path}: include cycle through {[str(s) for s in seen]}")
    lines = []
    for line in read_text(path).splitlines():
        found = _INCLUDE.match(line)
        if found is None:
            lines.append(line)
            continue
        included = resolve_include(found.group(1), path)
        lines += [f"# --- {line.strip()}  ({included})",
                  flattened_text(included, (*seen, path.resolve())),
                  f"# --- end of {found.group(1)}"]
    return "\n".join(lines) + "\n"


def _texts_with_includes(path: Path, seen: tuple[Path, ...] = ()) -> list[str]:
    """The file's text preceded by every file it includes (recursively), each with a
    header line: the record of a run holds every binding that shaped it."""
    if path.resolve() in seen:
        raise ConfigError(f"{path}: include cycle through {[str(s) for s in seen]}")
    text = read_text(path)
    out = []
    for name in _INCLUDE.findall(text):
        out += _texts_with_includes(resolve_include(name, path), (*seen, path.resolve()))
    return out + [f"# --- {path}\n{text}"]


class _QuietSearch(logging.Filter):
    """Gin logs an error for every search-path prefix an include is *not* under."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found:")


@contextlib.contextmanager
def _quiet_include_search():
    quiet = _QuietSearch()
    logging.getLogger().addFilter(quiet)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(quiet)


def parse(files: Sequence[str], params: Sequence[str], *, local: bool = True) -> GinConfig:
    """Parse gin files then bindings into gin's global config (cleared first), then
    check every value (:mod:`iwx.experiment.validate`; ``local``: also what depends on
    this machine, the device and the pretrained model, for a configuration that runs
    here). Raises ConfigError naming the file, the line and the binding.

    Only the modules defining a configurable that the files or bindings name are
    imported first (``iwx.configurables``): parsing a point-navigation file loads
    no physics engine."""
    from iwx.configurables import register_for
    from iwx.experiment.validate import check_configuration

    gin.clear_config()
    texts = []
    for name in files:
        try:   # a path as before, else a shipped file's name ('point_nav_iwpl')
            path = shipped.resolve(name, "gin")
        except shipped.UnknownName as exc:
            raise ConfigError(str(exc)) from None
        tree = _texts_with_includes(path)
        texts += tree
        register_for(tree)
        text = read_text(path)
        # gin looks for an include under each search path: the folder of every file of
        # the tree and the one above it (so 'tasks/x.gin' resolves from gin/*.gin).
        for header in tree:
            member = Path(header.split("\n", 1)[0].removeprefix("# --- "))
            for folder in (member.parent, member.parent.parent):
                if str(folder) not in gin.config._LOCATION_PREFIXES:
                    gin.add_config_file_search_path(str(folder))
        try:
            with _quiet_include_search():
                gin.parse_config_file(str(path), skip_unknown=False)
        except Exception as exc:  # gin raises ValueError, SyntaxError, TokenError, ...
            raise ConfigError(f"{path}: {_where(exc, f'file {str(path)!r}', text)}") from exc
    register_for(params)
    for i, binding in enumerate(params, 1):
        try:
            gin.parse_config(binding)
        except Exception as exc:
            raise ConfigError(f"--gin_param {binding!r}: "
                              f"{_where(exc, f'--gin_param number {i}', binding)}") from exc
    sources = [tuple(t.removeprefix("# --- ").split("\n", 1)) for t in texts]
    sources += [(f"--gin_param number {i}", binding) for i, binding in enumerate(params, 1)]
    check_configuration(sources, local=local)
    if params:
        texts.append("# --- command-line bindings\n" + "\n".join(params))
    return GinConfig(tuple(files), tuple(params), "\n".join(texts) + "\n")


def _plain(value):
    """A JSON/Mongo-friendly form of a binding's value; a %MACRO is recorded as its value
    (the task files bind most numbers through macros: IWPL.num_samples = %K)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, gin.config.ConfigurableReference) and value.selector == "gin.macro":
        try:
            return _plain(gin.query_parameter(f"{value.scoped_selector}.value"))
        except ValueError:  # a macro nothing defines: record the reference
            return repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k).replace(".", "_"): _plain(v) for k, v in value.items()}
    return repr(value)


def flat_bindings() -> dict[str, dict]:
    """{"scope/Name": {"param": value}} of every parsed binding, for Sacred's config.

    Names are shortened to their last component (Sacred and MongoDB forbid '.'
    in keys), so a binding can be filtered on as config.bindings.IWPL.num_samples.
    """
    out: dict[str, dict] = {}
    for (scope, selector), params in gin.config._CONFIG.items():  # gin 0.5 keeps bindings here
        name = selector.rsplit(".", 1)[-1]
        key = f"{scope}/{name}" if scope else name
        out.setdefault(key, {}).update({p: _plain(v) for p, v in params.items()})
    return out
