"""iwx.results.plateau: the end of a training series against the stretch before it,
checked against hand computations (float64, as series.json's values are read)."""

from __future__ import annotations

import numpy as np
import pytest

from iwx.results.plateau import plateau


def test_two_points_a_stretch_by_hand():
    # n = 10, fraction 0.2: k = 2; before = [4, 6] (mean 5, s² = 2), last = [7, 9]
    # (mean 8, s² = 2). se = √(2/2 + 2/2) = √2; Welch df = (1 + 1)² / (1²/1 + 1²/1) = 2;
    # t(0.975, 2) = 4.302653 -> half-width 6.084933. Change 3 < 6.08: not rising.
    values = [0, 0, 0, 0, 0, 0, 4, 6, 7, 9]
    got = plateau(values)
    assert got["points"] == 2 and got["before"] == 5.0 and got["last"] == 8.0
    assert got["change"] == 3.0
    assert got["ci95"] == pytest.approx(4.302653 * np.sqrt(2), rel=1e-6)
    assert got["rising"] is False


def test_five_points_a_stretch_by_hand_still_rising():
    # n = 25: k = 5; before = 1..5 (mean 3, s² = 2.5), last = 11..15 (mean 13, s² = 2.5).
    # se = √(0.5 + 0.5) = 1; df = (1)² / (0.25/4 + 0.25/4) = 8; t(0.975, 8) = 2.306004.
    values = list(range(-14, 1)) + [1, 2, 3, 4, 5] + [11, 12, 13, 14, 15]
    got = plateau(values)
    assert got["points"] == 5 and got["before"] == 3.0 and got["last"] == 13.0
    assert got["ci95"] == pytest.approx(2.306004, rel=1e-6)
    assert got["change"] == 10.0 and got["rising"] is True


def test_unequal_spreads_use_welchs_degrees_of_freedom():
    # k = 2: before = [0, 2] (s² = 2), last = [10, 10] (s² = 0): se = 1, df = 1,
    # t(0.975, 1) = 12.706205: the change 9 is inside it.
    got = plateau([0, 0, 0, 2, 10, 10], fraction=0.34)
    assert got["points"] == 2
    assert got["ci95"] == pytest.approx(12.706205, rel=1e-6) and got["rising"] is False


def test_a_flat_series_is_a_plateau_and_nans_are_dropped():
    got = plateau([1.0, np.nan, 1.0, 1.0, 1.0, 1.0])
    assert got == {"points": 2, "first": 1.0, "before": 1.0, "last": 1.0, "change": 0.0,
                   "ci95": 0.0, "significant": False, "gain": 0.0, "gain_ci95": 0.0,
                   "gain_resolved": False, "share": None, "rising": False}


def test_a_resolved_rise_under_a_tenth_of_the_runs_gain_is_a_flattening_curve():
    # n = 10, k = 2: first = [0, 2] (mean 1), before = [20, 20.2] (mean 20.1),
    # last = [21, 21.2] (mean 21.1). se = √(0.02/2 + 0.02/2) = √0.02, df = 2:
    # half-width 4.302653 · 0.141421 = 0.608490 < change 1.0: a resolved rise.
    # gain = 21.1 − 1 = 20.1; share = 1.0 / 20.1 = 0.049751 < 0.1: flattening.
    values = [0, 2, 5, 10, 15, 18, 20, 20.2, 21, 21.2]
    got = plateau(values)
    assert got["first"] == 1.0 and got["gain"] == pytest.approx(20.1)
    assert got["change"] == pytest.approx(1.0)
    assert got["ci95"] == pytest.approx(4.302653 * np.sqrt(0.02), rel=1e-6)
    assert got["significant"] is True
    assert got["share"] == pytest.approx(1.0 / 20.1)
    assert got["rising"] is False
    # the same rise counts with a bar of 4%, and a bar of 0 is the interval alone
    assert plateau(values, min_share=0.04)["rising"] is True
    assert plateau(values, min_share=0.0)["rising"] is True


def test_the_share_is_of_the_size_of_the_gain_and_a_fall_then_rise_can_be_rising():
    # first = [10, 10], before = [0, 0.2] (mean 0.1), last = [3, 3.2] (mean 3.1):
    # change 3 (half-width 0.608490), gain = 3.1 − 10 = −6.9, share = 3 / 6.9 = 0.4348
    got = plateau([10, 10, 6, 4, 2, 1, 0, 0.2, 3, 3.2])
    assert got["gain"] == pytest.approx(-6.9) and got["share"] == pytest.approx(3 / 6.9)
    assert got["rising"] is True
    with pytest.raises(ValueError, match="min_share must be >= 0"):
        plateau(range(10), min_share=-0.1)


def test_a_curve_that_never_rose_is_not_rising_whatever_its_last_stretch_did():
    # k = 2: first = [0, 0.4] (mean 0.2, s² = 0.08), before = [−2, −2.2] (mean −2.1,
    # s² = 0.02), last = [0.4, 0.6] (mean 0.5, s² = 0.02). The change 2.6 is resolved
    # (half-width 4.302653 · √0.02 = 0.608490), but the run's gain 0.5 − 0.2 = 0.3 is not:
    # se = √(0.08/2 + 0.02/2) = √0.05, Welch df = 0.05² / (0.04² + 0.01²) = 1.470588,
    # t(0.975, 1.470588) = 6.188115 -> half-width 1.383705 > 0.3. A share of 867% of a
    # gain that is noise is no evidence of a rise (record 83 read "still rising" so).
    got = plateau([0, 0.4, -1, -1, -1, -1, -2, -2.2, 0.4, 0.6])
    assert got["significant"] is True and got["change"] == pytest.approx(2.6)
    assert got["gain"] == pytest.approx(0.3)
    assert got["gain_ci95"] == pytest.approx(6.188115 * np.sqrt(0.05), rel=1e-6)
    assert got["gain_resolved"] is False and got["rising"] is False
    # the fall-then-rise curve's fall is resolved, so it stays rising (test above)
    assert plateau([10, 10, 6, 4, 2, 1, 0, 0.2, 3, 3.2])["gain_resolved"] is True


def test_too_short_a_series_says_nothing_and_a_bad_fraction_is_refused():
    assert plateau([1.0, 2.0, 3.0]) is None
    with pytest.raises(ValueError, match="fraction must be in"):
        plateau(range(10), fraction=0.6)


def test_the_tenth_is_about_where_a_logarithmic_curve_sits():
    # docs/DECISIONS.md: ln t on t ∈ (0, 1], fifths: first = ln 0.2 − 1 = −2.6094,
    # before = (0.8 ln 0.8 − 0.6 ln 0.6 − 0.2)/0.2 = −0.3601, last = (−0.8 ln 0.8 − 0.2)/0.2
    # = −0.1074: change 0.2527 of gain 2.5020 = 10.1% in the continuum. 400 points at
    # t = i/400 land just above it; a curve that saturates (1 − e^(−5t)) far below.
    t = np.arange(1, 401) / 400.0
    log = plateau(np.log(t))
    assert log["share"] == pytest.approx(0.1024, abs=5e-4) and log["rising"] is True
    saturating = plateau(1.0 - np.exp(-5.0 * t))
    assert saturating["share"] == pytest.approx(0.0321, abs=5e-4)
    assert saturating["rising"] is False


def test_the_table_names_each_verdict():
    from iwx.figures.plateaus import plateau_table

    def row(values):
        return {"panel": "p", "label": "m", "seed": 0, "updates": 1000.0, **plateau(values)}

    lines = plateau_table([row([0, 2, 5, 10, 15, 18, 20, 20.2, 21, 21.2]),   # flattening
                           row([0, 0.4, -1, -1, -1, -1, -2, -2.2, 0.4, 0.6]),  # never rose
                           row(list(range(-14, 1)) + [1, 2, 3, 4, 5, 11, 12, 13, 14, 15]),
                           row([1.0] * 10)]).splitlines()[2:]
    assert lines[0].endswith("| 5% | flattening |")
    assert lines[1].endswith("| — | no (no gain over the run) |")
    assert lines[2].endswith("| **yes** |")
    assert lines[3].endswith("| — | no (no gain over the run) |")   # flat from the start
