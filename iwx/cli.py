"""The ``iwx`` command: every command line of the package behind one name.

    iwx run --gin smoke --runs-dir runs    # = python -m iwx.run --gin smoke ...
    iwx runs                               # the runs recorded in ./runs
    iwx --help                             # the commands

A subcommand hands the rest of the command line, untouched, to its module's
``main(argv)``: each module keeps its own options and help and stays runnable as
``python -m iwx.<module>``. :data:`COMMANDS` is data: a command is offered when its
module exists (``figure`` appears once iwx/figure.py does), and listing them
imports none of them, so ``iwx --help`` answers at once, without torch, Ray or
Sacred. Nothing here imports a command's module by name (tests/test_layout.py:
the library never imports a command line); :func:`main` imports the one asked for.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys

# (command, module, what it does in one line): the order of `iwx --help`.
COMMANDS = (
    ("run", "iwx.run", "run one experiment from gin files (a path or a shipped name: "
                       "--gin smoke)"),
    ("sweep", "iwx.sweep", "run a sweep file (a grid or an Optuna search) with Ray Tune"),
    ("compare", "iwx.compare", "run several gin files on several seeds, tabulate their "
                               "adaptation"),
    ("runs", "iwx.runs", "list the recorded runs of a file store or MongoDB"),
    ("report", "iwx.report", "turn recorded runs into the paper's figures and tables"),
    ("figure", "iwx.figure", "run (or reuse) the runs of one of the paper's figures and draw it"),
    ("db", "iwx.db", "start / stop a local MongoDB-compatible server and Omniboard"),
    ("resync", "iwx.resync", "re-send file-store runs to MongoDB"),
    ("bench", "iwx.bench", "throughput of the learner and the acting loop"),
)


def available() -> list[tuple[str, str, str]]:
    """The commands whose module is present (found, not imported)."""
    return [c for c in COMMANDS if importlib.util.find_spec(c[1]) is not None]


def usage(prog: str, commands) -> str:
    width = max(len(name) for name, _, _ in commands)
    lines = [f"usage: {prog} COMMAND [ARGS ...]   ({prog} --version: the version)", "",
             "Importance Weighted Policy Learning and Adaptation: run, sweep, list and "
             "report experiments.", "", "commands:"]
    lines += [f"  {name:<{width}}  {about}" for name, _, about in commands]
    lines += ["", f"'{prog} COMMAND --help' gives a command's options. A gin or sweep file "
              "is a path or the name", f"of a shipped one: '{prog} run --gin point_nav_iwpl' "
              f"(the demo), '{prog} run --gin smoke'", "(the whole pipeline in seconds)."]
    return "\n".join(lines)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("iwx")
    except PackageNotFoundError:
        return "unknown (not installed)"


def main(argv=None, prog: str = "iwx") -> int:
    """Exit status: the command's; 0 for the help; 2 without a command or for an
    unknown one."""
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = available()
    if not argv:
        print(usage(prog, commands), file=sys.stderr)
        return 2
    first, rest = argv[0], argv[1:]
    if first in ("-h", "--help") or (first == "help" and not rest):
        print(usage(prog, commands))
        return 0
    if first == "--version":
        print(f"iwx {version()}")
        return 0
    if first == "help":   # 'iwx help run' = 'iwx run --help'
        first, rest = rest[0], ["--help"]
    modules = {name: module for name, module, _ in commands}
    if first not in modules:
        what = "option" if first.startswith("-") else "command"
        close = difflib.get_close_matches(first, list(modules), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"{prog}: unknown {what} {first!r}{hint}; the commands are: "
              f"{', '.join(modules)} ('{prog} --help' says what each does)", file=sys.stderr)
        return 2
    code = importlib.import_module(modules[first]).main(rest)
    return 0 if code is None else int(code)


if __name__ == "__main__":
    sys.exit(main())
