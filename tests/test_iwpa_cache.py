"""IWPA's cache of frozen quantities (issue 12, iwx.agents.frozen_cache), in float32.

The cached update must be the plain update on the same (fixed) prior samples, the
binding ``IWPA.cache_frozen = False`` must be the update as it was before the cache,
fine-tuning must still move ψ, an overwritten replay slot must be recomputed, a
restored agent must continue bit-identically, and the bench's adaptation rows must
build and time. No wall-clock assertions: speed is measured by ``python -m iwx.bench``.
"""

from __future__ import annotations

import copy
import functools
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from iwx.agents.acting import score_prior_samples
from iwx.agents.base import optimise, split_steps, to_torch
from iwx.agents.iwpa import IWPA
from iwx.loops.checkpoint import rng_state, set_rng_state
from iwx.loops.episodes import play_episode
from iwx.nets.critics import FeatureCritic, fresh_critic, shared_features_critic
from iwx.nets.prior import GaussianPrior
from iwx.ops.reduce import masked_mean
from iwx.ops.td import adaptation_critic_loss, soft_td_target
from iwx.envs.point_nav import PointNavVec
from iwx.replay.task_replay import TaskReplay

from cli import run_cli
from test_bench import configured_widths

torch.set_num_threads(1)

SPEC = {"position": (2,)}
P, K, LENGTH = 5, 8, 6
ROWS = np.arange(P)
GOALS = np.stack([np.cos(np.linspace(0.2, 2.9, P)), np.sin(np.linspace(0.2, 2.9, P))], 1)
VARIANTS = {
    "shared_q_iw": shared_features_critic,
    "shared_q_iw_finetune": functools.partial(shared_features_critic, finetune_features=True),
    "iw": fresh_critic,
}


def pretrained():
    torch.manual_seed(1)
    return SimpleNamespace(prior=GaussianPrior(SPEC, 2), critic=FeatureCritic(SPEC, 2, 5))


def make_agent(pre, variant: str, seed: int = 3, **kwargs) -> IWPA:
    torch.manual_seed(seed)
    return IWPA(pre, SPEC, 2, num_problems=P, device=torch.device("cpu"),
                critic_fn=VARIANTS[variant], num_samples=K, target_period=3, alpha=0.1,
                gamma=0.9, **kwargs)


def env():
    return PointNavVec(GOALS, None, sparse=False, episode_length=LENGTH)


def play(agent, vec, replay, episode: int) -> None:
    play_episode(vec, lambda obs: agent.act(obs, explore=episode == 0), replay=replay,
                 rows=ROWS, seed=[0, 2, episode])


def filled(agent, episodes: int = 2, capacity: int = 3):
    vec = env()
    replay = TaskReplay(P, SPEC, 2, LENGTH, capacity=capacity)
    for e in range(episodes):
        play(agent, vec, replay, e)
    return vec, replay


def entry(batch):
    """(slot, row, step) index tensors of a batch's transitions into the cache's arrays."""
    idx = batch["index"]
    row = np.broadcast_to(ROWS[:, None, None], idx["slot"].shape)
    return tuple(torch.as_tensor(np.ascontiguousarray(x)) for x in (idx["slot"], row, idx["step"]))


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def old_update(agent, batch) -> torch.Tensor:
    """IWPA.update as it was before issue 12 (the code of commit 004d353), verbatim."""
    b = to_torch(batch, agent.device)
    mask = b["mask"]
    now, nxt = split_steps(b["obs"])
    with torch.no_grad():
        _, log_prob, q_next = score_prior_samples(agent.prior, agent.target_critic, nxt, None,
                                                  agent.num_samples)
        target = soft_td_target(b["rewards"], b["discounts"], q_next, log_prob,
                                agent.alpha, agent.gamma, agent.soft_value)
    q = agent.critic(now, b["actions"])
    loss = adaptation_critic_loss(q, target, mask)
    optimise(loss, agent.optimizer)
    agent.count_update()
    return loss, float(masked_mean(q.detach(), mask))


# ------------------------------------------------------------------------ the replay's index
def test_replay_index_points_at_the_sampled_steps_and_draws_as_before():
    rng = np.random.default_rng(0)
    replay = TaskReplay(3, SPEC, 2, 5, capacity=2)
    for episode in range(3):                        # the third overwrites slot 0
        replay.begin_episodes(np.arange(3), {"position": rng.normal(size=(3, 2))})
        for t in range(2 + episode):
            replay.append(np.arange(3), rng.normal(size=(3, 2)), rng.normal(size=3),
                          np.ones(3), {"position": rng.normal(size=(3, 2))})
        replay.end_episodes(np.arange(3))
    assert replay.episode.tolist() == [[2, 1]] * 3 and replay.begun.tolist() == [3] * 3
    tasks = np.array([2, 0])
    mine, same = np.random.default_rng(7), np.random.default_rng(7)
    batch = replay.sample(mine, tasks, 6, 4)
    same.random((2, 6))
    same.random((2, 6))                             # the two draws sampling always made
    assert mine.bit_generator.state == same.bit_generator.state
    idx = batch["index"]
    assert set(idx) == {"slot", "step", "episode", "shape"}
    assert idx["shape"].tolist() == [2, 5]
    row = tasks[:, None, None]
    real = batch["mask"] > 0
    assert real.any() and not real.all()
    np.testing.assert_array_equal(batch["actions"][real],
                                  replay.actions[row, idx["slot"], idx["step"]][real])
    np.testing.assert_array_equal(batch["obs"]["position"][:, :, :-1][real],
                                  replay.obs["position"][row, idx["slot"], idx["step"]][real])
    np.testing.assert_array_equal(idx["episode"], replay.episode[row, idx["slot"]])
    # a checkpoint from before the index still loads
    old = {k: v for k, v in replay.state_dict().items() if k not in ("begun", "episode")}
    TaskReplay(3, SPEC, 2, 5, capacity=2).load_state_dict(old)


# ------------------------------------------------------------- cached == plain on the same a_k
@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("size", [16, 4])
def test_cached_update_equals_plain_update_on_the_same_samples(variant, size):
    """The plain path is given the cache's fixed samples (and computes log π0 itself); the
    two agents then agree within float tolerance, through target refreshes (period 3).
    The replay holds 3 slots × 6 steps = 18 entries per problem: 3 batches of 16 score
    more than one pass over it (Q' read from the replay-wide pass), 3 batches of 4 fewer
    (a network Q' scored on each batch; ψ frozen: always the pass)."""
    pre = pretrained()
    cached, plain = make_agent(pre, variant), make_agent(pre, variant, cache_frozen=False)
    assert cached.cache is not None and plain.cache is None
    assert (cached.cache.features is not None) == (variant == "shared_q_iw")
    _, replay = filled(cached)
    rng = np.random.default_rng(0)
    seen: dict[tuple, torch.Tensor] = {}
    for _ in range(7):
        batch = replay.sample(rng, ROWS, size, 1)
        m_cached = cached.update(batch)
        where = entry(batch)
        fixed = cached.cache.actions[where]                          # [P, 16, 1, K, 2]
        for key, a_k in zip(zip(*(w.reshape(-1).tolist() for w in where)),
                            fixed.reshape(-1, K, 2)):
            assert torch.equal(seen.setdefault(key, a_k), a_k)       # drawn once, then fixed
        plain.prior.sample = lambda obs, k, a_k=fixed: (a_k, plain.prior.log_prob(obs, a_k))
        m_plain = plain.update(batch)
        assert m_cached["td_loss"] == pytest.approx(m_plain["td_loss"], rel=1e-5, abs=1e-7)
        assert m_cached["q_mean"] == pytest.approx(m_plain["q_mean"], rel=1e-5, abs=1e-7)
        for a, b in zip(cached.critic.parameters(), plain.critic.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        for a, b in zip(cached.target_critic.parameters(), plain.target_critic.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert cached.updates == 7 and len(seen) > P
    per_batch = size == 4 and variant != "shared_q_iw"
    assert cached.cache.per_batch(size) == per_batch
    # the replay-wide Q' is never filled where each batch is scored on its own
    assert (cached.cache.q_next.abs().sum() == 0) == per_batch


# ------------------------------------------------------- the binding off: the update of before
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cache_off_is_the_update_of_before_bit_for_bit(variant):
    pre = pretrained()
    agent = make_agent(pre, variant, cache_frozen=False)
    assert agent.cache is None and "cache" not in agent.state_dict()
    _, replay = filled(agent)
    ref = copy.deepcopy(agent)
    rng = np.random.default_rng(1)
    for i in range(5):
        batch = replay.sample(rng, ROWS, 16, 1)
        torch.manual_seed(100 + i)
        metrics = agent.update(batch)
        after = torch.get_rng_state()
        torch.manual_seed(100 + i)
        loss, q_mean = old_update(ref, batch)
        assert torch.equal(after, torch.get_rng_state())             # the same draws
        assert metrics == {"td_loss": loss.item() / P, "q_mean": q_mean}
        for a, b in zip(agent.critic.parameters(), ref.critic.parameters()):
            assert torch.equal(a, b)
        for a, b in zip(agent.target_critic.parameters(), ref.target_critic.parameters()):
            assert torch.equal(a, b)


# ------------------------------------------------------------------------------ fine-tuning
def test_finetuning_moves_psi_with_the_cache_on():
    pre = pretrained()
    agent = make_agent(pre, "shared_q_iw_finetune")
    assert agent.cache is not None and agent.cache.features is None   # only π0's samples
    psi0, w0 = params(agent.critic.features), agent.critic.weights.detach().clone()
    _, replay = filled(agent)
    rng = np.random.default_rng(2)
    for _ in range(3):
        agent.update(replay.sample(rng, ROWS, 16, 1))
    assert agent.cache.complete_entries() > 0
    assert not torch.allclose(agent.critic.weights, w0)
    assert all(not torch.equal(a, b) for a, b in zip(params(agent.critic.features), psi0))


# ---------------------------------------------------------------------- an overwritten slot
def assert_cache_matches_replay(agent, replay):
    """Every entry the cache holds in full is what the frozen networks give for the
    transition the replay stores there NOW."""
    cache = agent.cache
    full = cache.drawn & (cache.ready if cache.features is not None else cache.drawn)
    slot, row, step = full.nonzero(as_tuple=True)
    assert len(slot) > 0
    s, r, t = slot.numpy(), row.numpy(), step.numpy()
    assert (t < replay.lengths[r, s]).all()
    now = {"position": torch.as_tensor(replay.obs["position"][r, s, t])}
    nxt = {"position": torch.as_tensor(replay.obs["position"][r, s, t + 1])}
    a_k = cache.actions[slot, row, step]
    with torch.no_grad():
        torch.testing.assert_close(cache.log_prob[slot, row, step], agent.prior.log_prob(nxt, a_k))
        if cache.features is not None:
            psi = agent.critic.features(now, torch.as_tensor(replay.actions[r, s, t]))
            torch.testing.assert_close(cache.psi[slot, row, step], psi)
            torch.testing.assert_close(cache.psi_next[slot, row, step],
                                       agent.critic.features(nxt, a_k))
    return len(slot)


@pytest.mark.parametrize("variant", ["shared_q_iw", "iw"])
def test_an_overwritten_slot_is_recomputed_not_served_stale(variant):
    pre = pretrained()
    agent = make_agent(pre, variant)
    vec, replay = filled(agent, episodes=2, capacity=2)
    rng = np.random.default_rng(3)
    agent.update(replay.sample(rng, ROWS, 64, 1))             # 64 draws of 12: all cached
    assert assert_cache_matches_replay(agent, replay) == P * 2 * LENGTH
    before = agent.cache.actions[0].clone()
    play(agent, vec, replay, 2)                                # a new episode into slot 0
    assert replay.episode[:, 0].tolist() == [2] * P
    agent.update(replay.sample(rng, ROWS, 64, 1))
    assert agent.cache.episode[0].tolist() == [2] * P
    assert not torch.equal(agent.cache.actions[0], before)    # redrawn for the new s'
    assert_cache_matches_replay(agent, replay)


# ------------------------------------------------------------------------- exact resume
@pytest.mark.parametrize("variant, size", [("shared_q_iw", 8), ("iw", 8), ("iw", 4)])
def test_a_restored_agent_continues_bit_identically(variant, size, tmp_path):
    """Checkpoint as the adaptation loop does (agent, replay, RNGs) with the cache partly
    warm; an agent built afresh (another init) and restored from it then gives the
    same numbers as the uninterrupted one, bit for bit — its ψ is recomputed."""
    pre = pretrained()
    agent = make_agent(pre, variant)
    vec, replay = filled(agent, episodes=2)
    rng = np.random.default_rng(4)
    for _ in range(2):
        agent.update(replay.sample(rng, ROWS, size, 1))
    warm = agent.cache.complete_entries()
    assert 0 < warm < P * 2 * LENGTH
    path = tmp_path / "state.pt"
    torch.save({"agent": agent.state_dict(), "replay": replay.state_dict(),
                "rng": rng_state(rng)}, path)

    def go(agent, replay):
        out = [agent.update(replay.sample(rng, ROWS, size, 1)) for _ in range(4)]
        play(agent, vec, replay, 2)
        out += [agent.update(replay.sample(rng, ROWS, size, 1)) for _ in range(4)]
        return out, params(agent.critic) + params(agent.target_critic)

    first, first_params = go(agent, replay)
    saved = torch.load(path, weights_only=False)
    restored = make_agent(pre, variant, seed=99)
    assert not all(torch.equal(a, b) for a, b in zip(params(restored.critic),
                                                    params(agent.critic)))
    again = TaskReplay(P, SPEC, 2, LENGTH, capacity=3)
    restored.load_state_dict(saved["agent"])
    again.load_state_dict(saved["replay"])
    set_rng_state(saved["rng"], rng)
    # the samples come back; ψ does not (recomputed on first use)
    assert restored.cache.complete_entries() == (0 if variant == "shared_q_iw" else warm)
    assert restored.cache.per_batch(size) == (size == 4)     # 3 × 4 < 3 slots × 6 steps
    second, second_params = go(restored, again)
    assert first == second
    assert all(torch.equal(a, b) for a, b in zip(first_params, second_params))


# ---------------------------------------------------------------------------- memory bound
def test_a_cache_over_the_bound_fails_naming_the_binding():
    pre = pretrained()
    agent = make_agent(pre, "shared_q_iw", cache_max_gb=1e-6)
    _, replay = filled(agent)
    with pytest.raises(ValueError, match=r"IWPA\.cache_frozen = False.*IWPA\.cache_max_gb"):
        agent.update(replay.sample(np.random.default_rng(0), ROWS, 8, 1))


@pytest.mark.parametrize("variant, per_entry", [
    # K·A + 2K + (1 + K)·d with K = 8, A = 2, d = 32 (Features' default): ψ(s, a) and
    # ψ(s', a_k) cached
    ("shared_q_iw", 8 * 2 + 2 * 8 + 9 * 32),
    # K·A + 2K + |s'| with |s'| = 2 (position): ψ trains, only π0's samples and s'
    ("iw", 8 * 2 + 2 * 8 + 2),
])
def test_check_fits_says_before_any_update_what_the_first_update_would(variant, per_entry):
    """The full adaptation's size, checked on an agent of any size: 90 problems × 40
    slots × 250 steps need 4 · 90 · 40 · 250 · per_entry bytes (Shared Q + IW: 320 floats,
    1.152 GB; IW: 34, 0.1224 GB). Just under that bound it raises, naming the size and
    the binding; at it, it passes. The message is the first update's own."""
    pre = pretrained()
    need = 4 * 90 * 40 * 250 * per_entry / 1e9
    assert make_agent(pre, variant).cache.bytes_needed(40, 250, 90) / 1e9 == pytest.approx(need)
    with pytest.raises(ValueError, match=rf"{need:.2f} GB for 90 problems × 40 replay slots "
                                         r"× 250 steps.*IWPA\.cache_max_gb"):
        make_agent(pre, variant, cache_max_gb=need * 0.999).check_fits(90, 40, 250)
    make_agent(pre, variant, cache_max_gb=need * 1.001).check_fits(90, 40, 250)
    # the same bound at this test's own size (P = 5, 3 slots × 6 steps): what update says
    small = 4 * P * 3 * LENGTH * per_entry / 1e9
    agent = make_agent(pre, variant, cache_max_gb=small * 0.999)
    with pytest.raises(ValueError) as early:
        agent.check_fits(P, 3, LENGTH)
    _, replay = filled(agent)
    with pytest.raises(ValueError) as late:
        agent.update(replay.sample(np.random.default_rng(0), ROWS, 8, 1))
    assert str(early.value) == str(late.value)


def test_check_fits_also_checks_the_cache_fine_tuning_switches_to():
    """With ``finetune_after`` the ψ cache is replaced by a ψ-less one at the switch; a
    bound only the second one breaks is said before any compute too (here |s'| is large:
    a 400-wide observation makes the ψ-less entry 16 + 16 + 400 = 432 floats against the
    ψ cache's 320)."""
    spec = {"position": (400,)}
    torch.manual_seed(1)
    pre = SimpleNamespace(prior=GaussianPrior(spec, 2), critic=FeatureCritic(spec, 2, 5))
    need_psi, need_plain = 4 * 90 * 40 * 250 * 320 / 1e9, 4 * 90 * 40 * 250 * 432 / 1e9
    build = functools.partial(IWPA, pre, spec, 2, num_problems=P, device=torch.device("cpu"),
                              critic_fn=shared_features_critic, num_samples=K)
    build(cache_max_gb=need_psi * 1.01).check_fits(90, 40, 250)          # never switches
    with pytest.raises(ValueError, match=rf"{need_plain:.2f} GB"):
        build(cache_max_gb=need_psi * 1.01, finetune_after=20).check_fits(90, 40, 250)
    build(cache_max_gb=need_plain * 1.01, finetune_after=20).check_fits(90, 40, 250)


# ------------------------------------------------------------------------------ bench rows
def test_bench_adaptation_rows_build_and_time(tmp_path):
    """The rows are the gin file's variants (their scoped bindings reach them: here the
    cache is turned off for IW alone) at a tiny size, timed on a tiny budget."""
    out = tmp_path / "bench.json"
    params = ["WIDTH = 48", "PointNavTasks.num_test = 2", "Adaptation.seeds = 2",
              "Adaptation.episodes = 2", "Adaptation.exploration_episodes = 1",
              "iw/IWPA.cache_frozen = False"]
    proc = run_cli(
        "iwx.bench", ["--seconds", "0.2", "--ks", "10", "--envs", "1",
                      "--tasks", "none", "--methods", "none", "--json", str(out)]
        + [arg for p in params for arg in ("--gin_param", p)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    items = {it["name"]: it for it in json.loads(out.read_text())["items"]}
    rows = [items["iwpa_update_shared_q_iw"], items["iwpa_update_iw"]]
    want = configured_widths("gin/point_nav_iwpl.gin", params)
    for it, cache in zip(rows, (True, False)):
        assert it["group"] == "adaptation" and it["reference"] == "sac_update", it
        assert (it["problems"], it["batch_size"], it["k"]) == (4, 128, 16), it
        assert it["cache_frozen"] is cache, it
        assert it["stored_transitions"] == 4 * 2 * 20, it
        assert it["cached_transitions"] == (it["stored_transitions"] if cache else 0), it
        assert it["rate"] > 0 and it["slowdown"] > 0 and it["units"] > 0, it
        assert it["item"] in proc.stdout
        for name, net in it["networks"].items():
            assert net["norm"] == [want["norm"]], (it["name"], name, net)
    assert any(want["features_dim"] in net["linear"]           # ψ(s, a) ∈ R^d
               for net in rows[0]["networks"].values())
    quiet = run_cli(
        "iwx.bench", ["--seconds", "0.1", "--ks", "10", "--envs", "1",
                      "--tasks", "none", "--methods", "none", "--no-adaptation", "--json", str(out)],
        timeout=120)
    assert quiet.returncode == 0, quiet.stderr
    assert not any(it["group"] == "adaptation" for it in json.loads(out.read_text())["items"])
