"""A sweep stopped by Ctrl-C or SIGTERM with failed, completed and locked trials present:
the exit status, the counts, the rows and the line saying how to continue are right.

End to end: a real ``python -m iwx.sweep`` on tiny budgets where one configuration fails
at run time (``DivergenceGuard.max_abs = 1e-06``: every loss exceeds it at the first
update; the sweep's configuration check accepts the value, only the run can tell), one
trial's run lock is held by this test (as an orphaned trial of a killed sweep driver
would hold it), and the sweep is interrupted with SIGINT (SIGTERM, and a resume that
runs no trial twice: tests/test_sweep.py). The pure parts (how Ray Tune's trials become
outcomes, rows and counts; the signal handler) are checked by hand below, without Ray.
"""

from __future__ import annotations

import math
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cli import ROOT, TINY, read_json, run_dirs

AXIS = "DivergenceGuard.max_abs"
BAD, GOOD = 1e-06, 1e8       # BAD: every trial of it fails at its first update
SEEDS = (0, 1, 2, 3)
HANG_GUARD_S = 300           # only so that a hung sweep fails the test instead of CI


# --------------------------------------------------------------------------- by hand

def trial(status, seed=0, value=GOOD, scores=(), error=None, elsewhere=False, search=False):
    """A plain trial as :func:`iwx.tuning.outcomes.plain_trials` gives it."""
    config = {"params": {"p0": value}} | ({} if search else {"seed": seed})
    seeds = list(SEEDS)[:len(scores)] if search else [seed][:len(scores)]
    last = {"seeds_list": seeds, "scores": list(scores),
            "run_ids": [str(10 + i) for i in range(len(scores))]} if scores else {}
    return {"config": config, "status": status, "last_result": last, "error": error,
            "elsewhere": elsewhere, "trial_id": "t"}


def test_every_trial_state_becomes_the_right_outcome():
    from iwx.tuning.outcomes import outcomes

    found = outcomes([
        trial("ERROR", 0, BAD, error="RunStopped: diverged"),      # failed before reporting
        trial("TERMINATED", 0, GOOD, scores=[1.5]),
        trial("ERROR", 1, GOOD, error="TrialElsewhere: run x is already going",
              elsewhere=True),
        trial("TERMINATED", 2, GOOD),                               # stopped by the interrupt
        trial("PENDING", 3, GOOD),
        trial("TERMINATED", 1, BAD, scores=[math.nan]),             # a NaN metric
    ], [AXIS], SEEDS)
    got = {(o.params[AXIS], o.seed): (o.state, o.score, o.error) for o in found}
    assert got == {
        (BAD, 0): ("failed", None, "RunStopped: diverged"),
        (GOOD, 0): ("completed", 1.5, None),
        (GOOD, 1): ("elsewhere", None, "TrialElsewhere: run x is already going"),
        (GOOD, 2): ("interrupted", None, None),
        (GOOD, 3): ("not started", None, None),
        (BAD, 1): ("failed", None, "the metric is nan"),
    }


def test_a_search_trial_that_failed_on_its_second_seed():
    from iwx.tuning.outcomes import trial_outcomes

    got = trial_outcomes(trial("ERROR", value=0.5, scores=[2.0], error="ValueError: x",
                               search=True), [AXIS], SEEDS)
    assert [(o.seed, o.state) for o in got] == [(0, "completed"), (1, "failed"),
                                               (2, "not started"), (3, "not started")]


def test_rows_counts_and_ranking_with_a_failed_configuration():
    from iwx.tuning import summary
    from iwx.tuning.outcomes import Outcome

    outs = [Outcome({AXIS: BAD}, 0, "completed", 9.0, "1"),       # best score, but ...
            Outcome({AXIS: BAD}, 1, "failed", error="RunStopped: diverged"),   # ... failed
            Outcome({AXIS: GOOD}, 0, "completed", 1.0, "2"),
            Outcome({AXIS: GOOD}, 1, "elsewhere", error="held by process 7"),
            Outcome({AXIS: GOOD}, 2, "interrupted")]
    third = {AXIS: 5.0}                      # a grid point no trial reached
    rows = summary.rows_from_outcomes(outs, [{AXIS: BAD}, {AXIS: GOOD}, third])
    assert [r.params for r in rows] == [{AXIS: BAD}, {AXIS: GOOD}, third]
    assert summary.best(rows, "max").params == {AXIS: GOOD}
    c = summary.counts(outs, expected=12)
    assert c == {"expected": 12, "completed": 2, "failed": 1, "running_elsewhere": 1,
                 "interrupted": 1, "not_started": 7, "missing": 9}
    assert summary.counts_line(c) == (
        "2 of 12 (configuration, seed) results completed, 1 failed, 9 missing "
        "(1 interrupted, 7 not started, 1 still running in another process)")
    table = summary.table(rows, "m", "max", SEEDS)
    lines = table.splitlines()[2:]
    assert lines[0].startswith(f"| {AXIS} = {GOOD} | 1.000") and "**best**" in lines[0]
    assert "seeds [1] still running in another process" in lines[0]
    assert "missing seeds [2, 3] ([2] interrupted)" in lines[0]
    assert lines[1].startswith(f"| {AXIS} = {BAD} | 9.000") and "**best**" not in lines[1]
    assert "seed 1 FAILED: RunStopped: diverged" in lines[1]
    assert lines[2].startswith(f"| {AXIS} = 5.0 | — | 0 |")
    assert "None" not in table
    data = summary.as_json(rows, "m", "max", SEEDS)
    assert [r["ranked"] for r in data["configurations"]] == [False, True, False]
    assert data["configurations"][0]["failed"] == {"1": "RunStopped: diverged"}


def test_errors_are_told_apart_from_a_run_going_elsewhere():
    from ray.exceptions import RayTaskError

    from iwx.tuning.outcomes import describe_error
    from iwx.tuning.trial import TrialElsewhere

    elsewhere = TrialElsewhere("trial t, seed 1: run k is already going: process 7")
    assert pickle.loads(pickle.dumps(elsewhere)).args == elsewhere.args   # crosses Ray
    wrapped = RayTaskError("train", "Traceback ...", elsewhere).as_instanceof_cause()
    assert describe_error(wrapped) == (
        "TrialElsewhere: trial t, seed 1: run k is already going: process 7", True)
    failed = RayTaskError("train", "Traceback ...", ValueError("bad\nvalue"))
    assert describe_error(failed) == ("ValueError: bad value", False)
    text = ("Failure # 1\nray::ImplicitFunc.train() (pid=1)\n  File \"x.py\", line 3\n"
            "iwx.tuning.trial.TrialElsewhere: run k is already going\n")
    assert describe_error(text) == ("iwx.tuning.trial.TrialElsewhere: run k is already going",
                                    True)


def test_a_run_lock_refusal_is_found_behind_the_runner_s_exception():
    from iwx.experiment.run_lock import RunLocked
    from iwx.experiment.runner import RunStopped
    from iwx.tuning.trial import run_locked_in

    refusal = RunLocked("run k is already going", key="k", path=Path("k.lock"), holder={})
    try:
        try:
            raise refusal
        except RunLocked as exc:
            raise RunStopped(f"iwx.run: {exc}", 2) from None
    except RunStopped as stopped:
        assert run_locked_in(stopped) is refusal
    assert run_locked_in(RunStopped("diverged", 1)) is None


def test_signals_stop_gracefully_while_tuning_and_raise_elsewhere():
    from iwx.tuning.interrupts import StopSignals, SweepInterrupted

    before = signal.getsignal(signal.SIGINT)
    asked = []
    previous_usr1 = signal.signal(signal.SIGUSR1, lambda *a: asked.append(a[0]))
    stop = StopSignals().install()
    try:
        with stop.tuning():
            try:                                          # first: Tune's graceful stop
                os.kill(os.getpid(), signal.SIGTERM)
            except KeyboardInterrupt:
                pytest.fail("the first signal while tuning raised instead of stopping Tune")
            assert asked == [signal.SIGUSR1] and stop.signum == signal.SIGTERM
            with pytest.raises(SweepInterrupted):         # second: at once
                os.kill(os.getpid(), signal.SIGINT)
        assert stop.exit_code == 143 and stop.name == "SIGTERM"
        outside = StopSignals().install()
        with pytest.raises(SweepInterrupted):             # not tuning: raise
            os.kill(os.getpid(), signal.SIGINT)
        assert outside.exit_code == 130
        outside.restore()
    finally:
        stop.restore()
        signal.signal(signal.SIGUSR1, previous_usr1)
    assert signal.getsignal(signal.SIGINT) is before


# --------------------------------------------------------------------------- end to end

HELD = 1e7                   # a second good value: the test holds its seed-0 run's lock
E2E_SEEDS = (0, 1)


def sweep_file(path: Path) -> Path:
    lines = ["gin: gin/point_nav_iwpl.gin", "bindings:", *[f"  - {b}" for b in TINY],
             "grid:", f"  {AXIS}: [0.000001, 100000000.0, 10000000.0]",
             f"seeds: {list(E2E_SEEDS)}", "metric: adapt/Shared Q + IW/last3", "mode: max",
             "max_concurrent: 2"]
    path.write_text("\n".join(lines) + "\n")
    return path


class Sweep:
    """``python -m iwx.sweep`` in the background; its stdout lines as they come."""

    def __init__(self, spec: Path, runs: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iwx.sweep", str(spec), "--runs-dir", str(runs),
             "--no-progress", "--cpus", "2"], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.err: list[str] = []
        self._readers = [threading.Thread(target=self._read, args=(s, into), daemon=True)
                         for s, into in ((self.proc.stdout, self.lines),
                                         (self.proc.stderr, self.err))]
        for r in self._readers:
            r.start()

    @staticmethod
    def _read(stream, into):
        for line in stream:
            into.append(line)

    def wait_for(self, *needles: str) -> None:
        """Until every needle is in some stdout line (a hang guard, not a speed claim)."""
        deadline = time.monotonic() + HANG_GUARD_S
        while not all(any(n in line for line in list(self.lines)) for n in needles):
            assert self.proc.poll() is None, ("".join(self.lines) + "".join(self.err))[-4000:]
            assert time.monotonic() < deadline, "".join(self.lines)[-4000:]
            time.sleep(0.2)

    def stop(self, signum) -> tuple[int, str, str]:
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout=HANG_GUARD_S)
        for r in self._readers:
            r.join(timeout=HANG_GUARD_S)
        return code, "".join(self.lines), "".join(self.err)


def hold_run_lock(spec_path: Path, runs: Path, value: float, seed: int):
    """Hold the run lock of the sweep's (value, seed) run, as a live orphaned trial of an
    earlier, killed sweep driver would (the key is derived exactly as the trial does)."""
    from iwx.experiment.run_lock import RunLock, lock_path
    from iwx.experiment.runner import prepare
    from iwx.tuning import spec as specs
    from iwx.tuning.trial import make_setup, trial_spec

    spec = specs.load(spec_path)
    setup = make_setup(spec, specs.check_bindings(spec), runs.resolve(), None, spec.sweep_id())
    (point,) = [p for p in spec.grid_points() if p[AXIS] == value]
    key = prepare(trial_spec(setup, point, seed, "held by the test")).key
    return RunLock(lock_path(runs.resolve(), key)).acquire()


def final_status(run: Path) -> str | None:
    """A run's status once its run.json reads whole (a stopped trial's worker may still be
    going down as the driver exits): read again until it parses."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        try:
            return read_json(run / "run.json")["status"]
        except FileNotFoundError:
            return None
        except ValueError:
            assert time.monotonic() < deadline, f"{run}/run.json never read whole"
            time.sleep(0.2)


def test_ctrl_c_with_failed_completed_and_locked_trials(tmp_path):
    """The issue's case: Ctrl-C after one trial failed and one completed. Exit 130 (as
    the README says), counts that add up (completed, failed, missing), no phantom row, the
    failed configuration never ranked, the locked trial shown as running elsewhere, and
    the line saying how to continue."""
    from iwx.tuning.summary import counts_line

    spec, runs = sweep_file(tmp_path / "interrupts.yaml"), tmp_path / "runs"
    lock = hold_run_lock(spec, runs, HELD, 0)
    try:
        sweep = Sweep(spec, runs)
        sweep.wait_for(f"{AXIS}={BAD}, seed 0: FAILED: ", f"{AXIS}={GOOD}, seed 0: ",
                       f"{AXIS}={HELD}, seed 0: still running in another process")
        code, out, err = sweep.stop(signal.SIGINT)
    finally:
        lock.release()
    assert code == 130, (out + err)[-4000:]
    assert "run the same command again to resume sweep" in err
    folder = next((runs / "_sweeps").iterdir())
    data = read_json(folder / "summary.json")
    c = data["counts"]
    assert data["interrupted"] == "Ctrl-C (SIGINT)" and data["complete"] is False
    assert f"interrupted by Ctrl-C (SIGINT): {counts_line(c)}" in err
    assert c["expected"] == 3 * len(E2E_SEEDS)
    assert c["completed"] + c["failed"] + c["missing"] == c["expected"]
    assert c["completed"] >= 1 and c["failed"] >= 1 and c["running_elsewhere"] == 1
    assert c["missing"] == c["running_elsewhere"] + c["interrupted"] + c["not_started"] >= 2
    rows = {row["params"][AXIS]: row for row in data["configurations"]}
    assert sorted(rows) == [BAD, HELD, GOOD], "a row that is no configuration of the grid"
    assert rows[BAD]["n"] == 0 and rows[BAD]["ranked"] is False and rows[BAD]["failed"]
    assert all("DivergenceGuard.max_abs" in why for why in rows[BAD]["failed"].values())
    assert "0" in rows[GOOD]["scores"] and data["best"]["params"] == {AXIS: GOOD}
    assert list(rows[HELD]["running_elsewhere"]) == ["0"]
    assert f"process {os.getpid()}" in rows[HELD]["running_elsewhere"]["0"]   # who holds it
    assert "being computed by another process that holds their run lock" in err
    table = (folder / "summary.md").read_text()
    assert f"**Incomplete: {counts_line(c)}.**" in table and "None" not in table
    assert "seed 0 FAILED: " in table and "still running in another process" in table
    # Every score is a COMPLETED run's; every failure left a FAILED run (the file store).
    status = {r.name: final_status(r) for r in run_dirs(runs)}
    assert all(status[run_id] == "COMPLETED" for row in rows.values()
               for run_id in row["run_ids"].values())
    assert sum(s == "FAILED" for s in status.values()) >= c["failed"]
