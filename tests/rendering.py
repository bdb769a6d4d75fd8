"""Render a frame in a child process with an OpenGL backend that works here.

MuJoCo fixes its backend when it is imported, and the test process imports it with the
repository's ``MUJOCO_GL=disable``; so a test that needs a frame runs a snippet in a
fresh Python with the backend ``iwx.figures.gl`` chooses (egl, else osmesa, which
./setup.sh installs), and reads the frame back. Skipped only where nothing renders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cli import ROOT


def backend() -> str:
    """The backend a test renders with; skips the test where none renders."""
    from iwx.figures import gl

    try:
        return gl.choose({})[0]
    except gl.NoRendering as exc:
        pytest.skip(str(exc))


def frame_from_child(snippet: str, tmp_path) -> np.ndarray:
    """Runs ``snippet`` (which must assign an image array to ``frame``) in a child
    Python with a rendering backend; returns ``frame``."""
    out = tmp_path / "frame.npy"
    code = textwrap.dedent(snippet) + f"\nimport numpy\nnumpy.save({str(out)!r}, frame)\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300,
                          env={**os.environ, "MUJOCO_GL": backend(),
                               "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return np.load(out)
