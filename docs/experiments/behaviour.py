"""What a pretrained agent does on its training tasks: success, episode length, distance.

    MUJOCO_GL=disable .venv/bin/python docs/experiments/behaviour.py RUN_DIR [--episodes 32]
        [--bind 'IWPL.num_samples = 64' ...]

Rebuilds the run's task distribution, environment and multi-task agent from its recorded
``config.gin`` (every gin file as the run read it, then its bindings), loads the agent
from the run's ``model.pt`` (written when pretraining ended) and plays ``--episodes``
episodes, 8 rows at a time, on uniformly drawn training tasks, acting as in training
(``act(obs)``). Per episode: success (a positive reward), the steps played before it
ended, whether it ended on a termination that was not a success (GTT: a fall), and how
far the ``position`` observation moved (start to end, horizontally: the walker's root;
Reach's pinch site), and the episode's return (what the training figures plot). For GTT
this is docs/TASKS.md's "time standing, distance travelled, success"; it works for every
task with a ``position``. ``--bind`` adds gin bindings after the recorded ones, to ask
how the same trained agent acts otherwise (IWPL's prior samples per state, K).
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bind", action="append", default=[],
                   help="a gin binding applied after the run's own (repeatable)")
    args = p.parse_args(argv)
    import gin
    import torch

    from iwx.experiment.gin_config import parse
    from iwx.loops.episodes import to_env_units

    run = Path(args.run_dir)
    config = json.loads((run / "config.json").read_text())
    # config.gin is every file's text in include order (then the bindings): its own
    # include lines are already expanded beside them.
    text = "".join(line for line in (run / "config.gin").read_text().splitlines(True)
                   if not line.startswith("include "))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.gin").write_text(text)
        parse([str(Path(tmp) / "config.gin")], args.bind, local=False)
    tasks = gin.query_parameter("pretrain_and_adapt.tasks").scoped_configurable_fn()
    env_cls = gin.query_parameter("pretrain_and_adapt.env").scoped_configurable_fn
    agent_cls = gin.query_parameter("pretrain_and_adapt.agent").scoped_configurable_fn
    split = tasks.split(config["seed"])
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)              # the agent's own sampling (π0's, the policy's)
    rows = 8
    ids = rng.integers(0, len(split.train), rows)
    env = env_cls(split.train[ids], ids)
    model = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    agent = agent_cls(env.observation_spec(), env.action_dim, model["num_tasks"],
                      device=torch.device("cpu"))
    agent.load_state_dict(model["agent"])
    out = {"success": [], "steps": [], "ended_without_success": [], "distance": [],
           "return": []}
    for k in range(args.episodes // rows):
        if k:
            ids = rng.integers(0, len(split.train), rows)
            env.set_tasks(split.train[ids], ids)
        agent.begin_tasks(rows)
        obs = env.reset(seed=[args.seed, 11, k])
        start = np.array(obs["position"][:, :2], dtype=np.float64)
        end = start.copy()
        alive = np.ones(rows, bool)
        steps = np.zeros(rows, int)
        success = np.zeros(rows, bool)
        ended = np.zeros(rows, bool)
        total = np.zeros(rows)
        for _ in range(env.episode_length):
            actions = agent.act(obs)
            actions = actions[0] if isinstance(actions, tuple) else actions
            obs, reward, terminated, truncated = env.step(
                to_env_units(actions, env.action_low, env.action_high))
            steps += alive
            total += np.where(alive, reward, 0.0)
            success |= alive & (reward > 0)
            ended |= alive & terminated
            end[alive] = obs["position"][alive, :2]
            alive &= ~(terminated | truncated)
            if not alive.any():
                break
        out["success"] += success.tolist()
        out["steps"] += steps.tolist()
        out["ended_without_success"] += (ended & ~success).tolist()
        out["distance"] += np.linalg.norm(end - start, axis=1).tolist()
        out["return"] += total.tolist()
    n = len(out["success"])
    print(f"run {run.name} ({config.get('task')}, {config.get('method')}): {n} training-task "
          f"episodes of at most {env.episode_length} steps"
          + (f"; bound after its own: {'; '.join(args.bind)}" if args.bind else ""))
    for name, values in out.items():
        v = np.asarray(values, dtype=np.float64)
        half = 1.96 * v.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
        print(f"  {name}: {v.mean():.3f} ± {half:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
