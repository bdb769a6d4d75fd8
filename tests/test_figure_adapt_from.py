"""Figure specs whose runs adapt from another run's pretraining (``adapt_from``), draw a
subset of a run's variants under their own labels (``variants``), and smooth a panel
with its own window (figures 2, 4 and 7; iwx/figures/spec.py, plan.py, execute.py).

End to end on point navigation with the tests' tiny budgets, Sacred's records read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import ROOT, read_json, run_cli

TINY = """\
      - PointNavTasks.num_train = 6
      - PointNavTasks.num_test = 3
      - MultiTaskTraining.updates = 16
      - MultiTaskTraining.envs_per_iteration = 4
      - MultiTaskTraining.updates_per_iteration = 8
      - MultiTaskTraining.batch_size = 8
      - MultiTaskTraining.log_period = 8
      - MultiTaskTraining.checkpoint_period = 8
      - Adaptation.episodes = 3
      - Adaptation.exploration_episodes = 1
      - Adaptation.seeds = 1
      - Adaptation.updates_per_episode = 2
      - Adaptation.batch_size = 8
"""

SPEC = f"""\
figure: 7
title: A test ablation
kind: adaptation
last: 2
scales:
  smoke:
    about: "tiny"
    seeds: [0]
    window: 1
    bindings:
{TINY}    panels:
      - task: point_nav
        window: 2
        runs:
          - {{gin: gin/point_nav_iwpl.gin, minutes: 0.2, label: IWPL, variants: []}}
          - {{gin: gin/point_nav_iwpl.gin, minutes: 0.1, label: ablation, adapt_from: IWPL,
             overlay: [gin/common/figure7_variants.gin],
             variants: {{"Shared Q + IW": "with π0", "ψ without π0": "ψ alone"}}}}
"""


def figure(args):
    return run_cli("iwx.figure", [str(a) for a in args], timeout=600)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change, words", [
    (("adapt_from: IWPL", "adapt_from: IWLP"),
     "runs[1].adapt_from: 'IWLP' is not the label of an earlier run of this panel "
     "(earlier runs: IWPL)"),
    (("variants: []}", "variants: [], adapt_from: ablation}"),
     "runs[0].adapt_from: 'ablation' is not the label of an earlier run"),
    (("variants: []", "variants: 3"), "runs[0].variants: expected a list of variant names"),
    (("variants: []", "variants: [IW, IW]"), "runs[0].variants: a variant named twice"),
    (("        window: 2\n", "        window: 0\n"),
     "panels[0].window: expected an integer >= 1"),
])
def test_bad_dependencies_variants_and_windows_are_refused(tmp_path, change, words):
    path = write(tmp_path, SPEC.replace(*change))
    proc = figure(["--spec", path, "--scale", "smoke", "--runs-dir", tmp_path / "runs",
                   "--dry-run"])
    assert proc.returncode == 2
    assert words in proc.stderr, proc.stderr


def test_a_chain_of_dependencies_is_refused(tmp_path):
    text = SPEC.rstrip() + """
          - {gin: gin/point_nav_iwpl.gin, minutes: 0.1, label: again, adapt_from: ablation}
"""
    proc = figure(["--spec", write(tmp_path, text), "--scale", "smoke", "--dry-run"])
    assert proc.returncode == 2
    assert "'ablation' adapts from 'IWPL' itself: name the run that pretrains" in proc.stderr


def test_the_plan_keys_a_dependent_by_its_pretrainings_key(tmp_path, monkeypatch):
    from iwx.figures.plan import make_plan, table
    from iwx.figures.spec import load

    monkeypatch.chdir(ROOT)
    path = write(tmp_path, SPEC)
    plan = make_plan(load(path), "smoke", runs_dir=str(tmp_path / "runs"))
    base, ablation = plan.runs
    assert ablation.after is base and base.after is None
    assert ablation.spec.pretrained_from == base.key and base.spec.pretrained_from is None
    assert "will run, from run 1's model" in table(plan)
    # --runs picking the ablation alone plans its pretraining too
    picked = make_plan(load(path), "smoke", runs_dir=str(tmp_path / "runs"),
                       names=["ablation"])
    assert [p.entry.label for p in picked.runs] == ["IWPL", "ablation"]
    assert [p.key for p in picked.runs] == [base.key, ablation.key]


def test_an_ablation_adapts_from_the_pretraining_and_draws_only_its_chosen_variants(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    path = write(tmp_path, SPEC)
    proc = figure(["--spec", path, "--scale", "smoke", "--runs-dir", runs, "--out", out])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = read_json(out / "figure.json")
    (panel,) = record["panels"]
    assert [line["label"] for line in panel["lines"]] == ["with π0", "ψ alone"]
    base_dir, ablation_dir = (Path(r["dir"]) for r in record["runs"])
    assert [r["adapts_from_run"] for r in record["runs"]] == [None, 1]
    info = read_json(ablation_dir / "info.json")
    assert info["pretrained_from"]["run_id"] == base_dir.name
    assert info["pretrained_from"]["checkpoint_key"] == read_json(
        base_dir / "info.json")["checkpoint_key"]
    series = read_json(ablation_dir / "series.json")
    assert not any(name.startswith("train/") for name in series)      # not pretrained again
    assert list(read_json(ablation_dir / "results.json")["returns"]) == [
        "Shared Q + IW", "IW", "ψ without π0"]                         # IW run, not drawn
    assert all(line["window"] == 2 for line in panel["lines"])        # the panel's window
    table = (out / "table.md").read_text()
    assert "with π0" in table and "ψ alone" in table and "| IW |" not in table
    # the same command again: both reused, the same figure
    again = figure(["--spec", path, "--scale", "smoke", "--runs-dir", runs, "--out", out])
    assert again.returncode == 0
    assert "every run reused (2 runs): only redrawing" in again.stdout
    assert "started" not in again.stdout
    assert (out / "table.md").read_text() == table


def test_a_dependent_of_a_failed_pretraining_is_not_started(tmp_path, monkeypatch):
    """The pretraining fails at once (both its checkpoint files are damaged): the
    ablation is reported failed without running, and nothing of it is recorded."""
    from iwx.figures.plan import make_plan
    from iwx.figures.spec import load

    monkeypatch.chdir(ROOT)
    runs, path = tmp_path / "runs", write(tmp_path, SPEC)
    plan = make_plan(load(path), "smoke", runs_dir=str(runs))
    damaged = runs / "_checkpoints" / plan.runs[0].key
    damaged.mkdir(parents=True)
    for name in ("state.pt", "state.prev.pt"):
        (damaged / name).write_bytes(b"not a checkpoint")
    proc = figure(["--spec", path, "--scale", "smoke", "--runs-dir", runs,
                   "--out", tmp_path / "out"])
    assert proc.returncode == 1
    assert "run 2/2 FAILED (not started: run 1, its pretraining, did not complete)" in proc.stdout
    assert not [d for d in runs.glob("[0-9]*")]


def test_a_dependent_of_a_pretraining_another_process_runs_is_left_with_it(tmp_path,
                                                                          monkeypatch):
    """This test holds the pretraining's run lock ("another process"): both runs are left
    to that process (exit 3), neither failed, nothing recorded."""
    from iwx.experiment.run_lock import RunLock, lock_path
    from iwx.figures.plan import make_plan
    from iwx.figures.spec import load

    monkeypatch.chdir(ROOT)
    runs, path = tmp_path / "runs", write(tmp_path, SPEC)
    plan = make_plan(load(path), "smoke", runs_dir=str(runs))
    with RunLock(lock_path(runs, plan.runs[0].key), key=plan.runs[0].key):
        proc = figure(["--spec", path, "--scale", "smoke", "--runs-dir", runs,
                       "--out", tmp_path / "out"])
    assert proc.returncode == 3, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "run 2/2 not started (its pretraining, run 1, was not)" in proc.stdout
    assert "2 run(s) left to the process running them: 1/2 and 2/2" in proc.stderr
    assert "FAILED" not in proc.stdout and "Traceback" not in proc.stderr
    assert not [d for d in runs.glob("[0-9]*")]
