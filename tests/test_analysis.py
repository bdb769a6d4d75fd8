"""Means, 95% CIs, pooling, smoothing and tables over adaptation returns, against hand
computations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from iwx.results.figures import RATE, Panel, _draw, band, metric_bounds, plot_curves, y_range
from iwx.results.stats import curve, mean_ci, summary
from iwx.results.tables import adaptation_table


def test_mean_ci_is_a_student_t_interval():
    mean, half = mean_ci(np.array([1.0, 2.0, 3.0]))
    # sd = 1, sem = 1/sqrt(3), t(0.975, 2 dof) = 4.302653
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-5)
    assert mean_ci(np.array([5.0]))[1] == 0.0


def test_summary_averages_seeds_first_then_takes_the_ci_across_tasks():
    # 2 tasks x 2 seeds x 4 episodes; 2 exploration episodes
    returns = np.array([[[0, 0, 2, 4], [0, 0, 4, 6]],
                        [[0, 0, 0, 2], [0, 0, 2, 2]]], dtype=float)
    s = summary(returns, exploration_episodes=2, last=2)
    # per task, last 2 episodes: task 0 -> mean(3, 5) = 4; task 1 -> mean(1, 2) = 1.5
    assert s["last3_mean"] == pytest.approx(2.75)
    assert s["last3_ci95"] == pytest.approx(12.706205 * (2.5 / math.sqrt(2)) / math.sqrt(2),
                                            rel=1e-5)
    assert s["post_exploration_mean"] == pytest.approx(2.75)   # episodes 3-4 here as well
    assert math.isnan(summary(returns, exploration_episodes=4)["post_exploration_mean"])


def test_table_rows_and_figure(tmp_path):
    returns = {"A": np.ones((3, 2, 4)), "B": np.zeros((3, 2, 4))}
    table = adaptation_table(returns, oracle=np.full(3, 13.0)).splitlines()
    assert table[0] == "| episode | A | B | oracle |"
    assert table[2] == "| 1 | 1.00 ± 0.00 | 0.00 ± 0.00 | 13.00 ± 0.00 |"
    assert len(table) == 2 + 4
    plot_curves([curve(name, r) for name, r in returns.items()], [tmp_path / "f.png"],
                xlabel="episode", ylabel="return", oracle=13.0, exploration=2)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rates_interval_is_drawn_inside_zero_and_one():
    # float64, as the curves' means and half-widths are (iwx.results.stats)
    mean, half = np.array([0.1, 0.5, 0.9]), np.array([0.3, 0.2, 0.4])
    lower, upper = band(mean, half, RATE)
    np.testing.assert_allclose(lower, [0.0, 0.3, 0.5])
    np.testing.assert_allclose(upper, [0.4, 0.7, 1.0])
    lower, upper = band(mean, half)                       # a return: as computed
    np.testing.assert_allclose(lower, [-0.2, 0.3, 0.5])
    np.testing.assert_allclose(upper, [0.4, 0.7, 1.3])


@pytest.mark.parametrize("bounds, low, high", [(RATE, 0.0, 1.0), (None, -0.2, 1.3)])
def test_the_shaded_band_on_the_axes_is_the_clipped_one(bounds, low, high):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    line = SimpleNamespace(label="a", x=[1, 2, 3], mean=[0.1, 0.5, 0.9], ci95=[0.3, 0.2, 0.4])
    fig, ax = plt.subplots()
    _draw(ax, Panel([line], bounds=bounds), "x", "rate", integer_x=False, many=False)
    (shade,) = ax.collections
    ys = np.concatenate([path.vertices[:, 1] for path in shade.get_paths()])
    plt.close(fig)
    assert ys.min() == pytest.approx(low) and ys.max() == pytest.approx(high)


def test_training_figures_bound_the_success_rate_and_nothing_else():
    assert metric_bounds("train/success") == RATE
    assert metric_bounds("train/return") is None
    assert metric_bounds("train/success_radius") is None


def test_intervals_over_two_runs_do_not_flatten_the_panel():
    """Figure 1 with DISTRAL's second seed: a 2-run interval (t = 12.7) spanned −600 to
    900 over lines between 0 and 200. The axes keep every mean and every interval over 3
    runs, 5% beyond them; the 2-run one is clipped and the panel says so."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    three = SimpleNamespace(label="3 seeds", x=[1, 2, 3], mean=[0.0, 1.0, 2.0],
                            ci95=[0.5, 0.5, 0.5], n=[3, 3, 3])
    two = SimpleNamespace(label="2 seeds", x=[1, 2, 3], mean=[1.0, 2.0, 3.0],
                          ci95=[50.0, 50.0, 50.0], n=[2, 2, 2])
    # means 0..3, the 3-run band −0.5..2.5: −0.5..3, padded by 5% of 3.5
    assert y_range(Panel([three, two])) == pytest.approx((-0.675, 3.175))
    assert y_range(Panel([three])) is None                 # nothing to clip: matplotlib's
    assert y_range(Panel([three, two], bounds=RATE)) is None   # a rate: within [0, 1]
    fig, ax = plt.subplots()
    _draw(ax, Panel([three, two]), "x", "return", integer_x=False, many=False)
    assert ax.get_ylim() == pytest.approx((-0.675, 3.175))
    assert [t.get_text() for t in ax.texts] == ["intervals over 2 runs clipped at the axes"]
    plt.close(fig)
    fig, ax = plt.subplots()
    _draw(ax, Panel([three]), "x", "return", integer_x=False, many=False)
    low, high = ax.get_ylim()
    assert low <= -0.5 and high >= 2.5 and not ax.texts
    plt.close(fig)
    # a reference line stays in view; a line without n counts by its units (adaptation:
    # (run, task) units), and one saying neither counts as many
    assert y_range(Panel([three, two], oracle=10.0))[1] == pytest.approx(10.0 + 0.525)
    wide = SimpleNamespace(label="tasks", x=[1, 2, 3], mean=[1.0, 2.0, 3.0],
                           ci95=[50.0, 50.0, 50.0])
    assert y_range(Panel([three, wide])) is None
    assert y_range(Panel([three, SimpleNamespace(**vars(wide), units=2)])) == \
        pytest.approx((-0.675, 3.175))
