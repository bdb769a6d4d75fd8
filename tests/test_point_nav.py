"""Sparse 2D navigation: dynamics, rewards, task split, observations, oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from iwx.envs.point_nav import (PointNavEnv, PointNavTasks, PointNavVec, point_nav_oracle,
                                point_reward, point_step)


def test_actions_are_clipped_to_a_tenth_per_dimension():
    s = point_step(np.zeros(2), np.array([0.5, -0.03]))
    assert np.allclose(s, [0.1, -0.03])


@pytest.mark.parametrize("distance, expected", [(0.0, 1.0), (0.1, 0.9), (0.2, 0.8),
                                                (0.2001, 0.0), (0.7, 0.0)])
def test_sparse_reward_is_one_minus_distance_inside_the_radius(distance, expected):
    goal = np.array([0.0, 1.0])
    position = goal + distance * np.array([math.cos(0.3), math.sin(0.3)])
    assert point_reward(position, goal, sparse=True) == pytest.approx(expected)
    assert point_reward(position, goal, sparse=False) == pytest.approx(-distance)


def test_episode_lasts_20_steps_and_is_truncated_not_terminated():
    env = PointNavVec(np.array([[1.0, 0.0]]), np.array([0]))
    env.reset()
    for t in range(1, 21):
        _, _, terminated, truncated = env.step(np.zeros((1, 2)))
        assert not terminated.any()
        assert truncated.all() == (t == 20)


def test_goals_lie_on_the_upper_half_circle_and_the_split_is_disjoint_and_seeded():
    tasks = PointNavTasks(num_train=80, num_validation=3, num_test=30)
    split = tasks.split(0)
    assert (len(split.train), len(split.validation), len(split.test)) == (80, 3, 30)
    every = np.concatenate([split.train, split.validation, split.test])
    assert np.allclose(np.linalg.norm(every, axis=1), 1.0)
    assert (every[:, 1] >= 0).all()
    train = {tuple(g) for g in split.train}
    assert not train & {tuple(g) for g in split.test}
    assert not train & {tuple(g) for g in split.validation}
    assert np.array_equal(tasks.split(0).test, split.test)         # same seed, same tasks
    assert not np.array_equal(tasks.split(1).test, split.test)     # seed matters
    pinned = PointNavTasks(seed=7)
    assert np.array_equal(pinned.split(0).test, pinned.split(1).test)  # unless pinned


def test_only_training_tasks_expose_privileged_inputs():
    goals = np.array([[0.0, 1.0], [1.0, 0.0]])
    train = PointNavVec(goals, np.array([3, 5]), expose_goal=True).reset()
    assert train["task_id"].tolist() == [3, 5] and np.allclose(train["goal"], goals)
    held_out = PointNavVec(goals, None, expose_goal=True)
    assert set(held_out.reset()) == {"position"} == set(held_out.observation_spec())


def test_single_task_env_follows_the_gymnasium_api():
    env = PointNavEnv([0.0, 1.0], task_id=2)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs["task_id"] == 2 and np.allclose(obs["position"], 0)
    obs, reward, terminated, truncated, info = env.step(np.array([0.05, 0.1]))
    assert np.allclose(obs["position"], [0.05, 0.1]) and reward == 0.0


def test_goal_knowing_oracle_return():
    """The oracle heads straight for the goal at full speed, then stays on it."""
    # goal (0, 0.95): y = 0.1 t; rewarded from t = 8 (distance 0.15 -> 0.85), t = 9
    # (0.05 -> 0.95), then on the goal from t = 10 to 20 (11 steps of 1.0).
    assert point_nav_oracle(np.array([[0.0, 0.95]]))[0] == pytest.approx(0.85 + 0.95 + 11.0)
    held_out = PointNavTasks().split(0).test
    oracle = point_nav_oracle(held_out)
    print(f"goal-knowing oracle on 30 held-out goals: {oracle.mean():.2f} per episode")
    assert 12.5 < oracle.mean() < 14.0   # PEARL's test goals give about 13.4


def test_a_dense_vector_can_carry_the_sparse_reward_in_its_observation():
    """PEARL meta-trains on the dense reward and its encoder reads the sparse one (§6)."""
    goals = np.array([[0.15, 0.0], [1.0, 0.0]])
    dense = PointNavVec(goals, np.array([0, 1]), sparse=False, emit_sparse_reward=True)
    sparse = PointNavVec(goals, None, sparse=True, emit_sparse_reward=True)
    assert dense.observation_spec() == {"position": (2,), "sparse_reward": (), "task_id": ()}
    assert sparse.observation_spec() == {"position": (2,), "sparse_reward": ()}
    assert dense.reset()["sparse_reward"].tolist() == [0.0, 0.0]
    sparse.reset()
    step = np.array([[0.1, 0.0], [0.1, 0.0]])
    obs, reward, _, _ = dense.step(step)
    # row 0 at (0.1, 0): 0.05 from its goal, inside the radius: 1 − 0.05; row 1: 0.9 away
    assert reward == pytest.approx([-0.05, -0.9])
    assert obs["sparse_reward"] == pytest.approx([0.95, 0.0])
    assert obs["sparse_reward"].dtype == np.float32
    s_obs, s_reward, _, _ = sparse.step(step)
    assert s_reward == pytest.approx([0.95, 0.0])
    assert s_obs["sparse_reward"] == pytest.approx(s_reward)
    for _ in range(19):
        dense.step(np.zeros((2, 2)))
    obs, reward, _, truncated = dense.step(np.zeros((2, 2)))   # after the end: reward 0
    assert truncated.all() and reward.tolist() == [0.0, 0.0]
    assert obs["sparse_reward"].tolist() == [0.0, 0.0]
    assert "sparse_reward" not in PointNavVec(goals, None).reset()   # off by default


def test_success_under_dense_meta_training_counts_the_sparse_reward():
    """train/success is "a positive reward was seen". The dense reward −‖s − g‖ is never
    positive, so PEARL*'s dense meta-training recorded 0 success whatever it did; where
    the env emits the sparse reward, that one decides. A row that walks onto its goal
    (0.15 m east) succeeds, one that stands 1 m from its goal does not; without the
    sparse reward in the observation the same dense episode counts no success."""
    from iwx.loops.episodes import play_episode

    goals = np.array([[0.15, 0.0], [1.0, 0.0]])
    east = lambda obs: np.array([[1.0, 0.0], [0.0, 0.0]])   # noqa: E731  (unit actions)
    dense = PointNavVec(goals, np.array([0, 1]), sparse=False, emit_sparse_reward=True)
    returns, success = play_episode(dense, east, seed=0)
    assert success.tolist() == [True, False]
    assert (returns < 0).all()                    # the dense return says nothing of it
    bare = PointNavVec(goals, np.array([0, 1]), sparse=False)
    assert play_episode(bare, east, seed=0)[1].tolist() == [False, False]
    sparse = PointNavVec(goals, None, sparse=True)
    assert play_episode(sparse, east, seed=0)[1].tolist() == [True, False]
