"""Move Box (iwx.envs.move_box): reward, limits, task split, seeding, privileged keys, vector."""

import numpy as np
import pytest

from iwx.envs.move_box import MoveBoxEnv, MoveBoxTasks, MoveBoxVec

NON_PRIVILEGED = ("proprio", "position", "orientation", "box_position")
# A task well inside the room: box at (1, 0), target 1.5 m east of it.
TASK = np.array([1.0, 0.0, 2.5, 0.0])


@pytest.fixture(scope="module")
def env():
    env = MoveBoxEnv(privileged=False)
    yield env
    env.close()


@pytest.fixture(scope="module")
def penv():
    env = MoveBoxEnv(privileged=True)
    yield env
    env.close()


@pytest.fixture(scope="module")
def split():
    return MoveBoxTasks().split(run_seed=7)


def _start(env, params=TASK, task_id=None, seed=0):
    env.set_task(params, task_id)
    obs, _ = env.reset(seed=seed)
    env.place_walker([-3.0, -3.0])         # far from box and target
    return obs


# (a) reward fires exactly when the box is on the target ------------------------

@pytest.mark.parametrize("offset, hit", [(0.0, True), (0.45, True), (0.55, False), (1.0, False)])
def test_reward_and_termination_when_box_on_target(env, offset, hit):
    _start(env)
    target = env.target_position()
    np.testing.assert_allclose(target, TASK[2:])
    env.place_box(target + np.array([0.0, offset]))     # horizontal offset from the pad centre
    obs, reward, terminated, truncated, info = env.step(np.zeros(3))
    assert reward == (10.0 if hit else 0.0)
    assert terminated is hit and info["success"] is hit
    assert truncated is False
    np.testing.assert_allclose(obs["box_position"][:2], target + [0.0, offset], atol=0.02)


def test_no_reward_at_start_or_when_walker_on_target(env):
    _start(env)
    env.place_walker(TASK[2:])                           # the ball itself on the pad
    for _ in range(5):
        _, reward, terminated, truncated, _ = env.step(np.zeros(3))
        assert reward == 0.0 and not terminated and not truncated


def test_ball_pushes_box(env):
    """The box is a free body the ball can move: roll into it from behind."""
    _start(env, params=np.array([0.0, 0.0, 0.0, 2.0]))  # target north, we push east
    env.place_walker([-1.0, 0.0], yaw=0.0)                # facing +x, 1 m west of the box
    before = env.box_position()
    for _ in range(30):
        obs, reward, terminated, _, _ = env.step(np.array([-1.0, 0.0, 0.0]))   # roll forward
        assert not terminated
    moved = env.box_position() - before
    assert moved[0] > 1.0, moved                          # pushed east by more than a metre (~3 m)
    assert abs(moved[1]) < 0.3
    np.testing.assert_allclose(obs["box_position"], env.box_position(), atol=1e-5)


def test_box_and_walker_reset_each_episode(env):
    _start(env)
    env.place_box([-2.0, 2.0])
    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs["box_position"], [TASK[0], TASK[1], 0.3], atol=1e-6)
    assert np.allclose(obs["proprio"], 0.0)              # at rest
    assert obs["position"][2] == pytest.approx(0.6)     # head height resting on the floor


def test_walker_spawn_in_room_and_clear_of_box(env):
    env.set_task(TASK, None)
    spawns = []
    for seed in range(200):
        obs, _ = env.reset(seed=seed)
        xy = obs["position"][:2]
        assert np.all(np.abs(xy) <= 3.7 + 1e-6)
        assert np.linalg.norm(xy - TASK[:2]) >= 0.8 - 1e-6
        spawns.append(xy)
    spawns = np.array(spawns)
    assert spawns.std(axis=0).min() > 1.5                # spread over the room (uniform: ~2.1)
    faces = []
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        faces.append(obs["orientation"].reshape(3, 3)[:2, 1])
    assert np.abs(np.mean(faces, axis=0)).max() < 0.4    # random headings


# (b) time limit ---------------------------------------------------------------

def test_truncated_exactly_at_400_steps(env):
    assert env.episode_length == 400                      # 20 s at 20 steps/s
    _start(env)
    for t in range(1, 401):
        _, reward, terminated, truncated, _ = env.step(np.zeros(3))
        assert reward == 0.0 and not terminated
        assert truncated is (t == 400), t
    with pytest.raises(RuntimeError):
        env.step(np.zeros(3))


def test_control_rate(env):
    _start(env)
    t0 = env.physics.data.time
    env.step(np.zeros(3))
    assert env.physics.data.time - t0 == pytest.approx(0.05)


# (c) task split -----------------------------------------------------------------

def test_split_counts_constraints_and_disjoint(split):
    assert split.train.shape == (100, 4)
    assert split.validation.shape == (3, 4)
    assert split.test.shape == (30, 4)
    every = np.concatenate([split.train, split.validation, split.test])
    assert every.dtype == np.float64
    assert np.all(np.abs(every) <= 3.0)
    distance = np.linalg.norm(every[:, :2] - every[:, 2:], axis=1)
    assert np.all(distance > 0.5) and np.all(distance <= 2.0)
    assert distance.max() > 1.8 and distance.min() < 1.0
    train = {tuple(r) for r in split.train}
    assert not train & {tuple(r) for r in split.validation}
    assert not train & {tuple(r) for r in split.test}
    assert len({tuple(r) for r in every}) == len(every)
    assert every[:, 0].min() < -2.5 and every[:, 0].max() > 2.5


def test_split_seeding(split):
    again = MoveBoxTasks().split(run_seed=7)
    np.testing.assert_array_equal(again.train, split.train)
    np.testing.assert_array_equal(again.test, split.test)
    assert not np.allclose(MoveBoxTasks().split(run_seed=8).train, split.train)
    fixed = MoveBoxTasks(seed=3)
    np.testing.assert_array_equal(fixed.split(1).train, fixed.split(2).train)
    # More training tasks leave the first rows unchanged (one stream, split in order).
    np.testing.assert_array_equal(MoveBoxTasks(num_train=120).split(7).train[:100], split.train)


# (d) seeding of resets ----------------------------------------------------------

def test_same_seed_same_first_observation(split):
    vec = MoveBoxVec(split.train[:3], np.arange(3))
    a = vec.reset(seed=[1, 2, 3])
    vec.step(np.random.default_rng(0).uniform(-1, 1, (3, 3)))
    b = vec.reset(seed=[1, 2, 3])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    c = vec.reset(seed=[1, 2, 4])
    assert not np.allclose(a["position"], c["position"])
    assert not np.allclose(a["position"][0], a["position"][1])   # rows differ
    vec.close()


# (e) privileged keys ------------------------------------------------------------

def test_privileged_keys(env, penv):
    obs = _start(penv, task_id=42)
    assert set(obs) == set(NON_PRIVILEGED) | {"task_id", "goal"}
    assert set(penv.observation_space.spaces) == set(obs)
    assert obs["task_id"] == 42 and obs["task_id"].dtype == np.int64
    assert obs["goal"].dtype == np.float32 and obs["goal"].shape == (2,)
    np.testing.assert_allclose(obs["goal"], TASK[2:])
    np.testing.assert_allclose(obs["goal"], penv.target_position())
    obs2, *_ = penv.step(np.zeros(3))
    np.testing.assert_allclose(obs2["goal"], TASK[2:])
    obs = _start(env)
    assert set(obs) == set(NON_PRIVILEGED)
    assert set(env.observation_space.spaces) == set(NON_PRIVILEGED)
    for k in NON_PRIVILEGED:
        assert obs[k].dtype == np.float32
        assert obs[k].shape == env.observation_space[k].shape
    with pytest.raises(ValueError):
        penv.set_task(TASK, None)


def test_target_does_not_leak_into_observations(env):
    other = TASK.copy()
    other[2:] = [-0.5, 1.0]                               # same box, another target
    obs = {}
    for name, params in (("a", TASK), ("b", other)):
        env.set_task(params, None)
        first, _ = env.reset(seed=11)
        rollout = [first]
        for _ in range(5):
            rollout.append(env.step(np.array([-1.0, 0.3, 0.0]))[0])
        obs[name] = rollout
        assert np.allclose(env.target_position(), params[2:])
    for oa, ob in zip(obs["a"], obs["b"]):
        for k in NON_PRIVILEGED:
            np.testing.assert_array_equal(oa[k], ob[k])


# (f) vector ---------------------------------------------------------------------

def test_vector_interface(split):
    vec = MoveBoxVec(split.test[:2])
    assert vec.num_envs == 2 and vec.action_dim == 3 and vec.episode_length == 400
    np.testing.assert_array_equal(vec.action_low, -1.0)
    np.testing.assert_array_equal(vec.action_high, 1.0)
    spec = vec.observation_spec()
    assert spec == {"proprio": (10,), "position": (3,), "orientation": (9,), "box_position": (3,)}
    obs = vec.reset(seed=5)
    for k, shape in spec.items():
        assert obs[k].shape == (2, *shape)
    np.testing.assert_allclose(obs["box_position"][:, :2], split.test[:2, :2], atol=1e-6)
    obs, reward, terminated, truncated = vec.step(np.zeros((2, 3)))
    assert reward.shape == terminated.shape == truncated.shape == (2,)
    for k, shape in spec.items():
        assert obs[k].shape == (2, *shape)
    vec.set_tasks(split.test[[5, 6]])
    obs = vec.reset(seed=5)
    np.testing.assert_allclose(obs["box_position"][:, :2], split.test[[5, 6], :2], atol=1e-6)
    vec.set_tasks(split.test[[7]])
    assert vec.reset(seed=5)["box_position"].shape == (1, 3)
    with pytest.raises(ValueError):
        vec.set_tasks(split.test[:2], np.arange(2))     # held-out vec cannot take ids
    vec.close()


def test_vector_privileged_spec(split):
    vec = MoveBoxVec(split.train[:2], np.array([3, 9]))
    spec = vec.observation_spec()
    assert spec["task_id"] == () and spec["goal"] == (2,)
    obs = vec.reset(seed=0)
    np.testing.assert_array_equal(obs["task_id"], [3, 9])
    np.testing.assert_allclose(obs["goal"], split.train[:2, 2:], atol=1e-6)
    vec.set_tasks(split.train[[4, 5]], np.array([4, 5]))
    obs = vec.reset(seed=0)
    np.testing.assert_array_equal(obs["task_id"], [4, 5])
    np.testing.assert_allclose(obs["goal"], split.train[[4, 5], 2:], atol=1e-6)
    vec.close()


def test_render_draws_the_room(tmp_path):
    """A frame of the room, rendered in a child process with a backend that works here."""
    from rendering import frame_from_child

    frame = frame_from_child(f"""
        import numpy as np
        from iwx.envs.move_box import MoveBoxEnv
        env = MoveBoxEnv(privileged=False)
        env.set_task(np.array({TASK.tolist()}), None)
        env.reset(seed=0)
        env.place_walker([-3.0, -3.0])
        frame = env.render(height=48, width=64)
        env.close()
    """, tmp_path)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0


# (h) the cpu variant's smaller room (gin/tasks/move_box_cpu.gin) ---------------

def test_small_room_takes_its_own_tasks_and_refuses_the_paper_rooms():
    """A 4 m room accepts every task of a 4 m distribution and keeps the ball inside its
    walls; a task of the paper's 8 m distribution (box 3 m out) is refused with a clear
    error, not silently placed beyond the walls."""
    small = MoveBoxEnv(privileged=False, room_size=4.0)
    try:
        tasks = MoveBoxTasks(room_size=4.0, margin=0.8).split(run_seed=0)
        rows = np.concatenate([tasks.train, tasks.test])
        assert np.abs(rows).max() <= 1.2 + 1e-9
        for k, row in enumerate(rows[:20]):
            small.set_task(row, None)
            obs, _ = small.reset(seed=k)
            assert np.all(np.abs(obs["position"][:2]) <= 2.0 - 0.3 + 1e-6)
            np.testing.assert_allclose(obs["box_position"][:2], row[:2], atol=1e-3)
        with pytest.raises(ValueError, match="outside the 4 m room"):
            small.set_task(np.array([3.0, 0.0, 1.0, 0.0]), None)
        with pytest.raises(ValueError, match="room_size"):
            small.set_task(np.array([0.0, 0.0, 0.0, -1.75]), None)
    finally:
        small.close()
