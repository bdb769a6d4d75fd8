"""Figures of kind ``training`` (the paper's figures 1 and 6): multi-task training curves
per method against env steps, and their table of final values.

The end-to-end tests run each shipped spec at its ``smoke`` scale once for the module
(figure 1: RS(0) and IWPL on Reach's cpu panel, 2 seeds; figure 6: Move Box with the
task-id and the task-description critic), then check what was recorded and drawn
against the runs' own logged series, by hand, and that a second invocation reuses
every run and redraws the same table.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from cli import ROOT, ran_figure_run, read_json, run_cli, run_dirs
from iwx.results import stats


def figure(args, **kwargs):
    return run_cli("iwx.figure", [str(a) for a in args], **kwargs)


def spec_of(number: int) -> dict:
    return yaml.safe_load((ROOT / "figures" / f"figure{number}.yaml").read_text())


# --------------------------------------------------------------------------- dry runs

@pytest.mark.parametrize("number,scale", [(1, "cpu"), (1, "paper"), (6, "cpu"), (6, "paper")])
def test_dry_run_lists_every_method_and_seed_with_its_estimate(tmp_path, number, scale):
    raw = spec_of(number)["scales"][scale]
    expected = [(p["task"], r) for p in raw["panels"] for r in p["runs"] for _ in raw["seeds"]]
    runs = tmp_path / "runs"
    proc = figure([number, "--dry-run", "--scale", scale, "--runs-dir", runs])
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if "will run" in line]
    assert len(rows) == len(expected)
    for row, (task, run) in zip(rows, expected):
        assert row.startswith(task) and run["gin"] in row
        assert row.split()[-1] == f"{run['minutes']:g}"
    total = sum(r["minutes"] for _, r in expected)
    assert f"{len(expected)} runs: 0 reused, {len(expected)} to run, about {total:g} min" \
        in proc.stdout
    assert not runs.exists()


def test_figure_1_gives_every_method_of_a_panel_the_same_updates_batch_and_ratio():
    """Figure 1's methods are compared at one env-step budget: nothing a run binds for
    itself may change the learner's updates, batch or the replay ratio."""
    schedule = ("MultiTaskTraining.", "DistributedTraining.", "pretrain_and_adapt.training")
    for name, scale in spec_of(1)["scales"].items():
        for panel in scale["panels"]:
            labels = [r["label"] for r in panel["runs"]]
            # the paper's five methods first; a further line is a variant of one of them
            assert labels[:5] == list(METHODS) or name == "smoke"
            assert all(label.startswith(tuple(f"{m}, " for m in METHODS))
                       for label in labels[5:]) or name == "smoke"
            for run in panel["runs"]:
                own = [b for b in run.get("bindings", []) if b.startswith(schedule)]
                assert own == [], (name, panel["task"], run["label"], own)


METHODS = ("RS(0)", "RS(0) + DISTRAL", "MPO", "MPO + DISTRAL", "IWPL")

# Appendix A.1, by hand: the best multi-task hyperparameters per task (learning rate 5e-4
# for every architecture). IWPL: its α, held fixed (FixedTemperature; the gin files carry
# no ε, docs/DECISIONS.md); RS(0) + DISTRAL: its α, the KL cost; MPO: the E-step ε and α,
# the KL cost that MPO + DISTRAL puts on π0.
A1 = {"gtt": {"iwpl": 0.1, "distral": 0.001, "mpo": (0.01, 0.0001)},
      "go_to_ring": {"iwpl": 0.01, "distral": 0.001, "mpo": (0.1, 0.001)},
      "move_box": {"iwpl": 0.01, "distral": 0.001, "mpo": (0.1, 0.01)},
      "reach": {"iwpl": 0.0001, "distral": 0.1, "mpo": (0.001, 0.0001)}}


@pytest.mark.parametrize("scale", ["cpu", "paper"])
def test_figure_1_runs_every_method_at_appendix_a1s_hyperparameters(tmp_path, scale):
    """Each run of figure 1 as the figure command plans it (its gin files and every
    binding, resolved) holds A.1's values for its task: the cpu panels are the same tasks
    made easier, so they take their task's values. A line labelled as a variant (not one
    of the paper's five) says its own value."""
    from iwx.figures.plan import make_plan
    from iwx.figures.spec import find, load

    plan = make_plan(load(find(1)), scale, runs_dir=str(tmp_path / "runs"))  # clears gin
    checked = set()
    for run in plan.runs:
        task, label, bound = run.panel.task.removesuffix("_cpu"), run.entry.label, run.bindings
        a1 = A1[task]
        if label == "IWPL":
            assert bound["FixedTemperature"]["alpha"] == a1["iwpl"], (task, label)
            assert bound["IWPL"]["critic_lr"] == bound["IWPL"]["prior_lr"] == 5e-4
        elif label in ("RS(0)", "RS(0) + DISTRAL"):
            want = 0.0 if label == "RS(0)" else a1["distral"]
            assert bound["ActorCritic"]["kl_cost"] == want, (task, label)
            assert bound["ActorCritic"]["critic_lr"] == bound["ActorCritic"]["policy_lr"] \
                == 5e-4
        elif label in ("MPO", "MPO + DISTRAL"):
            epsilon, alpha = a1["mpo"]
            assert bound["MPO"]["epsilon"] == epsilon, (task, label)
            assert bound["MPO"]["kl_cost"] == (0.0 if label == "MPO" else alpha), (task, label)
            assert bound["MPO"]["critic_lr"] == bound["MPO"]["policy_lr"] == 5e-4
        else:
            assert label == "RS(0) + DISTRAL, α 0.01 (A.2's)", label
            assert bound["ActorCritic"]["kl_cost"] == 0.01
        checked.add((task, label))
    assert {label for _, label in checked} >= set(METHODS)


# --------------------------------------------------------------------------- end to end

@pytest.fixture(scope="module", params=[1, 6])
def smoke(request, tmp_path_factory):
    """A smoke figure made once: (figure, runs folder, out folder, args, result)."""
    tmp = tmp_path_factory.mktemp(f"figure{request.param}")
    runs, out = tmp / "runs", tmp / "out"
    args = [request.param, "--scale", "smoke", "--runs-dir", runs, "--out", out]
    return request.param, runs, out, args, figure(args, timeout=900)


def outputs(number: int) -> list[str]:
    return [f"figure{number}.png", f"figure{number}.pdf", f"figure{number}_success.png",
            "table.md", "figure.json", "README.md"]


def hand_run_final(series: dict, metric: str, chunk: float, last: int) -> float:
    """By hand from one run's series.json: its ``metric`` values averaged within chunks of
    ``chunk`` env steps ((k-1)·chunk, k·chunk]), the mean of its last ``last`` chunks."""
    x = series["train/env_steps"]["values"]
    values = series[metric]["values"]
    assert series["train/env_steps"]["steps"] == series[metric]["steps"]
    chunks: dict[int, list[float]] = {}
    for xi, v in zip(x, values):
        chunks.setdefault(math.ceil(xi / chunk), []).append(v)
    means = [float(np.mean(chunks[k])) for k in sorted(chunks)]
    return float(np.mean(means[-last:]))


def hand_final(series_of_runs: list[dict], metric: str, chunk: float, last: int) -> str:
    """:func:`hand_run_final` of each run, then mean ± 95% CI (Student t) across runs."""
    finals = [hand_run_final(series, metric, chunk, last) for series in series_of_runs]
    mean, half = stats.mean_ci(np.array(finals))
    return f"{mean:.2f} ± {half:.2f}"


def test_the_smoke_figure_records_every_run_and_tabulates_them_by_hand(smoke):
    number, runs, out, _, proc = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in outputs(number):
        assert (out / name).stat().st_size > 0, name
    raw = spec_of(number)["scales"]["smoke"]
    seeds, last = raw["seeds"], spec_of(number)["last"]
    planned = [(p["task"], r["label"]) for p in raw["panels"] for r in p["runs"]]
    record = read_json(out / "figure.json")
    assert record["kind"] == "training" and record["chunk"] == raw.get("chunk")
    assert len(run_dirs(runs)) == len(planned) * len(seeds) == len(record["runs"])
    series, seeds_of = {}, {}
    for row in record["runs"]:
        folder = ran_figure_run(row)
        series.setdefault((row["panel"], row["label"]), []).append(
            read_json(folder / "series.json"))
        seeds_of.setdefault((row["panel"], row["label"]), []).append(
            (row["seed"], row["run_id"]))
    assert sorted(series) == sorted(planned)
    x_logged = [np.diff(s["train/env_steps"]["values"]) for per in series.values()
                for s in per]
    chunk = raw.get("chunk") or max(float(np.median(d)) for d in x_logged)   # logging period
    table = (out / "table.md").read_text()
    for (task, label), per in series.items():
        played = {s["train/env_steps"]["values"][-1] for s in per}
        assert len(played) == 1                     # one env-step budget for every seed
        cells = [hand_final(per, m, chunk, last) for m in ("train/return", "train/success")]
        by_seed = sorted(zip(seeds_of[(task, label)], per))
        each = " · ".join(f"seed {seed} (#{run_id}): "
                          f"{hand_run_final(s, 'train/return', chunk, last):.2f} / "
                          f"{hand_run_final(s, 'train/success', chunk, last):.2f}"
                          for (seed, run_id), s in by_seed)
        assert f"| {task} | {label} | {len(seeds)} | {played.pop():,.0f} | " \
               f"{cells[0]} | {cells[1]} | {each} |" in table, table
    panel = record["panels"][0]
    assert [line["label"] for line in panel["lines"]] == \
        [r["label"] for r in raw["panels"][0]["runs"]]
    for line in panel["lines"]:
        assert line["runs"] == len(seeds) and line["window"] == raw["window"]
        assert line["table"]["runs"] == len(seeds)
    readme = (out / "README.md").read_text()
    assert f"![figure {number}](figure{number}.png)" in readme and table.strip() in readme
    assert table.strip() in proc.stdout


def test_the_same_command_again_reuses_every_run_and_redraws_the_same_table(smoke):
    number, runs, out, args, first = smoke
    assert first.returncode == 0
    before = [d.name for d in run_dirs(runs)]
    table = (out / "table.md").read_text()
    for name in outputs(number):
        (out / name).unlink()
    again = figure(args, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [d.name for d in run_dirs(runs)] == before
    assert f"every run reused ({len(before)} runs): only redrawing" in again.stdout
    assert "started" not in again.stdout
    for name in outputs(number):
        assert (out / name).stat().st_size > 0, name
    assert (out / "table.md").read_text() == table


# --------------------------------------------------------------------------- the numbers

def test_a_runs_final_value_is_the_mean_of_the_last_chunks_it_reached():
    """Three runs, float64 chunk means as the drawing holds them; run 8 reached no chunk
    (it is left out), run 9 stopped after chunk 2. Per run: (3 + 4) / 2 = 3.5 and (2 + 4) / 2 = 3.0; across runs 3.25 ±
    t(0.975, 1) · s / √2 with s = 0.5 / √2: 12.7062 · 0.25 = 3.1766."""
    from iwx.figures.draw import final_numbers
    from iwx.results.curves import Line

    raw = np.array([[1.0, 2.0, 3.0, 4.0], [np.nan] * 4, [2.0, 4.0, np.nan, np.nan]])
    line = Line(label="m", group="m", variant="train/return", x=[10.0, 20.0, 30.0, 40.0],
                mean=[], ci95=[], units=2, runs=3, window=1, unit="run", raw=raw,
                run_ids=[7, 8, 9])
    numbers = final_numbers(line, 2)
    assert numbers["per_run"] == [3.5, 3.0]
    assert numbers["per_run_ids"] == [7, 9]          # run 8 reached no chunk
    assert numbers["final_mean"] == pytest.approx(3.25, abs=1e-12)
    assert numbers["final_ci95"] == pytest.approx(3.17655, abs=1e-4)
    assert final_numbers(line, 1)["per_run"] == [4.0, 4.0]
    empty = Line(label="m", group="m", variant="train/return", x=[10.0], mean=[], ci95=[],
                 units=0, runs=0, window=1, unit="run", raw=np.full((1, 1), np.nan))
    assert final_numbers(empty, 3)["runs"] == 0


def test_the_trailing_mean_is_over_chunk_positions_not_over_logged_chunks():
    """Chunks 1, 2, 4, 5 logged (3 empty: a log every ~chunk leaves some empty), window 3:
    the mean of the logged chunks among the last 3 positions, NaN outside the run."""
    from iwx.results.stats import rolling_mean, trailing_chunk_mean

    got = trailing_chunk_mean([1, 2, 4, 5], np.array([1.0, 2.0, 4.0, 5.0]), 3,
                              [0, 1, 2, 3, 4, 5, 6])
    np.testing.assert_allclose(got, [np.nan, 1.0, 1.5, 1.5, 3.0, 4.5, np.nan])
    values = np.array([0.3, -1.2, 2.5, 0.7, 4.1])        # no chunk missing: rolling_mean
    np.testing.assert_allclose(trailing_chunk_mean([1, 2, 3, 4, 5], values, 3,
                                                   [1, 2, 3, 4, 5]), rolling_mean(values, 3))


def test_a_run_that_logged_nothing_in_a_chunk_stays_in_the_line_there():
    """Run A logs every chunk of 10 updates (1, 2, 3, 4), run B none in chunk 2 (2, 6, 8 at
    10, 30, 40). Trailing 3 chunks: A 1, 1.5, 2, 3; B 2, 2, (2 + 6) / 2 = 4, (6 + 8) / 2
    = 7; both runs at every chunk, so the line is 1.5, 1.75, 3, 5."""
    from iwx.experiment.store import RecordedRun
    from iwx.results.curves import training_lines

    def run(i, steps, values):
        return RecordedRun(id=i, source="test", status="COMPLETED", config={}, info={},
                           meta={}, metrics={"train/return": (np.array(steps),
                                                              np.array(values, np.float64))})

    (line,), x_name = training_lines({"m": [run(1, [10, 20, 30, 40], [1, 2, 3, 4]),
                                            run(2, [10, 30, 40], [2, 6, 8])]}, 3, 10.0)
    assert x_name == "learner updates"
    assert line.x == [10.0, 20.0, 30.0, 40.0]
    assert line.n == [2, 2, 2, 2]
    np.testing.assert_allclose(line.mean, [1.5, 1.75, 3.0, 5.0])
    assert np.isnan(line.raw[1, 1])                    # the table's raw chunks stay as logged
