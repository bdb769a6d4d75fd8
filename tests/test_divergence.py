"""The divergence guard (iwx.loops.guard): a diverging run stops with a diagnostic.

Unit tests of the pure checks on hand-made float32 tensors and metric dicts; the
translation of an error torch raises on a NaN parameter, on a real IWPL agent;
``chunk_length = 0`` through the real training loop; through the real pipeline in
this process, an adaptation variant that diverges, the distributed learner, and a
state checked before a save; ``IWPL.critic_lr = 100`` and ``= 1e6`` through the command
line (exit != 0, Sacred FAILED, the last good checkpoint loadable — read back by
``read_checkpoint``, which checks its header and checksum and then ``torch.load`` s it —
and finite); and a sweep that ranks a diverging trial as failed, not as a score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cli import ROOT, TINY, iwx_run, read_json, run_cli, run_dirs
from iwx.loops.guard import (DivergenceError, DivergenceGuard, first_bad_tensor,
                             first_bad_value, is_bounded, state_tensors, suspect_rates)

F32 = torch.float32


# -- the pure checks ----------------------------------------------------------------------
HEALTHY = {"critic_loss": 0.025, "prior_loss": 1.6, "q_mean": 7.7, "kl_to_prior": 1.4,
           "prior_std": 0.57, "alpha": 0.02, "temperature": 3.0e9, "updates": 10 ** 12}


@pytest.mark.parametrize("bad, expected", [
    ({"critic_loss": math.nan}, ("critic_loss", math.nan)),
    ({"q_mean": -math.inf}, ("q_mean", -math.inf)),
    ({"prior_std": math.inf}, ("prior_std", math.inf)),        # finiteness: every metric
    ({"critic_loss": 1e26}, ("critic_loss", 1e26)),            # the bound: losses and Q
    ({"td_loss": -2e8}, ("td_loss", -2e8)),
    ({"train/q_mean": 1e9}, ("train/q_mean", 1e9)),
])
def test_first_bad_value_finds_non_finite_and_out_of_bound_metrics(bad, expected):
    assert first_bad_value(HEALTHY, 1e8) is None
    name, value = first_bad_value({**HEALTHY, **bad}, 1e8)
    assert name == expected[0]
    assert value == expected[1] or (math.isnan(value) and math.isnan(expected[1]))


def test_the_bound_spares_what_may_be_large_and_healthy():
    # a temperature, a multiplier, a count: finite is all that is asked of them
    assert first_bad_value({"temperature": 1e26, "multiplier_std": 1e12,
                            "train/env_steps": 5e9}, 1e8) is None
    assert first_bad_value({"critic_loss": 1e26}, None) is None     # bound off
    assert first_bad_value({"critic_loss": 1e26}) is None
    assert first_bad_value({"note": None, "name": "x", "n": 3}, 1e8) is None
    assert first_bad_value({"critic_loss": np.float32("nan")}) == ("critic_loss", pytest.approx(
        math.nan, nan_ok=True))
    assert [n for n in ("critic_loss", "td_loss", "q", "q_mean", "train/q_mean", "actor_loss")
            if not is_bounded(n)] == []
    assert [n for n in ("alpha", "temperature_dual", "kl_to_prior", "seq_len", "multiplier_mean",
                        "return/task_003") if is_bounded(n)] == []


def test_first_bad_tensor_on_float32_tensors():
    healthy = [("critic.w", torch.randn(4, 3, dtype=F32)), ("critic.b", torch.zeros(3, dtype=F32))]
    assert first_bad_tensor(healthy, 1e8) is None
    for value in (math.nan, math.inf, -math.inf):
        t = torch.ones(5, dtype=F32)
        t[3] = value
        name, found = first_bad_tensor([*healthy, ("prior.w", t)], 1e8)
        assert name == "prior.w"
        assert not math.isfinite(found)
    big = torch.full((2, 2), 1e26, dtype=F32)
    assert first_bad_tensor([*healthy, ("prior.w", big)], 1e8) == ("prior.w",
                                                                   pytest.approx(1e26, rel=1e-6))
    assert first_bad_tensor([*healthy, ("prior.w", big)], None) is None   # finite: bound off
    # integer and empty tensors cannot diverge; numpy arrays are checked like tensors
    ints_and_empty = [("steps", torch.tensor([2 ** 40])), ("e", torch.empty(0))]
    assert first_bad_tensor(ints_and_empty, 1.0) is None
    assert first_bad_tensor([("a", np.array([1.0, np.nan], np.float32))]) == (
        "a", pytest.approx(math.nan, nan_ok=True))


def test_suspects_are_the_rate_of_the_network_the_quantity_belongs_to():
    iwpl = ["critic_lr", "prior_lr"]
    assert suspect_rates("critic_loss", iwpl) == ["critic_lr"]
    assert suspect_rates("train/q_mean", iwpl) == ["critic_lr"]
    assert suspect_rates("target_critic.torso.net.0.weight", iwpl) == ["critic_lr"]
    assert suspect_rates("prior_std", iwpl) == ["prior_lr"]
    assert suspect_rates("kl_to_prior", iwpl) == iwpl                    # both move it
    assert suspect_rates("temperature_dual", ["dual_lr", "critic_lr"]) == ["dual_lr"]
    assert suspect_rates("td_loss", ["learning_rate"]) == ["learning_rate"]


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "1e8"])
def test_a_bad_bound_is_refused_with_its_name(bad):
    with pytest.raises(ValueError, match="DivergenceGuard.max_abs"):
        DivergenceGuard(max_abs=bad)
    assert DivergenceGuard(max_abs=None).max_abs is None


# -- real agents in process ---------------------------------------------------------------
def point_nav(*bindings):
    """Parse gin/point_nav_iwpl.gin (tiny) and return the pieces of a training run."""
    from iwx.envs.point_nav import PointNavTasks, PointNavVec
    from iwx.experiment.gin_config import parse

    parse([str(ROOT / "gin/point_nav_iwpl.gin")], [*TINY, *bindings])
    torch.manual_seed(0)
    goals = PointNavTasks().split(0).train
    probe = PointNavVec(goals[:1], np.zeros(1, np.int64))
    return goals, probe.observation_spec(), probe.action_dim, probe.episode_length


def assert_finite(state) -> int:
    """Every floating tensor / array in a checkpoint is finite; returns how many there are."""
    leaves = [(n, t) for n, t in state_tensors(state, "state")
              if (t.is_floating_point() if isinstance(t, torch.Tensor)
                  else np.issubdtype(t.dtype, np.floating))]
    bad = [n for n, t in leaves if not (torch.isfinite(t).all() if isinstance(t, torch.Tensor)
                                        else np.isfinite(t).all())]
    assert not bad, bad
    return len(leaves)


def test_torch_raising_on_a_nan_parameter_becomes_the_diagnostic():
    from iwx.agents.iwpl import IWPL

    goals, obs_spec, action_dim, _ = point_nav("IWPL.prior_lr = 0.5")
    agent = IWPL(obs_spec, action_dim, len(goals), device=torch.device("cpu"))
    obs = {k: np.zeros((2, *s), np.int64 if k == "task_id" else np.float32)
           for k, s in obs_spec.items()}
    watch = DivergenceGuard().watch(agent)
    try:                                     # a plain bug stays a plain bug
        raise ValueError("shapes do not match")
    except ValueError as exc:
        assert watch.translate(exc, lambda: "here") is None
    name, weight = next((n, p) for n, p in agent.prior.named_parameters() if p.dim() == 2)
    with torch.no_grad():
        weight[0, 0] = math.nan
    with pytest.raises(ValueError, match="invalid values") as raised:   # torch's own error
        agent.prior.distribution({k: torch.as_tensor(v) for k, v in obs.items()})
    with pytest.raises(DivergenceError) as err:
        watch.translate(raised.value, lambda: "an episode after update 7 of pretraining")
    message = str(err.value)
    assert f"prior.{name}" in message and "not finite" in message
    assert "IWPL.prior_lr = 0.5" in message
    assert "an episode after update 7 of pretraining" in message
    assert "found after this error: ValueError: Expected parameter loc" in message
    assert err.value.__cause__ is raised.value


def test_the_diagnostic_names_what_where_the_checkpoint_and_the_bindings():
    import pickle

    from iwx.agents.iwpl import IWPL

    goals, obs_spec, action_dim, _ = point_nav("IWPL.critic_lr = 0.25")
    agent = IWPL(obs_spec, action_dim, len(goals), device=torch.device("cpu"))
    guard = DivergenceGuard()
    guard.checkpoint_path = "/ckpt/state.pt"
    guard.saved("train:40")
    watch = guard.watch(agent, schedule={"MultiTaskTraining.chunk_length": 10})
    agent.updates = 41                               # not the run's first update
    with pytest.raises(DivergenceError) as err:
        watch.update({**HEALTHY, "q_mean": 3e9}, lambda: "update 41 of pretraining")
    e = err.value
    assert (e.quantity, e.value, e.where) == ("q_mean", 3e9, "update 41 of pretraining")
    assert e.suspects == ["IWPL.critic_lr = 0.25"]
    assert str(e).startswith("divergence: q_mean = 3e+09 (|3e+09| exceeds "
                             "DivergenceGuard.max_abs = 1e+08) at update 41 of pretraining")
    assert "last good checkpoint: 'train:40' in /ckpt/state.pt" in str(e)
    assert e.diagnostic == str(e)
    copy = pickle.loads(pickle.dumps(e))             # it crosses Ray's process boundary
    assert type(copy) is DivergenceError and str(copy) == str(e)
    # a rate bound through a macro (IWPL.prior_lr = %IWPL_LEARNING_RATE) shows its value
    with pytest.raises(DivergenceError, match=r"at fault: IWPL.prior_lr = 0.001\n"):
        watch.update({"prior_loss": math.inf}, lambda: "update 41")
    # a value no update reported (a return) points at the environment, not a rate
    with pytest.raises(DivergenceError) as err:
        watch.logged({"train/return": math.nan}, lambda: "update 41")
    assert err.value.suspects == [] and "environment" in str(err.value)
    assert "train/return = nan (not finite)" in str(err.value)
    watch.state(lambda: "update 41", everything=True)     # healthy: silent


def test_chunk_length_zero_stops_at_the_first_update_naming_the_schedule(tmp_path):
    """NaN metrics from any cause: here a schedule that gives empty chunks."""
    from iwx.agents.iwpl import IWPL
    from iwx.envs.point_nav import PointNavVec
    from iwx.loops.logger import MemoryLogger
    from iwx.loops.training import MultiTaskTraining
    from iwx.replay.task_replay import TaskReplay

    goals, obs_spec, action_dim, horizon = point_nav()
    agent = IWPL(obs_spec, action_dim, len(goals), device=torch.device("cpu"))
    replay = TaskReplay(len(goals), obs_spec, action_dim, horizon, capacity=4,
                        extra_spec=agent.replay_extras)
    logger, saved = MemoryLogger(), []
    with pytest.raises(DivergenceError) as err:
        MultiTaskTraining(updates=8, envs_per_iteration=4, updates_per_iteration=4,
                          batch_size=4, chunk_length=0, log_period=2, checkpoint_period=4,
                          progress=False).run(agent, PointNavVec, goals, replay,
                                              np.random.default_rng(0), logger, saved.append)
    message = str(err.value)
    assert "not finite" in message and "update 1 of pretraining" in message
    assert "MultiTaskTraining.chunk_length = 0" in message
    assert "first update" in message
    assert saved == [] and all(math.isfinite(v) for _, v, _ in logger.history)


def diverging_pipeline(tmp_path, *bindings):
    """The whole tiny experiment in this process (no Sacred): its DivergenceError and the
    checkpoint it left (read back, verified)."""
    from iwx.loops.checkpoint import Checkpointer, read_checkpoint
    from iwx.loops.logger import MemoryLogger
    from iwx.loops.pipeline import pretrain_and_adapt

    point_nav("MultiTaskTraining.progress = False", "Adaptation.progress = False", *bindings)
    checkpointer = Checkpointer(tmp_path / "ckpt")
    with pytest.raises(DivergenceError) as err:
        pretrain_and_adapt(0, MemoryLogger(), checkpointer, tmp_path)
    state, problem = read_checkpoint(checkpointer.path)
    assert problem is None, problem
    assert str(checkpointer.path) in str(err.value)
    return str(err.value), state


def test_a_diverging_adaptation_variant_stops_after_a_good_checkpoint(tmp_path):
    message, state = diverging_pipeline(tmp_path, "shared_q_iw/IWPA.learning_rate = 1e6")
    assert "divergence: td_loss = " in message
    assert "variant 'Shared Q + IW'" in message and "adaptation episode 1 of 3" in message
    assert "shared_q_iw/IWPA.learning_rate = 1e+06" in message
    assert "last good checkpoint: 'pretrained'" in message and state["label"] == "pretrained"
    assert_finite(state)


def test_state_is_checked_before_every_save(tmp_path):
    """Finiteness alone (bound off), checkpoint after every update: at update 3 Adam's
    second moment overflowed while every metric was still finite; the save is refused."""
    message, state = diverging_pipeline(
        tmp_path, "IWPL.critic_lr = 100", "DivergenceGuard.max_abs = None",
        "MultiTaskTraining.updates_per_iteration = 1", "MultiTaskTraining.checkpoint_period = 1")
    assert "divergence: critic_opt.state." in message and "not finite" in message
    assert "at update 3 of pretraining" in message and "IWPL.critic_lr = 100" in message
    assert "last good checkpoint: 'train:2'" in message and state["label"] == "train:2"
    assert assert_finite(state) > 10


def test_the_distributed_learner_is_guarded_too(tmp_path):
    """Its own Ray (one actor), a checkpoint after every update."""
    message, state = diverging_pipeline(
        tmp_path, "IWPL.critic_lr = 100", "pretrain_and_adapt.variants = {}",
        "pretrain_and_adapt.training = @DistributedTraining()", "DistributedTraining.actors = 1",
        "MultiTaskTraining.checkpoint_period = 1")
    assert "divergence: critic_loss = " in message and "exceeds" in message
    assert "of distributed pretraining" in message and "IWPL.critic_lr = 100" in message
    label = state["label"]
    assert label.startswith("train:") and f"last good checkpoint: '{label}'" in message
    assert_finite(state)


# -- the command line ---------------------------------------------------------------------
CASES = {   # --gin_param IWPL.critic_lr = ... -> (what the diagnostic says, how it names it)
    "100": ("critic_loss = ", "exceeds DivergenceGuard.max_abs = 1e+08", "IWPL.critic_lr = 100"),
    "1e6": ("critic_loss = inf", "(not finite)", "IWPL.critic_lr = 1e+06"),
}


@pytest.mark.parametrize("lr", sorted(CASES))
def test_a_diverging_run_fails_with_a_diagnostic_and_keeps_its_good_checkpoint(tmp_path, lr):
    """A checkpoint after every update: the one of update 1 is the last good one."""
    from iwx.loops.checkpoint import read_checkpoint

    quantity, why, binding = CASES[lr]
    runs = tmp_path / "runs"
    proc = iwx_run(runs, params=[f"IWPL.critic_lr = {lr}",
                                 "MultiTaskTraining.updates_per_iteration = 1",
                                 "MultiTaskTraining.checkpoint_period = 1"])
    assert proc.returncode != 0, proc.stdout[-2000:]
    err = proc.stderr
    assert f"divergence: {quantity}" in err and why in err, err[-3000:]
    assert "at update 2 of pretraining" in err
    assert f"bindings most likely at fault: {binding}" in err
    label = "train:1"
    assert f"last good checkpoint: '{label}'" in err
    (run,) = run_dirs(runs)
    assert read_json(run / "run.json")["status"] == "FAILED"
    (folder,) = [p for p in (runs / "_checkpoints").iterdir() if p.is_dir()]
    state, problem = read_checkpoint(folder / "state.pt")
    assert problem is None and state["label"] == label
    assert str(folder / "state.pt") in err
    assert assert_finite(state) > 10


def test_a_sweep_ranks_a_diverging_trial_as_failed(tmp_path):
    tiny = [b for b in TINY if not b.startswith("MultiTaskTraining.updates ")]
    lines = ["gin: gin/point_nav_iwpl.gin", "bindings:", *[f"  - {b}" for b in tiny],
             "  - MultiTaskTraining.updates = 16", "  - pretrain_and_adapt.variants = {}",
             "grid:", "  IWPL.critic_lr: [0.001, 100]", "seeds: [0]",
             "metric: train/final_return", "mode: max"]
    spec = tmp_path / "lr.yaml"
    spec.write_text("\n".join(lines) + "\n")
    runs = tmp_path / "runs"
    proc = run_cli("iwx.sweep", [str(spec), "--runs-dir", str(runs), "--no-progress"],
                   timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = {read_json(r / "config.json")["bindings"]["IWPL"]["critic_lr"]: r
               for r in run_dirs(runs)}
    assert sorted(records) == [0.001, 100]
    assert read_json(records[0.001] / "run.json")["status"] == "COMPLETED"
    failed = read_json(records[100] / "run.json")
    assert failed["status"] == "FAILED"
    assert "divergence: critic_loss" in "".join(failed["fail_trace"])
    data = read_json(next((runs / "_sweeps").iterdir()) / "summary.json")
    rows = {c["params"]["IWPL.critic_lr"]: c for c in data["configurations"]}
    assert rows[100]["n"] == 0 and rows[100]["scores"] == {} and rows[100]["errors"]
    assert not rows[100]["ranked"] and rows[0.001]["ranked"] and rows[0.001]["n"] == 1
    assert data["best"]["params"] == {"IWPL.critic_lr": 0.001}
    assert data["failed_trials"] == 1
