"""Copy each finished run's small files from the runs folder into docs/records/cpu-runs and
commit them (docs/records only), so a machine lost with its runs folder keeps them.

What is copied (docs/records/README.md): a COMPLETED run's JSON records, captured output
and gin configuration, its ``model.pt`` only when it is an IWPL pretraining (other figures
adapt from it), and the INTERRUPTED segments it resumed from (their lineage, which the
figures' compute sums over). Checkpoints, pictures and ``_sources`` are left out.

    python archive.py RUNS_DIR REPO      # one pass; archive.sh calls it every two minutes
"""
import json
import shutil
import subprocess
import sys
from pathlib import Path

SMALL = ("config.json", "run.json", "info.json", "metrics.json", "results.json",
         "series.json", "cout.txt", "config.gin", "operative_config.gin")


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def lineage(runs: Path, run_id: str) -> list[str]:
    """``run_id`` and the runs it resumed from, newest first."""
    chain, seen = [], set()
    while run_id and run_id not in seen and (runs / run_id).is_dir():
        seen.add(run_id)
        chain.append(run_id)
        run_id = str((_json(runs / run_id / "info.json").get("resumed_from") or {})
                     .get("run_id") or "")
    return chain


def copy_run(runs: Path, out: Path, run_id: str) -> None:
    source, target = runs / run_id, out / run_id
    tmp = out / f".{run_id}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in SMALL:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    info = _json(source / "info.json")
    if (info.get("identity") or {}).get("method") == "iwpl" and (source / "model.pt").is_file():
        shutil.copy2(source / "model.pt", tmp / "model.pt")
    tmp.rename(target)


def committed_runs(repo: Path) -> set[str]:
    """The run ids whose records git tracks under docs/records/cpu-runs. A folder that is
    there but not tracked (a commit that failed, e.g. on another git command's index.lock)
    is archived again by the next pass."""
    listing = subprocess.run(["git", "ls-files", "--", "docs/records/cpu-runs"], cwd=repo,
                             check=True, capture_output=True, text=True).stdout
    return {line.split("/")[3] for line in listing.splitlines() if line.count("/") >= 4}


def one_pass(runs: Path, repo: Path) -> list[str]:
    out = repo / "docs" / "records" / "cpu-runs"
    done = committed_runs(repo)
    committed = []
    for run in sorted((p for p in runs.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
        if run.name in done:
            continue
        status = _json(run / "run.json").get("status")
        if status != "COMPLETED":
            continue
        new = [r for r in lineage(runs, run.name) if r not in done]
        for r in new:
            shutil.rmtree(out / r, ignore_errors=True)   # a copy whose commit failed
            copy_run(runs, out, r)
        gin = ", ".join(_json(run / "config.json").get("gin_files") or [])
        paths = [str(out / r) for r in new]
        subprocess.run(["git", "add", "--", *paths], cwd=repo, check=True)
        message = (f"records: run {run.name} ({status}, {gin}); archived as it finished, "
                   "so a lost machine keeps it")
        if len(new) > 1:
            message += f" (with the segments it resumed from: {', '.join(new[1:])})"
        subprocess.run(["git", "commit", "-q", "-m", message, "--", *paths], cwd=repo, check=True)
        done.update(new)
        committed.append(run.name)
    return committed


if __name__ == "__main__":
    for r in one_pass(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"archived run {r}", flush=True)
