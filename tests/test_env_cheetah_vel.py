"""Half-cheetah velocity: reward by hand, time limit, splits, seeding, privileged inputs."""

from __future__ import annotations

import numpy as np
import pytest

from iwx.envs.cheetah_vel import (CheetahVelEnv, CheetahVelTasks, CheetahVelVec,
                                  standing_still_returns, velocity_reward)


@pytest.fixture(scope="module")
def env():
    e = CheetahVelEnv(privileged=True)
    yield e
    e.close()


def test_velocity_reward_by_hand():
    a = np.array([0.5, -1.0, 0.0, 0.0, 1.0, 0.2])
    # -|1.2 - 2.0| - 0.05 * (0.25 + 1 + 1 + 0.04)
    assert velocity_reward(1.2, 2.0, a) == pytest.approx(-0.8 - 0.05 * 2.29)
    assert velocity_reward(3.0, 3.0, np.zeros(6)) == 0.0


def test_reward_uses_the_torso_forward_velocity_of_the_physics(env):
    env.set_task(np.array([1.7]), task_id=4)
    env.reset(seed=0)
    data = env._cheetah.data
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, 6)
        x_before = float(data.qpos[0])
        _, reward, terminated, truncated, info = env.step(action)
        velocity = (float(data.qpos[0]) - x_before) / 0.05          # frame skip 5 x 0.01 s
        assert info["velocity"] == pytest.approx(velocity)
        assert reward == pytest.approx(-abs(velocity - 1.7) - 0.05 * np.sum(action ** 2))
        assert not terminated and not truncated


def test_truncated_exactly_at_200_steps_never_terminated(env):
    env.set_task(np.array([1.0]), task_id=0)
    env.reset(seed=1)
    flags = [env.step(np.zeros(6))[2:4] for _ in range(200)]
    assert not any(term for term, _ in flags)
    assert [trunc for _, trunc in flags] == [False] * 199 + [True]


def test_split_counts_are_disjoint_uniform_and_seeded():
    split = CheetahVelTasks().split(0)
    assert (len(split.train), len(split.validation), len(split.test)) == (100, 3, 30)
    everything = np.concatenate([split.train, split.validation, split.test])[:, 0]
    assert len(np.unique(everything)) == 133          # held-out goals never in training
    assert everything.min() >= 0.0 and everything.max() <= 3.0
    again = CheetahVelTasks().split(0)
    np.testing.assert_array_equal(split.test, again.test)
    assert not np.array_equal(split.test, CheetahVelTasks().split(1).test)
    np.testing.assert_array_equal(CheetahVelTasks(seed=7).split(0).test,
                                  CheetahVelTasks(seed=7).split(1).test)


def test_same_seed_same_first_observations_other_seed_differs():
    goals = np.array([[0.5], [2.5]])
    first = CheetahVelVec(goals, np.array([0, 1])).reset(seed=[1, 2, 3])
    again = CheetahVelVec(goals, np.array([0, 1])).reset(seed=[1, 2, 3])
    other = CheetahVelVec(goals, np.array([0, 1])).reset(seed=[1, 2, 4])
    np.testing.assert_array_equal(first["proprio"], again["proprio"])
    assert not np.array_equal(first["proprio"], other["proprio"])
    assert not np.array_equal(first["proprio"][0], first["proprio"][1])   # rows differ


def test_privileged_task_id_only_for_training_tasks():
    train = CheetahVelVec(np.array([[1.0], [2.0]]), np.array([5, 9]))
    held_out = CheetahVelVec(np.array([[1.0], [2.0]]), None)
    assert train.observation_spec() == {"proprio": (17,), "task_id": ()}
    assert held_out.observation_spec() == {"proprio": (17,)}
    obs = train.reset(seed=0)
    np.testing.assert_array_equal(obs["task_id"], [5, 9])
    assert set(held_out.reset(seed=0)) == {"proprio"}
    # The goal velocity changes nothing that the prior sees at the start.
    faster = CheetahVelVec(np.array([[0.1], [2.9]]), None).reset(seed=0)
    np.testing.assert_array_equal(held_out.reset(seed=0)["proprio"], faster["proprio"])
    train.set_tasks(np.array([[0.3], [0.4], [0.5]]), np.array([1, 2, 3]))
    assert train.num_envs == 3
    assert train.reset(seed=0)["proprio"].shape == (3, 17)


def test_standing_still_scores_minus_200_times_the_goal_velocity():
    goals = np.array([[0.0], [1.5], [3.0]])
    returns = standing_still_returns(goals)
    # The start perturbation settles within a few steps: the 200-step return of
    # the zero action is -200 v_goal up to a small drift.
    np.testing.assert_allclose(returns, -200 * goals[:, 0], atol=4.0)
    # On the default held-out split (seed 0): the PEARL figure (about -283) is
    # -200 E[v_goal] for that split's goals; ours is computed the same way.
    test = CheetahVelTasks().split(0).test
    assert standing_still_returns(test).mean() == pytest.approx(-200 * test.mean(), abs=3.0)
