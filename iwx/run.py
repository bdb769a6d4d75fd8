"""Run one experiment from gin files: ``python -m iwx.run --gin gin/point_nav_iwpl.gin``.

Parses the command line into a :class:`iwx.experiment.runner.RunSpec` and calls
:func:`iwx.experiment.runner.run`, which fails fast on a bad configuration (file /
line / binding, exit status 2), opens a Sacred run, calls the configured pipeline
and records what it returns. A killed run restarted with the same command
resumes from its last checkpoint (``--fresh`` ignores it).
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.run", description=__doc__.split("\n")[0])
    p.add_argument("--gin", action="append", required=True, metavar="FILE",
                   help="gin file (repeatable; later files override earlier ones)")
    p.add_argument("--gin_param", action="append", default=[], metavar="'NAME = VALUE'",
                   help="extra gin binding (repeatable)")
    p.add_argument("--seed", type=int, default=0,
                   help="the one seed of the run, an integer in [0, 2**32) (default 0)")
    p.add_argument("--mongo", default=os.environ.get("IWX_MONGO_URL"), metavar="URL",
                   help="also record into this MongoDB (default: $IWX_MONGO_URL)")
    p.add_argument("--runs-dir", default=os.environ.get("IWX_RUNS_DIR", "runs"),
                   help="Sacred file store (default: runs/)")
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--tag", action="append", default=[], metavar="TAG",
                   help="label the run (repeatable): recorded in its meta, shown as an "
                        "Omniboard tag, selectable in python -m iwx.report --tag")
    p.add_argument("--video", action="store_true",
                   help="render the last adaptation episode of held-out task 0 as a GIF "
                        "artifact (needs EGL or OSMesa; MUJOCO_GL defaults to egl then)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """Exit status: 0 completed, 2 refused before any compute (configuration, a run of
    the same configuration already going, an unrecoverable checkpoint), 1 failed
    (e.g. diverged), 130 / 143 interrupted by Ctrl-C / SIGTERM."""
    args = parse_args(argv)
    import shlex

    from iwx.experiment.runner import RunSpec, RunStopped, run

    again = "python -m iwx.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        record = run(RunSpec(gin_files=tuple(args.gin), bindings=tuple(args.gin_param),
                             seed=args.seed, runs_dir=args.runs_dir, mongo=args.mongo,
                             fresh=args.fresh, tags=tuple(args.tag),
                             progress=not args.no_progress, video=args.video))
    except RunStopped as exc:
        print(exc, file=sys.stderr)
        if exc.resumable:
            print(f"[iwx] to resume, run the same command again: {again}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:   # before the run started: nothing recorded
        print("[iwx] interrupted before the run started; nothing was recorded",
              file=sys.stderr)
        return 130
    return 0 if record is not None else 2


if __name__ == "__main__":
    sys.exit(main())
