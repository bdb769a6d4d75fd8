"""Reach with the Jaco arm: reward, time limit, task split, seeding, observations, vector."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from iwx.envs.reach import (
    RADIUS,
    TARGET_HIGH,
    TARGET_LOW,
    TCP_HIGH,
    TCP_LOW,
    ReachEnv,
    ReachTasks,
    ReachVec,
    reach_reward,
)

NON_PRIVILEGED = {"proprio", "position", "orientation"}
SEED = 11
FAR = np.array([0.2, -0.2, 0.42])


@pytest.fixture(scope="module")
def env():
    e = ReachEnv(privileged=True)
    yield e
    e.close()


@pytest.fixture(scope="module")
def held_out_env():
    e = ReachEnv(privileged=False)
    yield e
    e.close()


def pinch_after_one_still_step(env, seed=SEED):
    env.set_task(FAR, 0)
    env.reset(seed=seed)
    env.step(np.zeros(9))
    return env.pinch_position()


def reward_of_one_still_step(env, target, seed=SEED):
    """Reset (same seed -> same start state), step once with zero velocity targets."""
    env.set_task(target, 0)
    env.reset(seed=seed)
    _, reward, terminated, truncated, _ = env.step(np.zeros(9))
    assert not terminated and not truncated
    return reward


def test_reward_function_fires_inside_the_radius_only():
    target = np.array([0.1, -0.05, 0.2])
    direction = np.array([2.0, -1.0, 2.0]) / 3.0
    for distance, expected in [(0.0, 1.0), (0.03, 1.0), (0.0499, 1.0), (0.0501, 0.0), (0.3, 0.0)]:
        assert reach_reward(target + distance * direction, target) == expected
    assert reach_reward(target + 0.09 * direction, target, radius=0.1) == 1.0


@pytest.mark.parametrize("distance, expected", [(0.0, 1.0), (0.045, 1.0), (0.055, 0.0),
                                                (0.2, 0.0)])
def test_step_rewards_one_exactly_when_the_pinch_site_is_within_the_radius(env, distance,
                                                                         expected):
    # The start state depends only on the seed (not on the target) and the physics is
    # deterministic, so the pinch site after one zero-velocity step is the same point p
    # in every replay; put the target at p + distance * u.
    p = pinch_after_one_still_step(env)
    u = np.array([1.0, 2.0, -2.0]) / 3.0
    reward = reward_of_one_still_step(env, p + distance * u)
    assert np.allclose(env.pinch_position(), p, atol=1e-12)
    assert np.allclose(env.target_position(), p + distance * u)
    assert reward == expected


def test_radius_is_bindable():
    wide = ReachEnv(privileged=False, radius=0.1)
    p = pinch_after_one_still_step(wide)
    assert reward_of_one_still_step(wide, p + np.array([0.0, 0.08, 0.0])) == 1.0
    assert reward_of_one_still_step(wide, p + np.array([0.0, 0.12, 0.0])) == 0.0
    wide.close()


def test_reward_of_every_step_matches_the_pinch_to_target_distance(env):
    rng = np.random.default_rng(0)
    env.set_task(np.array([0.0, 0.0, 0.3]), 1)
    env.reset(seed=3)
    for _ in range(40):
        _, reward, _, _, _ = env.step(rng.uniform(env.action_space.low, env.action_space.high))
        distance = np.linalg.norm(env.pinch_position() - np.array([0.0, 0.0, 0.3]))
        assert reward == (1.0 if distance <= RADIUS else 0.0)
        assert reward == env.current_reward()


def test_never_terminates_and_truncates_exactly_after_ten_seconds(env):
    assert env.episode_length == 250
    p = pinch_after_one_still_step(env)
    env.set_task(p, 0)           # sitting on the target must not end the episode
    env.reset(seed=SEED)
    total = 0.0
    for t in range(1, 251):
        _, reward, terminated, truncated, _ = env.step(np.zeros(9))
        total += reward
        assert not terminated
        assert truncated == (t == 250)
    assert total >= 1.0
    assert env.physics.data.time == pytest.approx(10.0)


def test_control_rate_and_time_limit_are_bindable():
    e = ReachEnv(privileged=False, time_limit=2.0, control_timestep=0.02)
    assert e.episode_length == 100
    e.set_task(FAR, None)
    e.reset(seed=0)
    e.step(np.zeros(9))
    assert e.physics.data.time == pytest.approx(0.02)
    e.close()


def test_action_space_is_the_jaco_velocity_actuators(env):
    low, high = env.action_space.low, env.action_space.high
    assert np.allclose(high, -low)
    assert np.allclose(high, np.deg2rad([36, 36, 36, 48, 48, 48]).tolist() + [5, 5, 5])
    ctrlrange = env.physics.model.actuator_ctrlrange
    assert np.allclose(ctrlrange[:, 0], low) and np.allclose(ctrlrange[:, 1], high)


def test_split_counts_bounds_disjointness_and_seeding():
    tasks = ReachTasks()
    split = tasks.split(0)
    assert (len(split.train), len(split.validation), len(split.test)) == (300, 3, 30)
    every = np.concatenate([split.train, split.validation, split.test])
    assert every.shape == (333, 3) and every.dtype == np.float64
    assert (every >= np.array(TARGET_LOW)).all() and (every <= np.array(TARGET_HIGH)).all()
    assert np.allclose(np.array(TARGET_HIGH) - np.array(TARGET_LOW), 0.4)     # a cube
    assert np.ptp(every, axis=0).min() > 0.35                                # fills it
    train = {tuple(g) for g in split.train}
    assert not train & {tuple(g) for g in split.test}
    assert not train & {tuple(g) for g in split.validation}
    assert not {tuple(g) for g in split.validation} & {tuple(g) for g in split.test}
    assert np.array_equal(tasks.split(0).test, split.test)
    assert not np.array_equal(tasks.split(1).test, split.test)
    pinned = ReachTasks(seed=7)
    assert np.array_equal(pinned.split(0).train, pinned.split(1).train)


def test_start_state_is_randomised_by_the_seed_inside_the_spawn_box(held_out_env):
    held_out_env.set_task(FAR, None)
    starts = []
    for seed in range(4):
        obs, _ = held_out_env.reset(seed=seed)
        again, _ = held_out_env.reset(seed=seed)
        for k in obs:
            assert np.array_equal(obs[k], again[k])
        assert np.all(obs["position"] >= np.array(TCP_LOW) - 1e-3)
        assert np.all(obs["position"] <= np.array(TCP_HIGH) + 1e-3)
        # the hand starts pointing down: the pinch site's z axis is -z (world)
        assert np.allclose(obs["orientation"].reshape(3, 3)[:, 2], [0, 0, -1], atol=1e-2)
        assert np.all(obs["proprio"][12:18] == 0)          # arm joint velocities
        starts.append(obs["proprio"])
    assert len({s.tobytes() for s in starts}) == 4


def test_observation_layout(held_out_env):
    held_out_env.set_task(FAR, None)
    obs, _ = held_out_env.reset(seed=5)
    assert set(obs) == NON_PRIVILEGED == set(held_out_env.observation_space.spaces)
    for key, value in obs.items():
        assert value.dtype == np.float32 and value.shape == \
            held_out_env.observation_space[key].shape
    data = held_out_env.physics.data
    sincos = obs["proprio"][:12].reshape(6, 2)
    assert np.allclose(sincos[:, 0] ** 2 + sincos[:, 1] ** 2, 1.0, atol=1e-6)
    assert np.all((obs["proprio"][18:21] >= 0.15 - 1e-6) & (obs["proprio"][18:21] <= 1.35 + 1e-6))
    assert np.allclose(obs["position"], held_out_env.pinch_position())
    rmat = obs["orientation"].reshape(3, 3).astype(np.float64)
    assert np.allclose(rmat @ rmat.T, np.eye(3), atol=1e-5)
    assert data.qpos.shape == (9,)


def test_privileged_keys_iff_privileged_and_target_is_invisible(env, held_out_env):
    env.set_task(np.array([0.1, 0.1, 0.1]), 42)
    obs, _ = env.reset(seed=2)
    assert set(obs) == NON_PRIVILEGED | {"task_id"} == set(env.observation_space.spaces)
    assert obs["task_id"] == 42 and isinstance(obs["task_id"], np.int64)
    assert env.observation_space.contains(obs)
    with pytest.raises(ValueError):
        env.set_task(np.zeros(3), None)
    # Two tasks with different targets, same seed and actions: identical trajectories.
    actions = np.random.default_rng(1).uniform(held_out_env.action_space.low,
                                               held_out_env.action_space.high, (20, 9))
    runs = []
    for target in (np.array([0.15, -0.1, 0.05]), np.array([-0.15, 0.1, 0.4])):
        held_out_env.set_task(target, None)
        obs, _ = held_out_env.reset(seed=9)
        trace = [obs]
        trace += [held_out_env.step(a)[0] for a in actions]
        runs.append(trace)
        assert np.allclose(held_out_env.target_position(), target)
    for a, b in zip(*runs):
        assert set(a) == NON_PRIVILEGED
        for k in a:
            assert np.array_equal(a[k], b[k])


def test_gymnasium_env_checker_passes(held_out_env):
    from gymnasium.utils.env_checker import check_env
    held_out_env.set_task(FAR, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(held_out_env, skip_render_check=True)


def test_vec_shapes_seeding_and_set_tasks():
    split = ReachTasks(num_train=5, num_validation=1, num_test=3).split(0)
    vec = ReachVec(split.train[:3], np.array([0, 1, 2]))
    spec = vec.observation_spec()
    assert spec == {"proprio": (24,), "position": (3,), "orientation": (9,), "task_id": ()}
    assert vec.episode_length == 250 and vec.action_dim == 9
    obs = vec.reset(seed=[1, 2, 3])
    for key, shape in spec.items():
        assert obs[key].shape == (3, *shape)
    assert obs["task_id"].tolist() == [0, 1, 2]
    assert len({row.tobytes() for row in obs["proprio"]}) == 3        # rows differ
    again = vec.reset(seed=[1, 2, 3])
    other = vec.reset(seed=[1, 2, 4])
    for key in spec:
        assert np.array_equal(obs[key], again[key])
    assert not np.array_equal(obs["proprio"], other["proprio"])
    obs, reward, terminated, truncated = vec.step(np.zeros((3, 9)))
    assert obs["position"].shape == (3, 3) and reward.shape == terminated.shape == (3,)
    assert not truncated.any()
    # Re-point the rows at other tasks (and more rows): targets move, nothing rebuilds.
    first = vec.envs[0]
    vec.set_tasks(split.test, np.array([7, 8, 9]))
    assert vec.envs[0] is first
    obs = vec.reset(seed=5)
    assert obs["task_id"].tolist() == [7, 8, 9]
    for env, target in zip(vec.envs, split.test):
        assert np.allclose(env.target_position(), target)
    with pytest.raises(ValueError):
        vec.set_tasks(split.test, None)
    held_out = ReachVec(split.test, None)
    assert "task_id" not in held_out.observation_spec()
    assert set(held_out.reset(seed=0)) == NON_PRIVILEGED
    for env, target in zip(held_out.envs, split.test):     # freshly built rows too
        assert np.allclose(env.target_position(), target)
    vec.close()
    held_out.close()
