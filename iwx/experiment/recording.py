"""Sacred recording: one Sacred run per ``iwx.run`` invocation.

What a run records:
  config    seed, the gin files, and every binding flattened under ``bindings``
            (filterable in MongoDB as config.bindings.IWPL.num_samples), and the
            headline keys task, method, uid, K, alpha, updates and a sweep trial's
            swept bindings at the top, where Omniboard filters and shows columns
            (iwx/experiment/headline.py)
  info      the full gin text, the operative config after the run, checkpoint key,
            which checkpoint a resumed run started from, headline results
  metrics   a browsable set (iwx/experiment/metrics.py): train/* aggregates per
            logging period against env steps, adapt/<variant>/return per
            adaptation episode; per-task and throughput series by binding
  artifacts config.gin, operative_config.gin, model.pt (π0 and ψ / critic),
            results.json, series.json (every logged series), adaptation.png,
            training.png
  sources   every module of the iwx package, and the git commit where there is one
Observers: a file store under ``runs_dir`` always (the record; written so that a
full disk loses nothing silently: iwx/experiment/durable.py); when a
MongoDB URL is given, a MirrorObserver that copies the file-store run into
MongoDB in Sacred's layout at the start, every heartbeat and the end (a
database that is down or dies never decides whether a run lives, and
``python -m iwx.resync`` re-sends whatever it missed).
meta      iwx_uid (the run's identity in MongoDB), tags, and for sweep trials
          sweep = {id, params, trial}
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

# sacred 0.8.7 imports pkg_resources (setuptools < 81 is pinned for it); its
# deprecation notice says nothing the user can act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from sacred import SETTINGS, Experiment  # noqa: E402
from sacred.dependencies import Source, get_commit_if_possible, get_digest  # noqa: E402

from iwx.experiment.captured import clean_captured_out  # noqa: E402
from iwx.experiment.durable import DurableFileObserver  # noqa: E402

SETTINGS.CAPTURE_MODE = "sys"  # works under Ray workers and with progress bars
SETTINGS.CONFIG.READ_ONLY_CONFIG = False
# Sacred's heartbeat (10 s by default) is when info, captured output and metrics are
# written to the file store and mirrored into MongoDB.
SETTINGS.DEFAULT_BEAT_INTERVAL = float(os.environ.get("IWX_HEARTBEAT_S", "10"))


def mongo_observer(url: str, runs_dir: str | Path):
    """The observer mirroring the run into MongoDB at ``url`` (iwx/experiment/mirror.py).

    A server that does not answer now is reported and retried at every heartbeat:
    the run goes on either way, recorded in the file store.
    """
    from iwx.experiment.mirror import MirrorObserver
    from iwx.experiment.mongo import ping

    if not ping(url):
        print(f"[iwx] MongoDB at {url} does not answer now; recording to the file store "
              "and retrying at every heartbeat.", file=sys.stderr, flush=True)
    return MirrorObserver(url, runs_dir)


def _git_state_readable() -> bool:
    """Sacred records git state only if the repository has a commit to name."""
    try:
        import git

        git.Repo(Path(__file__).resolve().parent, search_parent_directories=True).head.commit
        return True
    except Exception:
        return False


PACKAGE = Path(__file__).resolve().parents[1]    # iwx/


def package_sources() -> list[Path]:
    """Every module of the iwx package: recorded with each run (Sacred stores a file
    once per content, in the file store's ``_sources`` and in GridFS), so a run can be
    traced to the code that made it where no git commit names it (an installed wheel,
    uncommitted changes)."""
    return sorted(PACKAGE.rglob("*.py"))


def package_source_records(save_git_info: bool) -> list[Source]:
    """Sacred's records of :func:`package_sources`, as ``add_source_file`` makes them,
    with the repository's commit and dirtiness asked of git once. (``add_source_file``
    asks for every file: three git processes each, about 2 s of every run for the
    package's ~150 modules; they all sit in the one repository above ``PACKAGE``.)"""
    files = [str(f) for f in package_sources()]
    repo, commit, dirty = get_commit_if_possible(files[0], save_git_info)
    return [Source(f, get_digest(f), repo, commit, dirty) for f in files]


def make_experiment(name: str, config: dict, runs_dir: str | Path,
                    mongo_url: str | None = None) -> Experiment:
    ex = Experiment(name, base_dir=str(PACKAGE.parent), save_git_info=_git_state_readable())
    ex.sources.update(package_source_records(ex.save_git_info))
    ex.captured_out_filter = clean_captured_out   # a log, never a torn bar
    ex.add_config(config)
    ex.observers.append(DurableFileObserver(str(runs_dir)))   # the record: observers[0]
    if mongo_url:
        ex.observers.append(mongo_observer(mongo_url, runs_dir))
    return ex
