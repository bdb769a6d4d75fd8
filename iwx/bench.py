"""Throughput bench: IWPL learner and acting loop against SAC / bare-env references.

    python -m iwx.bench                       # default: ~3 s per item, 1 torch thread
    python -m iwx.bench --batch-size 512      # the paper's batch size (512 chunks x 10)
    python -m iwx.bench --json bench.json     # also write the numbers
    python -m iwx.bench --tasks gtt reach     # only these physics tasks (default: all)

Measured side by side in one process, on the same device (cuda when available):

(a) learner updates/s of ``IWPL.update`` at each K of ``--ks``, on real batches
    sampled from a :class:`TaskReplay` filled with real point-navigation
    episodes, and of a SAC-style reference update (:class:`SACReference`) on
    the SAME batches with the same network sizes;
(b) environment steps/s (env transitions: B per vector step) of
    ``play_episode`` with ``IWPL.act`` over a :class:`PointNavVec` of B tasks,
    and of the bare environment (``PointNavVec.step`` with random actions,
    resetting every episode) with the same B.

(c) for every physics task of the suite (half-cheetah velocity, Go To Ring,
    Move Box, Reach, GTT): env steps/s of the bare task vector with random
    actions and of the same vector driven by ``IWPL.act``, B tasks side by side.

(d) every method's multi-task learner update at the same batch size (IWPL,
    RS(0), DISTRAL, MPO, MPO + DISTRAL, RL², PEARL*; ``--methods``), each on
    batches from a replay it filled by acting (:mod:`iwx.bench_methods`).

Every item is built and warmed up first, then timed for a fixed wall budget
(``--seconds``) split into ``--rounds`` windows visited round-robin, so that a
drift in background load hits every item alike; the rate is units done / wall
time of whole calls. The table also shows the spread of the per-round rates and
the process CPU time / wall (a starved run shows well under 100% per thread).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "disable")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from iwx.agents.base import task_rows, to_torch  # noqa: E402
from iwx.agents.iwpl import IWPL  # noqa: E402
from iwx.ops.reduce import masked_mean  # noqa: E402
from iwx.agents.temperature import FixedTemperature  # noqa: E402
from iwx.envs.point_nav import PointNavTasks, PointNavVec  # noqa: E402
from iwx.envs.suite import SUITE  # noqa: E402
from iwx.envs.vector import PRIVILEGED_KEYS  # noqa: E402
from iwx.loops.episodes import play_episode, to_env_units  # noqa: E402
from iwx.loops.pipeline import resolve_device  # noqa: E402
from iwx.nets.critics import FeatureCritic, Features  # noqa: E402
from iwx.nets.prior import GaussianPrior  # noqa: E402
from iwx.replay.task_replay import TaskReplay  # noqa: E402

ALPHA = 0.1            # temperature of both learners (timing does not depend on it)
GAMMA = 0.99
TARGET_PERIOD = 100    # IWPL's default: target networks copied every T updates
LEARNING_RATE = 1e-3   # IWPL's default critic_lr / prior_lr
REPLAY_EPISODES = 4    # real episodes stored per task before sampling batches
BATCH_POOL = 8         # distinct batches cycled through by every learner row


# =============================================================================
# REFERENCE FOR TIMING ONLY: a compact, real SAC-style update.
# Not used anywhere in training; it exists so that IWPL's learner cost can be
# read against a standard actor-critic step on the same batch and network sizes.
# =============================================================================
class SACReference:
    """SAC-style learner with the IWPL networks' sizes (single critic, fixed α).

    actor  : :class:`GaussianPrior` (same torso as π0), a tanh-squashed Gaussian
             π(a|s) = tanh(N(μ(s), σ(s)²)) with the change-of-variables log-density.
    critic : :class:`FeatureCritic` (ψ(s, a)ᵀ w_i, the IWPL critic), target copy.
    critic : one TD step on 0.5 (Q(s,a) − [r + γ d (Q'(s', ã') − α log π(ã'|s'))])²,
             ã' ~ π(·|s') one reparameterised sample (no gradient into the target).
    actor  : one step maximising Q(s, ã) − α log π(ã|s), ã = reparameterised sample,
             with the critic's parameters frozen for that step.
    target : hard copy of the critic every ``target_period`` updates.
    Input: the same batch dict as ``IWPL.update`` (chunks [nb, c, L(+1), ...]).
    """

    def __init__(self, obs_spec, action_dim: int, num_tasks: int, *, device: torch.device,
                 alpha: float = ALPHA, gamma: float = GAMMA, target_period: int = TARGET_PERIOD,
                 lr: float = LEARNING_RATE):
        self.device = device
        self.actor = GaussianPrior(obs_spec, action_dim).to(device)
        self.critic = FeatureCritic(obs_spec, action_dim, num_tasks).to(device)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.alpha, self.gamma, self.target_period = alpha, gamma, target_period
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.updates = 0

    def sample(self, obs):
        """One reparameterised tanh-Gaussian action and its log-density. -> [..., A], [...]."""
        dist = self.actor.distribution(obs)
        u = dist.rsample()
        a = torch.tanh(u)
        # log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u)), numerically stable
        log_det = 2.0 * (np.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))
        return a, (dist.log_prob(u) - log_det).sum(-1)

    def update(self, batch: dict) -> dict:
        b = to_torch(batch, self.device)
        obs, mask = b["obs"], b["mask"]
        task = task_rows(obs.get(self.critic.task_key), mask.shape[0], self.critic.task_key)
        now = {k: v[:, :, :-1] for k, v in obs.items()}                # s_t    [nb, c, L, ...]
        nxt = {k: v[:, :, 1:] for k, v in obs.items()}                 # s_t+1
        with torch.no_grad():
            a_next, logp_next = self.sample(nxt)
            v_next = self.target_critic(nxt, a_next, task) - self.alpha * logp_next
            target = b["rewards"] + self.gamma * b["discounts"] * v_next

        q = self.critic(now, b["actions"], task)
        critic_loss = masked_mean(0.5 * (q - target) ** 2, mask)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        self.critic.requires_grad_(False)
        a, logp = self.sample(now)
        actor_loss = masked_mean(self.alpha * logp - self.critic(now, a, task), mask)
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self.critic.requires_grad_(True)

        self.updates += 1
        if self.updates % self.target_period == 0:
            self.target_critic.load_state_dict(self.critic.state_dict())
        return {"critic_loss": critic_loss.item(), "actor_loss": actor_loss.item()}


# =============================================================================
# Timing
# =============================================================================
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def warm_up(step: Callable[[], int], seconds: float, device: torch.device,
            min_calls: int = 3) -> None:
    until = time.perf_counter() + seconds
    calls = 0
    while calls < min_calls or time.perf_counter() < until:
        step()
        calls += 1
    _sync(device)


def time_window(step: Callable[[], int], seconds: float, device: torch.device,
                min_calls: int = 1) -> dict:
    """Call ``step`` (returns units done) until ``seconds`` of wall time pass (whole calls)."""
    _sync(device)
    units, calls = 0, 0
    cpu0, start = time.process_time(), time.perf_counter()
    while True:
        units += step()
        calls += 1
        if calls >= min_calls and time.perf_counter() - start >= seconds:
            break
    _sync(device)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"units": units, "calls": calls, "seconds": wall, "cpu_seconds": cpu}


def measure_all(items: list[dict], steps: list[Callable[[], int]], seconds: float,
                rounds: int, device: torch.device, progress=None) -> None:
    """Warm every item up, then time them round-robin: ``rounds`` windows of
    ``seconds / rounds`` each, so slow drifts of background load hit every item alike.
    Fills each item's rate (total units / total wall), per-round rates and CPU use."""
    warm = min(0.5, 0.2 * seconds)
    for step in steps:
        warm_up(step, warm, device)
    windows: list[list[dict]] = [[] for _ in items]
    for r in range(rounds):
        if progress is not None:
            progress(f"round {r + 1}/{rounds}")
        for i, step in enumerate(steps):
            windows[i].append(time_window(step, seconds / rounds, device))
    for item, ws in zip(items, windows):
        wall = sum(w["seconds"] for w in ws)
        item.update(
            rate=sum(w["units"] for w in ws) / wall, units=sum(w["units"] for w in ws),
            calls=sum(w["calls"] for w in ws), seconds=wall,
            round_rates=[w["units"] / w["seconds"] for w in ws],
            # process CPU time / wall: about (threads busy) when nothing else competes;
            # well below the thread count means the bench was starved by other processes.
            cpu_util=sum(w["cpu_seconds"] for w in ws) / wall)


# =============================================================================
# Setup
# =============================================================================
def _int_list(values) -> list[int]:
    out = []
    for v in values:
        out += [int(x) for x in str(v).split(",") if x.strip()]
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m iwx.bench", description=__doc__.split("\n")[0])
    p.add_argument("--ks", nargs="+", default=["10,20,50"],
                   help="K prior samples of the IWPL learner rows (default 10,20,50)")
    p.add_argument("--act-ks", nargs="+", default=None,
                   help="K of the acting rows (default: the same as --ks)")
    p.add_argument("--envs", nargs="+", default=["8,1"],
                   help="B, tasks per PointNavVec in the acting rows (default 8,1)")
    p.add_argument("--tasks", nargs="+", default=["all"],
                   help=f"physics tasks for the per-environment acting rows: all, none, or "
                        f"some of {', '.join(t for t in SUITE if t != 'point_nav')}")
    p.add_argument("--task-envs", type=int, default=8,
                   help="B, tasks per task vector in the per-environment rows (default 8)")
    p.add_argument("--task-k", type=int, default=16,
                   help="K of IWPL.act in the per-environment rows (default 16)")
    p.add_argument("--methods", nargs="+", default=["all"],
                   help="learner-update rows of the methods: all, none, or some of "
                        "iwpl rs0 distral mpo mpo_distral rl2 pearl")
    p.add_argument("--batch-size", type=int, default=32, help="chunks per batch (default 32)")
    p.add_argument("--chunk-length", type=int, default=10, help="steps per chunk (default 10)")
    p.add_argument("--seconds", type=float, default=3.0,
                   help="timed wall budget per item, after warm-up (default 3)")
    p.add_argument("--rounds", type=int, default=3,
                   help="split each item's budget into this many round-robin windows (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--device", default="auto", help="auto (cuda when available) | cpu | cuda")
    p.add_argument("--num-tasks", type=int, default=80, help="training tasks (default 80)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the numbers as JSON here")
    args = p.parse_args(argv)
    args.ks = _int_list(args.ks)
    args.act_ks = args.ks if args.act_ks is None else _int_list(args.act_ks)
    args.envs = _int_list(args.envs)
    physics = [t for t in SUITE if t != "point_nav"]
    if args.tasks == ["all"]:
        args.tasks = physics
    elif args.tasks == ["none"]:
        args.tasks = []
    unknown = sorted(set(args.tasks) - set(physics))
    if unknown:
        p.error(f"--tasks: unknown {unknown}; choose from all, none, {', '.join(physics)}")
    from iwx.bench_methods import METHODS

    if args.methods == ["all"]:
        args.methods = list(METHODS)
    elif args.methods == ["none"]:
        args.methods = []
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        p.error(f"--methods: unknown {unknown}; choose from all, none, {', '.join(METHODS)}")
    if args.task_envs < 1 or args.task_k < 1:
        p.error("--task-envs and --task-k must be >= 1")
    for name in ("ks", "act_ks", "envs"):
        if not getattr(args, name) or min(getattr(args, name)) < 1:
            p.error(f"--{name.replace('_', '-')} needs positive integers")
    if args.batch_size < 1 or args.chunk_length < 1 or args.seconds <= 0 or args.threads < 1 \
            or args.rounds < 1:
        p.error("--batch-size, --chunk-length, --threads, --rounds must be >= 1 "
                "and --seconds > 0")
    return args


def machine_info(device: torch.device, threads: int) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {"torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "requested_threads": threads,
            "device": str(device), "device_name": name, "cpu_count": os.cpu_count(),
            "cpus_usable": usable, "platform": platform.platform(),
            "loadavg_before": _loadavg()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def filled_replay(goals: np.ndarray, device, seed: int, episodes: int = 4) -> tuple:
    """A TaskReplay holding ``episodes`` real episodes in every task, played by IWPL.act."""
    num_tasks = len(goals)
    rows = np.arange(num_tasks)
    env = PointNavVec(goals, rows)
    spec, action_dim = env.observation_spec(), env.action_dim
    replay = TaskReplay(num_tasks, spec, action_dim, env.episode_length, capacity=episodes)
    torch.manual_seed(seed)
    player = IWPL(spec, action_dim, num_tasks, device=device)
    for _ in range(episodes):
        play_episode(env, player.act, replay=replay, rows=rows)
    return replay, spec, action_dim


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    info = machine_info(device, args.threads)
    rng = np.random.default_rng(args.seed)
    goals = PointNavTasks(num_train=args.num_tasks, seed=args.seed).split(args.seed).train
    replay, spec, action_dim = filled_replay(goals, device, args.seed, REPLAY_EPISODES)
    num_tasks = len(goals)
    # A pool of real batches, shared by every learner row (the same batches, same order).
    pool = [replay.sample(rng, rng.choice(num_tasks, size=args.batch_size), 1, args.chunk_length)
            for _ in range(BATCH_POOL)]
    items: list[dict] = []
    steps: list[Callable[[], int]] = []

    def learner_step(learner):
        index = [0]

        def step():
            learner.update(pool[index[0] % len(pool)])
            index[0] += 1
            return 1
        return step

    # (a) learner ----------------------------------------------------------------
    batch = {"batch_chunks": args.batch_size, "chunk_length": args.chunk_length,
             "transitions": args.batch_size * args.chunk_length}
    label = f"batch {args.batch_size}x{args.chunk_length}"
    torch.manual_seed(args.seed)
    sac = SACReference(spec, action_dim, num_tasks, device=device)
    items.append({"item": f"SAC reference update ({label})", "group": "learner",
                  "name": "sac_update", "k": None, **batch, "unit": "updates/s"})
    steps.append(learner_step(sac))
    for k in args.ks:
        torch.manual_seed(args.seed)
        agent = IWPL(spec, action_dim, num_tasks, device=device, num_samples=k,
                     temperature=lambda: FixedTemperature(ALPHA), gamma=GAMMA,
                     target_period=TARGET_PERIOD, critic_lr=LEARNING_RATE,
                     prior_lr=LEARNING_RATE)
        items.append({"item": f"IWPL update K={k} ({label})", "group": "learner",
                      "name": f"iwpl_update_k{k}", "k": k, **batch, "unit": "updates/s",
                      "reference": "sac_update"})
        steps.append(learner_step(agent))

    # (b) acting -----------------------------------------------------------------
    for b in args.envs:
        rows = np.arange(b) % num_tasks
        env = PointNavVec(goals[rows], rows)
        actions = rng.uniform(env.action_low, env.action_high, (1024, b, action_dim))

        def bare_step(env=env, actions=actions, counter=[0]):
            env.reset()
            for _ in range(env.episode_length):
                env.step(actions[counter[0] % len(actions)])
                counter[0] += 1
            return env.episode_length * env.num_envs

        items.append({"item": f"bare env, random actions (B={b})", "group": "acting",
                      "name": f"env_b{b}", "k": None, "num_envs": b, "unit": "env steps/s"})
        steps.append(bare_step)
        for k in args.act_ks:
            torch.manual_seed(args.seed)
            agent = IWPL(spec, action_dim, num_tasks, device=device, num_samples=k,
                         temperature=lambda: FixedTemperature(ALPHA))

            def act_step(env=env, agent=agent, done=[0]):
                done[0] = 0
                play_episode(env, agent.act, after_step=lambda t: done.__setitem__(0, t))
                return done[0] * env.num_envs

            items.append({"item": f"play_episode + IWPL.act K={k} (B={b})", "group": "acting",
                          "name": f"act_k{k}_b{b}", "k": k, "num_envs": b,
                          "unit": "env steps/s", "reference": f"env_b{b}"})
            steps.append(act_step)

    # (c) acting in every physics task of the suite ---------------------------------
    for task in args.tasks:
        add_task_rows(task, args, device, rng, items, steps)

    # (d) every method's learner update at the same batch size ----------------------
    from iwx.bench_methods import add_method_rows

    add_method_rows(args.methods, args, device, rng, goals, items, steps)

    print(f"iwx.bench: {info['device']} ({info['device_name']}), torch {info['torch']}, "
          f"{info['threads']} thread(s); {len(items)} items x {args.seconds:g} s "
          f"in {args.rounds} round(s), after warm-up...", file=sys.stderr, flush=True)

    measure_all(items, steps, args.seconds, args.rounds, device,
                lambda text: print(f"  {text}", file=sys.stderr, flush=True))
    rates = {it["name"]: it["rate"] for it in items}
    for it in items:
        ref = it.get("reference")
        it["slowdown"] = rates[ref] / it["rate"] if ref else None
    info["loadavg_after"] = _loadavg()
    return {"machine": info,
            "config": {k: v for k, v in vars(args).items() if k != "json"} | {
                "alpha": ALPHA, "gamma": GAMMA, "target_period": TARGET_PERIOD,
                "learning_rate": LEARNING_RATE, "num_tasks": num_tasks,
                "replay_episodes_per_task": REPLAY_EPISODES, "batch_pool": BATCH_POOL},
            "items": items}


TASK_CHUNK = 25   # vector steps per timed call in the per-environment rows


def add_task_rows(task: str, args, device, rng, items: list, steps: list) -> None:
    """Bare task vector (random actions) vs the acting loop (IWPL.act, K = --task-k).

    Both rows step the same kind of vector of B training tasks for TASK_CHUNK
    vector steps per call and reset a vector whose episodes have all ended, as
    training does; the rate counts transitions of rows still in their episode
    (a row that has ended is not stepped until the reset); the agent's networks have iwx's default sizes and see every
    non-privileged key.
    """
    tasks_cls, vec_cls = SUITE[task]
    b = args.task_envs
    split = tasks_cls(num_train=max(b, 1), num_test=1, num_validation=0,
                      seed=args.seed).split(args.seed)
    rows = np.arange(b) % len(split.train)
    bare, acting = vec_cls(split.train[rows], rows), vec_cls(split.train[rows], rows)
    spec, action_dim = bare.observation_spec(), bare.action_dim
    inputs = tuple(k for k in spec if k not in PRIVILEGED_KEYS)
    torch.manual_seed(args.seed)
    agent = IWPL(spec, action_dim, len(split.train), device=device, num_samples=args.task_k,
                 temperature=lambda: FixedTemperature(ALPHA),
                 prior=lambda s, a: GaussianPrior(s, a, inputs=inputs),
                 critic=lambda s, a, n: FeatureCritic(
                     s, a, n, features=lambda s2, a2: Features(s2, a2, inputs=inputs)))

    def stepper(env, policy):
        state = {"obs": None, "alive": None, "episode": 0}

        def step():
            transitions = 0
            for _ in range(TASK_CHUNK):
                if state["obs"] is None or not state["alive"].any():
                    state["obs"] = env.reset(seed=[args.seed, 9, state["episode"]])
                    state["alive"] = np.ones(env.num_envs, bool)
                    state["episode"] += 1
                transitions += int(state["alive"].sum())   # ended rows are not stepped
                obs, _, term, trunc = env.step(policy(state["obs"]))
                state["obs"], state["alive"] = obs, state["alive"] & ~(term | trunc)
            return transitions
        return step

    def random_policy(obs):
        return rng.uniform(bare.action_low, bare.action_high, (b, action_dim))

    def iwpl_policy(obs):
        return to_env_units(agent.act(obs), acting.action_low, acting.action_high)

    items.append({"item": f"{task}: bare env, random actions (B={b})", "group": task,
                  "name": f"{task}_env_b{b}", "k": None, "num_envs": b, "unit": "env steps/s"})
    steps.append(stepper(bare, random_policy))
    items.append({"item": f"{task}: IWPL.act K={args.task_k} (B={b})", "group": task,
                  "name": f"{task}_act_k{args.task_k}_b{b}", "k": args.task_k, "num_envs": b,
                  "unit": "env steps/s", "reference": f"{task}_env_b{b}"})
    steps.append(stepper(acting, iwpl_policy))


def format_table(result: dict) -> str:
    m = result["machine"]
    width = 92
    lines = [f"iwx.bench: torch {m['torch']}, threads {m['threads']}, device {m['device']} "
             f"({m['device_name']}), CPUs {m['cpu_count']} ({m['cpus_usable']} usable), "
             f"python {m['python']}, load avg {m['loadavg_before']} -> {m['loadavg_after']}",
             f"{'item':<40} {'rate':>12}  {'unit':<12} {'slowdown':>9} {'spread':>7} "
             f"{'cpu':>5}",
             "-" * width]
    group, starved = None, []
    for it in result["items"]:
        if group is not None and it["group"] != group:
            lines.append("")
        group = it["group"]
        slow = f"{it['slowdown']:.2f}x" if it.get("reference") else "(ref)"
        r = it["round_rates"]
        spread = f"{100 * (max(r) - min(r)) / it['rate']:.0f}%" if len(r) > 1 else "-"
        lines.append(f"{it['item']:<40} {it['rate']:>12,.1f}  {it['unit']:<12} {slow:>9} "
                     f"{spread:>7} {100 * it['cpu_util']:>4.0f}%")
        if m["device"] == "cpu" and it["cpu_util"] < 0.85:
            starved.append(it["name"])
    lines += ["-" * width,
              "slowdown: reference rate / row rate. Learner rows: vs the SAC reference update "
              "(same batches,",
              "  networks, device). Method rows: vs IWPL K=16 (same batch size, each on its "
              "own replay).",
              "  Acting rows: vs the bare env with the same B. Env steps "
              "are transitions",
              "  (B per vector step). Learner batches: chunks x chunk length transitions "
              "from a TaskReplay",
              "  of real point-navigation episodes. spread: (max - min) / rate over the "
              "rounds.",
              "cpu: process CPU time / wall while timing (about 100% per busy thread)."]
    if starved:
        lines.append(f"WARNING: cpu < 85% for {', '.join(starved)}: other processes took "
                     f"this CPU; rates are low and noisy.")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(format_table(result))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
