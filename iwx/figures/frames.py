"""Figures of kind ``tasks`` (the paper's figure 5): one rendered frame of each task.

Nothing is trained or run: each panel names a task and its gin file, and the frame
shows the environment that file builds, as a run builds it: the gin file (plus the
panel's overlay and bindings) is parsed and checked exactly as a run parses it
(:func:`iwx.experiment.runner.prepare`), the task distribution and the task vector
are the ones bound to ``pretrain_and_adapt.tasks`` / ``.env``, and the frame shows
held-out task 0 of the distribution's draw for the scale's ``seed`` (what ``iwx.run
--video`` films), reset with that seed: the start state of its first episode. The
start state is the only state that depends on no policy (a few random actions
already topple the humanoid). :mod:`iwx.figures.views` frames it and marks the
target.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from iwx.figures.spec import FigureSpec, PanelSpec, Scale, SpecError

HELD_OUT = 0          # which held-out task each frame shows


@dataclasses.dataclass
class FramePlan:
    """One panel's frame, parsed and checked, not rendered yet."""

    number: int
    panel: PanelSpec
    gin_files: tuple[str, ...]
    bindings: tuple[str, ...]
    seed: int
    env: str              # the task vector bound to pretrain_and_adapt.env
    params: list          # held-out task HELD_OUT's parameters


@dataclasses.dataclass
class Frame:
    plan: FramePlan
    pixels: np.ndarray
    target: str
    camera: str
    markers: list[str]
    seconds: float


def plan_frames(figure: FigureSpec, scale: Scale, tasks: Sequence[str] = (),
                extra: Sequence[str] = ()) -> list[FramePlan]:
    """Every panel of ``scale`` (of ``tasks``' panels), its configuration parsed and its
    task checked against the panel's; SpecError naming the file and the panel."""
    import gin

    from iwx.experiment.gin_config import ConfigError
    from iwx.experiment.runner import RunSpec, prepare
    from iwx.figures.plan import one_line, select_panels

    found = []
    try:
        for panel in select_panels(scale, tasks, figure.path):
            where = f"{figure.path}: {panel.where}"
            files = (panel.gin, *panel.overlay)
            bindings = (*scale.bindings, *panel.bindings, *extra)
            try:
                prepared = prepare(RunSpec(gin_files=files, bindings=bindings,
                                           seed=scale.seeds[0]))
            except ConfigError as exc:
                raise SpecError(f"{where}: configuration error: {one_line(exc)}") from None
            recorded = prepared.identity.get("task")
            if recorded != panel.task:
                raise SpecError(f"{where}: unknown task {panel.task!r} for this gin file: it "
                                f"builds task {recorded!r} (run_identity.task; an overlay "
                                "missing, or another file?)")
            tasks_bound, env = held_out(panel, where)
            params = tasks_bound.split(scale.seeds[0]).test
            if len(params) <= HELD_OUT:
                raise SpecError(f"{where}: the task distribution has no held-out task")
            found.append(FramePlan(len(found) + 1, panel, files, bindings, scale.seeds[0],
                                   getattr(env, "__name__", repr(env)),
                                   np.asarray(params[HELD_OUT]).tolist()))
            gin.clear_config()
    finally:
        gin.clear_config()
    return found


def held_out(panel: PanelSpec, where: str):
    """(task distribution, task vector factory) bound in the parsed configuration."""
    import gin

    bound = gin.get_bindings("pretrain_and_adapt")
    if "tasks" not in bound or "env" not in bound:
        raise SpecError(f"{where}: its gin files bind no pretrain_and_adapt.tasks / .env")
    return bound["tasks"], bound["env"]


def render(plan: FramePlan, size: tuple[int, int], markers: bool = True) -> Frame:
    """The frame of one panel: its configuration parsed again (gin applies bindings
    when the env is built), the env built on the held-out task, reset, viewed."""
    import time

    import gin

    from iwx.experiment.gin_config import parse
    from iwx.figures.views import view

    start = time.monotonic()
    parse(list(plan.gin_files), list(plan.bindings))
    env = None
    try:
        tasks, make_env = held_out(plan.panel, plan.panel.where)
        split = tasks.split(plan.seed)
        params = np.asarray(split.test[HELD_OUT:HELD_OUT + 1])
        env = make_env(params, None)
        obs = env.reset(seed=plan.seed)
        seen = view(env, tasks, split, params[0], obs, size, markers)
    finally:
        if env is not None and hasattr(env, "close"):
            env.close()
        gin.clear_config()
    return Frame(plan, seen.pixels, seen.target, seen.camera, seen.markers,
                 time.monotonic() - start)


def table(plans: list[FramePlan], size: tuple[int, int]) -> str:
    """The dry run's table: one row per frame."""
    header = ["panel", "title", "gin files", "environment", f"held-out task {HELD_OUT}"]
    rows = [[p.panel.task, p.panel.title, " + ".join(p.gin_files), p.env,
             "(" + ", ".join(f"{v:.2f}" for v in p.params) + ")"] for p in plans]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows),
                      f"{len(plans)} frame{'s' * (len(plans) != 1)} of {size[0]} × {size[1]} "
                      "pixels to render"])
