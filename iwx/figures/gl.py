"""Which OpenGL backend MuJoCo renders with (``MUJOCO_GL``), chosen before mujoco is imported.

A backend named in ``MUJOCO_GL`` (egl, osmesa, glfw) is the user's choice and is
kept when it renders; otherwise egl (a GPU's, or Mesa's) is tried, then osmesa
(software, Debian's ``libosmesa6``). ``MUJOCO_GL=disable`` (what the repository sets
for everything that renders nothing: setup.sh, the tests) is no choice of a backend,
so a command that must render tries them too. Each try renders a red sphere in a
fresh process (a backend that cannot start can crash or hang the process that
imports it) and checks the pixels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping

CANDIDATES = ("egl", "osmesa")
NOT_A_CHOICE = ("", "disable", "disabled", "none", "off")
INSTALL = "apt-get install -y libosmesa6"

PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 3"/>'
    '<geom type="sphere" size="1" rgba="1 0 0 1"/></worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 16, 16)
r.update_scene(d)
px = r.render()
r.close()
assert px[8, 8, 0] > 40 and px[8, 8, 0] > 2 * px[8, 8, 1], px[8, 8]
"""


class NoRendering(Exception):
    """No OpenGL backend renders here; the message says what to install or set."""


def renders(backend: str, timeout: float = 60) -> bool:
    """Whether MuJoCo renders a frame with ``backend``, tried in a child process."""
    try:
        proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True,
                              timeout=timeout, env={**os.environ, "MUJOCO_GL": backend})
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0


def choose(environ: Mapping[str, str] | None = None,
           probe: Callable[[str], bool] = renders) -> tuple[str, str]:
    """(backend, why) to render with; raises :class:`NoRendering`."""
    environ = os.environ if environ is None else environ
    asked = environ.get("MUJOCO_GL", "").strip().lower()
    if asked not in NOT_A_CHOICE:
        if probe(asked):
            return asked, f"MUJOCO_GL={asked} (yours)"
        raise NoRendering(f"MUJOCO_GL={asked} does not render here; unset it to let iwx try "
                          f"{' then '.join(CANDIDATES)}, or `{INSTALL}` and set MUJOCO_GL=osmesa")
    for backend in CANDIDATES:
        if probe(backend):
            return backend, f"{backend}: the first of {', '.join(CANDIDATES)} that renders here"
    raise NoRendering(f"no OpenGL backend renders here (tried {', '.join(CANDIDATES)}): "
                      f"install OSMesa (`{INSTALL}`, as ./setup.sh does as root) or a GPU "
                      "driver with EGL, then run the command again")


def use(environ=None, probe: Callable[[str], bool] = renders) -> str:
    """Choose a backend and set ``MUJOCO_GL`` for this process (before mujoco is imported);
    returns the reason."""
    backend, why = choose(environ, probe)
    if "mujoco" in sys.modules and os.environ.get("MUJOCO_GL") != backend:
        raise RuntimeError("mujoco was imported before the GL backend was chosen")
    os.environ["MUJOCO_GL"] = backend
    return why
