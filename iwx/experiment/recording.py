"""Sacred recording: one Sacred run per ``iwx.run`` invocation.

What a run records:
  config    seed, the gin files, and every binding flattened under ``bindings``
            (filterable in MongoDB / Omniboard as config.bindings.IWPL.num_samples)
  info      the full gin text, the operative config after the run, checkpoint key,
            which checkpoint a resumed run started from, headline results
  metrics   train/* per logging period (step = learner updates),
            adapt/<variant>/return[/task_NN] per adaptation episode
  artifacts config.gin, operative_config.gin, model.pt (π0 and ψ / critic),
            results.json, adaptation.png
Observers: a FileStorageObserver under ``runs_dir`` always; a MongoObserver
as well when a URL is given and the server answers a ping (a database that is
down never decides whether a run lives: the file store is the record).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

# sacred 0.8.7 imports pkg_resources (setuptools < 81 is pinned for it); its
# deprecation notice says nothing the user can act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated")

from sacred import SETTINGS, Experiment  # noqa: E402
from sacred.observers import FileStorageObserver  # noqa: E402
from sacred.utils import apply_backspaces_and_linefeeds  # noqa: E402

SETTINGS.CAPTURE_MODE = "sys"  # works under Ray workers and with progress bars
SETTINGS.CONFIG.READ_ONLY_CONFIG = False


def mongo_observer(url: str, timeout_ms: int = 3000):
    """A MongoObserver for ``url`` if the server answers within ``timeout_ms``, else None."""
    import pymongo
    from sacred.observers import MongoObserver

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=timeout_ms)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as exc:
        print(f"[iwx] MongoDB at {url} did not answer ({type(exc).__name__}); "
              "recording to the file store only.", file=sys.stderr)
        client.close()
        return None
    db_name = pymongo.uri_parser.parse_uri(url).get("database") or "iwx"
    return MongoObserver(client=client, db_name=db_name)


def _git_state_readable() -> bool:
    """Sacred records git state only if the repository has a commit to name."""
    try:
        import git

        git.Repo(Path(__file__).resolve().parent, search_parent_directories=True).head.commit
        return True
    except Exception:
        return False


def make_experiment(name: str, config: dict, runs_dir: str | Path,
                    mongo_url: str | None = None) -> Experiment:
    ex = Experiment(name, save_git_info=_git_state_readable())
    ex.captured_out_filter = apply_backspaces_and_linefeeds
    ex.add_config(config)
    ex.observers.append(FileStorageObserver(str(runs_dir)))
    if mongo_url:
        observer = mongo_observer(mongo_url)
        if observer is not None:
            ex.observers.append(observer)
    return ex
