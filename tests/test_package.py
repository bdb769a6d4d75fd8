"""The installable tool: the wheel built from this checkout carries the package, the
``iwx`` console script and the shipped gin and sweep files; installed into a fresh
virtual environment it runs a shipped experiment by name from an empty folder and
lists the run.

Nothing is downloaded. The wheel is built offline (``pip wheel --no-build-isolation``,
with the setuptools of this environment) from a copy of the sources, so the checkout
gets no ``build/`` folder. The fresh environment has no pip and no dependencies of
its own: a ``.pth`` file puts this environment's site-packages on its path. A plain
path line in a ``.pth`` file does not run the ``.pth`` files of the folder it adds,
so the editable install of iwx here (``__editable__.iwx-*.pth`` and its finder) stays
off, and the test checks that ``iwx`` is imported from the wheel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import pytest

from cli import ROOT

SOURCES = ("pyproject.toml", "setup.py", "README.md", "iwx", "gin", "sweeps", "figures")
SHIPPED = {"gin": "*.gin", "sweeps": "*.yaml", "figures": "*.yaml"}

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("setuptools") is None or importlib.util.find_spec("pip") is None,
    reason="building a wheel offline needs setuptools and pip in this environment")


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=kwargs.pop("timeout", 300), **kwargs)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    start = time.monotonic()
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation",
          "--no-index", "--disable-pip-version-check", "-q", "-w", tmp / "dist"])
    print(f"wheel built in {time.monotonic() - start:.1f} s")
    (built,) = (tmp / "dist").glob("iwx-*.whl")
    return built


def test_the_wheel_carries_the_package_the_script_and_every_shipped_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"iwx/cli.py", "iwx/__main__.py", "iwx/runs.py", "iwx/experiment/shipped.py",
            "iwx/tuning/spec.py"} <= names
    for folder, pattern in SHIPPED.items():
        files = {f"iwx/_shipped/{folder}/{p.relative_to(ROOT / folder).as_posix()}"
                 for p in (ROOT / folder).rglob(pattern)}
        assert files and files <= names, sorted(files - names)
    assert "iwx/_shipped/gin/tasks/point_nav.gin" in names
    # nothing beside the package: a top-level gin/ would shadow gin-config's package
    tops = {n.split("/")[0] for n in names}
    assert len(tops) == 2 and "iwx" in tops and any(t.endswith(".dist-info") for t in tops), tops
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[console_scripts]" in text and "iwx = iwx.cli:main" in text


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh environment with the wheel installed, borrowing this one's dependencies."""
    env = tmp_path_factory.mktemp("venv") / "env"
    _run([sys.executable, "-m", "venv", "--without-pip", env])
    python = env / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                    "['purelib'])"]).stdout.strip())
    borrowed = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "zz_borrowed.pth").write_text("".join(f"{p}\n" for p in borrowed))
    # --ignore-installed: the editable iwx of this environment is visible through the
    # .pth; never try to uninstall it
    _run([python, "-m", "pip", "install", wheel, "--no-deps", "--no-index",
          "--ignore-installed", "--disable-pip-version-check", "-q"])
    return env


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "IWX_RUNS_DIR",
                                                             "IWX_MONGO_URL")}
    return {**env, "MUJOCO_GL": "disable", "RAY_AUTH_MODE": "disabled", **extra}


def test_the_installed_iwx_is_the_wheel_not_the_checkout(venv, tmp_path):
    out = _run([venv / "bin/python", "-c", "import iwx, iwx.experiment.shipped as s; "
                "print(iwx.__file__); print(s.root('gin')); print(s.root('sweeps'))"],
               cwd=tmp_path, env=_clean_env()).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in out), out
    assert Path(out[1]).parts[-2:] == ("_shipped", "gin")
    # a shipped sweep names its gin file relative to itself: found inside the wheel too
    out = _run([venv / "bin/python", "-c", "from iwx.tuning.spec import load; "
                "s = load('adapt_alpha'); print(s.path); print(*s.gin_files)"],
               cwd=tmp_path, env=_clean_env()).stdout.split()
    assert all(Path(p).resolve().is_relative_to(venv.resolve()) for p in out), out


def test_the_installed_command_runs_a_shipped_experiment_by_name(venv, tmp_path):
    iwx = venv / "bin" / "iwx"
    assert iwx.is_file()
    start = time.monotonic()
    _run([iwx, "run", "--gin", "smoke", "--runs-dir", "./runs", "--no-progress"],
         cwd=tmp_path, env=_clean_env())
    print(f"smoke run through the installed command: {time.monotonic() - start:.1f} s")
    info = json.loads(next((tmp_path / "runs").glob("*/info.json")).read_text())
    included = [line for line in info["gin_text"].splitlines() if line.startswith("# --- /")]
    assert included and all(Path(line.removeprefix("# --- ")).resolve().is_relative_to(
        venv.resolve()) for line in included), included
    listed = _run([iwx, "runs", "./runs"], cwd=tmp_path, env=_clean_env()).stdout
    header, row = listed.splitlines()
    assert row.split()[2:7] == ["COMPLETED", "point_nav", "iwpl", "0", "smoke"], listed
    assert "Shared Q + IW" in row


def test_the_installed_command_finds_a_shipped_figure_spec(venv, tmp_path):
    out = _run([venv / "bin" / "iwx", "figure", "3", "--dry-run"], cwd=tmp_path,
               env=_clean_env()).stdout
    spec = out.splitlines()[0].split("(", 1)[1].split(")", 1)[0]
    assert Path(spec).resolve().is_relative_to(venv.resolve()), out
    assert "8 runs: 0 reused, 8 to run" in out and not (tmp_path / "runs").exists()
