"""Every bad value is refused before compute (iwx.experiment.validate).

Each case goes through what a run does first, :func:`iwx.experiment.runner.prepare`
(the seed, then gin's parse and the rules), and must raise ConfigError naming the
binding and the value; a few go through the real command lines, which must exit 2
with the message on stderr and no run directory. Sweeps refuse the same values through
the same validation, before Ray starts. Every shipped gin file and sweep still passes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from cli import ROOT, TINY, iwx_run, run_cli
from iwx.experiment.gin_config import ConfigError, parse
from iwx.experiment.runner import RunSpec, prepare

IWPL = str(ROOT / "gin/point_nav_iwpl.gin")
NO_GPU = not torch.cuda.is_available()


def refused(bindings=(), *, seed: int = 0, files=(IWPL,)) -> str:
    """The ConfigError message of preparing this run (fails the test if it prepares)."""
    with pytest.raises(ConfigError) as error:
        prepare(RunSpec(gin_files=tuple(map(str, files)), bindings=tuple(bindings), seed=seed))
    return str(error.value)


# binding -> what the message must name besides the binding itself (the value as shown)
BAD = {
    "IWPL.critic_lr = 'abc'": "'abc'",
    "MultiTaskTraining.batch_size = 0": "= 0",
    "IWPL.num_samples = 0": "= 0",
    "MultiTaskTraining.checkpoint_period = 0": "= 0",
    "MultiTaskTraining.log_period = 0": "= 0",
    "MultiTaskTraining.envs_per_iteration = 0": "= 0",
    "TaskReplay.capacity = 0": "= 0",
    f"pretrain_and_adapt.device = 'cuda:{torch.cuda.device_count()}'": "'cuda:",
    "Adaptation.seeds = 0": "= 0",
    "Adaptation.unroll_length = 0": "= 0",
    "MultiTaskTraining.updates = -5": "= -5",
    "Adaptation.episodes = 0": "= 0",
    "Adaptation.batch_size = 0": "= 0",
    "Torso.hidden = (0,)": "(0,)",
    "MultiTaskTraining.chunk_length = 0": "= 0",
    "IWPA.alpha = -1": "= -1",
    "iw/IWPA.learning_rate = -0.1": "= -0.1",         # a scoped binding, named with its scope
    "Features.inputs = ('position')": "'position'",   # gin's one-element tuple needs a comma
    "PointNavTasks.num_train = 2.5": "2.5",
}
if NO_GPU:
    BAD["pretrain_and_adapt.device = 'cuda'"] = "'cuda'"


@pytest.mark.parametrize("binding", sorted(BAD))
def test_a_bad_value_is_refused_naming_binding_value_and_what_is_allowed(binding):
    message = refused([binding])
    name = binding.split("=")[0].strip()
    first = message.splitlines()[0]
    assert first.startswith(f"{name} = ") and BAD[binding] in first, message
    assert "expected" in first, message                  # what is allowed
    assert f"--gin_param number 1: {binding}" in message, message   # where it was set


def test_a_macro_is_checked_as_its_value_and_named_with_its_line():
    message = refused(["K = 0"])
    assert "IWPL.num_samples = %K = 0" in message and "IWPA.num_samples = %K = 0" in message
    assert "gin/methods/iwpl.gin, line" in message     # where IWPL.num_samples = %K is
    assert "K set in --gin_param number 1: K = 0" in message


def test_a_value_in_a_file_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "bad.gin"
    path.write_text(f"include '{IWPL}'\n\nMultiTaskTraining.batch_size = 0\n")
    message = refused(files=[path])
    assert f"{path}, line 3: MultiTaskTraining.batch_size = 0" in message


@pytest.mark.parametrize("bindings, named", [
    # relation: the task file binds 5 exploration episodes
    (["Adaptation.episodes = 3"], ["Adaptation.exploration_episodes = 5",
                                   "Adaptation.episodes = 3", "exploration_episodes <= episodes"]),
    (["MultiTaskTraining.chunks_per_task = 3"], ["MultiTaskTraining.batch_size = 32",
                                                 "chunks_per_task = 3", "multiple"]),
    (["IWPL.temperature = @ConstrainedTemperature", "ConstrainedTemperature.epsilon = 30.0"],
     ["ConstrainedTemperature.epsilon = 30.0", "IWPL.num_samples = %K = 16", "log K"]),
    (["GaussianPrior.init_std = 5.0"], ["GaussianPrior.init_std = 5.0", "exp(log_std_max)"]),
    # the mixture reads GaussianPrior's σ settings where its own are unbound
    (["IWPL.prior = @MixturePrior", "MixturePrior.log_std_max = -0.5"],
     ["GaussianPrior.init_std = %INIT_STD = 0.8 lies outside the range of σ",
      "MixturePrior.log_std_max = -0.5"]),
    (["IWPL.prior = @MixturePrior", "MixturePrior.log_std_max = -4.0"],
     ["GaussianPrior.log_std_min = %LOG_STD_MIN = -1.5 is not below "
      "MixturePrior.log_std_max = -4.0"]),
    (["PointNavTasks.num_test = 0"], ["PointNavTasks.num_test = 0", "adapt_on = 'test'"]),
    (["pretrain_and_adapt.training = @DistributedTraining()",
      "DistributedTraining.chunks_per_task = 3"],
     ["DistributedTraining.chunks_per_task = 3", "MultiTaskTraining.batch_size = 32"]),
])
def test_a_broken_relation_is_refused_naming_every_value_it_reads(bindings, named):
    message = refused(bindings)
    for text in named:
        assert text in message, (text, message)


def test_every_problem_is_reported_at_once():
    message = refused(["MultiTaskTraining.updates = -5", "Adaptation.seeds = 0"])
    assert message.splitlines()[0].startswith("MultiTaskTraining.updates = -5")
    assert "Adaptation.seeds = 0 is not allowed" in message


@pytest.mark.parametrize("seed", [-1, 12345678901234567890, 2 ** 32])
def test_a_seed_out_of_range_is_refused(seed):
    message = refused(seed=seed)
    assert message.startswith(f"seed {seed} ") and "2**32" in message


def test_the_largest_seed_prepares():
    prepare(RunSpec(gin_files=(IWPL,), seed=2 ** 32 - 1))


def test_a_binary_gin_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "binary.gin"
    path.write_bytes(b"IWPL.gamma = 0.9\n\xff\xfe\x00garbage")
    message = refused(files=[path])
    assert str(path) in message and "UTF-8" in message and "0xff" in message


# ---------------------------------------------------------------------- pretrained models
def save_model(path: Path, gin_file: str, bindings=()) -> Path:
    """What a run writes as model.pt (iwx.loops.pipeline.model_record) for the agent
    ``gin_file`` configures, untrained: its architecture is what the check compares."""
    from iwx.loops.pipeline import model_record

    parse([str(ROOT / gin_file)], list(bindings))
    try:
        tasks = gin.query_parameter("pretrain_and_adapt.tasks").scoped_configurable_fn()
        env = gin.query_parameter("pretrain_and_adapt.env").scoped_configurable_fn
        agent = gin.query_parameter("pretrain_and_adapt.agent").scoped_configurable_fn
        split = tasks.split(0)
        probe = env(split.train[:1], np.zeros(1, np.int64))
        spec, actions = probe.observation_spec(), probe.action_dim
        learner = agent(spec, actions, len(split.train), device=torch.device("cpu"))
        torch.save(model_record(learner, spec, actions, len(split.train)), path)
    finally:
        gin.clear_config()
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    good = save_model(folder / "good.pt", "gin/point_nav_iwpl.gin")
    data = good.read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])
    (folder / "garbage.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "directory.pt").mkdir()
    record = torch.load(good, weights_only=False)
    record["agent"]["critic"]["weights"][0, 0] = float("nan")
    torch.save(record, folder / "nan.pt")
    return {"good": good, "truncated": folder / "truncated.pt", "nan": folder / "nan.pt",
            "garbage": folder / "garbage.pt", "directory": folder / "directory.pt",
            "missing": folder / "missing.pt",
            "method": save_model(folder / "mpo.pt", "gin/point_nav_mpo.gin"),
            "width": save_model(folder / "narrow.pt", "gin/point_nav_iwpl.gin",
                                ["Torso.hidden = (32, 32)"]),
            "critic": save_model(folder / "features16.pt", "gin/point_nav_iwpl.gin",
                                 ["FEATURES_DIM = 16"]),
            "task": save_model(folder / "cheetah.pt", "gin/cheetah_vel_iwpl.gin")}


def pretrained(path: Path) -> str:
    return f"pretrain_and_adapt.pretrained = '{path}'"


def test_a_model_that_fits_is_accepted(models):
    prepare(RunSpec(gin_files=(IWPL,), bindings=(pretrained(models["good"]),)))


@pytest.mark.parametrize("case, says", [
    ("garbage", "not a model written by torch.save"),
    ("truncated", "not a model written by torch.save"),
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("nan", "critic.weights holds non-finite values"),
])
def test_an_unreadable_model_is_refused_naming_its_path(models, case, says):
    message = refused([pretrained(models[case])])
    first = message.splitlines()[0]
    assert first.startswith(f"pretrain_and_adapt.pretrained = '{models[case]}'"), message
    assert says in first, message


@pytest.mark.parametrize("case, says", [
    ("method", "it holds a MPO agent, this configuration trains IWPL"),
    ("width", "prior.torso.net.3.weight has shape (32, 64) in the file, (64, 64) in the "
              "configuration"),
    ("task", "it acts in 6 dimensions, this configuration's task in 2"),
    ("critic", "critic.weights has shape (80, 16) in the file, (80, 32) in the configuration"),
])
def test_a_model_of_another_architecture_is_refused_naming_both(models, case, says):
    message = refused([pretrained(models[case])])
    assert str(models[case]) in message and says in message, message
    theirs = {"method": "MPO on observations {'position'", "width": "IWPL on",
              "task": "IWPL on observations {'proprio': (17,)", "critic": "IWPL on"}[case]
    assert f"the file holds:        {theirs}" in message, message
    assert "this configuration:    IWPL on observations {'position': (2,)" in message


def test_a_model_whose_networks_fit_but_not_its_temperature_is_refused(models):
    """The acting networks (π0, critic) fit; the learner's temperature does not."""
    message = refused([pretrained(models["good"]), "IWPL.temperature = @ConstrainedTemperature"])
    assert "temperature holds [] in the file, ['log_alpha', 'optimizer'] in the " \
           "configuration (ConstrainedTemperature)" in message, message


# ---------------------------------------------------------------------- command lines
def test_the_command_line_exits_2_before_any_record(tmp_path):
    runs = tmp_path / "runs"
    proc = iwx_run(runs, params=["IWPL.critic_lr = 'abc'"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "configuration error: IWPL.critic_lr = 'abc' is not allowed" in proc.stderr
    assert not runs.exists()


def test_the_command_line_refuses_a_wrong_model(tmp_path, models):
    runs = tmp_path / "runs"
    proc = iwx_run(runs, params=[pretrained(models["width"])])
    assert proc.returncode == 2 and "prior.torso.net.3.weight" in proc.stderr, proc.stderr
    assert not runs.exists()


# ---------------------------------------------------------------------- sweeps
def sweep_file(path: Path, grid: dict, *, seeds="[0, 1]", extra: str = "",
               bindings=()) -> Path:
    lines = ["gin: gin/point_nav_iwpl.gin", "bindings:",
             *[f"  - {b}" for b in [*TINY, *bindings]],
             "grid:", *[f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in grid.items()],
             f"seeds: {seeds}", "metric: adapt/Shared Q + IW/last3", extra]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("grid, seeds, says", [
    ({"IWPA.alpha": [1, -1]}, "[0, 1]", "grid.IWPA.alpha = -1: IWPA.alpha = -1 is not allowed"),
    ({"Adaptation.exploration_episodes": [5]}, "[0]", "exploration_episodes <= episodes"),
    ({"IWPA.alpha": [1]}, "[-3]", "seeds: seed -3 is not a seed"),
    ({"IWPA.alpha": [1]}, "[0, 12345678901234567890]", "seed 12345678901234567890 is not"),
    ({"IWPA.alpha": [1]}, "12345678901234567890", "is not a seed"),
])
def test_a_sweep_refuses_what_a_run_refuses_before_ray_starts(tmp_path, grid, seeds, says):
    from iwx import sweep

    path = sweep_file(tmp_path / "bad.yaml", grid, seeds=seeds)
    code = sweep.main([str(path), "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    assert not (tmp_path / "runs").exists()
    from iwx.tuning.spec import SpecError, check_bindings, load

    with pytest.raises(SpecError) as error:
        check_bindings(load(path))
    assert says in str(error.value), str(error.value)


def test_a_search_range_is_checked_at_both_ends(tmp_path):
    from iwx.tuning.spec import SpecError, check_bindings, load

    path = tmp_path / "search.yaml"
    path.write_text("gin: gin/point_nav_iwpl.gin\nmetric: train/final_return\nnum_samples: 2\n"
                    "search:\n  IWPA.alpha: {uniform: [-1, 1]}\n")
    with pytest.raises(SpecError, match=r"search.IWPA.alpha = -1.0: IWPA.alpha = -1.0"):
        check_bindings(load(path))


def test_a_sweep_on_a_cluster_leaves_the_device_to_its_machines(tmp_path):
    from iwx.tuning.spec import SpecError, check_bindings, load

    gpu = ["pretrain_and_adapt.device = 'cuda:99'"]   # no machine here has 100 GPUs
    here = sweep_file(tmp_path / "here.yaml", {"IWPA.alpha": [1]}, bindings=gpu)
    with pytest.raises(SpecError, match="cuda:99"):
        check_bindings(load(here))
    cluster = sweep_file(tmp_path / "cluster.yaml", {"IWPA.alpha": [1]}, bindings=gpu,
                         extra="address: ray://somewhere:10001")
    check_bindings(load(cluster))


def test_a_binary_sweep_file_exits_2_naming_it(tmp_path):
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"gin: gin/point_nav_iwpl.gin\n\x80\x81\xfe")
    proc = run_cli("iwx.sweep", [str(path), "--runs-dir", str(tmp_path / "runs")], timeout=120)
    assert proc.returncode == 2
    assert str(path) in proc.stderr and "not UTF-8" in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------- what ships still passes
def test_every_shipped_gin_file_and_sweep_validates():
    from iwx.tuning.spec import check_bindings, load

    for path in sorted((ROOT / "gin").glob("*.gin")):
        parse([str(path)], [])
    old = os.getcwd()
    os.chdir(ROOT)   # sweep files name their gin files from the repository root
    try:
        for path in sorted((ROOT / "sweeps").glob("*.yaml")):
            check_bindings(load(path))
    finally:
        os.chdir(old)


def test_every_knob_of_every_configurable_has_a_rule():
    """A new parameter with a literal default (a number, a flag, a string, a tuple) must get
    a rule in iwx.experiment.config_rules.RULES (or be listed as no knob in EXEMPT)."""
    import inspect

    from iwx.configurables import index, register_all
    from iwx.experiment.config_rules import EXEMPT, RULES

    register_all()
    missing = []
    for name in sorted(index()):
        (selector,) = gin.config._REGISTRY.matching_selectors(name)
        wrapped = gin.config._REGISTRY[selector].wrapped
        for param, p in inspect.signature(wrapped).parameters.items():
            literal = p.default is None or isinstance(p.default, (bool, int, float, str, tuple))
            if p.default is not p.empty and literal and f"{name}.{param}" not in EXEMPT \
                    and param not in RULES.get(name, {}):
                missing.append(f"{name}.{param}")
    assert not missing, f"no rule for {missing}"
    for name, rules in RULES.items():   # and every rule names a real parameter
        (selector,) = gin.config._REGISTRY.matching_selectors(name)
        params = inspect.signature(gin.config._REGISTRY[selector].wrapped).parameters
        assert set(rules) <= set(params), (name, set(rules) - set(params))
