"""Draw one of the paper's figures, running whatever runs of it are not recorded yet.

    python -m iwx.figure 3                      # this machine's scale (cpu)
    python -m iwx.figure 3 --dry-run            # what would run, what is reused, minutes
    python -m iwx.figure 3 --scale smoke        # the whole pipeline in about a minute
    python -m iwx.figure 3 --scale paper --mongo $IWX_MONGO_URL --jobs 8
    python -m iwx.figure 3 --panels reach_cpu --runs IWPL 'From Scratch'   # a part first

A figure is data: ``figures/figureN.yaml`` (a checkout's folder, or the wheel's
copy) names, for each scale, the panels, each panel's runs (gin files, bindings,
estimated minutes), the run seeds, the smoothing and what the table averages
(iwx/figures/spec.py documents the format; ``--spec FILE`` uses a file of your own).

Every panel × run × seed is an ordinary recorded run (``iwx.run``: Sacred, resumable)
of its configuration. One that already COMPLETED in ``--runs-dir`` (the same
configuration key: same files, bindings and seed) or, with ``--mongo``, in MongoDB
is reused; the others run ``--jobs`` at a time, each in a process of its own, one
line as each starts and ends. Then the figure is drawn under ``--out`` (default
``reports/figureN-<scale>/``): ``figureN.png`` / ``.pdf``, ``training.png`` and
``training_return.png`` (the pretraining of every run, against env steps),
``table.md``, ``figure.json`` (every plotted number, the runs used, their compute)
and ``README.md`` (a snippet with all of it). Run it again: everything is reused
and only the drawing is redone.

A figure of kind ``tasks`` (figure 5) runs nothing: it renders one frame of each
panel's task, built from the panel's gin file (iwx/figures/frames.py), with the first
OpenGL backend that renders here (iwx/figures/gl.py), into ``figureN.png`` / ``.pdf``,
``frames/<task>.png``, ``figure.json`` and ``README.md``; ``--dry-run`` lists the frames.

``--until 00:55`` (a time of day, a date and time, or a duration: ``150m``) starts only
the runs whose estimate fits before then and leaves the others for the same command
later (iwx/figures/deadline.py): for a machine lent until a known time, where a run
still going when it goes would be lost. ``--dry-run --until`` says which would start.

A run that another process is running (its lock held: a second figure command on the
same runs folder, say) is left to it, so two commands share out a figure's runs.

``--draw-only`` runs nothing: it draws the figure from the runs recorded so far (while
the rest run elsewhere, or before deciding to spend the hours) and lists the others as
not run, each with where it stands (running in another process, resuming from a
checkpoint). Exit 3 when some run was not drawn.

Exit status: 0 drawn from every run; 1 some run failed (the figure is drawn from
the others, the failures' output tails printed); 3 runs were left, for ``--until``,
to the process running them, or by ``--draw-only`` (the figure is drawn from what is
recorded; the same command runs or reuses them); 2 nothing ran: an unknown figure,
scale, panel or run name, a spec with a missing or mistyped key (file and key named), a gin
file that does not exist, a binding gin refuses, a MongoDB that does not answer.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

PREFIX = "[iwx.figure]"


def positive_seconds(text: str) -> float:
    """--progress-every's value: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.figure", description=__doc__.split("\n")[0])
    p.add_argument("figure", nargs="?", metavar="N",
                   help="the paper's figure number (figures/figureN.yaml), or the name of a "
                        "figure of iwx's own (figures/<name>.yaml, e.g. mixture_prior)")
    p.add_argument("--scale", default="cpu",
                   help="which of the spec's scales (default: cpu, this machine's)")
    p.add_argument("--dry-run", action="store_true",
                   help="list every run, whether it is reused or would run, and the estimated "
                        "minutes; run nothing")
    p.add_argument("--spec", metavar="FILE", help="a spec file instead of the shipped one")
    p.add_argument("--panels", nargs="+", default=[], metavar="TASK",
                   help="only these panels (by their task)")
    p.add_argument("--runs", nargs="+", default=[], metavar="NAME",
                   help="only these runs of each panel, by label or gin file (e.g. IWPL, scratch, "
                        "'From Scratch', rl2, gin/reach_pearl.gin); the figure draws them alone")
    p.add_argument("--runs-dir", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   help="Sacred file store of the runs (default: $IWX_RUNS_DIR or runs/)")
    p.add_argument("--mongo", default=os.environ.get("IWX_MONGO_URL"), metavar="URL",
                   help="also reuse runs recorded there and record new runs there "
                        "(default: $IWX_MONGO_URL)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time (default 1: a pretraining uses the machine)")
    p.add_argument("--out", help="where the figure goes (default: reports/figureN-<scale>/)")
    p.add_argument("--progress-every", type=positive_seconds, default=None, metavar="SECONDS",
                   help="how often to print each running run's newest progress line, when "
                        "it changed (default 300)")
    p.add_argument("--until", metavar="WHEN",
                   help="start only runs that will finish before WHEN: a time of day (00:55), "
                        "a date and time (2026-12-06 00:55) or a duration (150m, 2.5h); "
                        "the others are left for the same command later (exit 3)")
    p.add_argument("--draw-only", action="store_true",
                   help="run nothing: draw from the runs recorded so far and list the others "
                        "(exit 3 when some are not recorded yet)")
    p.add_argument("--gin_param", action="append", default=[], metavar="'NAME = VALUE'",
                   help="binding appended to every run (repeatable): your own override")
    return p.parse_args(argv)


def fail(message: str) -> int:
    print(f"iwx.figure: {message}", file=sys.stderr)
    return 2


def spec_path(args) -> Path:
    from iwx.figures.spec import SpecError, figure_id, find

    if args.spec:
        path = Path(args.spec)
        if not path.is_file():
            raise SpecError(f"--spec {args.spec}: no such file")
        return path
    if args.figure is None:
        raise SpecError("name a figure number (python -m iwx.figure 3) or --spec FILE")
    return find(figure_id(args.figure))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.jobs < 1:
        return fail(f"--jobs {args.jobs}: expected at least 1")
    if args.draw_only and (args.dry_run or args.until is not None):
        return fail("--draw-only runs nothing and draws; it goes with neither --dry-run "
                    "(which draws nothing) nor --until (which picks runs to start)")
    args.deadline_s = None
    if args.until is not None:
        import datetime as dt
        import time

        from iwx.figures.deadline import parse_until

        now = dt.datetime.now()
        try:
            at = parse_until(args.until, now)
        except ValueError as exc:
            return fail(str(exc))
        args.deadline_s = time.time() + (at - now).total_seconds()
        args.until_text = f"{args.until} ({at:%Y-%m-%d %H:%M})"
    if args.mongo:
        from iwx.experiment.mongo import check_url

        if problem := check_url(args.mongo):
            return fail(f"--mongo: {problem}")
    from iwx.experiment.store import StoreError
    from iwx.figures import plan as planning
    from iwx.figures.spec import SpecError, figure_id, load

    try:
        spec = load(spec_path(args))
        if args.figure is not None and spec.figure != figure_id(args.figure):
            raise SpecError(f"{spec.path}: figure: this spec draws figure {spec.figure}, "
                            f"not {args.figure}")
    except SpecError as exc:
        return fail(str(exc))
    if spec.kind == "tasks":
        return frames_command(args, spec, argv)
    os.environ.setdefault("MUJOCO_GL", "disable")   # before anything imports mujoco
    try:
        plan = planning.make_plan(spec, args.scale, runs_dir=args.runs_dir, mongo=args.mongo,
                                  extra=args.gin_param, tasks=args.panels,
                                  names=args.runs)
    except SpecError as exc:
        return fail(str(exc))
    except StoreError as exc:
        return fail(f"--mongo: {exc}")
    print(f"{PREFIX} figure {spec.figure} ({spec.path}), scale {args.scale!r}: "
          f"{plan.scale.about}")
    if args.dry_run:
        print(planning.table(plan))
        print(f"{PREFIX} {planning.totals(plan)}; dry run: nothing run")
        if args.deadline_s is not None:
            print(until_plan(plan, args))
        return 0
    return run_and_draw(args, plan, argv)


def frames_command(args, spec, argv: list[str]) -> int:
    """A figure of kind ``tasks``: one rendered frame per panel, nothing run."""
    import time

    from iwx.figures import gl
    from iwx.figures.spec import SpecError

    if args.runs:
        return fail(f"--runs: figure {spec.figure} is of kind 'tasks' and has no runs "
                    "(--panels picks its frames)")
    start = time.monotonic()
    try:
        scale = spec.scale(args.scale)
        if args.dry_run:
            os.environ.setdefault("MUJOCO_GL", "disable")   # nothing is rendered
            why = None
        else:
            why = gl.use()                                  # before anything imports mujoco
        from iwx.figures import frames as framing

        plans = framing.plan_frames(spec, scale, args.panels, args.gin_param)
    except SpecError as exc:
        return fail(str(exc))
    except gl.NoRendering as exc:
        return fail(str(exc))
    print(f"{PREFIX} figure {spec.figure} ({spec.path}), scale {scale.name!r}: {scale.about}")
    if args.dry_run:
        print(framing.table(plans, scale.frame))
        print(f"{PREFIX} dry run: nothing rendered")
        return 0
    print(f"{PREFIX} rendering with MUJOCO_GL={os.environ['MUJOCO_GL']} ({why})", flush=True)
    from iwx.figures import record
    from iwx.figures.draw import frames_figure

    made = []
    for p in plans:
        made.append(framing.render(p, scale.frame))
        print(f"{PREFIX} frame {p.number}/{len(plans)}: {p.panel.title}: {made[-1].target} "
              f"({made[-1].seconds:.1f} s)", flush=True)
    out = Path(args.out) if args.out else Path("reports") / f"{spec.name}-{scale.name}"
    name = spec.name
    note = (f"Held-out task {framing.HELD_OUT} of each task's split (seed {scale.seeds[0]}), "
            "at the start of its first episode; red: the target, drawn into the picture only.")
    files = frames_figure(spec.heading, note, made, out, name)
    command = " ".join(["python -m iwx.figure", *(shlex.quote(a) for a in argv)])
    files = record.write_frames(spec, scale, made, files, out, command,
                                os.environ["MUJOCO_GL"], list(args.gin_param),
                                time.monotonic() - start)
    print(f"{PREFIX} {len(made)} frames drawn in {time.monotonic() - start:.0f} s; wrote "
          + ", ".join(str(f) for f in files[:2]) + f" and {len(files) - 2} more in {out}")
    return 0


def until_plan(plan, args) -> str:
    """The dry run's answer to ``--until``: which runs would start, when, and which not
    (iwx.figures.deadline.schedule on the estimates)."""
    import time

    from iwx.figures.deadline import SAFETY, names, schedule
    from iwx.figures.execute import running_elsewhere
    from iwx.figures.plan import minutes_text

    available = max(0.0, (args.deadline_s - time.time()) / 60.0)
    missing = plan.to_run()
    elsewhere = {p.number: why for p in missing if (why := running_elsewhere(p))}
    starts, left = schedule(missing, args.jobs, available, lambda p: p.minutes_left(),
                            lambda p: p.after, lambda p: p.number in elsewhere)
    total = len(plan.runs)
    head = (f"{PREFIX} --until {args.until_text}: {minutes_text(available)} min from now, "
            f"--jobs {args.jobs}, a run starting only where {SAFETY:g} × its estimate ends "
            "before then")
    if not missing:
        return head + ": nothing to run"
    lines = [head + f": {len(starts)} of {len(missing)} would start"]
    for p in missing:
        if p.number in starts:
            lines.append(f"  run {p.number}/{total} at +{minutes_text(starts[p.number])} min, "
                         f"about {minutes_text(p.minutes_left())} min: {p.name()}")

    def held_back(p) -> bool:          # running elsewhere, or adapts from one that is
        return p.number in elsewhere or (p.after is not None and held_back(p.after))

    for p in left:
        if p.number in elsewhere:
            lines.append(f"  left to the process running it: run {p.number}/{total}, "
                         f"{p.name()} ({elsewhere[p.number]})")
    waiting = [p for p in left if p.number not in elsewhere and held_back(p)]
    if waiting:
        lines.append(f"  left until the runs they adapt from are done: {names(waiting, total)}")
    later = [p for p in left if not held_back(p)]
    if later:
        lines.append(f"  left for later: {names(later, total)}")
    return "\n".join(lines)


def not_run(plan, missing) -> dict[int, dict]:
    """--draw-only's outcomes: every run not recorded yet is not started (``left``:
    ``"draw-only"``), with where it stands (iwx.figures.plan.progress_of) in its line."""
    from iwx.figures.plan import progress_of

    outcomes = {}
    for p in missing:
        where = progress_of(p)
        why = "--draw-only" + (f"; {where}" if where else "; not begun")
        outcomes[p.number] = {"ok": False, "seconds": 0.0, "not_started": why,
                              "left": "draw-only"}
        print(f"{PREFIX} run {p.number}/{len(plan.runs)} not run: {p.name()} ({why})",
              flush=True)
    return outcomes


def report_failures(plan, missing, outcomes: dict[int, dict]) -> list:
    """Each run that failed (not one a signal stopped), with the tail of its output, on
    stderr; also when the figure stops early, so no failure goes unexplained."""
    failed = [p for p in missing if p.number in outcomes and not outcomes[p.number]["ok"]
              and not outcomes[p.number].get("interrupted")
              and not outcomes[p.number].get("not_started")]
    for p in failed:
        print(f"\n{PREFIX} run {p.number}/{len(plan.runs)} failed: {p.name()}\n"
              f"{outcomes[p.number]['error']}", file=sys.stderr)
    return failed


def run_and_draw(args, plan, argv: list[str]) -> int:
    from iwx.figures import collect, record
    from iwx.figures.draw import draw
    from iwx.figures.execute import PROGRESS_S, RunInterrupted, execute
    from iwx.figures.plan import totals
    from iwx.figures.spec import SpecError

    for p in plan.reused():
        print(f"{PREFIX} run {p.number}/{len(plan.runs)} reused: {p.name()} = "
              f"{p.done.where()}{p.done.cut_text()}")
    missing = plan.missing()
    if missing and args.draw_only:
        print(f"{PREFIX} {len(missing)} of {len(plan.runs)} runs not recorded yet; "
              "--draw-only: running none of them", flush=True)
    elif missing:
        print(f"{PREFIX} {totals(plan)}; {args.jobs} at a time, records in "
              f"{args.runs_dir}", flush=True)
    else:
        print(f"{PREFIX} every run reused ({len(plan.runs)} runs): only redrawing", flush=True)
    try:
        if args.draw_only:
            outcomes = not_run(plan, missing)
        else:
            outcomes = execute(plan.to_run(), len(plan.runs), args.jobs,
                               echo=lambda line: print(line, flush=True),
                               progress_s=args.progress_every or PROGRESS_S,
                               deadline_s=args.deadline_s,
                               until=getattr(args, "until_text", ""))
    except RunInterrupted as exc:   # a signal reached one run's own process, or this one
        report_failures(plan, missing, exc.outcomes)
        if exc.forwarded:
            print(f"{PREFIX} stopped by {'SIGTERM' if exc.status == 143 else 'Ctrl-C'}: the "
                  "runs going were stopped and recorded themselves INTERRUPTED, no further "
                  "run started; the same command resumes them from their checkpoints",
                  file=sys.stderr)
        else:
            print(f"{PREFIX} a run was stopped by a signal: no further run started; the "
                  "same command resumes it from its checkpoint", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{PREFIX} interrupted: every run stopped and recorded itself INTERRUPTED; "
              "the same command resumes them from their checkpoints", file=sys.stderr)
        return 130
    failed = report_failures(plan, missing, outcomes)
    left = [p for p in missing if outcomes.get(p.number, {}).get("not_started")]
    if left:
        from iwx.figures.deadline import names

        elsewhere = [p for p in left if outcomes[p.number].get("left") == "elsewhere"]
        skipped = [p for p in left if outcomes[p.number].get("left") == "draw-only"]
        timed = [p for p in left if outcomes[p.number].get("left") == "until"]
        total = len(plan.runs)
        if timed:
            print(f"{PREFIX} {len(timed)} run(s) not started for --until {args.until_text}: "
                  f"{names(timed, total)}; the same command runs them", file=sys.stderr)
        if elsewhere:
            print(f"{PREFIX} {len(elsewhere)} run(s) left to the process running them: "
                  f"{names(elsewhere, total)}; the same command reuses what they record",
                  file=sys.stderr)
        if skipped:
            print(f"{PREFIX} {len(skipped)} run(s) not recorded yet, not run (--draw-only): "
                  f"{names(skipped, total)}; the command without --draw-only runs them",
                  file=sys.stderr)
    runs = collect.records(plan, outcomes)
    if not runs:
        print("iwx.figure: no completed run to draw from", file=sys.stderr)
        return 1 if failed or not left else 3
    out = Path(args.out) if args.out else Path("reports") / \
        f"{plan.figure.name}-{plan.scale.name}"
    try:
        drawing = draw(plan, runs, out)
    except SpecError as exc:
        return fail(str(exc))
    command = " ".join(["python -m iwx.figure", *(shlex.quote(a) for a in argv)])
    files = record.write(plan, drawing, runs, outcomes, out, command)
    print("\n" + drawing.table + "\n")
    print(f"{PREFIX} {len(runs)} of {len(plan.runs)} runs drawn; wrote "
          + ", ".join(str(f) for f in files))
    if failed:
        print(f"{PREFIX} {len(failed)} run(s) failed (above); the figure is drawn without "
              "them", file=sys.stderr)
    return 1 if failed else 3 if left else 0


if __name__ == "__main__":
    sys.exit(main())
