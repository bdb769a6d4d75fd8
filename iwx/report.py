"""Turn recorded runs into the paper's figures: ``python -m iwx.report SOURCE``.

    python -m iwx.report runs --tag figure2
    python -m iwx.report mongodb://127.0.0.1:27017/iwx --sweep a1b2 --group-by IWPA.alpha
    python -m iwx.report runs --runs 3 4 7 --group-by config --window 1 --out reports/mine
    python -m iwx.report runs --task point_nav

SOURCE is a Sacred file store or a ``mongodb://`` URL (read by
:mod:`iwx.experiment.store`, so both give the same report). Runs are selected by
``--sweep`` (``meta.sweep.id``), ``--tag`` (any of them), ``--runs`` (ids) and
``--task`` (the task each run recorded, ``identity.task``; any of them), by
default only COMPLETED ones, and grouped by ``--group-by``: ``method`` (the method
the run recorded, ``identity.method``, e.g. ``iwpl``; iwx/experiment/identity.py),
``config`` (a sweep trial's parameters) or a binding name such as ``IWPA.alpha``
read from each run's ``config.bindings``.

**One panel per task.** Runs of different tasks are never averaged into one line:
every figure has one panel per recorded task (titled ``task NAME: N runs``), every
line belongs to one (task, group), and the table has a ``task`` column. Runs of one
task that adapted under different protocols (numbers of adaptation episodes,
exploration episodes or adaptation seeds: results.json, else the ``Adaptation.*``
bindings, else the episodes logged) cannot share an episode axis: the report is
refused (exit status 2) with the runs and the setting that differ; select runs of
one protocol with ``--runs``, ``--tag``, ``--sweep`` or ``--task``.

**A sweep's shared pretraining** (``pretrain: {seed: N}``: recorded with
``meta.sweep.trial = "pretrain"`` and no parameters; also a sweep run without
parameters, or that did no adaptation, among trials that have / did) is no group of
the grid: it is left out of the groups and adaptation lines and drawn in the
training figure as ``shared pretraining (run N)``.

**Adaptation figure** (the paper's figures 2-3): mean return against adaptation
episode, one line per (task, group, variant), 95% CI shaded (Student t across units).
Per-run data are the ``adapt/<variant>/return/task_NN`` metrics (each already the
mean over the run's adaptation seeds), so a MongoDB source needs no artifacts.
A *unit* is what the CI is taken across, as in ``iwx.compare``: when every
run of a line adapted on the same tasks (their ``results.json`` ``test_goals``
are equal), a unit is a task and its value the mean over the runs (appendix
A.2: 30 tasks, each averaged over seeds); otherwise (no ``results.json``, or
each run seed drew its own split, the default) every (run, task) is a unit.
Smoothing (appendix A.2): a trailing rolling mean along episodes (min periods
1), per unit before the mean and CI; the window defaults to the paper's for the
task the runs recorded: sparse 2D navigation 5, half-cheetah 1 (none), Go
To Ring / Move Box / Reach / GTT 30 (figure 3); other tasks 1. With fewer
episodes than the window this is the running mean since episode 1. The
headline numbers (last 3 episodes, after exploration) are means of the
*unsmoothed* returns per unit, as appendix A.2 defines them. Each panel draws
its task's goal-knowing oracle and lower baseline (results.json) of the runs
plotted there; report.md lists them per task with how many runs recorded them,
and says so for a task whose runs recorded none.

**Training figure** (figure 1, when runs logged ``train/return``): mean training
return against environment steps (``train/env_steps`` logged at the same
learner step; learner updates when a run of the task lacks it), one line per
group, 95% CI across runs. Appendix A.1 averages the return in chunks of 200k
timesteps and rolls a window of 200 chunks over tens of millions of steps; at
this project's budgets (a few hundred logged points) that would flatten every
curve, so the default here is: chunk width = the logging period (the largest
median spacing of ``train/env_steps`` among the task's runs, so each chunk holds
about one logged value of every run; ``--train-bin`` overrides) and a rolling
window of min(200, a tenth of the line's chunks) chunks (``--train-window``, or
``--window``, overrides). Chunks are labelled by their end and smoothed per run
along its own chunks; at each chunk the line is the mean ± CI across the runs
that reach it. Runs of different lengths are each drawn to their own end, never
cut to the shortest: the CI is shaded only where at least 2 runs reach a chunk,
``|`` marks where a run ends, report.json gives each point's number of runs
(``n``) and the run ends (``ends``), and report.md says how many runs each
stretch averages. The table's final training return is each run's mean of its
last 10 logged values (as ``iwx.run`` reports it), mean ± CI across the group's
runs.

Writes to ``--out`` (default ``reports/<sweep | tags | runs>[-<tasks>]``):
``adaptation.png`` / ``.svg``, ``training.png`` / ``.svg`` (when there is training
data), ``report.md`` (the table and reference returns) and ``report.json`` (exactly
the plotted series, each with its ``task``; ``tasks``, ``shared_pretraining``,
``references`` per task). The work is done by :mod:`iwx.results.reporting`; this
module parses and prints.
"""

from __future__ import annotations

import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.report",
                                description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE",
                   help="Sacred file store (e.g. runs) or mongodb://host:port/DB")
    p.add_argument("--sweep", default=None, metavar="ID", help="runs of this sweep only")
    p.add_argument("--tag", nargs="+", action="extend", default=[], metavar="T",
                   help="runs carrying any of these tags (iwx.run --tag)")
    p.add_argument("--runs", nargs="+", action="extend", default=[], metavar="ID",
                   help="these run ids only")
    p.add_argument("--task", nargs="+", action="extend", default=[], metavar="NAME",
                   help="runs of these tasks only (identity.task, e.g. point_nav)")
    p.add_argument("--status", nargs="+", default=["COMPLETED"], metavar="S",
                   help="Sacred statuses kept (default COMPLETED; 'any' for all)")
    p.add_argument("--group-by", default="method", metavar="method|config|BINDING",
                   help="line groups: method (the method each run recorded; default), "
                        "config (a sweep trial's parameters) or a binding, e.g. IWPA.alpha")
    p.add_argument("--variant", nargs="+", action="extend", default=[], metavar="NAME",
                   help="adaptation variants to plot (default: all)")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="rolling window (episodes; also training chunks unless "
                        "--train-window): default the paper's per task (appendix A.2)")
    p.add_argument("--train-window", type=int, default=None, metavar="N",
                   help="rolling window of the training curves in chunks "
                        "(default min(200, chunks/10))")
    p.add_argument("--train-bin", type=float, default=None, metavar="STEPS",
                   help="chunk width of the training curves in env steps "
                        "(default: the logging period)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default reports/<sweep or tag or 'runs'>)")
    p.add_argument("--title", default=None, metavar="TEXT", help="figure title")
    args = p.parse_args(argv)
    for name in ("window", "train_window"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.train_bin is not None and args.train_bin <= 0:
        p.error("--train-bin must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    from iwx.experiment.store import StoreError
    from iwx.results.reporting import ReportError, ReportRequest, selection_text, write_report

    request = ReportRequest(
        source=args.source, sweep=args.sweep, tags=tuple(args.tag), runs=tuple(args.runs),
        statuses=tuple(args.status), group_by=args.group_by, variants=tuple(args.variant),
        window=args.window, train_window=args.train_window, train_bin=args.train_bin,
        out=args.out, title=args.title, tasks=tuple(args.task))
    try:
        rep, _, text, written = write_report(request)
    except (ReportError, StoreError) as exc:
        print(f"iwx.report: {exc}", file=sys.stderr)
        return 2
    shared = f", {len(rep.pretraining)} shared pretraining" if rep.pretraining else ""
    print(f"[iwx.report] {len(rep.runs)} runs from {args.source} ({selection_text(request)}), "
          f"{len(rep.groups)} group(s) by {args.group_by} in {len(rep.tasks)} task(s) "
          f"({', '.join(rep.tasks)}){shared}")
    print("\n" + text + "\n")
    print(f"[iwx.report] wrote {', '.join(str(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
