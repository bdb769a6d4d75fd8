"""One frame of one task: a camera and render-only target markers per environment.

:func:`view` turns a task vector that was just reset on one held-out task into a
:class:`View`: an RGB frame of ``size`` (width, height) pixels and what it shows, in
words. Every frame draws the task's target in :data:`TARGET_RGB` (the only pure red
of any frame), so a reader finds it at a glance and a test can count its pixels
(:func:`target_pixels`).

The MuJoCo tasks render with ``mujoco.Renderer`` on the environment's own model and
data, from a free camera framed on the agent and the target; the markers are
``mjvGeom``s added to the scene after ``update_scene`` (``scene.geoms[ngeom:]``).
They exist only in the picture: the model's bodies, geoms and sites, the physics
and the observations are untouched (the only model field written is the offscreen
buffer's size, a rendering setting of this frame's own environment).

- Go To Target (humanoid), Go To Ring (ant): the target region (a disc of the
  reach tolerance) and a beacon above it; for the ring, the ring's two edges (the
  distribution the target is drawn from). Camera from the side of the line from the
  walker to the target, framing both.
- Move Box (jumping ball): the target pad (a disc of the success radius) and a
  beacon; from above, looking from the room's middle outwards (no wall in the way)
  at the walker, the box and the pad.
- Reach (Jaco): an opaque sphere of the reward radius at the target.
- Half-cheetah velocity: the target is a speed; an arrow above the cheetah as long
  as one second at the target speed (the text says the number).
- Sparse 2D navigation (numpy, no physics): drawn with matplotlib: the half circle
  of goals, the training goals, the held-out goal with its reward radius, the point.
"""

from __future__ import annotations

import dataclasses

import numpy as np

TARGET_RGB = (0.9, 0.08, 0.08)
TARGET_RGBA = (*TARGET_RGB, 1.0)
GUIDE_RGBA = (1.0, 1.0, 1.0, 0.8)        # what is not the target: the ring's edges


@dataclasses.dataclass
class View:
    pixels: np.ndarray      # [height, width, 3] uint8
    target: str             # the target, in words (the figure's subtitle)
    camera: str             # where the frame is seen from
    markers: list[str]      # what was drawn that is not in the simulation


def target_pixels(pixels: np.ndarray) -> int:
    """How many pixels are the target's red: bright, red well above green and blue (the
    translucent target sites of the MJCF files alone give none)."""
    rgb = np.asarray(pixels, np.int32)[..., :3]
    return int(np.sum((rgb[..., 0] > 180) & (rgb[..., 0] - rgb[..., 1:].max(axis=-1) > 90)))


def view(env, tasks, split, params: np.ndarray, obs: dict, size: tuple[int, int],
         markers: bool = True) -> View:
    """The frame of row 0 of ``env`` (a task vector reset on held-out task ``params``;
    ``obs`` its reset observation), for the task distribution ``tasks`` and its draw
    ``split``; ``markers=False`` draws no target (what the tests compare against)."""
    from iwx.envs.cheetah_vel import CheetahVelEnv
    from iwx.envs.go_to_target import WalkerTargetEnv
    from iwx.envs.move_box import MoveBoxEnv
    from iwx.envs.point_nav import PointNavVec
    from iwx.envs.reach import ReachEnv

    if isinstance(env, PointNavVec):
        return point_nav(env, tasks, split, params, size, markers)
    row = env.envs[0]
    position = np.asarray(obs["position"][0], np.float64) if "position" in obs else None
    for kind, draw in ((WalkerTargetEnv, walker), (MoveBoxEnv, move_box), (ReachEnv, reach),
                       (CheetahVelEnv, cheetah)):
        if isinstance(row, kind):
            return draw(row, tasks, params, position, size, markers)
    raise TypeError(f"no frame for {type(row).__name__}: iwx/figures/views.py draws "
                    "point_nav, cheetah_vel, reach, go_to_ring, move_box and gtt")


# --------------------------------------------------------------------------- MuJoCo

def render(model, data, size: tuple[int, int], camera: dict, add=()) -> np.ndarray:
    """RGB [h, w, 3] from a free camera (lookat, distance, azimuth, elevation), with the
    marker functions ``add`` (each ``add(scene)``) drawn into the scene."""
    import mujoco

    width, height = size
    frame = model.vis.global_
    frame.offwidth, frame.offheight = max(frame.offwidth, width), max(frame.offheight, height)
    renderer = mujoco.Renderer(model, height, width)
    try:
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = camera["lookat"]
        cam.distance, cam.azimuth, cam.elevation = (camera["distance"], camera["azimuth"],
                                                    camera["elevation"])
        renderer.update_scene(data, camera=cam)
        for draw in add:
            draw(renderer.scene)
        return np.array(renderer.render(), np.uint8)
    finally:
        renderer.close()


def new_geom(scene, kind: str, rgba, emission: float = 0.6):
    """The next free geom of ``scene``, initialised as a ``kind`` ('cylinder', ...)."""
    import mujoco

    if scene.ngeom >= scene.maxgeom:
        raise RuntimeError("the frame's scene has no room for its markers")
    geom = scene.geoms[scene.ngeom]
    scene.ngeom += 1
    kind_id = getattr(mujoco.mjtGeom, f"mjGEOM_{kind.upper()}")
    mujoco.mjv_initGeom(geom, kind_id, np.zeros(3), np.zeros(3), np.eye(3).ravel(),
                        np.asarray(rgba, np.float32))
    geom.emission = emission
    return geom


def connector(scene, kind: str, rgba, width: float, start, end, emission: float = 0.6):
    import mujoco

    geom = new_geom(scene, kind, rgba, emission)
    kind_id = getattr(mujoco.mjtGeom, f"mjGEOM_{kind.upper()}")
    mujoco.mjv_connector(geom, kind_id, width, np.asarray(start, np.float64),
                         np.asarray(end, np.float64))


def disc(xy, radius: float, rgba=(*TARGET_RGB, 0.55)):
    def add(scene):
        geom = new_geom(scene, "cylinder", rgba)
        geom.size[:] = (radius, radius, 0.004)
        geom.pos[:] = (xy[0], xy[1], 0.012)
    return add


def beacon(xy, height: float, radius: float):
    """A thin column over the target, so that it shows from afar."""
    def add(scene):
        connector(scene, "cylinder", TARGET_RGBA, radius, (xy[0], xy[1], 0.0),
                  (xy[0], xy[1], height))
    return add


def sphere(position, radius: float):
    def add(scene):
        geom = new_geom(scene, "sphere", TARGET_RGBA, emission=0.5)
        geom.size[:] = (radius, radius, radius)
        geom.pos[:] = position
    return add


def arrow(start, end, width: float):
    def add(scene):
        connector(scene, "arrow", TARGET_RGBA, width, start, end)
    return add


def circle(centre, radius: float, width: float, rgba=GUIDE_RGBA, segments: int = 96):
    """A circle on the floor, as ``segments`` capsules."""
    def add(scene):
        angles = np.linspace(0.0, 2 * np.pi, segments + 1)
        points = [(centre[0] + radius * np.cos(a), centre[1] + radius * np.sin(a), 0.02)
                  for a in angles]
        for start, end in zip(points[:-1], points[1:]):
            connector(scene, "capsule", rgba, width, start, end, emission=0.3)
    return add


def physics_of(row):
    """(MjModel, MjData) of a dm_control environment row."""
    return row.physics.model.ptr, row.physics.data.ptr


def side_camera(points, *, margin: float, height: float, elevation: float = -32.0,
                turn: float = 65.0) -> dict:
    """A camera looking at the middle of ``points`` (xy), from the side of the line through
    the first two (turned ``turn`` degrees from it), far enough that all are in view."""
    xy = np.asarray([p[:2] for p in points], np.float64)
    gap = xy[1] - xy[0]
    middle = xy.mean(axis=0)
    span = float(np.max(np.linalg.norm(xy - middle, axis=1)))
    azimuth = float(np.degrees(np.arctan2(gap[1], gap[0]))) + turn
    return {"lookat": (*middle, height), "distance": margin + 2.2 * span,
            "azimuth": azimuth, "elevation": elevation}


def walker(row, tasks, params, position, size, markers) -> View:
    from iwx.envs.go_to_ring import GoToRingEnv

    target = row.target_position()
    tolerance = row.task.distance_tolerance
    camera = side_camera([position, target], margin=3.5, height=0.5, elevation=-38.0)
    add, drawn = [], []
    if markers:
        add += [disc(target, tolerance), beacon(target, 2.5, 0.06)]
        drawn += [f"target region (radius {tolerance:g} m)", "a column over the target"]
        if isinstance(row, GoToRingEnv):
            add += [circle((0.0, 0.0), r, 0.03) for r in (tasks.min_radius, tasks.max_radius)]
            drawn.append(f"the ring of targets (radius {tasks.min_radius:g}-"
                         f"{tasks.max_radius:g} m around the origin)")
    distance = float(np.linalg.norm(np.asarray(target) - position[:2]))
    return View(render(*physics_of(row), size, camera, add),
                f"target ({target[0]:.1f}, {target[1]:.1f}) m, {distance:.1f} m away",
                "from beside the walker and the target", drawn)


def move_box(row, tasks, params, position, size, markers) -> View:
    target = row.target_position()
    radius = row.success_radius
    points = np.array([row.box_position()[:2], target, position[:2]])
    middle = points.mean(axis=0)
    outward = np.degrees(np.arctan2(middle[1], middle[0])) if np.linalg.norm(middle) > 0.5 \
        else 90.0         # look from the room's middle outwards: no wall in between
    span = float(np.max(np.linalg.norm(points - middle, axis=1)))
    camera = {"lookat": (*middle, 0.2), "distance": 3.5 + 2.2 * span, "azimuth": outward,
              "elevation": -55.0}
    add = [disc(target, radius, TARGET_RGBA), beacon(target, 1.0, 0.04)] if markers else []
    return View(render(*physics_of(row), size, camera, add),
                f"pad at ({target[0]:.1f}, {target[1]:.1f}) m, box "
                f"{np.linalg.norm(row.box_position()[:2] - target):.1f} m from it",
                "from above, from the room's middle",
                [f"target pad (radius {radius:g} m)", "a column over the pad"] if markers else [])


def reach(row, tasks, params, position, size, markers) -> View:
    target = row.target_position()
    lookat = 0.5 * (target + np.array([0.0, 0.3, 0.4]))
    camera = {"lookat": tuple(lookat), "distance": 1.7, "azimuth": 150.0, "elevation": -20.0}
    add = [sphere(target, row.radius)] if markers else []
    return View(render(*physics_of(row), size, camera, add),
                f"target ({target[0]:.2f}, {target[1]:.2f}, {target[2]:.2f}) m, radius "
                f"{row.radius:g} m",
                "free camera beside the arm", ["target sphere"] if markers else [])


def cheetah(row, tasks, params, position, size, markers) -> View:
    model, data = row.model_and_data
    x = float(data.qpos[0])
    goal = float(row.goal_velocity)
    camera = {"lookat": (x + 0.6, 0.0, 0.45), "distance": 4.2, "azimuth": 90.0,
              "elevation": -8.0}
    start = np.array([x - 0.4, 0.0, 1.15])
    add = [arrow(start, start + [max(goal, 0.05), 0.0, 0.0], 0.07)] if markers else []
    return View(render(model, data, size, camera, add),
                f"target velocity {goal:.2f} m/s (arrow: 1 s at that speed)",
                "beside the cheetah", ["arrow: 1 s at the target speed"] if markers else [])


# --------------------------------------------------------------------------- point_nav

def point_nav(env, tasks, split, params, size, markers) -> View:
    """Drawn, not rendered: goals on the half circle, the held-out goal and its reward
    radius, the point at its start."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    width, height = size
    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, facecolor=(0.93, 0.94, 0.96))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor((0.93, 0.94, 0.96))
    radius = float(tasks.radius)
    angles = np.linspace(0.0, np.pi, 200)
    scale = min(width, height) / 240
    ax.plot(radius * np.cos(angles), radius * np.sin(angles), color="0.55", lw=1.5 * scale,
            ls="--", zorder=1)
    train = np.asarray(split.train, np.float64)
    ax.scatter(train[:, 0], train[:, 1], s=10 * scale ** 2, color="0.45", lw=0, zorder=2,
               label="training goals")
    goal = np.asarray(params, np.float64)[:2]
    if markers:
        ax.add_patch(Circle(goal, env.goal_radius, color=TARGET_RGB, alpha=0.5, lw=0,
                            zorder=2))
        ax.plot(*goal, marker="*", ls="none", ms=14 * scale, color=TARGET_RGB, mec="white",
                mew=0.8 * scale, zorder=4,
                label=f"held-out goal, reward radius {env.goal_radius:g}")
    ax.plot(0.0, 0.0, marker="o", ms=8 * scale, color="0.1", zorder=5)
    ax.legend(loc="upper left", fontsize=7.5 * scale, frameon=False, handletextpad=0.2)
    ax.annotate("start", (0.0, 0.0), xytext=(9 * scale, 0), textcoords="offset points",
                ha="left", va="center", fontsize=9 * scale, color="0.2")
    span_x = 1.35 * radius
    span_y = span_x * height / width
    ax.set_xlim(-span_x, span_x)
    ax.set_ylim(0.5 * radius - span_y, 0.5 * radius + span_y)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    return View(pixels, f"goal ({goal[0]:.2f}, {goal[1]:.2f}), reward radius "
                        f"{env.goal_radius:g}",
                "the plane, from above",
                ["goal and its reward radius", "the half circle of goals"] if markers else [])
