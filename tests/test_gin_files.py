"""Every experiment in gin/ runs end to end on a tiny budget; Sacred's record is read back.

One parametrised test over the folder, so a new gin file is tested the day it
is added. The tiny budget shrinks the task counts, the schedules and the
adaptation protocol; everything else (environment, networks, critic, prior,
temperature, variants) is the file's own. Files under gin/tasks/, gin/methods/
and gin/common/ are pieces that the top-level files include, not experiments.

The layout says each number once: a task file (gin/tasks/<task>.gin) owns the
task's numbers as macros, a method file (gin/methods/<method>.gin) owns the
wiring and reads them, gin/common/ holds what several files share. The tests
below the end-to-end ones check that layout on the parsed files.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from cli import ROOT, read_json, run_cli, run_dirs
from iwx.experiment.gin_config import expanded_text

# The <task>_<method> experiments; gin/smoke.gin (the demo's budgets shrunk, overriding
# them on purpose) is run by tests/test_cli.py.
GIN_FILES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "gin").glob("*.gin")
                   if p.name != "smoke.gin")
# A task file includes the protocol and owns the task's numbers; a CPU-scale variant
# (gin/tasks/<task>_cpu.gin, docs/TASKS.md) is applied after a <task>_<method> file and
# changes only difficulty knobs of that task's distribution.
TASK_FILES = sorted(p for p in (ROOT / "gin/tasks").glob("*.gin")
                    if "include 'common/protocol.gin'" in p.read_text())
VARIANT_FILES = sorted(p for p in (ROOT / "gin/tasks").glob("*.gin") if p not in TASK_FILES)
#: What a variant may change (issue 16): target radius, distance ranges, spawn area, episode
#: length and the number of training tasks; never the reward, the observations or the body.
DIFFICULTY_KNOBS = {
    "ReachEnv": {"radius", "time_limit"},
    "ReachTasks": {"low", "high", "num_train"},
    "GoToRingEnv": {"spawn_half_size", "distance_tolerance", "episode_seconds"},
    "GoToRingTasks": {"min_radius", "max_radius", "num_train"},
    "MoveBoxEnv": {"success_radius", "time_limit", "room_size", "spawn_clearance"},
    "MoveBoxTasks": {"room_size", "margin", "min_distance", "max_distance", "num_train"},
}
METHOD_FILES = sorted((ROOT / "gin/methods").glob("*.gin"))
PRIVILEGED = ("task_id", "goal")


def configured(gin_file: str) -> dict:
    """What a gin file configures, as gin parses it (includes and overrides applied)."""
    import gin

    from iwx.experiment.gin_config import parse

    try:
        parse([str(ROOT / gin_file)], [])
        agent = gin.query_parameter("pretrain_and_adapt.agent")
        return {"tasks": gin.query_parameter("pretrain_and_adapt.tasks").configurable.name,
                "variants": list(gin.query_parameter("pretrain_and_adapt.variants")),
                "agent": None if agent is None else agent.configurable.name}
    finally:
        gin.clear_config()


# Physics episodes cut to 20-40 steps (the paper's are 200-400): these tests check that
# every piece runs and is recorded, not what it learns, and MuJoCo steps were most of
# their time. Only the episode's length changes; every other setting is the task's.
SHORT_EPISODES = {"ReachTasks": "ReachEnv.time_limit = 1.0",
                  "MoveBoxTasks": "MoveBoxEnv.time_limit = 2.0",
                  "GoToRingTasks": "GoToRingEnv.episode_seconds = 1.0",
                  "GTTTasks": "GTTEnv.episode_seconds = 1.0",
                  "CheetahVelTasks": "CheetahVelEnv.episode_length = 20"}


def tiny_params(gin_text: str) -> list[str]:
    (tasks,) = re.findall(r"^pretrain_and_adapt\.tasks\s*=\s*@(\w+)\(\)", gin_text, re.M)
    return [*([SHORT_EPISODES[tasks]] if tasks in SHORT_EPISODES else []),
        f"{tasks}.num_train = 4", f"{tasks}.num_test = 2",
        "MultiTaskTraining.updates = 16", "MultiTaskTraining.envs_per_iteration = 2",
        "MultiTaskTraining.updates_per_iteration = 8", "MultiTaskTraining.batch_size = 8",
        "MultiTaskTraining.log_period = 8", "MultiTaskTraining.checkpoint_period = 8",
        "Adaptation.episodes = 2", "Adaptation.exploration_episodes = 1",
        "Adaptation.seeds = 1", "Adaptation.updates_per_episode = 2",
        "Adaptation.batch_size = 8",
    ]


def test_the_promised_files_exist():
    for name in ("point_nav", "cheetah_vel", "go_to_ring", "move_box", "reach", "gtt"):
        assert f"gin/{name}_iwpl.gin" in GIN_FILES


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_gin_file_runs_end_to_end(gin_file, tmp_path, capfd):
    """The whole run through :func:`iwx.experiment.runner.run`, the library call that
    ``iwx.run`` makes (its command line is tested end to end in test_run_cli.py and
    below), in this test process: the 48 files then pay for importing torch, MuJoCo
    and Sacred once instead of 48 times, which halves the file's time in CI."""
    from iwx.experiment.runner import RunSpec, run as run_spec

    what = configured(gin_file)
    text = expanded_text(ROOT / gin_file)
    record = run_spec(RunSpec(gin_files=(str(ROOT / gin_file),), bindings=tuple(tiny_params(text)),
                              runs_dir=str(tmp_path), progress=False))
    assert record is not None, capfd.readouterr().err[-3000:]
    (run,) = run_dirs(tmp_path)
    assert record.run_dir == run
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    recorded = read_json(run / "info.json")["gin_text"]
    assert (ROOT / gin_file).read_text() in recorded
    for name in re.findall(r"^include '([^']+)'", text, re.M):   # included files are recorded
        assert (ROOT / "gin" / name).read_text() in recorded, name

    metrics = read_json(run / "series.json")   # every logged series, against updates
    results = read_json(run / "results.json")
    variants = what["variants"]
    assert what["agent"] or variants, "the file neither pretrains nor adapts"
    if what["agent"] is not None:
        assert metrics["train/critic_loss"]["steps"] == [8, 16]
        assert len(metrics["train/return"]["values"]) == 2
        assert (run / "training.png").stat().st_size > 0
        model = torch.load(run / "model.pt", weights_only=False)
        assert model["agent_class"] == what["agent"]
        # Information asymmetry: a prior never sees what only the critic / policy may see.
        if model["prior_inputs"] is not None:
            assert model["prior_inputs"], "the prior sees nothing"
            assert not set(model["prior_inputs"]) & set(PRIVILEGED), model["prior_inputs"]
        if model["critic_task_key"] is not None:
            assert model["critic_task_key"] in PRIVILEGED
            assert model["critic_task_key"] in model["obs_spec"]
    else:
        assert not any(name.startswith("train/") for name in metrics)
        assert not (run / "model.pt").exists()
    assert set(results["returns"]) == set(variants)
    for name in variants:
        assert metrics[f"adapt/{name}/return"]["steps"] == [1, 2]
        assert len(results["returns"][name]) == 2                 # 2 held-out tasks
    artifacts = ["operative_config.gin", "config.gin"] + (["adaptation.png"] if variants else [])
    for artifact in artifacts:
        assert (run / artifact).stat().st_size > 0


def test_a_physics_task_is_reproducible_from_one_seed(tmp_path):
    """Resets are seeded from the run seed: same seed, same returns; another seed differs."""
    text = expanded_text(ROOT / "gin/cheetah_vel_iwpl.gin")

    def returns(seed, runs):
        args = ["--gin", str(ROOT / "gin/cheetah_vel_iwpl.gin"), "--runs-dir", str(runs),
                "--no-progress", "--seed", str(seed)]
        for p in tiny_params(text):
            args += ["--gin_param", p]
        proc = run_cli("iwx.run", args, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        run = run_dirs(runs)[-1]
        return (read_json(run / "results.json")["returns"],
                read_json(run / "metrics.json")["train/return"]["values"])

    first, again, other = (returns(3, tmp_path / "a"), returns(3, tmp_path / "b"),
                           returns(4, tmp_path / "c"))
    assert first == again
    assert first[1] != other[1]


@pytest.mark.parametrize("kill_at", ["train:8", "adapt:IW:1"])
def test_a_killed_physics_run_resumes_to_the_same_numbers(tmp_path, kill_at):
    """Seeded resets + checkpointed episode counters: a resumed half-cheetah run ends
    with exactly the numbers of an uninterrupted one."""
    text = expanded_text(ROOT / "gin/cheetah_vel_iwpl.gin")
    args = ["--gin", str(ROOT / "gin/cheetah_vel_iwpl.gin"), "--no-progress"]
    for p in tiny_params(text):
        args += ["--gin_param", p]

    def run(runs, env=None):
        return run_cli("iwx.run", [*args, "--runs-dir", str(runs)], env=env, timeout=600)

    assert run(tmp_path / "whole").returncode == 0
    killed = run(tmp_path / "killed", env={"IWX_KILL_AFTER_CHECKPOINT": kill_at})
    assert killed.returncode == -9, killed.stderr[-2000:]
    resumed = run(tmp_path / "killed")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from checkpoint '{kill_at}'" in resumed.stdout
    (whole,), (_, second) = run_dirs(tmp_path / "whole"), run_dirs(tmp_path / "killed")
    assert (read_json(second / "results.json")["returns"]
            == read_json(whole / "results.json")["returns"])
    for metric in ("train/critic_loss", "train/return", "adapt/IW/return"):
        assert (read_json(second / "metrics.json")[metric]["values"]
                == read_json(whole / "metrics.json")[metric]["values"]), metric


def test_env_settings_bound_on_the_env_reach_every_row_of_its_vector():
    import gin
    import numpy as np

    import iwx.configurables  # noqa: F401
    from iwx.envs.cheetah_vel import CheetahVelVec
    from iwx.envs.reach import ReachVec

    gin.clear_config()
    try:
        gin.parse_config(["ReachEnv.radius = 0.1", "CheetahVelEnv.episode_length = 7"])
        reach = ReachVec(np.zeros((3, 3)), None)
        assert [env.radius for env in reach.envs] == [0.1, 0.1, 0.1]
        cheetah = CheetahVelVec(np.ones((2, 1)), np.array([0, 1]))
        assert cheetah.episode_length == 7
        cheetah.reset(seed=0)
        for step in range(7):
            *_, truncated = cheetah.step(np.zeros((2, 6)))
        assert truncated.all()
    finally:
        gin.clear_config()


# --- the layout: each number once ---------------------------------------------------------
BINDING = re.compile(r"^([A-Za-z_][\w./]*)\s*=", re.M)   # a binding or macro at column 0


def parsed(path) -> dict:
    """Parse one gin file alone (its includes applied). -> {"bindings": {(scope, selector):
    {param: value}}, "macros": {name: value}, "reads": macros its bindings read}."""
    import gin

    from iwx.experiment.gin_config import parse

    def macros_in(value):
        if isinstance(value, gin.config.ConfigurableReference):
            return {value.scoped_selector.split("/")[0]} if value.selector == "gin.macro" else set()
        if isinstance(value, (list, tuple)):
            return set().union(set(), *map(macros_in, value))
        if isinstance(value, dict):
            return set().union(set(), *map(macros_in, value.values()))
        return set()

    try:
        parse([str(path)], [])
        config = dict(gin.config._CONFIG)
    finally:
        gin.clear_config()
    macros = {scope: params["value"] for (scope, selector), params in config.items()
              if selector == "gin.macro"}
    bindings = {key: params for key, params in config.items() if key[1] != "gin.macro"}
    reads = set().union(set(), *(macros_in(v) for params in config.values()
                                 for v in params.values()))
    return {"bindings": bindings, "macros": macros, "reads": reads}


def tree(path: Path) -> list[Path]:
    """The file and every file it includes, includes first."""
    from iwx.experiment.gin_config import resolve_include

    names = re.findall(r"^include '([^']+)'", path.read_text(), re.M)
    included = [resolve_include(name, path) for name in names]
    return [p for inc in included for p in tree(inc)] + [path]


@pytest.mark.parametrize("path", TASK_FILES + METHOD_FILES, ids=lambda p: p.stem)
def test_task_and_method_files_parse_alone(path):
    """A task or method file parses on its own, every name checked (skip_unknown=False)."""
    parsed(path)


@pytest.mark.parametrize("path", TASK_FILES, ids=lambda p: p.stem)
def test_a_task_file_defines_every_macro_it_and_every_method_reads(path):
    task = parsed(path)
    assert task["reads"] <= set(task["macros"]), task["reads"] - set(task["macros"])
    for method_file in METHOD_FILES:
        missing = parsed(method_file)["reads"] - set(task["macros"])
        assert not missing, f"{method_file.name} reads {missing}, which {path.name} does not define"


@pytest.mark.parametrize("path", [p for p in (ROOT / "gin").rglob("*.gin")
                                  if p.parent.name != "tasks"], ids=lambda p: p.name)
def test_only_task_files_define_macros(path):
    """The numbers live in the task files: no other file defines a macro (one that did would
    silently override the task's value, or be overridden by it, depending on include order)."""
    macros = [m for m in BINDING.findall(path.read_text()) if "." not in m]
    assert not macros, macros


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_no_binding_is_said_twice_in_one_experiment(gin_file):
    """Along a top-level file's include tree a binding is written once, except the few
    deliberate overrides below (a later file changing what an earlier one said)."""
    overrides = {"run_identity.method", "MPO.prior", "MPO.kl_cost",   # mpo_distral on mpo
                 "IWPL.temperature",                                 # half-cheetah's KL bound
                 "RL2.entropy_cost"}                                 # half-cheetah's RL² bonus
    where: dict[str, list[str]] = {}
    for member in tree(ROOT / gin_file):
        for key in BINDING.findall(member.read_text()):
            where.setdefault(key, []).append(member.relative_to(ROOT / "gin").as_posix())
    twice = {k: v for k, v in where.items() if len(v) > 1 and k not in overrides}
    assert not twice, twice


@pytest.mark.parametrize("gin_file", GIN_FILES)
def test_every_torso_has_the_task_width_and_one_k(gin_file):
    """Torso and EnsembleTorso (the fresh per-problem critics) bound alike, and IWPL and
    IWPA draw the same K; the run identity is what the file name says."""
    import gin

    from iwx.experiment.gin_config import parse

    try:
        parse([str(ROOT / gin_file)], [])
        torso, ensemble = gin.get_bindings("Torso"), gin.get_bindings("EnsembleTorso")
        identity = gin.get_bindings("run_identity")
        k = {name: gin.get_bindings(name).get("num_samples") for name in ("IWPL", "IWPA")}
        agent = gin.query_parameter("pretrain_and_adapt.agent")
    finally:
        gin.clear_config()
    assert torso == ensemble and set(torso) == {"norm_width", "hidden"}, (torso, ensemble)
    assert list(torso["hidden"]) == [torso["norm_width"]] * 2
    assert identity["task"] in {p.stem for p in TASK_FILES}
    assert identity["method"] in {p.stem for p in METHOD_FILES}
    assert Path(gin_file).stem == f"{identity['task']}_{identity['method']}"
    if agent is not None and agent.configurable.name == "IWPL":
        assert k["IWPL"] == k["IWPA"] and isinstance(k["IWPL"], int), k


@pytest.mark.parametrize("path", TASK_FILES + METHOD_FILES, ids=lambda p: p.stem)
def test_task_and_method_files_name_themselves(path):
    bindings = parsed(path)["bindings"]
    kind = "task" if path.parent.name == "tasks" else "method"
    (identity,) = [params for (scope, selector), params in bindings.items()
                   if not scope and selector.rsplit(".", 1)[-1] == "run_identity"]
    assert identity.get(kind) == path.stem, (path, identity)


@pytest.mark.parametrize("path", VARIANT_FILES, ids=lambda p: p.stem)
def test_a_cpu_variant_changes_only_difficulty_knobs_of_its_task(path):
    """Applied after its task's experiment file, a variant names itself and binds nothing
    but the difficulty knobs of its task's env and distribution (the paper's task file
    and experiment files stay as they are)."""
    import gin

    from iwx.experiment.gin_config import parse

    base = path.stem.removesuffix("_cpu")
    assert path.stem.endswith("_cpu") and (ROOT / f"gin/tasks/{base}.gin").is_file(), path
    own = parsed(path)["bindings"]
    assert not parsed(path)["macros"]
    for (scope, selector), params in own.items():
        name = selector.rsplit(".", 1)[-1]
        if name == "run_identity":
            assert params == {"task": path.stem}, params
            continue
        assert not scope and set(params) <= DIFFICULTY_KNOBS.get(name, set()), (name, params)
    try:
        parse([str(ROOT / f"gin/{base}_distral.gin"), str(path)], [])
        assert gin.query_parameter("run_identity.task") == path.stem
        for (_, selector), params in own.items():
            for knob, value in params.items():
                if selector.rsplit(".", 1)[-1] != "run_identity":
                    assert gin.query_parameter(f"{selector.rsplit('.', 1)[-1]}.{knob}") == value
    finally:
        gin.clear_config()
