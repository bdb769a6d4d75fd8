"""`python -m iwx.run` end to end on a tiny budget, read back from Sacred's file store."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np
import pytest
import torch

from cli import ROOT, iwx_run, read_json, run_dirs


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    proc = iwx_run(runs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(runs)
    return run, proc


def test_run_is_recorded_with_gin_text_bindings_metrics_and_checkpoint(recorded):
    run, proc = recorded
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    config = read_json(run / "config.json")
    assert config["seed"] == 0
    # bindings flattened into Sacred's config, file values and command-line overrides alike
    assert config["bindings"]["IWPL"]["num_samples"] == 16
    assert config["bindings"]["MultiTaskTraining"]["updates"] == 48
    assert config["bindings"]["shared_q_iw/IWPA"]["critic_fn"] == "@shared_features_critic"
    info = read_json(run / "info.json")
    gin_file = (ROOT / "gin/point_nav_iwpl.gin").read_text()
    assert gin_file in info["gin_text"]
    assert "MultiTaskTraining.updates = 48" in info["gin_text"]
    # gin writes a macro-bound parameter as the macro, and the macro's value under "Macros"
    assert "IWPL.num_samples = %K" in info["operative_config"]
    assert "\nK = 16\n" in info["operative_config"]
    assert (run / "operative_config.gin").read_text() == info["operative_config"]

    # the whole history: series.json, as the loops logged it (learner updates, episodes)
    metrics = read_json(run / "series.json")
    assert metrics["train/critic_loss"]["steps"] == [8, 16, 24, 32, 40, 48]
    for name in ("train/return", "train/prior_loss", "train/alpha", "train/kl_to_prior"):
        assert len(metrics[name]["values"]) == 6, name
    assert any(k.startswith("train/return/task_") for k in metrics)
    for variant in ("Shared Q + IW", "IW"):
        series = metrics[f"adapt/{variant}/return"]
        assert series["steps"] == [1, 2, 3]
        per_task = [metrics[f"adapt/{variant}/return/task_{i:02d}"]["values"] for i in range(3)]
        # the headline series is the mean of the per-task series (2 seeds each)
        assert np.allclose(np.mean(per_task, axis=0), series["values"])

    # Sacred's metrics: the browsable subset, training against env steps
    sacred = read_json(run / "metrics.json")
    env_steps = metrics["train/env_steps"]["values"]
    assert sacred["train/critic_loss"]["steps"] == env_steps
    assert sacred["train/return"]["values"] == metrics["train/return"]["values"]
    assert {k: sacred["adapt/IW/return"][k] for k in ("steps", "values")} == \
        metrics["adapt/IW/return"]
    assert not [k for k in sacred if "/task_" in k or k == "train/env_steps"
                or k.startswith("perf/")]
    assert "samples_per_insert" in info["throughput"]

    results = read_json(run / "results.json")
    for variant in ("Shared Q + IW", "IW"):
        returns = np.array(results["returns"][variant])
        assert returns.shape == (3, 2, 3)  # tasks, seeds, episodes
        assert np.allclose(returns.mean(axis=(0, 1)), metrics[f"adapt/{variant}/return"]["values"])
    assert len(results["oracle"]) == 3

    # a run that names itself: experiment, command, top-level headline config, result
    record = read_json(run / "run.json")
    assert record["experiment"]["name"] == "point_nav_iwpl"
    assert record["command"] == "pretrain_and_adapt"
    assert {k: config[k] for k in ("task", "method", "K", "alpha", "updates")} == {
        "task": "point_nav", "method": "iwpl", "K": 16, "alpha": 0.03, "updates": 48}
    assert config["uid"] == record["meta"]["iwx_uid"][:8]
    assert f"(uid {config['uid']})" in proc.stdout
    summary = info["summary"]["IW"]["last3_mean"]
    assert record["result"]["IW/last3"] == float(f"{summary:.3g}")
    assert set(record["result"]) >= {"Shared Q + IW/last3", "IW/oracle_%", "train/final_return"}
    # the package's sources are recorded, under their place in the package
    # (every module, stored by its content), and the commit and dirtiness git reports now
    sources = dict(record["experiment"]["sources"])
    assert set(sources) == {p.relative_to(ROOT).as_posix() for p in (ROOT / "iwx").rglob("*.py")}
    digest = hashlib.md5((ROOT / "iwx/loops/training.py").read_bytes()).hexdigest()
    assert sources["iwx/loops/training.py"] == f"_sources/training_{digest}.py"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode == 0:      # a checkout with a commit (not an unpacked archive)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=ROOT, capture_output=True, text=True, check=True)
        repositories = {(r["commit"], r["dirty"]) for r in record["experiment"]["repositories"]}
        assert repositories == {(head.stdout.strip(), bool(status.stdout.strip()))}

    model = torch.load(run / "model.pt", weights_only=False)
    assert {"prior", "critic"} <= set(model)
    assert "features.out.weight" in model["critic"]       # ψ of the ψᵀw critic
    assert (run / "adaptation.png").stat().st_size > 1000
    assert "Mean held-out return per adaptation episode" in proc.stdout
    assert "goal-knowing oracle" in proc.stdout


def test_saved_model_is_loaded_by_a_later_adaptation_run(recorded, tmp_path):
    run, _ = recorded
    proc = iwx_run(tmp_path, params=[f"pretrain_and_adapt.pretrained = '{run / 'model.pt'}'"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (new,) = run_dirs(tmp_path)
    metrics = read_json(new / "metrics.json")
    assert not any(k.startswith("train/") for k in metrics)  # no pretraining this time
    saved, reloaded = (torch.load(r / "model.pt", weights_only=False) for r in (run, new))
    for part in ("prior", "critic"):
        for name, value in saved[part].items():
            assert torch.equal(value, reloaded[part][name]), (part, name)


# Dense rewards make every return a continuous number, so equality means something.
DENSE = ["PointNavVec.sparse = False"]


@pytest.fixture(scope="module")
def dense_run(tmp_path_factory):
    runs = tmp_path_factory.mktemp("dense")
    proc = iwx_run(runs, params=DENSE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dirs(runs)[0]


def _returns(run):
    return read_json(run / "results.json")["returns"]


def _values(run, metric):
    return read_json(run / "metrics.json")[metric]["values"]


def test_same_seed_same_returns_other_seed_differs(dense_run, tmp_path):
    again = iwx_run(tmp_path / "a", params=DENSE)
    other = iwx_run(tmp_path / "b", params=DENSE, seed=1)
    assert again.returncode == 0 and other.returncode == 0, again.stderr[-2000:]
    (run_a,), (run_b,) = run_dirs(tmp_path / "a"), run_dirs(tmp_path / "b")
    assert _returns(run_a) == _returns(dense_run)
    assert _values(run_a, "train/critic_loss") == _values(dense_run, "train/critic_loss")
    assert _returns(run_b) != _returns(dense_run)
    assert _values(run_b, "train/critic_loss") != _values(dense_run, "train/critic_loss")


@pytest.mark.parametrize("kill_at", ["train:32", "adapt:IW:2"])
def test_killed_run_resumes_to_the_same_numbers(dense_run, tmp_path, kill_at):
    run = dense_run
    killed = iwx_run(tmp_path, params=DENSE, env={"IWX_KILL_AFTER_CHECKPOINT": kill_at})
    assert killed.returncode == -9, killed.stderr[-2000:]       # SIGKILL, no clean-up
    assert list((tmp_path / "_checkpoints").glob("*/state.pt"))
    resumed = iwx_run(tmp_path, params=DENSE)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoint '{kill_at}'" in resumed.stdout
    first, second = run_dirs(tmp_path)
    # killed: it never closed its record; the run resuming it did
    closed = read_json(first / "run.json")
    assert closed["status"] == "INTERRUPTED" and closed["resumed_by"] == "2"
    assert closed["stop_time"] == (closed["heartbeat"] or closed["start_time"])
    assert read_json(second / "info.json")["resumed_from"] == {"run_id": "1", "checkpoint": kill_at}
    assert _returns(second) == _returns(run)
    # the resumed record is complete: history before the kill is replayed into it
    for metric in ("train/critic_loss", "train/return", "adapt/IW/return"):
        assert _values(second, metric) == _values(run, metric), metric
    resumed_model, model = (torch.load(r / "model.pt", weights_only=False) for r in (second, run))
    for name, value in model["critic"].items():
        assert torch.equal(value, resumed_model["critic"][name]), name
    assert not list((tmp_path / "_checkpoints").glob("*/state.pt"))  # cleared when done


def _bad(tmp_path, text: str, name="bad.gin"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, line, needle", [
    ("include 'gin/point_nav_iwpl.gin'\nIWPL.num_samples = 8\nNoSuchThing.value = 3\n",
     3, "NoSuchThing"),
    ("IWPL.num_samples = 8\nIWPL.no_such_param = 1\n", 2, "no_such_param"),
    ("IWPL.num_samples = 8\nIWPL.gamma = (0.99\n", 2, "line"),
])
def test_broken_gin_file_fails_fast_naming_file_line_and_binding(tmp_path, text, line, needle):
    path = _bad(tmp_path, text)
    proc = iwx_run(tmp_path / "runs", str(path))
    assert proc.returncode == 2
    assert str(path) in proc.stderr and needle in proc.stderr and f"line {line}" in proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing started, nothing recorded


def test_unknown_command_line_binding_fails_fast(tmp_path):
    proc = iwx_run(tmp_path / "runs", params=["IWPA.alpah = 0.1"])
    assert proc.returncode == 2
    assert "IWPA.alpah = 0.1" in proc.stderr and "alpah" in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_invalid_value_fails_before_training(tmp_path):
    proc = iwx_run(tmp_path / "runs", params=[
        "IWPL.temperature = @ConstrainedTemperature", "ConstrainedTemperature.epsilon = 30.0"])
    assert proc.returncode == 2                        # refused with the configuration
    assert "log K" in proc.stderr and "ConstrainedTemperature.epsilon" in proc.stderr
    assert not (tmp_path / "runs").exists() or not run_dirs(tmp_path / "runs")   # no record


@pytest.mark.parametrize("critic, extra, variants", [
    # ψ(s, a)ᵀ f(g): the goal descriptor is a training-time observation only
    ("@GoalFeatureCritic", ["PointNavVec.expose_goal = True"], ("Shared Q + IW", "IW")),
    # one independent network per task: no shared ψ, so only the IW variant applies
    ("@PerTaskCritic", ["pretrain_and_adapt.variants = {'IW': @iw/IWPA}"], ("IW",)),
])
def test_each_critic_parameterisation_runs_end_to_end(tmp_path, critic, extra, variants):
    proc = iwx_run(tmp_path, params=[f"IWPL.critic = {critic}", *extra])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = run_dirs(tmp_path)
    assert read_json(run / "config.json")["bindings"]["IWPL"]["critic"] == critic
    assert tuple(read_json(run / "results.json")["returns"]) == variants


def test_shared_q_without_shared_features_is_refused_before_training(tmp_path):
    proc = iwx_run(tmp_path, params=["IWPL.critic = @PerTaskCritic"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "configuration error" in proc.stderr and "Traceback" not in proc.stderr
    assert "has no shared features" in proc.stderr
    assert read_json(run_dirs(tmp_path)[0] / "metrics.json") == {}


def test_an_adaptation_that_will_not_fit_is_refused_before_pretraining(tmp_path):
    """IWPA's frozen cache for the full adaptation (30 held-out tasks × seeds × every
    episode) over ``IWPA.cache_max_gb`` is refused with the configuration, exit 2, not at
    the first adaptation update after the whole pretraining (figure 4's 40-episode
    adaptations once failed that way, 4.55 GB against the default 4)."""
    proc = iwx_run(tmp_path, params=["IWPA.cache_max_gb = 1e-4"])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "configuration error" in proc.stderr and "Traceback" not in proc.stderr
    assert "IWPA.cache_max_gb = 0.0001" in proc.stderr and "replay slots" in proc.stderr
    assert read_json(run_dirs(tmp_path)[0] / "metrics.json") == {}


def test_run_records_its_identity_in_config_and_info(recorded):
    from iwx.experiment.identity import identity_from_bindings

    run, _ = recorded
    config, info = read_json(run / "config.json"), read_json(run / "info.json")
    assert config["identity"] == info["identity"] == identity_from_bindings(config["bindings"])
    assert config["identity"]["task"] in ("point_nav", "PointNavTasks")
