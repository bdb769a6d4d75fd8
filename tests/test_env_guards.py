"""Every env refuses garbage before it changes anything (iwx.envs.guards, iwx.envs.vector).

For each of the six task distributions, the single-task env and the task vector
refuse wrong-shaped actions, non-finite actions, stepping before reset and (single
env) stepping after the episode ended, with an error naming the class, the
expected shape and what came; and a refused step leaves the episode exactly as an
undisturbed twin built and seeded the same way. The physics envs are slow to
build, so each kind's envs are built once for the module (short episodes: 3 steps).
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from iwx.envs.cheetah_vel import CheetahVelEnv, CheetahVelVec
from iwx.envs.go_to_ring import GoToRingEnv, GoToRingVec
from iwx.envs.gtt import GTTEnv, GTTVec
from iwx.envs.guards import check_action
from iwx.envs.move_box import MoveBoxEnv, MoveBoxVec
from iwx.envs.point_nav import PointNavEnv, PointNavVec
from iwx.envs.reach import ReachEnv, ReachVec

STEPS = 3          # steps per single-env episode in this module
ROWS = 2           # task-vector rows


def _point_nav_single():
    return PointNavEnv([0.0, 1.0], None, episode_length=STEPS)


def _task_single(cls, params, **short):
    def make():
        env = cls(privileged=False, **short)
        env.set_task(np.asarray(params, np.float64), None)
        return env
    return make


# kind: (single-task env factory, task-vector class, the vector's task rows [ROWS, P]).
# The tasks are far from every start, so no episode here ends before STEPS steps.
KINDS = {
    "point_nav": (_point_nav_single, PointNavVec, np.array([[0.0, 1.0], [1.0, 0.0]])),
    "cheetah_vel": (_task_single(CheetahVelEnv, [1.0], episode_length=STEPS),
                    CheetahVelVec, np.array([[1.0], [2.0]])),
    "go_to_ring": (_task_single(GoToRingEnv, [30.0, 0.0], episode_seconds=STEPS / 20),
                   GoToRingVec, np.array([[30.0, 0.0], [0.0, 30.0]])),
    "move_box": (_task_single(MoveBoxEnv, [0.0, 0.0, 1.5, 0.0], time_limit=STEPS / 20),
                 MoveBoxVec, np.array([[0.0, 0.0, 1.5, 0.0], [1.0, 1.0, -0.5, 1.0]])),
    "reach": (_task_single(ReachEnv, [0.2, 0.2, 0.42], time_limit=STEPS * 0.04),
              ReachVec, np.array([[0.2, 0.2, 0.42], [-0.2, -0.2, 0.42]])),
    "gtt": (_task_single(GTTEnv, [3.0, 3.0, -3.0, -3.0], episode_seconds=STEPS / 20),
            GTTVec, np.array([[3.0, 3.0, -3.0, -3.0], [-3.0, 3.0, 3.0, -3.0]])),
}


@dataclasses.dataclass
class Case:
    kind: str
    single: object
    single_twin: object
    vec: object
    vec_twin: object

    @property
    def dim(self) -> int:
        return int(self.single.action_space.shape[0])

    def actions(self, seed: int, rows: int | None = None) -> np.ndarray:
        """Finite in-range actions: [A], or [rows, A]."""
        rng = np.random.default_rng(seed)
        low, high = self.single.action_space.low, self.single.action_space.high
        return rng.uniform(low, high, (self.dim,) if rows is None else (rows, self.dim))


@pytest.fixture(scope="module", params=list(KINDS))
def case(request):
    make_single, make_vec, params = KINDS[request.param]
    built = Case(request.param, make_single(), make_single(), make_vec(params), make_vec(params))
    yield built
    for env in (built.single, built.single_twin, built.vec, built.vec_twin):
        if hasattr(env, "close"):
            env.close()


def bad_shapes(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Wrong shapes for an expected ``shape``: (A,) or (B, A)."""
    if len(shape) == 1:
        (a,) = shape
        candidates = [(), (1, a), (a, 1), (a + 1,), (a - 1,), (2, a)]
    else:
        b, a = shape
        candidates = [(), (a,), (b,), (1, a), (b, a + 1), (b + 1, a), (b - 1, a), (b, a, 1),
                      (a, b), (b * a,)]
    return [np.zeros(s) for s in candidates if s != shape]


def non_finite(action: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """(the action with one non-finite entry in its last row, what the message shows)."""
    out = []
    for value, shown in ((np.nan, "nan"), (np.inf, "inf"), (-np.inf, "-inf")):
        bad = action.copy()
        bad[(-1,) * bad.ndim] = value
        out.append((bad, shown))
    return out


def assert_same_step(a, b):
    """Two step results (gymnasium 5-tuple or task-vector 4-tuple) are identical."""
    obs_a, obs_b = a[0], b[0]
    assert obs_a.keys() == obs_b.keys()
    for key in obs_a:
        np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=key)
    for x, y in zip(a[1:4], b[1:4]):
        np.testing.assert_array_equal(x, y)


def expected_owner_and_shape(error: pytest.ExceptionInfo, owner: str, shape) -> str:
    message = str(error.value)
    assert owner in message and str(tuple(shape)) in message, message
    return message


# ---- the helper itself (no env) ----------------------------------------------------------

def test_check_action_returns_float64_and_refuses_non_numbers():
    out = check_action(np.arange(3), (3,), "Thing")
    assert out.dtype == np.float64 and out.tolist() == [0.0, 1.0, 2.0]
    same = np.zeros((2, 3))
    assert check_action(same, (2, 3), "Thing") is same            # no copy on the hot path
    for bad in (np.array(["a", "b", "c"]), np.zeros(3, bool), np.zeros(3, complex),
                np.array([0.0, None, 1.0], dtype=object)):
        with pytest.raises(ValueError, match=r"Thing\.step: actions must be real numbers"):
            check_action(bad, (3,), "Thing")


def test_non_finite_messages_list_a_few_entries_and_count_the_rest():
    actions = np.zeros((8, 2))
    actions[1:8, 0] = np.nan
    with pytest.raises(ValueError) as error:
        check_action(actions, (8, 2), "Thing")
    message = str(error.value)
    assert "7 non-finite entries in row(s) [1, 2, 3, 4, 5] ..." in message
    assert "(1, 0)=nan" in message and "(5, 0)=nan" in message and "and 2 more" in message
    assert "(6, 0)" not in message


# ---- single-task envs ----------------------------------------------------------------------

def refuses_wrong_shapes(env, shape):
    """Every wrongly shaped action is refused, naming the env, the shape and what came."""
    env.reset(seed=0)
    for bad in bad_shapes(shape):
        with pytest.raises(ValueError) as error:
            env.step(bad)
        message = expected_owner_and_shape(error, type(env).__name__, shape)
        assert f"got shape {bad.shape}" in message


def test_single_env_refuses_wrong_shapes(case):
    refuses_wrong_shapes(case.single, (case.dim,))


def test_single_env_refuses_non_finite_actions(case):
    env = case.single
    env.reset(seed=0)
    last = case.dim - 1
    for bad, shown in non_finite(case.actions(1)):
        with pytest.raises(ValueError) as error:
            env.step(bad)
        message = expected_owner_and_shape(error, type(env).__name__, (case.dim,))
        assert "non-finite" in message and f"{last}={shown}" in message, message


def test_refused_single_steps_leave_the_episode_as_an_undisturbed_twin(case):
    env, twin = case.single, case.single_twin
    obs, obs_twin = env.reset(seed=4)[0], twin.reset(seed=4)[0]
    for key in obs:
        np.testing.assert_array_equal(obs[key], obs_twin[key])
    first, second = case.actions(2), case.actions(3)
    assert_same_step(env.step(first), twin.step(first))
    refused = bad_shapes((case.dim,)) + [bad for bad, _ in non_finite(second)]
    for bad in refused:
        with pytest.raises(ValueError):
            env.step(bad)
    assert_same_step(env.step(second), twin.step(second))


def test_single_env_clips_finite_out_of_range_actions(case):
    """Today's behaviour, kept: a finite action outside the box acts as its clipped value."""
    env, twin = case.single, case.single_twin
    low, high = env.action_space.low, env.action_space.high
    wild = np.where(np.arange(case.dim) % 2 == 0, high + 10 * (high - low), low - 3 * (high - low))
    env.reset(seed=5)
    twin.reset(seed=5)
    assert_same_step(env.step(wild), twin.step(np.clip(wild, low, high)))


def test_single_env_refuses_to_step_after_its_episode_ended(case):
    env = case.single
    env.reset(seed=6)
    for t in range(1, STEPS + 1):
        _, _, terminated, truncated, _ = env.step(case.actions(t))
        assert not terminated and truncated == (t == STEPS)
    for action in (case.actions(0), np.full(case.dim, np.nan)):
        with pytest.raises(RuntimeError, match=re.escape(
                f"{type(env).__name__}.step(): episode ended (terminated or truncated); "
                f"call reset()")):
            env.step(action)
    env.reset(seed=6)                       # a reset starts the next episode
    assert not env.step(case.actions(0))[3]


# ---- task vectors --------------------------------------------------------------------------

def test_vector_refuses_wrong_shapes(case):
    refuses_wrong_shapes(case.vec, (ROWS, case.dim))


def test_vector_refuses_non_finite_actions_naming_rows_and_entries(case):
    vec = case.vec
    vec.reset(seed=0)
    for bad, shown in non_finite(case.actions(1, ROWS)):
        with pytest.raises(ValueError) as error:
            vec.step(bad)
        message = expected_owner_and_shape(error, type(vec).__name__, (ROWS, case.dim))
        assert f"row(s) [{ROWS - 1}]" in message, message
        assert f"({ROWS - 1}, {case.dim - 1})={shown}" in message, message


def test_refused_vector_steps_leave_every_row_as_an_undisturbed_twin(case):
    """The bad entries sit in the last row, so a check made row by row would already
    have stepped row 0 when it raised; the twin comparison catches that."""
    vec, twin = case.vec, case.vec_twin
    obs, obs_twin = vec.reset(seed=[4, 1]), twin.reset(seed=[4, 1])
    for key in obs:
        np.testing.assert_array_equal(obs[key], obs_twin[key])
    first, second = case.actions(2, ROWS), case.actions(3, ROWS)
    assert_same_step(vec.step(first), twin.step(first))
    refused = bad_shapes((ROWS, case.dim)) + [bad for bad, _ in non_finite(second)]
    for bad in refused:
        with pytest.raises(ValueError):
            vec.step(bad)
    assert_same_step(vec.step(second), twin.step(second))


def test_vector_after_set_tasks_needs_a_reset(case):
    vec = case.vec
    _, _, params = KINDS[case.kind]
    vec.reset(seed=0)
    vec.set_tasks(params, None)             # the same tasks again: still a new start
    with pytest.raises(RuntimeError, match=rf"{type(vec).__name__}\.step\(\) before reset\(\)"):
        vec.step(case.actions(0, ROWS))
    vec.reset(seed=0)
    vec.step(case.actions(0, ROWS))


# ---- never reset ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(KINDS))
def test_a_fresh_env_refuses_to_step_before_reset(kind):
    make_single, make_vec, params = KINDS[kind]
    single, vec = make_single(), make_vec(params[:1])
    try:
        dim = int(single.action_space.shape[0])
        for env, action in ((single, np.zeros(dim)), (vec, np.zeros((1, dim)))):
            with pytest.raises(RuntimeError, match=rf"^{type(env).__name__}\.step\(\) before "
                                                   rf"reset\(\): call reset\(\) first"):
                env.step(action)
        single.reset(seed=0)                # and a reset is all it needs
        single.step(np.zeros(dim))
    finally:
        for env in (single, vec):
            if hasattr(env, "close"):
                env.close()


def test_point_nav_vector_repeats_its_last_observation_after_the_episode():
    """The task-vector rule for ended rows (iwx.envs.vector), now also PointNavVec's."""
    vec = PointNavVec(np.array([[0.0, 0.3], [0.3, 0.0]]), episode_length=STEPS)
    toward = np.array([[0.0, 0.1], [0.1, 0.0]])          # each row heads for its goal
    vec.reset()
    for _ in range(STEPS):
        obs, reward, terminated, truncated = vec.step(toward)
    assert truncated.all() and np.allclose(reward, 1.0)
    again, reward, terminated_after, truncated_after = vec.step(toward)
    np.testing.assert_array_equal(again["position"], obs["position"])
    assert (reward == 0).all() and truncated_after.all() and not terminated_after.any()
