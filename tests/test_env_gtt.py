"""GTT (CMU humanoid): reach reward, falls, time limit, starts, task split, seeding, vector."""

from __future__ import annotations

import numpy as np
import pytest

from iwx.envs.gtt import GTTEnv, GTTTasks, GTTVec, humanoid_fall_geoms

STEP = -0.005
TASK = np.array([3.0, 3.0, -3.0, -2.0])      # target (3, 3), held-out start (-3, -2)


@pytest.fixture(scope="module")
def train_env():
    env = GTTEnv(privileged=True)
    yield env
    env.close()


@pytest.fixture(scope="module")
def held_out_env():
    env = GTTEnv(privileged=False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def split():
    return GTTTasks().split(0)


def _quat_mul(a, b):
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def _ground_contacts(env) -> list[str]:
    physics = env.physics
    ground = physics.model.name2id("groundplane", "geom")
    return [physics.model.id2name(c.geom2 if c.geom1 == ground else c.geom1, "geom")
            for c in physics.data.contact if ground in (c.geom1, c.geom2)]


def _lower_until_contact(env, xy, quaternion=None):
    """Lower the walker's frame in 5 mm steps until something touches the floor."""
    for z in np.arange(1.5, 0.0, -0.005):
        env.place_walker(xy, z=z, quaternion=quaternion)
        if _ground_contacts(env):
            return _ground_contacts(env)
    raise AssertionError("never touched the floor")


def _lie_down(env, xy):
    """Lay the upright humanoid horizontal (90 degrees about the world y axis) on the floor."""
    upright = env.walker.upright_pose.xquat                      # facing the same way every time
    quat = _quat_mul([np.cos(np.pi / 4), 0.0, np.sin(np.pi / 4), 0.0], upright)
    return _lower_until_contact(env, xy, quat)


def _direction(seed):
    angle = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    return np.array([np.cos(angle), np.sin(angle)])


@pytest.mark.parametrize("seed", [0, 1])
def test_reward_fires_exactly_when_the_pelvis_is_within_the_tolerance(held_out_env, seed):
    env = held_out_env
    env.set_task(TASK, None)
    env.reset(seed=seed)
    env.place_walker(TASK[:2] + 0.9 * _direction(seed))
    _, reward, terminated, truncated, info = env.step(np.zeros(56))
    assert info["distance"] <= 1.0 and info["reached"] and not info["fallen"]
    assert reward == pytest.approx(1.0 + STEP) and terminated and not truncated
    env.reset(seed=seed)
    env.place_walker(TASK[:2] + 1.1 * _direction(seed))
    _, reward, terminated, truncated, info = env.step(np.zeros(56))
    assert info["distance"] > 1.0 and not info["reached"] and not info["fallen"]
    assert reward == pytest.approx(STEP) and not terminated and not truncated


def test_lying_on_the_floor_is_a_fall(held_out_env):
    env = held_out_env
    env.set_task(TASK, None)
    env.reset(seed=0)
    touching = _lie_down(env, TASK[2:])
    assert set(touching) & {"walker/head", "walker/thorax", "walker/upperback", "walker/root_geom"}
    _, reward, terminated, truncated, info = env.step(np.zeros(56))
    assert info["fallen"] and not info["reached"]
    assert reward == pytest.approx(-1.0 + STEP) and terminated and not truncated


def test_kneeling_is_a_fall(held_out_env):
    """Knees bent back: the femur capsule's lower end (the knee) touches the floor first."""
    env = held_out_env
    env.set_task(TASK, None)
    env.reset(seed=0)
    physics = env.physics
    for side in "lr":
        physics.named.data.qpos[f"walker/{side}tibiarx"] = 2.0
    touching = _lower_until_contact(env, TASK[2:])
    assert set(touching) <= {"walker/lfemur", "walker/rfemur", "walker/ltibia", "walker/rtibia"}
    for contact in physics.data.contact:          # the touch is at the knee joint
        knees = physics.named.data.xpos[["walker/ltibia", "walker/rtibia"]][:, :2]
        assert np.min(np.linalg.norm(knees - contact.pos[:2], axis=1)) < 0.05
    _, reward, terminated, _, info = env.step(np.zeros(56))
    assert info["fallen"] and terminated and reward == pytest.approx(-1.0 + STEP)


@pytest.mark.parametrize("seed", range(6))
def test_standing_start_is_not_a_fall(train_env, seed):
    env = train_env
    env.set_task(np.array([30.0, 30.0, 0.0, 0.0]), 0)          # out of reach: only falls count
    env.reset(seed=seed)
    assert not _ground_contacts(env)                          # feet just above the floor
    physics, walker = env.physics, env.walker
    hold = walker.cmu_pose_to_actuation(np.array(physics.bind(walker.mocap_joints).qpos))
    for _ in range(4):                                        # stands on its feet
        _, reward, terminated, truncated, info = env.step(hold)
        assert reward == pytest.approx(STEP) and not terminated and not info["fallen"]
    touching = _ground_contacts(env)
    assert touching and all("foot" in g or "toes" in g for g in touching)


def test_fall_geoms_are_everything_but_the_feet(train_env):
    names = {g.name for g in humanoid_fall_geoms(train_env.walker)}
    every = {g.name for g in train_env.walker.mjcf_model.find_all("geom")}
    feet = {f"{s}{part}" for s in "lr" for part in ("foot", "foot_ch", "toes0", "toes1", "toes2")}
    assert names == every - feet
    assert {"head", "thorax", "root_geom", "lhumerus", "rhand", "ltibia", "rtibia"} <= names


def test_reaching_while_falling_pays_both(held_out_env):
    env = held_out_env
    env.set_task(TASK, None)
    env.reset(seed=0)
    _lie_down(env, TASK[:2] + np.array([0.3, 0.0]))
    _, reward, terminated, _, info = env.step(np.zeros(56))
    assert info["fallen"] and info["reached"] and terminated
    assert reward == pytest.approx(1.0 - 1.0 + STEP)


def test_reward_settings_are_bindable():
    env = GTTEnv(privileged=False, distance_tolerance=0.5, reach_reward=3.0,
                 step_penalty=-0.01, fall_penalty=-2.0)
    env.set_task(TASK, None)
    env.reset(seed=0)
    env.place_walker(TASK[:2] + np.array([0.0, 0.7]))
    _, reward, terminated, _, _ = env.step(np.zeros(56))
    assert reward == pytest.approx(-0.01) and not terminated
    env.place_walker(TASK[:2] + np.array([0.0, 0.4]))
    _, reward, terminated, _, _ = env.step(np.zeros(56))
    assert reward == pytest.approx(3.0 - 0.01) and terminated
    env.reset(seed=0)
    _lie_down(env, TASK[2:])
    _, reward, terminated, _, _ = env.step(np.zeros(56))
    assert reward == pytest.approx(-2.0 - 0.01) and terminated


def test_episode_is_truncated_at_exactly_200_steps_of_50_ms(held_out_env):
    env = held_out_env
    assert env.episode_length == 200 and env.task.control_timestep == pytest.approx(0.05)
    env.set_task(TASK, None)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    for t in range(1, 201):
        env.place_walker(TASK[2:], z=3.0)          # held in the air: it can neither fall nor reach
        _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 56))
        assert reward == pytest.approx(STEP) and not terminated
        assert truncated == (t == 200)
    short = GTTEnv(privileged=False, episode_seconds=0.5)
    assert short.episode_length == 10


def test_split_counts_ranges_disjointness_and_seeding(split):
    assert (len(split.train), len(split.validation), len(split.test)) == (100, 3, 30)
    every = np.concatenate([split.train, split.validation, split.test])
    assert every.shape == (133, 4) and np.abs(every).max() <= 4.0
    assert np.linalg.norm(every[:, :2] - every[:, 2:], axis=1).min() >= 2.0
    assert (np.ptp(every, axis=0) > 6.0).all()                    # spread over the room
    train = {tuple(t[:2]) for t in split.train}
    assert not train & {tuple(t[:2]) for t in split.test}
    assert not train & {tuple(t[:2]) for t in split.validation}
    assert np.array_equal(GTTTasks().split(0).test, split.test)
    assert not np.array_equal(GTTTasks().split(1).test, split.test)
    pinned = GTTTasks(seed=5)
    assert np.array_equal(pinned.split(0).train, pinned.split(1).train)
    plain = np.concatenate(list(vars(GTTTasks(min_start_distance=0.0).split(0)).values()))
    assert np.linalg.norm(plain[:, :2] - plain[:, 2:], axis=1).min() < 2.0


def test_held_out_start_is_fixed_and_training_start_is_random(train_env, held_out_env):
    held_out_env.set_task(TASK, None)
    held = [held_out_env.reset(seed=s)[0] for s in range(5)]
    for obs in held:
        assert np.allclose(obs["position"][:2], TASK[2:], atol=1e-6)
    assert len({tuple(np.round(o["orientation"], 4)) for o in held}) == 5   # yaw stays random
    train_env.set_task(TASK, 0)
    starts = np.array([train_env.reset(seed=s)[0]["position"][:2] for s in range(20)])
    assert np.abs(starts).max() <= 4.0
    assert len({tuple(s) for s in starts}) == 20 and (np.ptp(starts, axis=0) > 4.0).all()


def test_target_moves_in_the_compiled_physics_without_recompiling(train_env, split):
    physics = train_env._env._physics
    for i in range(3):
        train_env.set_task(split.train[i], i)
        train_env.reset(seed=i)
        assert np.allclose(train_env.target_position(), split.train[i][:2])
    assert train_env._env._physics is physics


def test_same_seed_same_first_observations(split):
    vec = GTTVec(split.train[:3], np.arange(3))
    first = vec.reset(seed=[1, 2, 3])
    again = vec.reset(seed=[1, 2, 3])
    other = vec.reset(seed=[1, 2, 4])
    for key in first:
        assert np.array_equal(first[key], again[key])
    assert not np.array_equal(first["position"], other["position"])
    assert len({tuple(p) for p in first["position"]}) == 3


def test_privileged_keys_and_target_blind_observations(split):
    train = GTTVec(split.train[:2], np.array([4, 9]))
    assert set(train.observation_spec()) == {"proprio", "position", "orientation", "task_id"}
    assert train.reset(seed=0)["task_id"].tolist() == [4, 9]
    other_targets = split.train[:2].copy()
    other_targets[:, :2] = -other_targets[:, :2]
    moved = GTTVec(other_targets, np.array([4, 9]))                 # training: start from the seed
    a, b = train.reset(seed=[5]), moved.reset(seed=[5])
    for key in a:
        assert np.array_equal(a[key], b[key])
    held_a = GTTVec(np.array([[3.0, 3.0, -3.0, -2.0]]))              # held-out: same start
    held_b = GTTVec(np.array([[-3.5, 1.0, -3.0, -2.0]]))
    assert set(held_a.observation_spec()) == {"proprio", "position", "orientation"}
    obs_a, obs_b = held_a.reset(seed=[6]), held_b.reset(seed=[6])
    rng = np.random.default_rng(0)
    for _ in range(3):
        for key in obs_a:
            assert np.array_equal(obs_a[key], obs_b[key])
        action = rng.uniform(-1, 1, (1, 56))
        obs_a, *_ = held_a.step(action)
        obs_b, *_ = held_b.step(action)


def test_vector_shapes_spec_and_set_tasks(split):
    vec = GTTVec(split.test[:2])
    assert vec.num_envs == 2 and vec.episode_length == 200 and vec.action_dim == 56
    spec = vec.observation_spec()
    obs = vec.reset(seed=0)
    for key, shape in spec.items():
        assert obs[key].shape == (2,) + shape and obs[key].dtype == np.float32
    assert np.allclose(obs["position"][:, :2], split.test[:2, 2:], atol=1e-6)
    vec.set_tasks(split.test[2:5])
    obs = vec.reset(seed=1)
    assert obs["position"].shape == (3, 3)
    assert np.allclose(obs["position"][:, :2], split.test[2:5, 2:], atol=1e-6)
    for env, task in zip(vec.envs, split.test[2:5]):
        assert np.allclose(env.target_position(), task[:2])
    obs, reward, terminated, truncated = vec.step(np.zeros((3, 56)))
    assert reward.shape == terminated.shape == truncated.shape == (3,)
    with pytest.raises(ValueError):
        vec.set_tasks(split.train[:2], np.arange(2))


def test_start_state_is_dm_controls_upright_pose_turned_and_moved(train_env):
    """The fast reset equals walker.reinitialize_pose + shift_pose (dm_control's own way)."""
    env = train_env
    env.set_task(TASK, 0)
    env.reset(seed=11)
    physics = env.physics
    qpos, qvel, act = (np.array(physics.data.qpos), np.array(physics.data.qvel),
                       np.array(physics.data.act))
    with physics.reset_context():
        env.walker.reinitialize_pose(physics, np.random.RandomState(0))
        yaw = env.task.spawn_yaw
        env.walker.shift_pose(physics, position=[*env.task.spawn_xy, 0.0],
                              quaternion=[np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)])
    assert np.allclose(physics.data.qpos, qpos) and np.allclose(physics.data.qvel, qvel)
    assert np.allclose(physics.data.act, act)
