"""Figures 2, 4 and 7 and iwx's own mixture_prior, adaptation_length and ablation_radius
figures (issue 18): their specs at every scale, figures 4 and 7 (and the mixture's Reach
line, the longer adaptation and the radius ablation) reusing figure 3's pretraining by
key, figure 4 and the mixture figure end to end at the smoke scale (adapt_from, the
fine-tuning variant, relabelled lines, a named spec), Sacred's records read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cli import ROOT, planned_figure_runs, read_json, run_cli


def figure(args):
    return run_cli("iwx.figure", [str(a) for a in args], timeout=900)


@pytest.mark.parametrize("number, scales", [(2, ["cpu", "smoke"]),
                                            (4, ["cpu", "smoke"]),
                                            (7, ["cpu", "paper", "smoke"]),
                                            ("mixture_prior", ["cpu", "smoke"]),
                                            ("adaptation_length", ["cpu", "smoke"]),
                                            ("ablation_radius", ["cpu", "smoke"]),
                                            ("pearl_budget", ["cpu"])])
def test_every_scale_plans_without_running(tmp_path, number, scales):
    from iwx.figures import spec

    assert list(spec.load(spec.find(number)).scales) == scales
    for scale in scales:
        proc = figure([number, "--scale", scale, "--dry-run", "--runs-dir", tmp_path / "runs"])
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "dry run: nothing run" in proc.stdout
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("[0-9]*"))


def base_keys(number: int, labels: dict[str, str]) -> dict[str, str]:
    """{panel: key} of the run labelled ``labels[panel]`` in figure ``number``'s cpu scale."""
    return {p.panel.task: p.key for p in planned_figure_runs(number, "cpu")
            if p.entry.label == labels[p.panel.task] and p.seed == 0}


def test_figures_4_and_7_adapt_from_figure_3s_own_pretraining(monkeypatch):
    """The same configuration key: where figure 3 ran, its ~85-minute pretrainings are
    reused, not run again (and a change to figure 3's IWPL entry must be made in all three)."""
    monkeypatch.chdir(ROOT)
    iwpl = {"reach_cpu": "IWPL", "go_to_ring_cpu": "IWPL"}
    three = base_keys(3, iwpl)
    assert len(three) == 2
    seven = base_keys(7, {**iwpl, "point_nav": "IWPL"})
    assert {task: seven[task] for task in iwpl} == three
    # figure 7's navigation panel adapts from the mixture figure's Gaussian pretraining
    assert seven["point_nav"] == base_keys(
        "mixture_prior", {"point_nav": "Gaussian π0", "reach_cpu": "-"})["point_nav"]
    assert base_keys(4, {t: "IWPL, many tasks" for t in iwpl}) == three
    assert base_keys("mixture_prior", {"point_nav": "-", "reach_cpu": "Gaussian π0"}) == \
        {"reach_cpu": three["reach_cpu"]}
    assert base_keys("adaptation_length", {"reach_cpu": "IWPL"}) == \
        {"reach_cpu": three["reach_cpu"]}
    assert base_keys("ablation_radius", {"reach_cpu": "IWPL"}) == \
        {"reach_cpu": three["reach_cpu"]}


def test_pearl_budget_is_figure_2s_pearl_at_100k_and_at_the_200k_figure_2_would_run():
    """The 100k line is figure 2's half-cheetah PEARL* seed 2 by key (reused), the 200k
    line the key figure 2 gives PEARL* with its budget raised to 200k (reused there if
    figure 2 goes to 200k), and the two differ in the budget alone."""
    def keyed(name, extra=()):
        return {(p.entry.label, p.seed): p for p in
                planned_figure_runs(name, "cpu", tasks=["cheetah_vel"], extra=extra)}

    budget = keyed("pearl_budget")
    assert sorted(budget) == [("PEARL*, 100k updates", 2), ("PEARL*, 200k updates", 2)]
    short, long = budget[("PEARL*, 100k updates", 2)], budget[("PEARL*, 200k updates", 2)]
    assert short.key == keyed(2)[("PEARL*", 2)].key
    assert long.key == keyed(2, ["MultiTaskTraining.updates = 200000"])[("PEARL*", 2)].key
    assert short.updates == 100000 and long.updates == 200000
    changed = {n for n in set(short.bindings) | set(long.bindings)
               if short.bindings.get(n) != long.bindings.get(n)}
    assert changed == {"MultiTaskTraining"}, changed
    assert {k: v for k, v in short.bindings["MultiTaskTraining"].items() if k != "updates"} \
        == {k: v for k, v in long.bindings["MultiTaskTraining"].items() if k != "updates"}


def test_figure_4_runs_adapts_and_draws_its_lines(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    proc = figure([4, "--scale", "smoke", "--runs-dir", runs, "--out", out])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = read_json(out / "figure.json")
    (panel,) = record["panels"]
    assert [line["label"] for line in panel["lines"]] == [
        "Shared Q + IW, many tasks", "Shared Q + IW, few tasks",
        "few tasks, ψ fine-tuned after 20"]
    assert all(len(line["mean"]) == 3 for line in panel["lines"])     # 3 episodes each
    rows = {r["label"]: r for r in record["runs"]}
    assert rows["many tasks"]["adapts_from_run"] == rows["IWPL, many tasks"]["number"]
    many = Path(rows["many tasks"]["dir"])
    assert read_json(many / "info.json")["pretrained_from"]["run_id"] == \
        Path(rows["IWPL, many tasks"]["dir"]).name
    pretrained = Path(rows["IWPL, few tasks"]["dir"])
    assert "pretrain_and_adapt.train_tasks = 2" in \
        (pretrained / "operative_config.gin").read_text()
    assert read_json(pretrained / "results.json")["returns"] == {}   # pretraining only
    few, tuned = (Path(rows[label]["dir"]) for label in ("few tasks", "few tasks, ψ fine-tuned"))
    for run, variant in ((few, "Shared Q + IW"), (tuned, "Shared Q + IW, ψ fine-tuned")):
        assert read_json(run / "info.json")["pretrained_from"]["run_id"] == pretrained.name
        assert list(read_json(run / "results.json")["returns"]) == [variant]
    assert "finetune/IWPA.finetune_after = 1" in (tuned / "operative_config.gin").read_text()
    # few training tasks are the first of the many-task draw: the same held-out tasks
    goals = [read_json(run / "results.json")["test_goals"] for run in (many, few, tuned)]
    assert goals[0] == goals[1] == goals[2]
    # the two pretrainings side by side on the few-task run's 2 training tasks: per task
    # the mean of its series over the last 20% of the updates, by hand from series.json
    # (at this budget a task may have no point in the window, or none at all)
    shared = {r["label"]: r for r in record["shared_tasks"]}
    assert sorted(shared) == ["IWPL, few tasks", "IWPL, many tasks"]
    windows = {}
    for label in shared:
        series = read_json(Path(rows[label]["dir"]) / "series.json")
        tasks = {int(k.rsplit("_", 1)[1]): series[k] for k in series
                 if k.startswith("train/return/task_")}
        assert shared[label]["tasks"] == len(tasks)
        end = max(s["steps"][-1] for s in tasks.values())
        windows[label] = {t: [v for step, v in zip(s["steps"], s["values"])
                              if step > 0.8 * end and v is not None] for t, s in tasks.items()}
    assert set(windows["IWPL, few tasks"]) == {0, 1}       # train_tasks = 2
    both = sorted(t for t in range(2) if all(w.get(t) for w in windows.values()))
    assert both and all(row["shared"] == both for row in shared.values())
    for label, row in shared.items():
        assert row["per_task"] == pytest.approx([np.mean(windows[label][t]) for t in both])
    assert "| reach_cpu | IWPL, few tasks | 0 | 2 tasks |" in (out / "README.md").read_text()


def test_a_figure_of_iwx_own_is_named_drawn_and_filed_under_its_name(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    proc = figure(["mixture_prior", "--scale", "smoke", "--runs-dir", runs, "--out", out])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("mixture_prior.png", "mixture_prior.pdf", "table.md", "README.md"):
        assert (out / name).stat().st_size > 0, name
    record = read_json(out / "figure.json")
    assert record["figure"] == "mixture_prior"
    assert [line["label"] for line in record["panels"][0]["lines"]] == [
        "Gaussian π0 · Shared Q + IW", "Gaussian π0 · IW", "mixture π0 · Shared Q + IW",
        "mixture π0 · IW"]
    mixture = Path(record["runs"][1]["dir"])
    assert "IWPL.prior = @MixturePrior" in (mixture / "operative_config.gin").read_text()
    readme = (out / "README.md").read_text()
    assert readme.startswith("## A mixture-of-Gaussians behaviour prior")
    assert "![mixture_prior](mixture_prior.png)" in readme


@pytest.mark.parametrize("name, words", [
    ("Mixture", "a figure of iwx's own is named in lower case"),
    ("other_name", "a named figure's spec is <name>.yaml: 'other_name' would be "
                   "other_name.yaml, this file is mixture_prior.yaml"),
])
def test_a_figure_name_must_be_its_files_name(tmp_path, name, words):
    text = (ROOT / "figures" / "mixture_prior.yaml").read_text()
    path = tmp_path / "mixture_prior.yaml"
    path.write_text(text.replace("figure: mixture_prior", f"figure: {name}"))
    proc = figure(["--spec", path, "--dry-run"])
    assert proc.returncode == 2 and words in proc.stderr, proc.stderr


@pytest.mark.parametrize("number, labels", [
    (2, ["Shared Q + IW", "IW", "RL²", "PEARL*", "From Scratch"]),
    (7, ["Shared Q + IW", "IW", "ψ without π0"]),
    ("adaptation_length", ["Shared Q + IW", "IW", "Shared Q"]),     # DISTRAL left out
    ("ablation_radius", ["Shared Q + IW", "IW", "ψ without π0"]),
])
def test_figures_2_7_and_a_longer_adaptation_run_end_to_end_at_the_smoke_scale(tmp_path, number, labels):
    runs, out = tmp_path / "runs", tmp_path / "out"
    proc = figure([number, "--scale", "smoke", "--runs-dir", runs, "--out", out])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    record = read_json(out / "figure.json")
    (panel,) = record["panels"]
    assert [line["label"] for line in panel["lines"]] == labels
    assert {r["status"] for r in record["runs"]} == {"ran"}
    if number == 2:       # PEARL* meta-trained on the dense reward: negative training returns
        pearl = Path(next(r["dir"] for r in record["runs"] if r["label"] == "PEARL*"))
        assert all(v < 0 for v in read_json(pearl / "series.json")["train/return"]["values"])
        assert all(line["window"] == 2 for line in panel["lines"])   # the panel's own
    else:                 # the ablation / the longer adaptation loaded the pretraining's model
        base, ablation = (Path(r["dir"]) for r in record["runs"])
        assert read_json(ablation / "info.json")["pretrained_from"]["run_id"] == base.name
    if number == "adaptation_length":   # its own episode count, not the pretraining's
        assert all(len(line["mean"]) == 3 for line in panel["lines"])
        assert list(read_json(ablation / "results.json")["returns"]) == labels
    if number == "ablation_radius":     # the paper's radius for the adaptation only
        assert "ReachEnv.radius = 0.1\n" in (base / "operative_config.gin").read_text()
        assert "ReachEnv.radius = 0.05\n" in (ablation / "operative_config.gin").read_text()
