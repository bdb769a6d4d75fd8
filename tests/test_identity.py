"""A run's task and method: bound in gin, recorded in the run, read back from the record."""

from __future__ import annotations

import pytest

from iwx.experiment.identity import TASK_CLASSES, identity_from_bindings, recorded_identity


def test_bound_identity_wins_over_the_bound_classes():
    bindings = {"run_identity": {"task": "point_nav", "method": "distral"},
                "pretrain_and_adapt": {"tasks": "@PointNavTasks()", "agent": "@ActorCritic"}}
    assert identity_from_bindings(bindings) == {"task": "point_nav", "method": "distral"}


def test_unbound_identity_falls_back_to_the_bound_class_names():
    bindings = {"pretrain_and_adapt": {"tasks": "@PointNavTasks()", "agent": "@IWPL"}}
    assert identity_from_bindings(bindings) == {"task": "PointNavTasks", "method": "IWPL"}
    scoped = {"pretrain_and_adapt": {"tasks": "@s/iwx.envs.reach.ReachTasks()", "agent": None}}
    assert identity_from_bindings(scoped) == {"task": "ReachTasks", "method": "none"}
    assert identity_from_bindings({}) == {"task": None, "method": None}


def test_reading_a_record_prefers_its_identity_then_its_bindings():
    old = {"bindings": {"pretrain_and_adapt": {"tasks": "@CheetahVelTasks()", "agent": "@MPO"}},
           "gin_files": ["gin/point_nav_iwpl.gin"]}          # file names are never read
    assert recorded_identity(old) == {"task": "cheetah_vel", "method": "MPO"}
    new = {**old, "identity": {"task": "gtt", "method": "mpo"}}
    assert recorded_identity(new) == {"task": "gtt", "method": "mpo"}
    assert recorded_identity({}, {"identity": {"task": "reach", "method": "rl2"}}) == \
        {"task": "reach", "method": "rl2"}


def test_task_classes_are_the_suites():
    from iwx.envs.suite import SUITE

    assert TASK_CLASSES == {tasks.__name__: name for name, (tasks, _) in SUITE.items()}


@pytest.mark.parametrize("extra, expected", [
    ([], {"task": "PointNavTasks", "method": "IWPL"}),
    (["run_identity.task = 'point_nav'", "run_identity.method = 'iwpl'"],
     {"task": "point_nav", "method": "iwpl"}),
])
def test_prepare_derives_the_identity_with_the_key(tmp_path, extra, expected):
    from iwx.experiment.runner import RunSpec, prepare

    path = tmp_path / "x.gin"
    path.write_text("pretrain_and_adapt.tasks = @PointNavTasks()\n"
                    "pretrain_and_adapt.agent = @IWPL\n")
    prepared = prepare(RunSpec(gin_files=(str(path),), bindings=tuple(extra), seed=3))
    assert prepared.identity == expected
    assert prepared.key == prepared.config.key(3)


def test_report_and_compare_load_no_environment_to_know_a_task():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import json, os, sys\n"
            "import iwx.report, iwx.compare\n"
            "from iwx.results import comparison, curves, groups, reporting\n"
            "print(json.dumps({'envs': sorted(m for m in sys.modules if m.startswith("
            "('iwx.envs', 'dm_control', 'mujoco'))), 'gl': os.environ.get('MUJOCO_GL')}))")
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(root)}, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"envs": [], "gl": None}
