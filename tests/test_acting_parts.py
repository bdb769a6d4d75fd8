"""The acting part of every multi-task agent, rebuilt in another process (issue 11, cond. 3).

For IWPL, RS(0), DISTRAL, MPO, RL² and PEARL*: the learner is built from its
point_nav gin file (tiny networks by bindings) and trained a few updates by the
real training loop; its acting parameters, pickled with the observation spec, the
action size and a fixed sequence of observations, go to a fresh python that parses
the same gin file, rebuilds the acting part (``Agent.build_acting``), seeds it and
acts. Its actions (and replay extras) must equal the learner's own ``act`` for the
same seed, step for step (memory agents: the same begin_tasks / observe sequence).
The same process also acts with a payload whose parameters were perturbed, which
must give other actions: the comparison can fail.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import gin
import numpy as np
import pytest
import torch

from iwx.agents.actor_critic import ActorCritic
from iwx.agents.base import MultiTaskAgent
from iwx.agents.iwpl import IWPL
from iwx.agents.mpo import MPO
from iwx.agents.pearl import PEARL
from iwx.agents.rl2 import RL2
from iwx.envs.point_nav import PointNavTasks, PointNavVec
from iwx.experiment.gin_config import parse
from iwx.loops.logger import MemoryLogger
from iwx.loops.training import MultiTaskTraining
from iwx.replay.task_replay import TaskReplay

ROOT = Path(__file__).resolve().parents[1]
TINY = ["Torso.norm_width = 8", "Torso.hidden = (8,)", "PointNavTasks.num_train = 4"]
METHODS = {   # gin file stem: (learner class, extra bindings, the acting payload's keys)
    "iwpl": (IWPL, ["IWPL.target_period = 2"], {"prior", "critic", "alpha"}),
    "rs0": (ActorCritic, ["ActorCritic.target_period = 2"], {"policy"}),
    "distral": (ActorCritic, ["ActorCritic.target_period = 2"], {"policy", "prior"}),
    "mpo": (MPO, ["MPO.target_period = 2"], {"policy"}),
    "rl2": (RL2, ["RL2.target_period = 2", "RecurrentCore.hidden_size = 8"],
            {"actor", "critic_core"}),
    "pearl": (PEARL, ["PEARL.target_period = 2", "PEARL.context_length = 6",
                      "ContextEncoder.lstm_size = 8"], {"encoder", "actor"}),
}
ROWS, STEPS, SEED = 4, 6, 123

# The other process: parse the same gin file, rebuild, seed, act the same sequence.
ACTOR_PROCESS = textwrap.dedent("""
    import pickle, sys
    from iwx.experiment.gin_config import parse

    def play(acting, seed, sequence):
        acting.seed(seed)
        acting.begin_tasks(len(sequence[0]["obs"]["position"]))
        out = []
        for step in sequence:
            got = acting.act(step["obs"], explore=step["explore"])
            actions, extras = got if isinstance(got, tuple) else (got, {})
            acting.observe(step["obs"], actions, step["rewards"], step["next_obs"],
                           step["done"], step["alive"])
            out.append((actions, extras))
        return out

    jobs = pickle.load(open(sys.argv[1], "rb"))
    results = {}
    for name, job in jobs.items():
        parse(job["gin"], job["bindings"])
        results[name] = {
            which: play(job["cls"].build_acting(job["obs_spec"], job["action_dim"],
                                                job["num_tasks"], job[which]),
                        job["seed"], job["sequence"])
            for which in ("params", "perturbed")}
    pickle.dump(results, open(sys.argv[2], "wb"))
""")


def play(agent, seed: int, sequence: list[dict]) -> list:
    """The learner side of ACTOR_PROCESS's ``play`` (the learner itself is the acting object)."""
    agent.acting.seed(seed)
    agent.begin_tasks(ROWS)
    out = []
    for step in sequence:
        got = agent.act(step["obs"], explore=step["explore"])
        actions, extras = got if isinstance(got, tuple) else (got, {})
        agent.observe(step["obs"], actions, step["rewards"], step["next_obs"], step["done"],
                      step["alive"])
        out.append((actions, extras))
    return out


def observation_sequence(env: PointNavVec) -> list[dict]:
    """Fixed observations, rewards and flags (random moves): row 1's episode ends at step 2
    (it is dead after), row 0's at step 3 and it starts another (PEARL* draws a new z)."""
    rng = np.random.default_rng(0)
    obs, sequence = env.reset(seed=5), []
    alive = np.ones(ROWS, bool)
    for t in range(STEPS):
        next_obs, _, _, _ = env.step(rng.uniform(-0.1, 0.1, (ROWS, 2)))
        done = np.zeros(ROWS, bool)
        done[1], done[0] = t == 2, t == 3
        sequence.append({"obs": obs, "next_obs": next_obs, "explore": t % 3 == 2,
                         "rewards": rng.random(ROWS).astype(np.float32), "done": done,
                         "alive": alive.copy()})
        alive &= ~done
        alive[0] = True
        obs = next_obs
    return sequence


def perturbed(params: dict) -> dict:
    """The same payload with one weight of its first network moved by 0.5."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in params.items()}
    first = next(k for k, v in out.items() if isinstance(v, dict))
    name = next(n for n, t in out[first].items() if t.is_floating_point() and t.dim() == 2)
    out[first][name] = out[first][name].clone()
    out[first][name][0, 0] += 0.5
    return out


def trained_learner(stem: str):
    """The learner of gin/point_nav_<stem>.gin after a few updates of the training loop."""
    cls, bindings, _ = METHODS[stem]
    parse([str(ROOT / f"gin/point_nav_{stem}.gin")], TINY + bindings)
    torch.manual_seed(0)
    goals = PointNavTasks().split(0).train
    probe = PointNavVec(goals[:1], np.zeros(1, np.int64))
    obs_spec, action_dim = probe.observation_spec(), probe.action_dim
    learner = cls(obs_spec, action_dim, len(goals), device=torch.device("cpu"))
    before = learner.acting_params()
    replay = TaskReplay(len(goals), obs_spec, action_dim, probe.episode_length, capacity=4,
                        extra_spec=learner.replay_extras)
    MultiTaskTraining(updates=5, envs_per_iteration=len(goals), updates_per_iteration=5,
                      batch_size=4, chunk_length=3, progress=False).run(
        learner, PointNavVec, goals, replay, np.random.default_rng(0), MemoryLogger(),
        lambda state: None)
    return learner, before, obs_spec, action_dim, len(goals)


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """Every method's learner-side actions and the other process's, in one subprocess."""
    jobs, learner_actions, payloads = {}, {}, {}
    for stem, (cls, bindings, _) in METHODS.items():
        learner, before, obs_spec, action_dim, num_tasks = trained_learner(stem)
        assert isinstance(learner, MultiTaskAgent)
        params = learner.acting_params()
        payloads[stem] = (before, params)
        sequence = observation_sequence(PointNavVec(PointNavTasks().split(0).train[:ROWS],
                                                    np.arange(ROWS)))
        jobs[stem] = {"gin": [str(ROOT / f"gin/point_nav_{stem}.gin")],
                      "bindings": TINY + bindings, "cls": cls, "obs_spec": obs_spec,
                      "action_dim": action_dim, "num_tasks": num_tasks, "params": params,
                      "perturbed": perturbed(params), "seed": SEED, "sequence": sequence}
        learner_actions[stem] = play(learner, SEED, sequence)
    folder = tmp_path_factory.mktemp("acting")
    (folder / "jobs.pkl").write_bytes(pickle.dumps(jobs))
    env = {**os.environ, "MUJOCO_GL": "disable", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", ACTOR_PROCESS, str(folder / "jobs.pkl"),
                           str(folder / "out.pkl")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    gin.clear_config()      # the learners are built: leave no binding to the next test
    return learner_actions, pickle.loads((folder / "out.pkl").read_bytes()), payloads


@pytest.mark.parametrize("stem", list(METHODS))
def test_acting_part_rebuilt_in_another_process_acts_as_the_learner(rebuilt, stem):
    learner_actions, remote, payloads = rebuilt
    before, params = payloads[stem]
    # the payload: only what acting needs, plain CPU tensors, and trained (not the init)
    assert set(params) == METHODS[stem][2]
    tensors = [t for v in params.values() if isinstance(v, dict) for t in v.values()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert any(not torch.equal(before[k][n], t) for k, v in params.items()
               if isinstance(v, dict) for n, t in v.items())
    mine, theirs = learner_actions[stem], remote[stem]["params"]
    assert len(mine) == len(theirs) == STEPS
    for t, ((a, extras), (b, their_extras)) in enumerate(zip(mine, theirs)):
        assert np.array_equal(a, b), (stem, t)
        assert extras.keys() == their_extras.keys()
        for key in extras:
            assert np.array_equal(extras[key], their_extras[key]), (stem, t, key)
    # ... and the comparison can fail: a perturbed weight acts otherwise
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in
               zip(mine, remote[stem]["perturbed"])), stem
