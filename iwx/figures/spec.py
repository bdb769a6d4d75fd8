"""Figure specs (``figures/figureN.yaml``): reading and checking one before anything runs.

A spec says which recorded runs a paper figure is drawn from, at each scale, and
how it is drawn; ``python -m iwx.figure N --scale S`` interprets it (the code holds
no figure's runs)::

    figure: 3                      # the paper's figure number, or a name for a figure
                                   # the paper does not have (figures/<name>.yaml)
    title: Few-shot adaptation ... # the figure's heading
    kind: adaptation               # how it is drawn (KINDS; iwx/figures/draw.py)
    last: 3                        # the table's average: the last 3 adaptation episodes
                                   # (kind adaptation, appendix A.2) or training chunks
                                   # of each run (kind training)
    scales:                        # one or more, by name
      cpu:
        about: "one line: what this scale is"
        seeds: [0]                 # run seeds; every run of the scale runs on each
        window: 3                  # trailing rolling window over adaptation episodes
                                   # (kind training: over chunks of the training curve)
        chunk: 100000              # optional: env steps per chunk of the training curves
                                   # (appendix A.1: 200k; default: the logging period)
        bindings: []               # optional: applied to every run of the scale
        panels:                    # one panel of the figure each
          - task: reach_cpu        # the task its runs record (run_identity.task)
            title: "Reach"         # optional (default: the task)
            overlay: [gin/tasks/reach_cpu.gin]   # optional: after each run's own file
            bindings: []           # optional: every run of the panel
            window: 5              # optional: this panel's window (default: the scale's)
            runs:
              - gin: gin/reach_distral.gin       # the run's gin file
                minutes: 60        # estimated minutes of one seed (for planning)
                bindings: []       # optional: this run's own
                label: "..."       # optional: its name in the training figure
                                   # (default: the gin file's stem)
                overlay: [gin/common/figure3_variants.gin]  # optional: after its file
                adapt_from: "IWPL" # optional: skip pretraining and adapt from the model of
                                   # this panel's run of that label, same seed (an earlier
                                   # run of the panel, one that pretrains)
                variants: [...]    # optional (kind adaptation): the adaptation variants
                                   # drawn, a list of names or {name: label shown}; []:
                                   # none (a pretraining other runs adapt from)

Kind ``tasks`` (the paper's figure 5: one rendered frame per task, nothing run;
iwx/figures/frames.py) has no ``last``, and its scales and panels other keys::

    scales:
      cpu:
        about: "one line"
        seed: 0                    # optional (default 0): the draw of the task split
                                   # whose held-out task 0 is shown, and the reset seed
        frame: [480, 360]          # every frame's width and height in pixels
        bindings: []               # optional: applied to every panel's configuration
        panels:
          - task: gtt              # the task the gin file builds (run_identity.task)
            title: "Go To Target (humanoid)"   # optional (default: the task)
            gin: gin/gtt_iwpl.gin  # the environment is this file's (tasks and env)
            overlay: []            # optional: gin files after it
            bindings: []           # optional

A run's gin files are ``(gin, *run overlay, *panel overlay)`` and its bindings scale + panel + run +
the command line's ``--gin_param``, in that order (later ones win). A gin file is a
path relative to the working directory, to the spec's folder or the folder above it
(a checkout's ``gin/``, or the wheel's copy beside ``figures/``), or a shipped name.

Everything is checked here and reported as :class:`SpecError` naming the file and
the key path (``figures/figure3.yaml: scales.cpu.panels[0].runs[1].minutes: ...``):
unknown and missing keys, types and ranges, seeds (by a run's own rule), bindings
that are not ``Name.param = value`` text, and gin files that do not exist. What gin
makes of the bindings is checked when the runs are planned (iwx/figures/plan.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from iwx.experiment import shipped
from iwx.experiment.config_rules import seed_problem
from iwx.figures.entries import (  # noqa: F401  (the spec's parts, re-exported)
    FigureSpec, PanelSpec, RunEntry, Scale, SpecError)

KIND = "figures"                  # iwx.experiment.shipped's kind of the spec files
KINDS = ("adaptation", "training", "tasks")   # the kinds of drawing iwx/figures/draw.py knows
TOP = {"figure": True, "title": True, "kind": True, "last": True, "scales": True}
SCALE = {"about": True, "seeds": True, "window": True, "chunk": False, "bindings": False,
         "panels": True}
PANEL = {"task": True, "title": False, "overlay": False, "bindings": False, "runs": True,
         "window": False}
# kind 'tasks': frames, no runs
TASKS_TOP = {"figure": True, "title": True, "kind": True, "scales": True}
TASKS_SCALE = {"about": True, "seed": False, "frame": True, "bindings": False, "panels": True}
TASKS_PANEL = {"task": True, "title": False, "gin": True, "overlay": False, "bindings": False}
FRAME_PIXELS = (16, 4096)         # a frame's side, at least and at most
RUN = {"gin": True, "minutes": True, "bindings": False, "label": False, "overlay": False,
       "adapt_from": False, "variants": False}


# --------------------------------------------------------------------------- finding

NAME = re.compile(r"[a-z][a-z0-9_]*")   # a figure of iwx's own: figures/<name>.yaml


def figure_id(text: str) -> int | str:
    """'3' -> 3 (the paper's figure 3); 'mixture_prior' -> itself (figures/<name>.yaml)."""
    return int(text) if text.isdigit() else text


def available() -> dict[int | str, Path]:
    """{figure number or name: spec file} of the shipped specs (``figureN.yaml`` in number
    order, then ``<name>.yaml`` of iwx's own figures by name)."""
    numbered, named = {}, {}
    for name in shipped.names(KIND):
        match = re.fullmatch(r"figure(\d+)", name)
        if match:
            numbered[int(match[1])] = shipped.find(name, KIND)
        elif NAME.fullmatch(name):
            named[name] = shipped.find(name, KIND)
    return {**dict(sorted(numbered.items())), **dict(sorted(named.items()))}


def find(figure: int | str) -> Path:
    """The shipped spec of ``figure``; SpecError listing the available ones."""
    found = available()
    if figure not in found:
        listed = ", ".join(map(str, found)) or "none"
        raise SpecError(f"no spec for figure {figure}: the shipped figures are {listed} "
                        f"({shipped.root(KIND) or 'no figures/ folder found'}); "
                        "--spec FILE draws from a spec of your own")
    return found[figure]


# --------------------------------------------------------------------------- reading

def load(path: str | Path) -> FigureSpec:
    """Read and check a spec file (every scale, not only the one to be drawn)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a figure spec (not UTF-8 text)") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from None
    reader = _Reader(path)
    frames = isinstance(raw, dict) and raw.get("kind") == "tasks"
    top = reader.mapping(raw, "", TASKS_TOP if frames else TOP)
    figure = reader.figure(top["figure"], "figure", path)
    kind = reader.text(top["kind"], "kind")
    if kind not in KINDS:
        raise SpecError(f"{path}: kind: unknown kind {kind!r}; known: {', '.join(KINDS)}")
    scales_raw = top["scales"]
    if not isinstance(scales_raw, dict) or not scales_raw:
        raise SpecError(f"{path}: scales: expected a mapping of scale name -> scale")
    read = reader.frames_scale if frames else reader.scale
    scales = {str(name): read(str(name), value) for name, value in scales_raw.items()}
    return FigureSpec(path, figure, reader.text(top["title"], "title"), kind,
                      0 if frames else reader.integer(top["last"], "last", 1), scales)


class _Reader:
    """Checks of one file's values, each error naming the file and the key path."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise SpecError(f"{self.path}: {where}: {problem}" if where else f"{self.path}: {problem}")

    def mapping(self, value, where: str, keys: dict[str, bool]) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping with keys {', '.join(keys)}, got "
                             f"{type(value).__name__}")
        unknown = sorted(str(k) for k in value if k not in keys)
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}; allowed: "
                             f"{', '.join(keys)}")
        for key, required in keys.items():
            if required and key not in value:
                self.fail(_join(where, key), "missing (required)")
        return value

    def text(self, value, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"expected a non-empty string, got {value!r}")
        return value

    def figure(self, value, where: str, path: Path) -> int | str:
        """The paper's figure number (>= 1), or the file's own name for a figure of
        iwx's own (figures/<name>.yaml: a lower-case name)."""
        if isinstance(value, str):
            if not NAME.fullmatch(value):
                self.fail(where, f"a figure of iwx's own is named in lower case, letters, "
                                 f"digits and '_' (e.g. mixture_prior), got {value!r}")
            if value != path.stem:
                self.fail(where, f"a named figure's spec is <name>.yaml: {value!r} would be "
                                 f"{value}.yaml, this file is {path.name}")
            return value
        return self.integer(value, where, 1)

    def integer(self, value, where: str, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            self.fail(where, f"expected an integer >= {low}, got {value!r}")
        return value

    def number(self, value, where: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            self.fail(where, f"expected a number >= 0 (estimated minutes), got {value!r}")
        return float(value)

    def bindings(self, value, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.fail(where, f"expected a list of 'Name.param = value' strings, got {value!r}")
        for i, binding in enumerate(value):
            if not isinstance(binding, str) or "=" not in binding:
                self.fail(f"{where}[{i}]", f"expected a 'Name.param = value' string, got "
                                           f"{binding!r}")
        return tuple(b.strip() for b in value)

    def gin(self, value, where: str) -> str:
        name = self.text(value, where)
        base = self.path.parent
        for candidate in (Path(name), base / name, base.parent / name):
            if candidate.is_file():
                return str(candidate)
        if shipped.find(name, "gin") is None:
            self.fail(where, f"{shipped.not_found(name, 'gin')} (looked in the working "
                             f"directory, {base} and {base.parent})")
        return name   # a shipped name: the run resolves it

    def seeds(self, value, where: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            self.fail(where, f"expected a non-empty list of seeds, got {value!r}")
        for i, seed in enumerate(value):
            problem = seed_problem(seed)
            if problem:
                self.fail(f"{where}[{i}]", problem)
        if len(set(value)) != len(value):
            self.fail(where, f"seeds repeat: {value}")
        return tuple(value)

    def listed(self, value, where: str, what: str, read, key, clash: str) -> tuple:
        """A non-empty list read item by item (``read(item, where)``), no two items of
        one ``key``; ``clash`` says what a repeat means."""
        if not isinstance(value, list) or not value:
            self.fail(where, f"expected a non-empty list of {what}")
        items = tuple(read(item, f"{where}[{i}]") for i, item in enumerate(value))
        keys = [key(item) for item in items]
        if len(set(keys)) != len(keys):
            self.fail(where, f"{clash}: {keys}")
        return items

    def scale(self, name: str, value) -> Scale:
        where = f"scales.{name}"
        raw = self.mapping(value, where, SCALE)
        read = self.listed(raw["panels"], f"{where}.panels", "panels", self.panel,
                           lambda p: p.task, "two panels of one task")
        return Scale(name, self.text(raw["about"], f"{where}.about"),
                     self.seeds(raw["seeds"], f"{where}.seeds"),
                     self.integer(raw["window"], f"{where}.window", 1),
                     self.bindings(raw.get("bindings"), f"{where}.bindings"), read,
                     self.chunk(raw.get("chunk"), f"{where}.chunk"))

    def chunk(self, value, where: str) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            self.fail(where, f"expected a number > 0 (env steps per chunk), got {value!r}")
        return float(value)

    def panel(self, value, where: str) -> PanelSpec:
        raw = self.mapping(value, where, PANEL)
        task = self.text(raw["task"], f"{where}.task")
        entries = self.listed(raw["runs"], f"{where}.runs", "runs", self.run, lambda e: e.label,
                              "two runs of one label (a gin file's stem unless 'label' says "
                              "otherwise)")
        for i, entry in enumerate(entries):
            self.dependency(entry, entries[:i], f"{where}.runs[{i}].adapt_from")
        window = raw.get("window")
        return PanelSpec(
            task, self.text(raw.get("title", task), f"{where}.title"),
            self.overlay(raw.get("overlay"), f"{where}.overlay"),
            self.bindings(raw.get("bindings"), f"{where}.bindings"), entries, where,
            window=None if window is None else self.integer(window, f"{where}.window", 1))

    def dependency(self, entry: RunEntry, earlier: tuple[RunEntry, ...], where: str) -> None:
        """``adapt_from`` names an earlier run of the panel, one that pretrains itself."""
        if entry.adapt_from is None:
            return
        source = next((e for e in earlier if e.label == entry.adapt_from), None)
        if source is None:
            labels = ", ".join(e.label for e in earlier) or "none"
            self.fail(where, f"{entry.adapt_from!r} is not the label of an earlier run of this "
                             f"panel (earlier runs: {labels}); a run adapts from a "
                             "pretraining listed before it")
        if source.adapt_from is not None:
            self.fail(where, f"{entry.adapt_from!r} adapts from {source.adapt_from!r} itself: "
                             "name the run that pretrains")

    def variants(self, value, where: str) -> tuple[tuple[str, str], ...] | None:
        if value is None:
            return None
        if isinstance(value, list):
            pairs = [(self.text(v, f"{where}[{i}]"),) * 2 for i, v in enumerate(value)]
        elif isinstance(value, dict):
            pairs = [(self.text(k, f"{where}.{k}"), self.text(v, f"{where}.{k}"))
                     for k, v in value.items()]
        else:
            self.fail(where, f"expected a list of variant names or a mapping name -> label "
                             f"shown, got {value!r}")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names):
            self.fail(where, f"a variant named twice: {names}")
        return tuple(pairs)

    def frames_scale(self, name: str, value) -> Scale:
        """A scale of kind 'tasks': one frame per panel, no runs."""
        where = f"scales.{name}"
        raw = self.mapping(value, where, TASKS_SCALE)
        seed = raw.get("seed", 0)
        problem = seed_problem(seed)
        if problem:
            self.fail(f"{where}.seed", problem)
        panels = self.listed(raw["panels"], f"{where}.panels", "panels", self.frame_panel,
                             lambda p: p.task, "two panels of one task")
        return Scale(name, self.text(raw["about"], f"{where}.about"), (seed,), 1,
                     self.bindings(raw.get("bindings"), f"{where}.bindings"), panels,
                     frame=self.frame(raw["frame"], f"{where}.frame"))

    def frame(self, value, where: str) -> tuple[int, int]:
        low, high = FRAME_PIXELS
        if not (isinstance(value, list) and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and low <= v <= high
                        for v in value)):
            self.fail(where, f"expected [width, height] in pixels, integers from {low} to "
                             f"{high}, got {value!r}")
        return value[0], value[1]

    def frame_panel(self, value, where: str) -> PanelSpec:
        raw = self.mapping(value, where, TASKS_PANEL)
        task = self.text(raw["task"], f"{where}.task")
        return PanelSpec(task, self.text(raw.get("title", task), f"{where}.title"),
                         self.overlay(raw.get("overlay"), f"{where}.overlay"),
                         self.bindings(raw.get("bindings"), f"{where}.bindings"), (), where,
                         gin=self.gin(raw["gin"], f"{where}.gin"))

    def overlay(self, value, where: str) -> tuple[str, ...]:
        overlay = value or []
        if not isinstance(overlay, list):
            self.fail(where, f"expected a list of gin files, got {overlay!r}")
        return tuple(self.gin(g, f"{where}[{i}]") for i, g in enumerate(overlay))

    def run(self, value, where: str) -> RunEntry:
        raw = self.mapping(value, where, RUN)
        gin = self.text(raw["gin"], f"{where}.gin")
        label = raw.get("label", Path(gin).stem)
        source = raw.get("adapt_from")
        return RunEntry(gin, self.gin(gin, f"{where}.gin"),
                        self.number(raw["minutes"], f"{where}.minutes"),
                        self.bindings(raw.get("bindings"), f"{where}.bindings"),
                        self.text(label, f"{where}.label"), where,
                        self.overlay(raw.get("overlay"), f"{where}.overlay"),
                        None if source is None else self.text(source, f"{where}.adapt_from"),
                        self.variants(raw.get("variants"), f"{where}.variants"))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key
