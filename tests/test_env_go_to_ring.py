"""Go To Ring (ant): reward, termination, time limit, task split, seeding, observations, vector."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from iwx.envs.go_to_ring import GoToRingEnv, GoToRingTasks, GoToRingVec

STEP = -0.005
FAR = np.array([50.0, 50.0])      # a target no spawn in [-8, 8]^2 can reach in one episode


@pytest.fixture(scope="module")
def train_env():
    env = GoToRingEnv(privileged=True)
    yield env
    env.close()


@pytest.fixture(scope="module")
def held_out_env():
    env = GoToRingEnv(privileged=False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def split():
    return GoToRingTasks().split(0)


def _direction(seed: int) -> np.ndarray:
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


def _step_at_offset(env, target, offset: float, seed: int):
    """Reset, teleport the torso ``offset`` m from ``target``, take one zero-action step."""
    env.set_task(target, 7 if env.privileged else None)
    env.reset(seed=seed)
    env.place_walker(np.asarray(target) + offset * _direction(seed))
    return env.step(np.zeros(env.action_space.shape))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reward_fires_exactly_when_the_torso_is_within_the_tolerance(train_env, seed):
    target = np.array([4.0, -3.0])
    _, reward, terminated, truncated, info = _step_at_offset(train_env, target, 0.9, seed)
    assert info["distance"] <= 1.0 and info["reached"]
    assert reward == pytest.approx(10.0 + STEP) and terminated and not truncated
    with pytest.raises(RuntimeError):          # the episode is over
        train_env.step(np.zeros(8))
    _, reward, terminated, truncated, info = _step_at_offset(train_env, target, 1.1, seed)
    assert info["distance"] > 1.0 and not info["reached"]
    assert reward == pytest.approx(STEP) and not terminated and not truncated


def test_reward_settings_are_bindable(train_env):
    env = GoToRingEnv(privileged=False, distance_tolerance=0.5, reach_reward=3.0,
                      step_penalty=-0.01)
    target = np.array([0.0, 5.0])
    _, reward, terminated, _, _ = _step_at_offset(env, target, 0.4, 0)
    assert reward == pytest.approx(3.0 - 0.01) and terminated
    _, reward, terminated, _, _ = _step_at_offset(env, target, 0.7, 0)
    assert reward == pytest.approx(-0.01) and not terminated
    _, reward, terminated, _, _ = _step_at_offset(train_env, target, 0.7, 0)   # default: 1 m
    assert reward == pytest.approx(10.0 + STEP) and terminated


def test_episode_is_truncated_at_exactly_200_steps_of_50_ms(train_env):
    assert train_env.episode_length == 200
    assert train_env.task.control_timestep == pytest.approx(0.05)
    train_env.set_task(FAR, 3)
    train_env.reset(seed=4)
    rng = np.random.default_rng(0)
    total = 0.0
    for t in range(1, 201):
        _, reward, terminated, truncated, _ = train_env.step(rng.uniform(-1, 1, 8))
        total += reward
        assert reward == pytest.approx(STEP) and not terminated
        assert truncated == (t == 200)
    assert total == pytest.approx(200 * STEP)
    short = GoToRingEnv(privileged=False, episode_seconds=1.0, steps_per_second=10.0)
    assert short.episode_length == 10 and short.task.control_timestep == pytest.approx(0.1)


def test_diverged_physics_truncates_the_episode_and_reset_recovers(held_out_env, split):
    env = held_out_env
    env.set_task(split.test[0], None)
    first, _ = env.reset(seed=0)
    env.physics.data.qvel[:] = 1e30
    obs, reward, terminated, truncated, info = env.step(np.zeros(8))
    assert info["physics_error"] and truncated and not terminated and reward == 0.0
    assert np.array_equal(obs["proprio"], first["proprio"])      # the last valid observation
    again, _ = env.reset(seed=0)
    assert np.array_equal(again["proprio"], first["proprio"])
    assert env.step(np.zeros(8))[1] == pytest.approx(STEP)


def test_split_counts_ranges_disjointness_and_seeding(split):
    assert (len(split.train), len(split.validation), len(split.test)) == (100, 3, 30)
    every = np.concatenate([split.train, split.validation, split.test])
    assert every.shape == (133, 2) and every.dtype == np.float64
    radius = np.linalg.norm(every, axis=1)
    assert radius.min() >= 3.0 and radius.max() <= 7.0
    angles = np.arctan2(every[:, 1], every[:, 0])
    assert np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0].min() > 15   # all around
    train = {tuple(t) for t in split.train}
    assert not train & {tuple(t) for t in split.test}
    assert not train & {tuple(t) for t in split.validation}
    assert np.array_equal(GoToRingTasks().split(0).test, split.test)
    assert not np.array_equal(GoToRingTasks().split(1).test, split.test)
    pinned = GoToRingTasks(seed=5)
    assert np.array_equal(pinned.split(0).train, pinned.split(1).train)


def test_walker_spawns_uniformly_in_the_square_at_every_episode(held_out_env, split):
    held_out_env.set_task(split.test[0], None)
    starts = np.array([held_out_env.reset(seed=s)[0]["position"] for s in range(40)])
    assert np.abs(starts[:, :2]).max() <= 8.0
    assert (np.ptp(starts[:, :2], axis=0) > 8.0).all()           # spread over the square
    assert np.allclose(starts[:, 2], starts[0, 2])                # upright, same height
    yaws = {tuple(np.round(held_out_env.reset(seed=s)[0]["orientation"], 4)) for s in range(5)}
    assert len(yaws) == 5
    # unseeded resets continue the stream: a new start at every episode
    a = held_out_env.reset()[0]["position"]
    b = held_out_env.reset()[0]["position"]
    assert not np.allclose(a, b)


def test_target_moves_in_the_compiled_physics_without_recompiling(train_env, split):
    physics = train_env._env._physics
    for i in range(3):
        train_env.set_task(split.train[i], i)
        train_env.reset(seed=i)
        assert np.allclose(train_env.target_position(), split.train[i])
    assert train_env._env._physics is physics


def test_same_seed_same_tasks_and_first_observations(split):
    vec = GoToRingVec(split.train[:3], np.arange(3))
    first = vec.reset(seed=[1, 2, 3])
    again = vec.reset(seed=[1, 2, 3])
    other = vec.reset(seed=[1, 2, 4])
    for key in first:
        assert np.array_equal(first[key], again[key])
    assert not np.array_equal(first["proprio"], other["proprio"])
    assert not np.array_equal(first["position"], other["position"])
    assert len({tuple(p) for p in first["position"]}) == 3        # rows start apart
    assert np.array_equal(GoToRingTasks().split(0).train, split.train)


def test_privileged_keys_and_target_blind_observations(split):
    train = GoToRingVec(split.train[:2], np.array([4, 9]))
    assert set(train.observation_spec()) == {"proprio", "position", "orientation", "task_id"}
    assert train.reset(seed=0)["task_id"].tolist() == [4, 9]
    targets = np.array([[5.0, 0.0], [-3.0, 4.0]])
    a = GoToRingVec(targets[:1])
    b = GoToRingVec(targets[1:])
    assert set(a.observation_spec()) == {"proprio", "position", "orientation"}
    obs_a, obs_b = a.reset(seed=[8]), b.reset(seed=[8])
    assert set(obs_a) == {"proprio", "position", "orientation"}
    rng = np.random.default_rng(0)
    for _ in range(5):                            # the target never touches the dynamics
        for key in obs_a:
            assert np.array_equal(obs_a[key], obs_b[key])
        action = rng.uniform(-1, 1, (1, 8))
        obs_a, *_ = a.step(action)
        obs_b, *_ = b.step(action)
    assert np.allclose(a.envs[0].target_position(), targets[0])
    assert np.allclose(b.envs[0].target_position(), targets[1])


def test_vector_shapes_spec_and_set_tasks(split):
    vec = GoToRingVec(split.train[:2], np.arange(2))
    assert vec.num_envs == 2 and vec.episode_length == 200 and vec.action_dim == 8
    assert np.all(vec.action_low == -1) and np.all(vec.action_high == 1)
    spec = vec.observation_spec()
    obs = vec.reset(seed=0)
    for key, shape in spec.items():
        assert obs[key].shape == (2,) + shape
    assert obs["proprio"].dtype == np.float32 and obs["task_id"].dtype == np.int64
    assert spec["position"] == (3,) and spec["orientation"] == (9,) and spec["task_id"] == ()
    vec.set_tasks(split.train[2:6], np.arange(2, 6))             # more rows: builds two more
    obs = vec.reset(seed=1)
    assert obs["proprio"].shape == (4,) + spec["proprio"] and obs["task_id"].tolist() == [2, 3, 4, 5]
    for env, target in zip(vec.envs, split.train[2:6]):
        assert np.allclose(env.target_position(), target)
    obs, reward, terminated, truncated = vec.step(np.zeros((4, 8)))
    assert reward.shape == terminated.shape == truncated.shape == (4,)
    assert obs["position"].shape == (4, 3)
    with pytest.raises(ValueError):
        vec.set_tasks(split.test[:2], None)                       # held-out tasks need a new vec


@pytest.mark.filterwarnings("ignore:.*infinity:UserWarning")
def test_single_env_passes_the_gymnasium_checker(split):
    env = GoToRingEnv(privileged=True)
    env.set_task(split.train[0], 0)
    check_env(env, skip_render_check=True)


def test_render_shows_the_arena_from_above(tmp_path):
    """A frame of a held-out task, rendered in a child process with a backend that
    works here."""
    from rendering import frame_from_child

    frame = frame_from_child("""
        from iwx.envs.go_to_ring import GoToRingEnv, GoToRingTasks
        split = GoToRingTasks().split(0)
        env = GoToRingEnv(privileged=False)
        env.set_task(split.test[0], None)
        env.reset(seed=0)
        frame = env.render(height=60, width=80)
        env.close()
    """, tmp_path)
    assert frame.shape == (60, 80, 3) and frame.dtype == np.uint8 and frame.std() > 0
