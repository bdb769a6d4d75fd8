"""The gin and sweep files iwx ships, named from anywhere: ``--gin point_nav_iwpl``.

A checkout keeps them in ``gin/`` and ``sweeps/`` beside the package; a wheel
carries the same two folders inside it, as ``iwx/_shipped/gin`` and
``iwx/_shipped/sweeps`` (setup.py maps them), so after ``pip install`` the
shipped experiments can still be named. Both layouts keep the two folders side by
side and each folder's tree as it is, so what refers to a file relative to another
(a gin ``include 'tasks/point_nav.gin'``, a sweep's ``gin: gin/point_nav_iwpl.gin``)
resolves from any working directory.

A name is looked up only when it is not a path to an existing file (a path always
wins, as before), as written, then with the folder's suffix: ``point_nav_iwpl``,
``point_nav_iwpl.gin``, ``gin/point_nav_iwpl.gin`` and ``tasks/point_nav`` all
name shipped files. An unknown name is an error listing the close ones.
"""

from __future__ import annotations

import difflib
from pathlib import Path, PurePosixPath

SUFFIXES = {"gin": ".gin", "sweeps": ".yaml", "figures": ".yaml"}
NOUNS = {"gin": "gin file", "sweeps": "sweep file", "figures": "figure spec"}
_PACKAGE = Path(__file__).resolve().parents[1]   # .../iwx


class UnknownName(LookupError):
    """Neither an existing file nor a shipped file's name; the message says what is close."""


def root(kind: str) -> Path | None:
    """The folder of the shipped ``kind`` ('gin' or 'sweeps') files: the wheel's copy
    inside the package, else the checkout's folder beside it (an editable install or
    PYTHONPATH). None when neither exists (then only paths work)."""
    inside = _PACKAGE / "_shipped" / kind
    if inside.is_dir():
        return inside
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / kind).is_dir():
        return checkout / kind
    return None


def names(kind: str) -> list[str]:
    """Every shipped file of ``kind`` as it can be named: its path under the folder,
    without the suffix ('point_nav_iwpl', 'tasks/point_nav'), runnable files first."""
    base = root(kind)
    if base is None:
        return []
    found = [p.relative_to(base).with_suffix("").as_posix()
             for p in base.rglob(f"*{SUFFIXES[kind]}") if p.is_file()]
    return sorted(found, key=lambda n: (n.count("/"), n))


def _relative(name: str | Path, kind: str) -> PurePosixPath | None:
    """``name`` as a path under the shipped folder (a leading 'gin/' or 'sweeps/'
    dropped: a checkout's path typed elsewhere), None for an absolute path."""
    written = PurePosixPath(str(name).replace("\\", "/"))
    if written.is_absolute():
        return None
    if written.parts[:1] == (kind,):
        written = PurePosixPath(*written.parts[1:])
    return written if written.parts else None


def find(name: str | Path, kind: str) -> Path | None:
    """The shipped file ``name`` refers to, or None."""
    base, written = root(kind), _relative(name, kind)
    if base is None or written is None:
        return None
    for candidate in (written, written.with_name(written.name + SUFFIXES[kind])):
        path = base.joinpath(*candidate.parts)
        if path.is_file():
            return path
    return None


def resolve(name: str | Path, kind: str) -> Path:
    """``name`` itself when it is an existing file, else the shipped file it names;
    raises :class:`UnknownName` (message: '<kind> file not found: ...')."""
    path = Path(name)
    if path.is_file():
        return path
    found = find(name, kind)
    if found is not None:
        return found
    raise UnknownName(not_found(name, kind))


def not_found(name: str | Path, kind: str) -> str:
    """What to say about a name that is neither a file nor a shipped file."""
    noun, base = NOUNS[kind], root(kind)
    message = f"{noun} not found: {name}"
    if base is None:
        return message
    written = _relative(name, kind)
    stem = "" if written is None else written.as_posix().removesuffix(SUFFIXES[kind])
    close = difflib.get_close_matches(stem, names(kind), n=5, cutoff=0.6)
    if close:
        return (f"{message} (not a file, nor the name of a shipped {noun}); did you mean "
                f"{', '.join(close)}? The shipped ones are in {base}")
    return (f"{message} (not a file, nor the name of a shipped {noun}); the shipped ones "
            f"are in {base}")
