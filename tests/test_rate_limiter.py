"""The samples-per-insert rate limiter (iwx.loops.rate_limiter) against hand-worked rules."""

from __future__ import annotations

import numpy as np
import pytest

from iwx.loops.rate_limiter import SampleToInsertRatio


def test_blocking_rules_on_a_hand_worked_sequence():
    # r = 2, m = 4, b = 3: diff = 2 I - S; samples need I >= 4 and diff - n >= 8 - 3 = 5;
    # inserts need I' + n <= 4 or 2 (I' + n) - S <= 8 + 3 = 11 (I' counts reserved inserts).
    lim = SampleToInsertRatio(samples_per_insert=2, min_size_to_sample=4, error_buffer=3)
    assert not lim.can_sample(1)                 # nothing inserted
    assert lim.can_insert(2)                     # 2 <= m
    lim.insert(2)
    assert not lim.can_sample(1)                 # I = 2 < m
    assert lim.can_insert(2)                     # 4 <= m
    lim.insert(2)                                # I = 4, diff = 8
    assert lim.can_sample(3)                     # 8 - 3 = 5 >= 5
    assert not lim.can_sample(4)                 # 8 - 4 = 4 < 5
    lim.sample(2)                                # S = 2, diff = 6
    assert not lim.can_sample(2)                 # 6 - 2 = 4 < 5: the learner waits
    assert lim.can_sample(1)                     # 6 - 1 = 5
    assert lim.can_insert(2)                     # 2 * 6 - 2 = 10 <= 11
    lim.reserve(2)                               # an actor plays an episode of up to 2
    assert not lim.can_insert(1)                 # 2 * 7 - 2 = 12 > 11: the next actor waits
    assert not lim.can_sample(2)                 # a reserved insert is not yet data
    lim.insert(2, reserved=2)                    # it arrives: I = 6, diff = 10
    assert lim.reserved == 0
    assert lim.can_sample(5) and not lim.can_sample(6)   # 10 - 5 = 5; 10 - 6 = 4
    lim.sample(2)
    lim.sample(2)                                # S = 6, diff = 6
    assert not lim.can_sample(2)
    assert lim.can_insert(2)                     # 2 * 8 - 6 = 10 <= 11
    lim.reserve(2)
    lim.insert(1, reserved=2)                    # terminated early: I = 7, diff = 8
    assert lim.reserved == 0
    assert lim.can_sample(3) and not lim.can_sample(4)
    lim.reserve(2)
    lim.release(2)                               # its actor died: nothing arrives
    assert lim.reserved == 0 and lim.inserted == 7
    assert lim.measured() == pytest.approx(6 / 3)   # S / (I - m)


def test_a_buffer_too_small_to_make_progress_is_refused():
    # steady state: both wait when 2 b < r n_insert + n_sample = 2 * 4 + 10 = 18
    lim = SampleToInsertRatio(samples_per_insert=2, min_size_to_sample=4, error_buffer=8.5)
    with pytest.raises(ValueError, match="at least 9"):
        lim.check(insert_size=4, sample_size=10)
    SampleToInsertRatio(2, 4, 9).check(insert_size=4, sample_size=10)
    # start: m = 5, inserts of 4: I = 4 < m, the next insert needs r (8 - 5) = 6 <= b
    lim = SampleToInsertRatio(samples_per_insert=2, min_size_to_sample=5, error_buffer=5)
    with pytest.raises(ValueError, match="at least 8"):      # b >= r n_insert = 8
        lim.check(insert_size=4, sample_size=2)
    lim.insert(4)
    assert not lim.can_sample(1) and not lim.can_insert(4)    # what it would come to


@pytest.mark.parametrize("bad", [dict(samples_per_insert=0), dict(min_size_to_sample=0),
                                 dict(error_buffer=-1)])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        SampleToInsertRatio(**{"samples_per_insert": 1, "min_size_to_sample": 1,
                               "error_buffer": 1, **bad})


@pytest.mark.parametrize("actors", [1, 2, 4])
def test_random_actors_and_learner_keep_the_ratio_and_never_deadlock(actors):
    """Actors that take random times and insert episodes of random length, a learner that
    samples whenever allowed: once I >= m, |r (I - m) - S| <= b after every event, the
    system never stalls, and S / (I - m) ends within 2% of r."""
    rng = np.random.default_rng(actors)
    r, episode, batch = 3.0, 40, 16
    lim = SampleToInsertRatio(r, min_size_to_sample=episode,
                              error_buffer=actors * r * episode + batch)
    lim.check(episode, batch)
    playing = {}                                 # actor -> steps left
    for _ in range(20000):
        for a in range(actors):                  # idle actors start when allowed
            if a not in playing and lim.can_insert(episode):
                lim.reserve(episode)
                playing[a] = int(rng.integers(1, 5))
        moved = False
        for a in list(playing):                  # actors progress at random speeds
            if rng.random() < 0.5:
                playing[a] -= 1
                if playing[a] == 0:
                    del playing[a]
                    lim.insert(int(rng.integers(episode // 2, episode + 1)), reserved=episode)
                    moved = True
        if lim.can_sample(batch):
            lim.sample(batch)
            moved = True
        assert moved or playing, "actors and learner both blocked"
        if lim.inserted >= lim.min_size_to_sample:
            gap = r * (lim.inserted - lim.min_size_to_sample) - lim.sampled
            assert -lim.error_buffer <= gap <= lim.error_buffer
    assert lim.measured() == pytest.approx(r, rel=0.02)


def test_checkpoint_keeps_counts_and_drops_reservations():
    lim = SampleToInsertRatio(2, 4, 10)
    lim.insert(6)
    lim.sample(3)
    lim.reserve(4)
    other = SampleToInsertRatio(2, 4, 10)
    other.load_state_dict(lim.state_dict())
    assert (other.inserted, other.sampled, other.reserved) == (6, 3, 0)
