"""``python -m iwx.figure N --until WHEN``: only runs whose estimate ends before WHEN start
(iwx/figures/deadline.py). The deadline's arithmetic by hand, the dry run's schedule, and
end to end: a run that fits is recorded, one that does not is left (exit 3) and runs
with the same command later."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from cli import ROOT, read_json, run_cli
from iwx.figures.deadline import SAFETY, fits, parse_until, schedule

NOW = dt.datetime(2026, 12, 5, 22, 40, 15)


@pytest.mark.parametrize("text, expected", [
    ("150m", dt.datetime(2026, 12, 6, 1, 10, 15)),
    ("2.5h", dt.datetime(2026, 12, 6, 1, 10, 15)),
    ("90s", dt.datetime(2026, 12, 5, 22, 41, 45)),
    ("23:05", dt.datetime(2026, 12, 5, 23, 5)),           # later today
    ("00:55", dt.datetime(2026, 12, 6, 0, 55)),           # past midnight: tomorrow
    ("22:40", dt.datetime(2026, 12, 6, 22, 40)),          # a minute gone: tomorrow's
    ("2026-12-06 00:55", dt.datetime(2026, 12, 6, 0, 55)),
    ("2026-12-06T00:55", dt.datetime(2026, 12, 6, 0, 55)),
])
def test_until_reads_a_time_of_day_a_date_or_a_duration(text, expected):
    assert parse_until(text, NOW) == expected


@pytest.mark.parametrize("text, words", [
    ("soon", "expected a time of day (00:55), a date and time"),
    ("24:00", "not a time of day"),
    ("0m", "a duration must be > 0"),
    ("2026-12-05 21:00", "that is in the past"),
])
def test_a_bad_until_says_what_it_takes(text, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_until(text, NOW)


def test_a_run_fits_when_its_estimate_with_the_margin_ends_in_time():
    assert SAFETY == 1.2
    assert fits(100.0, 0.0, 120 * 60.0)              # 1.2 × 100 min = 120 min: just
    assert not fits(100.0, 1.0, 120 * 60.0)          # a second later: not
    assert fits(1e6, 0.0, None)                      # no deadline: everything


@dataclasses.dataclass(eq=False)
class Run:
    number: int
    minutes: float
    after: "Run | None" = None


def test_the_dry_runs_schedule_fills_free_slots_with_the_first_run_that_fits():
    a, b, c, d = Run(1, 50), Run(2, 80), Run(3, 10), Run(4, 30)
    # one slot, 120 min: a at 0 (60 ≤ 120); b at 50 needs 96 more: no; c at 50 (12);
    # d at 60 needs 36: 96 ≤ 120, yes
    starts, left = schedule([a, b, c, d], 1, 120, lambda r: r.minutes, lambda r: r.after)
    assert starts == {1: 0.0, 3: 50.0, 4: 60.0} and left == [b]
    # two slots: a and b at 0; c at 50, d at 60 (c's slot)
    starts, left = schedule([a, b, c, d], 2, 120, lambda r: r.minutes, lambda r: r.after)
    assert starts == {1: 0.0, 2: 0.0, 3: 50.0, 4: 60.0} and left == []


def test_a_run_waits_for_its_pretraining_and_is_left_with_it():
    pre, adapt, other = Run(1, 60), Run(2, 20), Run(3, 30)
    adapt.after = pre
    # two slots: pre and other at 0; adapt waits for pre's end at 60: 60 + 24 ≤ 90
    starts, left = schedule([pre, adapt, other], 2, 90, lambda r: r.minutes,
                            lambda r: r.after)
    assert starts == {1: 0.0, 3: 0.0, 2: 60.0} and left == []
    # 70 min: pre (72 > 70) is left, and so is what adapts from it; other still starts
    starts, left = schedule([pre, adapt, other], 2, 70, lambda r: r.minutes,
                            lambda r: r.after)
    assert starts == {3: 0.0} and left == [pre, adapt]
    # a pretraining recorded already (not among the runs): its adaptation just starts
    starts, left = schedule([adapt], 1, 30, lambda r: r.minutes, lambda r: r.after)
    assert starts == {2: 0.0} and left == []


def test_a_run_another_process_is_running_is_left_to_it_with_what_adapts_from_it():
    pre, adapt, other = Run(1, 60), Run(2, 20), Run(3, 30)
    adapt.after = pre
    # pre is held elsewhere: left at once, adapt with it; other takes the slot at 0
    # (without ``held`` pre would start at 0 and other at 60: see the test above)
    starts, left = schedule([pre, adapt, other], 1, 120, lambda r: r.minutes,
                            lambda r: r.after, lambda r: r is pre)
    assert starts == {3: 0.0} and left == [pre, adapt]


# --------------------------------------------------------------------- end to end

def spec_with_a_long_run(tmp_path):
    """Figure 3's smoke scale, its RL² run estimated at 500 minutes (it takes seconds)."""
    text = (ROOT / "figures" / "figure3.yaml").read_text()
    old = '{gin: gin/reach_rl2.gin, minutes: 0.3, label: "RL²"}'
    assert old in text
    path = tmp_path / "figure3.yaml"
    path.write_text(text.replace(old, old.replace("minutes: 0.3", "minutes: 500")))
    return path


def figure(args):
    return run_cli("iwx.figure", [str(a) for a in args], timeout=900)


def test_until_runs_what_fits_and_leaves_the_rest_for_the_same_command(tmp_path):
    spec, runs, out = spec_with_a_long_run(tmp_path), tmp_path / "runs", tmp_path / "out"
    pick = ["--scale", "smoke", "--panels", "reach_cpu", "--runs", "From Scratch", "RL²",
            "--runs-dir", runs, "--out", out, "--spec", spec]

    dry = figure([*pick, "--dry-run", "--until", "3h"])
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "1 of 2 would start" in dry.stdout
    assert "run 2/2 at +0 min" in dry.stdout and "left for later: 1/2" in dry.stdout

    proc = figure([*pick, "--until", "3h"])
    assert proc.returncode == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    # (the minutes left depend on how long planning took: not asserted)
    assert re.search(r"run 1/2 not started: reach_cpu · gin/reach_rl2\.gin · seed 0 \(1\.2 × "
                     r"its estimate of 500 min does not end in the 1[78]\d min before "
                     r"--until 3h", proc.stdout), proc.stdout[-2000:]
    assert "1 run(s) not started for --until 3h" in proc.stderr
    assert "failed" not in proc.stderr
    record = read_json(out / "figure.json")
    rows = {r["label"]: r for r in record["runs"]}
    assert rows["RL²"]["status"] == "not started" and "500 min" in rows["RL²"]["not_started"]
    assert rows["From Scratch"]["status"] == "ran"
    done = [read_json(d / "run.json") for d in runs.glob("[0-9]*")]
    assert [r["status"] for r in done] == ["COMPLETED"]              # RL² never started

    later = figure([*pick])                     # no deadline: the one left runs now
    assert later.returncode == 0, later.stdout[-3000:] + later.stderr[-3000:]
    assert "run 2/2 reused" in later.stdout and "run 1/2 started" in later.stdout


def test_a_bad_until_is_refused_before_anything_runs(tmp_path):
    proc = figure([3, "--scale", "smoke", "--until", "later", "--runs-dir", tmp_path / "r"])
    assert proc.returncode == 2
    assert "--until later: expected a time of day" in proc.stderr
    assert not (tmp_path / "r").exists()


# ------------------------------------------------- runs stopped part-way start first

def test_a_run_stopped_with_a_checkpoint_starts_before_the_fresh_ones(tmp_path, monkeypatch):
    """A figure spanning sessions ends the run its checkpoint says was going before it
    starts fresh ones (iwx.figures.plan.Plan.to_run): in the dry run's ``--until``
    schedule and in the order the command hands the runs to iwx.figures.execute."""
    import iwx.figures.execute
    from iwx.figure import main
    from iwx.figures.plan import make_plan
    from iwx.figures.spec import load
    from iwx.loops.checkpoint import Checkpointer

    monkeypatch.chdir(ROOT)
    spec, runs = ROOT / "figures" / "figure3.yaml", tmp_path / "runs"
    plan = make_plan(load(spec), "smoke", runs_dir=str(runs))
    numbers = [p.number for p in plan.runs]
    assert [p.number for p in plan.to_run()] == numbers          # nothing stopped yet
    stopped = plan.runs[2]
    ck = Checkpointer(runs / "_checkpoints" / stopped.key)
    ck.meta = {"run_id": "3"}
    ck.save({"phase": "train"}, "train:4")
    assert [p.number for p in plan.to_run()] == [3] + [n for n in numbers if n != 3]

    total = len(plan.runs)
    dry = figure([3, "--scale", "smoke", "--runs-dir", runs, "--dry-run", "--until", "3h"])
    assert dry.returncode == 0, dry.stderr[-3000:]
    starts = re.findall(rf"run (\d+)/{total} at \+([\d.]+) min", dry.stdout)
    assert starts[0] == ("3", "0") and [n for n, _ in starts[1:3]] == ["1", "2"], dry.stdout

    handed = []

    class Handed(Exception):
        pass

    def record(missing, *args, **kwargs):
        handed.extend(p.number for p in missing)
        raise Handed

    monkeypatch.setattr(iwx.figures.execute, "execute", record)
    with pytest.raises(Handed):
        main(["3", "--scale", "smoke", "--runs-dir", str(runs), "--out", str(tmp_path / "o")])
    assert handed == [3] + [n for n in numbers if n != 3]
