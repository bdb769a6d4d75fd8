"""gin configurables are registered from a source index, importing only what a
configuration names: parsing a point-navigation file loads no physics engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from iwx import configurables

ROOT = configurables.ROOT.parent
HEAVY = ("dm_control", "mujoco", "ray", "sacred", "matplotlib", "scipy")


def loaded_after(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; {heavy package: imported?} afterwards, plus
    whatever ``code`` stored in the dict ``out``."""
    script = textwrap.dedent(f"""
        import json, sys
        out = {{}}
        {textwrap.indent(textwrap.dedent(code), '        ').strip()}
        out["loaded"] = {{p: any(m == p or m.startswith(p + ".") for m in sys.modules)
                         for p in {HEAVY!r}}}
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MUJOCO_GL": "disable"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_index_is_what_gin_registers_when_every_module_is_imported():
    import gin.config

    configurables.register_all()
    registered = {(c.name, c.module) for c in gin.config._REGISTRY._selector_map.values()
                  if c.module.startswith("iwx.")}
    indexed = {(name, module) for name, modules in configurables.index().items()
               for module in modules}
    assert indexed == registered
    assert configurables.index()["PointNavTasks"] == ("iwx.envs.point_nav",)


def test_names_in_gin_text_skip_comments_and_strings():
    text = ("# ReachEnv.radius = 1\nPointNavTasks.seed = 3  # ReachVec\n"
            "scope/IWPA.alpha = 0.1\nx.path = 'ReachTasks # no'\ny.v = @GoToRingTasks()\n")
    names = configurables.names_in(text)
    assert {"PointNavTasks", "seed", "scope", "IWPA", "alpha", "GoToRingTasks"} <= names
    assert not names & {"ReachEnv", "ReachVec", "ReachTasks", "no"}
    assert configurables.modules_for([text]) == ["iwx.agents.iwpa", "iwx.envs.go_to_ring",
                                                 "iwx.envs.point_nav"]


def test_parsing_point_navigation_imports_no_physics_and_reach_still_parses():
    out = loaded_after("""
        from iwx.experiment.runner import RunSpec, prepare
        p = prepare(RunSpec(gin_files=("gin/point_nav_iwpl.gin",), progress=False))
        out["key"] = p.key
    """)
    assert len(out["key"]) == 16
    assert not out["loaded"]["dm_control"] and not out["loaded"]["mujoco"], out
    out = loaded_after("""
        from iwx.experiment.gin_config import parse
        import gin
        parse(["gin/reach_iwpl.gin"], [])
        out["tasks"] = gin.query_parameter("pretrain_and_adapt.tasks").configurable.name
    """)
    assert out["tasks"] == "ReachTasks" and out["loaded"]["dm_control"]


def test_a_bad_binding_is_reported_without_the_heavy_packages():
    out = loaded_after("""
        import contextlib, io
        from iwx import run
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            out["code"] = run.main(["--gin", "gin/point_nav_iwpl.gin",
                                    "--gin_param", "IWPA.alhpa = 1"])
        out["err"] = err.getvalue()
    """)
    assert out["code"] == 2 and "alhpa" in out["err"], out
    assert not any(out["loaded"].values()), out["loaded"]


@pytest.mark.parametrize("binding, needle", [
    ("NoSuchThing.value = 3", "No configurable matching 'NoSuchThing'"),
    ("iwx.nowhere.Foo.x = 1", "No configurable matching 'iwx.nowhere.Foo'"),
])
def test_unknown_names_still_fail_with_gins_message(tmp_path, binding, needle):
    from iwx.experiment.gin_config import ConfigError, parse

    path = tmp_path / "x.gin"
    path.write_text(f"include '{ROOT / 'gin/point_nav_iwpl.gin'}'\n{binding}\n")
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        parse([str(path)], [])
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        parse([str(ROOT / "gin/point_nav_iwpl.gin")], [binding])
