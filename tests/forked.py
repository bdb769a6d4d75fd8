"""``python -m MODULE ARGS`` run in a child of a warm template process (tests only).

Each command-line test used to start a fresh interpreter, which spends about 3 s of
CPU importing torch, numpy, sacred (with pandas), gymnasium, scipy and matplotlib
before the command does anything; the suite starts a few hundred of them. Here one
template per test process (multiprocessing's fork server) imports those libraries
once, and each command runs in a process forked from it: a real process of its own
(its own pid, signals, exit status, file descriptors 1 and 2 written to files read
back as ``stdout``/``stderr``), running the module as ``__main__`` exactly as
``python -m`` does, with the caller's environment and working directory. What it
returns is a :class:`subprocess.CompletedProcess`, as ``subprocess.run`` gives.

Where a fork could differ from a fresh interpreter, :func:`run` starts a fresh one
instead (``subprocess.run``, the old way) — :func:`differences` says why:

* the environment differs from the template's in a variable that a preloaded module
  (or iwx at import) could have read already: only the variables in
  :data:`MAY_DIFFER` / :data:`MAY_DIFFER_PREFIXES` (those iwx reads while a command
  runs, and a few that no preloaded library reads) may differ (:data:`WHY_FRESH`
  counts what sent commands fresh);
* ``IWX_FRESH_PROCESS=1`` in the environment (every command then starts fresh: a way
  to check that nothing here hides a difference).

What a fork still cannot show: warnings printed while the template imports its
libraries go to the template's stderr, not the command's (iwx filters the one such
warning it knows, sacred's pkg_resources notice, before importing sacred, and the
template imports ``iwx.experiment`` first for that reason); and import-time costs
and failures of the preloaded libraries are the template's. Commands whose tests
need a pristine interpreter (what a command imports, signal delivery from a shell)
start their own processes in those tests.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# What the template imports once (in this order: iwx.experiment first installs iwx's
# warning filter for sacred's import). No physics engine: MUJOCO_GL is read when
# mujoco is first imported, and a rendering command must be free to choose it.
PRELOAD = ["iwx.experiment", "torch", "numpy", "gin", "sacred", "sacred.observers",
           "gymnasium", "scipy.special", "matplotlib", "matplotlib.pyplot", "pymongo"]

# Environment variables that may differ from the template's: those iwx reads while a
# command runs (not at import), pytest's per-test variable, the one gymnasium's import
# sets (in this process and in the template alike; only pygame reads it), and what a
# test's in-process Ray or Ray Tune leaves in this process's environment (Ray is not
# preloaded: a command that uses it imports it after its environment is set; torch
# reads TORCHINDUCTOR_* only when its compiler is imported, Python PYTHONBREAKPOINT
# at each breakpoint()).
MAY_DIFFER = frozenset({
    "PYTHONPATH", "PYTEST_CURRENT_TEST", "PYGAME_HIDE_SUPPORT_PROMPT", "PYTHONBREAKPOINT",
    "IWX_KILL_AFTER_CHECKPOINT", "IWX_KILL_ACTOR_AT_EPISODE", "IWX_RUNS_DIR",
    "IWX_MONGO_URL", "IWX_OMNIBOARD_DIR", "IWX_RECORD_RETRY_S", "IWX_DB_DIR"})
MAY_DIFFER_PREFIXES = ("RAY_", "TUNE_", "TORCHINDUCTOR_")

# The environment the template starts with: this process's when the test files were
# collected (tests/conftest.py has set its defaults), not that of whichever test runs a
# command first, which may have changed a variable for itself (tests/test_db.py
# empties PATH): a template started inside it would send every later command to a
# fresh interpreter.
TEMPLATE_ENV = dict(os.environ)

_template: dict = {}     # "context": the fork server's, once started
STARTS = {"forked": 0, "fresh": 0}      # how this process ran its commands (tests/test_forked.py)
WHY_FRESH: dict[tuple[str, ...], int] = {}     # the differences that sent commands fresh


def _context():
    if "context" not in _template:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        current = dict(os.environ)
        os.environ.clear()
        os.environ.update(TEMPLATE_ENV)      # the server inherits the environment it starts in
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            os.environ.clear()
            os.environ.update(current)
        _template["context"] = context
    return _template["context"]


def differences(env: dict) -> list[str]:
    """The variables that keep a command with environment ``env`` out of a fork of the
    template: empty when it may fork."""
    if env.get("IWX_FRESH_PROCESS") == "1":
        return ["IWX_FRESH_PROCESS"]
    base = TEMPLATE_ENV
    return sorted(k for k in (set(env) | set(base)) - MAY_DIFFER
                  if env.get(k) != base.get(k) and not k.startswith(MAY_DIFFER_PREFIXES))


def _main(module: str, args: list[str], cwd: str, env: dict, out: str, err: str) -> None:
    """In the forked child: ``python -m module *args`` in ``cwd`` with ``env``, its
    descriptors 1 and 2 on the files ``out`` and ``err``."""
    import runpy
    import traceback

    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(target, fd)
        os.close(target)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    sys.path.insert(0, cwd)                 # python -m puts the working directory first
    sys.argv = [module, *args]              # runpy replaces [0] with the module's path
    try:
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException:               # as the interpreter reports an uncaught error
            traceback.print_exc()
            raise SystemExit(1) from None
    finally:
        threading._shutdown()               # an interpreter's exit: join threads, then atexit
        atexit._run_exitfuncs()


def run(module: str, args: list[str], *, env: dict, cwd: Path,
        timeout: float) -> subprocess.CompletedProcess:
    """``python -m module *args`` as :func:`subprocess.run` with ``capture_output``,
    ``text`` and ``timeout`` runs it: in a fork of the template where
    :func:`differences` finds none, else in a fresh interpreter."""
    argv = [sys.executable, "-m", module, *args]
    why = tuple(differences(env))
    if why:
        STARTS["fresh"] += 1
        WHY_FRESH[why] = WHY_FRESH.get(why, 0) + 1
        return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=timeout)
    STARTS["forked"] += 1
    with tempfile.TemporaryDirectory(prefix="iwx-forked-") as tmp:
        out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
        child = _context().Process(target=_main, name=f"python -m {module}",
                                   args=(module, list(args), str(Path(cwd).resolve()), env,
                                         out, err))
        child.start()
        child.join(timeout)
        timed_out = child.exitcode is None
        if timed_out:
            child.kill()
            child.join()
        stdout, stderr = (Path(p).read_text(errors="replace") if os.path.exists(p) else ""
                          for p in (out, err))
    if timed_out:
        raise subprocess.TimeoutExpired(argv, timeout, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(argv, child.exitcode, stdout, stderr)
