"""A figure's runs at one scale: spec × scale → one :class:`Planned` run per panel × run ×
seed, with its configuration key, its estimate, and where it is already done.

Each run's configuration is parsed here, in this process, exactly as the run will
parse it (:func:`iwx.experiment.runner.prepare`): a bad binding or a gin file gin
cannot read is reported before anything runs, the configuration key is the one the
run will record, and the task the run will record is checked against its panel's
(a panel of ``reach_cpu`` whose runs lack the overlay would record ``reach``).

A run with ``adapt_from`` adapts from the model of another planned run (its panel's run
of that label, the same seed): its RunSpec names that run's configuration key
(``pretrained_from``, part of its own key), so it is planned, keyed and found done
before its pretraining has run; it runs after it (iwx/figures/execute.py).

A run is *done* when a COMPLETED run of its key wrote its results (or, in a training
figure, a longer run of the same training did): iwx/figures/found.py.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence
from pathlib import Path

from iwx.experiment.runner import RunSpec
from iwx.figures.spec import FigureSpec, PanelSpec, RunEntry, Scale, SpecError


@dataclasses.dataclass(frozen=True)
class Done:
    """Where a completed run of a planned configuration is recorded."""

    store: str          # "file store" | "MongoDB"
    source: str         # the runs folder or the MongoDB URL (what load_runs reads)
    run_id: int
    cut: int | None = None      # a longer run's training, cut at this many updates
    trained: int | None = None  # ... of the updates that run trained (iwx/figures/longer.py)

    def where(self) -> str:
        if self.store == "file store":
            return str(Path(self.source) / str(self.run_id))
        return f"run {self.run_id} in {self.source}"

    def cut_text(self) -> str:
        """'' or, for a longer run's training, ' (its first 60,000 of 80,000 updates)'."""
        return "" if self.cut is None else \
            f" (its first {self.cut:,} of {self.trained:,} updates)"

    def how(self) -> str:
        """'reused: runs/2', or 'reused: runs/2 (its first 60,000 of 80,000 updates)'."""
        return f"reused: {self.where()}{self.cut_text()}"


@dataclasses.dataclass
class Planned:
    number: int                   # 1 .. len(plan.runs), the order runs are listed
    panel: PanelSpec
    entry: RunEntry
    seed: int
    spec: RunSpec
    key: str
    identity: dict
    done: Done | None = None
    after: Planned | None = None  # the planned run whose model it adapts from
    updates: int | None = None    # its pretraining's learner updates (None: it does not train)
    bindings: dict = dataclasses.field(default_factory=dict)  # gin's, flat (longer.py)
    measured: tuple[float, ...] = ()  # recorded minutes of its entry's completed seeds
    may_cut: bool = False         # a training figure's run: a longer run may stand for it

    @property
    def minutes(self) -> float:
        """Its estimate: the mean recorded compute of the same entry's completed seeds
        where there are some (iwx.figures.compute.measure), else the spec's ``minutes``."""
        return sum(self.measured) / len(self.measured) if self.measured else self.entry.minutes

    def saved(self) -> dict | None:
        """Its newest checkpoint's summary (label, saved), read afresh; None without one."""
        from iwx.experiment.run_lock import checkpoint_dir
        from iwx.loops.checkpoint import checkpoint_summary

        return checkpoint_summary(checkpoint_dir(self.spec.runs_dir, self.key))

    def checkpointed(self) -> bool:
        return self.saved() is not None

    def minutes_left(self) -> float:
        """Its estimate less the pretraining it has checkpointed: a run whose newest
        checkpoint is ``train:N`` of ``updates`` has ``minutes × (1 − N / updates)`` left
        (its adaptation counted as not started); any other run, all of ``minutes``."""
        if self.done is not None:
            return 0.0
        if not self.updates:
            return self.minutes
        saved = self.saved()
        label = "" if saved is None else str(saved.get("label") or "")
        phase, _, count = label.partition(":")
        if phase != "train" or not count.isdigit():
            return self.minutes
        return self.minutes * max(0.0, 1.0 - int(count) / self.updates)

    @property
    def files(self) -> tuple[str, ...]:
        return self.spec.gin_files

    def name(self) -> str:
        """'reach_cpu · gin/reach_distral.gin · seed 0': how progress lines name it."""
        return f"{self.panel.task} · {self.entry.gin} · seed {self.seed}"


@dataclasses.dataclass
class Plan:
    figure: FigureSpec
    scale: Scale
    panels: tuple[PanelSpec, ...]
    runs: list[Planned]
    extra: tuple[str, ...]        # the command line's --gin_param, after everything
    runs_dir: str
    mongo: str | None

    def missing(self) -> list[Planned]:
        return [p for p in self.runs if p.done is None]

    def to_run(self) -> list[Planned]:
        """The missing runs in the order they start: those with a checkpoint (stopped
        part-way by a session's end or a signal) first, then the figure's order. Ending a
        started run first keeps the least in flight (its replay on disk, lost with the
        machine) and lets ``--until`` fit what is left of it before a fresh run."""
        return sorted(self.missing(), key=lambda p: not p.checkpointed())

    def reused(self) -> list[Planned]:
        return [p for p in self.runs if p.done is not None]

    def minutes_to_run(self) -> float:
        """The estimates of the runs still to run, less what their checkpoints hold."""
        return sum(p.minutes_left() for p in self.missing())

    def of(self, panel: PanelSpec, entry: RunEntry | None = None) -> list[Planned]:
        return [p for p in self.runs
                if p.panel is panel and (entry is None or p.entry is entry)]


def select_panels(scale: Scale, tasks: Sequence[str], path: Path) -> tuple[PanelSpec, ...]:
    """The scale's panels, or those of ``tasks`` (``--panels``) in the spec's order."""
    if not tasks:
        return scale.panels
    known = [p.task for p in scale.panels]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise SpecError(f"{path}: scale {scale.name!r} has no panel {', '.join(unknown)}; "
                        f"its panels are {', '.join(known)}")
    return tuple(p for p in scale.panels if p.task in tasks)


def run_name(text: str) -> str:
    """How ``--runs`` compares names: 'RL²' = 'rl2', 'PEARL*' = 'pearl', 'From Scratch'
    = 'from-scratch' = 'fromscratch' (case, superscript, '*', spaces, '-' and '_' aside)."""
    text = text.lower().replace("²", "2")
    return "".join(ch for ch in text if ch not in "*-_ ")


def run_names(entry: RunEntry) -> set[str]:
    """What ``--runs`` accepts for a run entry: its label, its gin file, the file's stem,
    and the stem's last part (the method of gin/<task>_<method>.gin: 'scratch', 'rl2')."""
    stem = Path(entry.gin).stem
    return {run_name(entry.label), run_name(entry.gin), run_name(stem),
            run_name(stem.rsplit("_", 1)[-1])}


def select_runs(panels: Sequence[PanelSpec], names: Sequence[str],
                path: Path) -> dict[int, tuple[RunEntry, ...]]:
    """{id(panel): its run entries}, all of them or those ``names`` (``--runs``) pick, in
    the spec's order; every name must pick a run in at least one panel."""
    if not names:
        return {id(p): p.runs for p in panels}
    picked = {id(p): tuple(e for e in p.runs if run_names(e) & {run_name(n) for n in names})
              for p in panels}
    unknown = [n for n in names
               if not any(run_name(n) in run_names(e) for p in panels for e in p.runs)]
    if unknown:
        labels = list(dict.fromkeys(e.label for p in panels for e in p.runs))
        raise SpecError(f"{path}: no run named {', '.join(unknown)} in the panels drawn; "
                        f"their runs are {', '.join(labels)} (a label or a gin file)")
    return picked


def bindings_of(scale: Scale, panel: PanelSpec, entry: RunEntry,
                extra: Sequence[str]) -> tuple[str, ...]:
    """Scale, panel, run, then the command line's bindings (later ones win)."""
    return (*scale.bindings, *panel.bindings, *entry.bindings, *extra)


def make_plan(figure: FigureSpec, scale_name: str, *, runs_dir: str, mongo: str | None = None,
              extra: Sequence[str] = (), tasks: Sequence[str] = (),
              names: Sequence[str] = ()) -> Plan:
    """Every run of the scale (of ``tasks``' panels; of the runs ``names`` pick, by label
    or gin file), parsed, keyed and looked up.
    Raises :class:`SpecError` for what stops the figure before any compute: an unknown
    scale or panel, a configuration gin refuses, a run recording another task than its
    panel's, two runs of one configuration; :class:`iwx.experiment.store.StoreError`
    for a MongoDB that does not answer."""
    import gin

    from iwx.experiment.gin_config import ConfigError, flat_bindings
    from iwx.experiment.runner import prepare
    from iwx.figures.compute import measure
    from iwx.figures.found import find_done

    scale = figure.scale(scale_name)
    panels = select_panels(scale, tasks, figure.path)
    entries = select_runs(panels, names, figure.path)
    runs: list[Planned] = []
    seen: dict[str, Planned] = {}
    by_label: dict[tuple[int, str, int], Planned] = {}   # (panel, label, seed): planned
    try:
        for panel in panels:
            chosen = dependencies_of(panel, entries[id(panel)])
            for entry in chosen:
                for seed in scale.seeds:
                    after = (None if entry.adapt_from is None else
                             by_label[(id(panel), entry.adapt_from, seed)])
                    spec = RunSpec(gin_files=(entry.path, *entry.overlay, *panel.overlay),
                                   bindings=bindings_of(scale, panel, entry, extra), seed=seed,
                                   runs_dir=runs_dir, mongo=mongo, progress=True, reuse=True,
                                   pretrained_from=None if after is None else after.key)
                    where = f"{figure.path}: {entry.where}"
                    try:
                        prepared = prepare(spec)
                    except ConfigError as exc:
                        raise SpecError(f"{where} (seed {seed}): configuration error: "
                                        f"{one_line(exc)}") from None
                    planned = Planned(len(runs) + 1, panel, entry, seed, spec, prepared.key,
                                      dict(prepared.identity), after=after,
                                      updates=None if after else training_updates(),
                                      bindings=flat_bindings())
                    by_label[(id(panel), entry.label, seed)] = planned
                    if prepared.identity.get("task") != panel.task:
                        raise SpecError(
                            f"{where}: its runs record task {prepared.identity.get('task')!r}"
                            f", the panel is {panel.task!r} (the gin files set "
                            "run_identity.task; an overlay missing?)")
                    if prepared.key in seen:
                        raise SpecError(f"{where} (seed {seed}): the same configuration as "
                                        f"{seen[prepared.key].name()}")
                    seen[prepared.key] = planned
                    runs.append(planned)
    finally:
        gin.clear_config()
    plan = Plan(figure, scale, panels, runs, tuple(extra), runs_dir, mongo)
    find_done(plan)
    measure(plan)
    return plan


def dependencies_of(panel: PanelSpec, picked: Sequence[RunEntry]) -> tuple[RunEntry, ...]:
    """``picked`` (``--runs``) and the pretrainings they adapt from, in the panel's order."""
    names = {e.label for e in picked} | {e.adapt_from for e in picked if e.adapt_from}
    return tuple(e for e in panel.runs if e.label in names)


def one_line(exc: Exception) -> str:
    """A configuration error on one line; the spec's bindings reach gin as a run's
    command-line bindings, so gin's '--gin_param' is called what it is here."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text.removeprefix("--gin_param ").replace("--gin_param number", "binding number")


def training_updates() -> int | None:
    """The learner updates of the pretraining the live gin configuration binds:
    ``DistributedTraining.updates`` where bound, else ``MultiTaskTraining.updates`` (its
    default when unbound). None when neither is a positive integer."""
    import inspect

    import gin

    from iwx.loops.training import MultiTaskTraining

    for name in ("DistributedTraining.updates", "MultiTaskTraining.updates"):
        try:
            value = gin.query_parameter(name)
        except ValueError:      # not bound
            continue
        if value is not None:
            break
    else:
        value = inspect.signature(MultiTaskTraining.__init__).parameters["updates"].default
    return value if isinstance(value, int) and value > 0 else None


def short_bindings(bindings: Sequence[str], width: int = 60) -> str:
    """'MultiTaskTraining.updates=30000, ...' cut to ``width`` characters ('—' for none)."""
    text = ", ".join(b.replace(" ", "") for b in bindings)
    if not text:
        return "—"
    return text if len(text) <= width else text[:width - 1] + "…"


def lock_holder(p: Planned) -> dict | None:
    """The live process holding the run's lock (iwx.experiment.run_lock: pid, host,
    started), or None when no live process runs it."""
    from iwx.experiment.run_lock import current_holder, lock_path

    return current_holder(lock_path(Path(p.spec.runs_dir), p.key))


def inside_running(p: Planned) -> str | None:
    """'inside run 95, running now (pid 8562 since 12-05 22:44): drawn cut at 60,000
    updates when it completes' when a longer run of the same training is in progress
    (iwx/figures/longer.py, :func:`~iwx.figures.longer.find_longer_running`), else None."""
    from iwx.figures.longer import find_longer_running

    if not p.may_cut or p.done is not None or not p.updates:
        return None
    found = find_longer_running(p.spec.runs_dir, bindings=p.bindings, seed=p.seed,
                                updates=p.updates)
    if found is None:
        return None
    run_id, holder = found
    return (f"inside run {run_id}, running now ({holder_text(holder)}): drawn cut at "
            f"{p.updates:,} updates when it completes")


def holder_text(holder: dict) -> str:
    """'pid 8562 since 12-05 22:44' ('pid 8562 on node-3 since ...' for another host)."""
    host = "" if holder.get("host") in (None, socket.gethostname()) else \
        f" on {holder.get('host')}"
    return f"pid {holder.get('pid')}{host} since {clock(holder.get('started'))}"


def progress_of(p: Planned) -> str | None:
    """Where a run not yet completed stands, from its lock and checkpoint summary:
    'running now (pid 8562 since 22:44; checkpoint train:15000 at 23:06)', 'resumes
    from train:15000 (saved 23:06)'; None when it has neither (it will start afresh).
    The summary is read afresh on each call (as :meth:`Planned.minutes_left` does): a
    run another process is running moves on between two looks."""
    holder = lock_holder(p)
    saved = p.saved()
    at = "" if saved is None else f"{saved.get('label')} at {clock(saved.get('saved'))}"
    if holder is not None:
        return f"running now ({holder_text(holder)}" + (f"; checkpoint {at})" if at else ")")
    inside = inside_running(p)
    if inside is not None:
        return inside
    if saved is not None:
        return f"resumes from {saved.get('label')} (saved {clock(saved.get('saved'))})"
    return None


def clock(iso) -> str:
    """'2026-12-04T23:06:10+00:00' -> '12-04 23:06' (as written; '?' when missing)."""
    if not isinstance(iso, str) or "T" not in iso:
        return "?"
    day, time = iso.split("T", 1)
    return f"{day[5:]} {time[:5]}"


def table(plan: Plan) -> str:
    """The dry run's table: one row per run, its status and estimate, then the totals."""
    header = ["panel", "gin files", "seed", "bindings (panel + run + --gin_param)", "status",
              "est. min"]
    rows = []
    for p in plan.runs:
        own = (*p.panel.bindings, *p.entry.bindings, *plan.extra)
        status = (p.done.how() if p.done else progress_of(p) or
                  ("will run" if p.after is None
                   else f"will run, from run {p.after.number}'s model"))
        left = p.minutes_left()
        mark = "*" if p.measured and not p.done else ""
        estimate = f"{minutes_text(p.minutes)}{mark}" if p.done or left == p.minutes else \
            f"{minutes_text(left)} of {minutes_text(p.minutes)}{mark}"
        rows.append([p.panel.task, " + ".join(p.files), str(p.seed), short_bindings(own),
                     status, estimate])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa
    out = [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]
    if plan.scale.bindings:
        out.append(f"every run of scale {plan.scale.name!r} also binds: "
                   f"{short_bindings(plan.scale.bindings, 400)}")
    if any(p.measured and not p.done for p in plan.runs):
        out.append("* measured: the mean recorded compute of the same run's completed "
                   "seeds, not the spec's estimate")
    return "\n".join(out)


def minutes_text(minutes: float) -> str:
    """'57' for 57.0 or 57.4, '0.225' below 10 minutes: an estimate, not a measurement."""
    return f"{minutes:.0f}" if minutes >= 10 else f"{minutes:.3g}"


def totals(plan: Plan) -> str:
    missing, reused = plan.missing(), plan.reused()
    minutes = plan.minutes_to_run()
    hours = f" ≈ {minutes / 60:.1f} h" if minutes >= 120 else ""
    runs = f"{len(plan.runs)} run" + ("" if len(plan.runs) == 1 else "s")
    return (f"{runs}: {len(reused)} reused, {len(missing)} to run, about "
            f"{minutes_text(minutes)} min{hours} of compute to run (estimate)")
