"""`iwx.run --video`: a rendered adaptation episode as a Sacred artifact, never a failure."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from cli import ROOT, read_json, run_dirs

TINY = ["ReachTasks.num_train = 2", "ReachTasks.num_test = 1",
        "MultiTaskTraining.updates = 8", "MultiTaskTraining.envs_per_iteration = 2",
        "MultiTaskTraining.updates_per_iteration = 8", "MultiTaskTraining.batch_size = 8",
        "Adaptation.episodes = 1", "Adaptation.exploration_episodes = 1",
        "Adaptation.seeds = 1", "Adaptation.updates_per_episode = 1",
        "Adaptation.batch_size = 8", "ReachEnv.time_limit = 2.0"]   # 50 steps


def egl_renders() -> bool:
    probe = ("import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); "
             "mujoco.Renderer(m, 8, 8)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60,
                          env={**os.environ, "MUJOCO_GL": "egl"})
    return proc.returncode == 0


def run_tiny(tmp_path, mujoco_gl: str | None):
    args = ["--gin", "gin/reach_iwpl.gin", "--runs-dir", str(tmp_path), "--no-progress",
            "--video"]
    for p in TINY:
        args += ["--gin_param", p]
    env = {k: v for k, v in os.environ.items() if k != "MUJOCO_GL"}
    if mujoco_gl:
        env["MUJOCO_GL"] = mujoco_gl
    return subprocess.run([sys.executable, "-m", "iwx.run", *args], env=env,
                          cwd=str(ROOT), capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(not egl_renders(), reason="no EGL rendering on this machine (videos are "
                                               "optional; the run without GL is tested below)")
def test_video_of_the_last_adaptation_episode_is_an_artifact(tmp_path):
    proc = run_tiny(tmp_path, None)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    artifacts = read_json(run / "run.json")["artifacts"]
    videos = sorted(a for a in artifacts if a.startswith("video_"))
    assert [v.rsplit(".", 1)[0] for v in videos] == ["video_iw", "video_shared_q_iw"]
    import imageio

    frames = imageio.mimread(run / videos[0])
    # 50 control steps; a GIF keeps every other frame
    assert len(frames) == (50 if videos[0].endswith(".mp4") else 25)
    assert frames[0].shape[-1] in (3, 4) and np.asarray(frames[0]).std() > 1  # not blank


def test_video_without_a_gl_backend_warns_and_the_run_completes(tmp_path):
    proc = run_tiny(tmp_path, "disable")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "no adaptation video" in proc.stderr
    (run,) = run_dirs(tmp_path)
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    assert not [a for a in read_json(run / "run.json")["artifacts"] if a.startswith("video_")]
