"""``python -m iwx.figure 5``: one rendered frame of every task (kind ``tasks``), nothing run.

The end-to-end test renders the shipped spec at its ``smoke`` scale (160 × 120 frames)
once for the module, in a subprocess as a user runs it (with the repository's
``MUJOCO_GL=disable``, which the command replaces by a backend that renders), then
checks the files, each frame (not blank, the target's red in it) and figure.json. The
backend choice is checked with a stand-in probe; refusals need no rendering.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from cli import ROOT, read_json, run_cli

SPEC = ROOT / "figures" / "figure5.yaml"
TASKS = ["gtt", "go_to_ring", "move_box", "reach", "point_nav", "cheetah_vel"]
TITLES = ["Go To Target (humanoid)", "Go To Ring (ant)", "Move Box (jumping ball)",
          "Reach (Jaco)", "Sparse 2D navigation (point mass)", "Half-cheetah velocity"]
# the target's red covers at least this share of every frame (the smallest: Reach's
# sphere of 5 cm, about 0.3%); nothing in the simulations alone is that red (Reach's
# translucent target site: no pixel; iwx.figures.views.target_pixels)
TARGET_SHARE = 0.0015


def figure(args, **kwargs):
    return run_cli("iwx.figure", [str(a) for a in args], **kwargs)


def gl_renders() -> bool:
    from iwx.figures import gl

    try:
        gl.choose()
    except gl.NoRendering:
        return False
    return True


needs_gl = pytest.mark.skipif(not gl_renders(), reason="no OpenGL backend renders here "
                                                       "(apt-get install libosmesa6)")


def read_png(path) -> np.ndarray:
    import matplotlib.image

    pixels = matplotlib.image.imread(path)
    return np.round(pixels[..., :3] * 255).astype(np.uint8)


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("figure5") / "out"
    args = ["5", "--scale", "smoke", "--out", out]
    return out, figure(args, env={"MUJOCO_GL": "disable"}, timeout=600)


@needs_gl
def test_the_smoke_figure_renders_every_task_into_one_image(smoke):
    out, proc = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("figure5.png", "figure5.pdf", "figure.json", "README.md"):
        assert (out / name).stat().st_size > 0, name
    record = read_json(out / "figure.json")
    assert record["kind"] == "tasks" and record["scale"] == "smoke"
    assert [p["task"] for p in record["panels"]] == TASKS
    assert [p["title"] for p in record["panels"]] == TITLES
    assert record["gl_backend"] in ("egl", "osmesa")
    assert f"rendering with MUJOCO_GL={record['gl_backend']}" in proc.stdout
    image = read_png(out / "figure5.png")
    assert image.shape[0] > 300 and image.shape[1] > 400 and image.std() > 10
    readme = (out / "README.md").read_text()
    assert "![figure 5](figure5.png)" in readme
    for title in TITLES:
        assert title in readme


@needs_gl
@pytest.mark.parametrize("task", TASKS)
def test_every_frame_shows_its_task_and_its_target(smoke, task):
    out, proc = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    panel = next(p for p in read_json(out / "figure.json")["panels"] if p["task"] == task)
    pixels = read_png(out / panel["file"])
    assert pixels.shape == (120, 160, 3)
    assert pixels.std() > 10, f"{task}: a blank frame"
    from iwx.figures.views import target_pixels

    red = target_pixels(pixels)
    assert red >= TARGET_SHARE * pixels.shape[0] * pixels.shape[1], \
        f"{task}: the target's red covers {red} pixels"
    assert red == panel["target_pixels"]
    # the environment its gin file builds, on one held-out task
    assert panel["gin_files"] == [f"gin/{task}_iwpl.gin"] or \
        panel["gin_files"][0].endswith(f"gin/{task}_iwpl.gin")
    assert panel["env"].endswith("Vec") and panel["task_params"] and panel["target"]


@needs_gl
def test_half_cheetahs_target_is_a_velocity_said_in_words(smoke):
    out, proc = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    panel = read_json(out / "figure.json")["panels"][TASKS.index("cheetah_vel")]
    assert panel["target"].startswith(f"target velocity {panel['task_params'][0]:.2f} m/s")


# --------------------------------------------------------------------------- dry run

def test_dry_run_lists_the_six_tasks_and_renders_nothing(tmp_path):
    out = tmp_path / "out"
    proc = figure(["5", "--dry-run", "--out", out])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split()[0] for line in proc.stdout.splitlines() if "gin/" in line]
    assert rows == TASKS
    assert "6 frames of 480 × 360 pixels to render" in proc.stdout
    assert "nothing rendered" in proc.stdout and "rendering with" not in proc.stdout
    assert not out.exists()


def test_the_spec_reads_at_every_scale():
    from iwx.figures import spec

    loaded = spec.load(spec.find(5))
    assert loaded.kind == "tasks" and list(loaded.scales) == ["cpu", "paper", "smoke"]
    assert loaded.scale("cpu").frame == (480, 360)
    for scale in loaded.scales.values():
        assert [p.task for p in scale.panels] == TASKS


# --------------------------------------------------------------------------- refusals

GOOD = """\
figure: 5
title: A test figure
kind: tasks
scales:
  cpu:
    about: "a test scale"
    frame: [64, 48]
    panels:
      - {task: reach, title: "Reach (Jaco)", gin: gin/reach_iwpl.gin}
"""

BAD_SPECS = {
    "unknown task": (GOOD.replace("task: reach,", "task: juggling,"),
                     "scales.cpu.panels[0]: unknown task 'juggling' for this gin file: it "
                     "builds task 'reach'"),
    "a panel with runs": (GOOD.replace("gin: gin/reach_iwpl.gin}",
                                       "gin: gin/reach_iwpl.gin, runs: []}"),
                          "scales.cpu.panels[0]: unknown key(s) runs; allowed: task, title, "
                          "gin, overlay, bindings"),
    "no gin file": (GOOD.replace(", gin: gin/reach_iwpl.gin", ""),
                    "scales.cpu.panels[0].gin: missing (required)"),
    "missing gin file": (GOOD.replace("gin/reach_iwpl.gin", "gin/reach_iwpll.gin"),
                         "scales.cpu.panels[0].gin: gin file not found"),
    "no frame size": (GOOD.replace("    frame: [64, 48]\n", ""),
                      "scales.cpu.frame: missing (required)"),
    "bad frame size": (GOOD.replace("[64, 48]", "[64, 8]"),
                       "scales.cpu.frame: expected [width, height] in pixels, integers from "
                       "16 to 4096, got [64, 8]"),
    "bad seed": (GOOD.replace("    frame:", "    seed: -1\n    frame:"), "scales.cpu.seed"),
    "last is not a key of kind tasks": (GOOD.replace("kind: tasks\n", "kind: tasks\nlast: 3\n"),
                                        "unknown key(s) last"),
    "binding gin refuses": (GOOD.replace("gin/reach_iwpl.gin}",
                                         "gin/reach_iwpl.gin, bindings: [ReachEnv.radiuss = 1]}"),
                            "scales.cpu.panels[0]: configuration error"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_a_bad_spec_of_kind_tasks_is_refused_naming_the_file_and_the_key(tmp_path, case):
    text, expected = BAD_SPECS[case]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    out = tmp_path / "out"
    proc = figure(["--spec", path, "--out", out], env={"MUJOCO_GL": "disable"})
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert proc.stderr.startswith(f"iwx.figure: {path}") and proc.stderr.count("\n") == 1, \
        proc.stderr
    assert expected in proc.stderr, proc.stderr
    assert not out.exists()


def test_runs_are_refused_for_a_figure_without_runs(tmp_path):
    proc = figure(["5", "--runs", "IWPL", "--dry-run"])
    assert proc.returncode == 2 and "figure 5 is of kind 'tasks' and has no runs" in proc.stderr


def test_the_shipped_spec_is_valid_yaml_with_one_gin_file_per_panel():
    raw = yaml.safe_load(SPEC.read_text())
    for scale in raw["scales"].values():
        assert all((ROOT / p["gin"]).is_file() for p in scale["panels"])


# --------------------------------------------------------------------------- GL backend

def test_the_backend_is_yours_else_the_first_that_renders():
    from iwx.figures.gl import choose

    tried = []

    def probe(backend):
        tried.append(backend)
        return backend == "osmesa"

    assert choose({"MUJOCO_GL": "osmesa"}, probe)[0] == "osmesa" and tried == ["osmesa"]
    tried.clear()
    assert choose({}, probe)[0] == "osmesa" and tried == ["egl", "osmesa"]
    tried.clear()
    # the repository's 'disable' (setup.sh, the tests) names no backend: they are tried
    assert choose({"MUJOCO_GL": "disable"}, probe)[0] == "osmesa" and tried == ["egl", "osmesa"]


def test_no_backend_that_renders_is_a_clear_error_naming_the_package():
    from iwx.figures.gl import NoRendering, choose

    with pytest.raises(NoRendering, match="apt-get install -y libosmesa6"):
        choose({}, lambda backend: False)
    with pytest.raises(NoRendering, match="MUJOCO_GL=egl does not render here.*libosmesa6"):
        choose({"MUJOCO_GL": "egl"}, lambda backend: False)


def test_no_backend_is_exit_status_2_before_anything_is_rendered(tmp_path):
    """A backend named in MUJOCO_GL that is no backend at all: refused, nothing written."""
    out = tmp_path / "out"
    proc = figure(["5", "--scale", "smoke", "--out", out], env={"MUJOCO_GL": "nosuchgl"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "MUJOCO_GL=nosuchgl does not render here" in proc.stderr
    assert "apt-get install -y libosmesa6" in proc.stderr
    assert not out.exists()
