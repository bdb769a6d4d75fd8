"""iwx.figures.stops in one process: the STOP mark and the pids a forwarded signal goes to.

The end-to-end behaviour (a signal to ``python -m iwx.figure`` stops its run, which
records itself INTERRUPTED) is tests/test_figure.py's; these pin the two halves of the
hand-over that keep a run from starting after a stop or from missing it."""

import os
import signal
import subprocess
import sys

import pytest

from iwx.figures.stops import STOP, Forwarder, pid_file, run_registered


def test_a_run_that_registers_after_the_stop_does_not_start(tmp_path):
    """A worker that registers once the command has written STOP returns an interrupted
    outcome without calling the run (here a spec that would fail if it were run), with
    the status of the signal the command got."""
    (tmp_path / STOP).write_text(str(int(signal.SIGTERM)))
    outcome = run_registered(None, str(tmp_path / "log"), str(tmp_path), 3)
    assert outcome["ok"] is False and outcome["interrupted"] == 143
    assert "before it started" in outcome["error"]
    assert int(pid_file(tmp_path, 3).read_text()) == os.getpid()   # registered first
    (tmp_path / STOP).write_text(str(int(signal.SIGINT)))
    assert run_registered(None, str(tmp_path / "log"), str(tmp_path), 4)["interrupted"] == 130


def test_without_a_stop_the_run_is_called(tmp_path, monkeypatch):
    """No STOP: the worker goes on to the run itself, with SIGTERM raising while it runs
    (the run's own handling records it INTERRUPTED; end to end in tests/test_figure.py).
    The run is replaced here because run_captured redirects this process's stdout."""
    import iwx.figures.stops as stops

    calls = []
    monkeypatch.setattr(stops, "run_captured", lambda spec, log: calls.append(
        (spec, log, signal.getsignal(signal.SIGTERM))) or {"ok": True})
    assert run_registered("SPEC", "LOG", str(tmp_path), 1) == {"ok": True}
    (spec, log, handler), = calls
    assert (spec, log) == ("SPEC", "LOG") and handler not in (signal.SIG_DFL, signal.SIG_IGN)
    assert signal.getsignal(signal.SIGTERM) != handler          # put back afterwards


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_command_marks_the_stop_then_signals_only_the_registered_going_runs(tmp_path):
    """forward(): STOP is written, the exit status is reported, the signal goes to the
    registered pid of each going run, and to nothing else (not a run that is done, not a
    run not registered yet: that one will see STOP)."""
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    try:
        pid_file(tmp_path, 1).write_text(str(sleepers[0].pid))   # going, registered
        pid_file(tmp_path, 2).write_text(str(sleepers[1].pid))   # registered, but done
        statuses = []
        forwarder = Forwarder(tmp_path, going=lambda: [1, 5], on_stop=statuses.append)
        forwarder.forward(signal.SIGTERM, None)                  # run 5: not registered
        assert sleepers[0].wait(timeout=30) == -signal.SIGTERM
        assert sleepers[1].poll() is None
        assert statuses == [143]
        assert (tmp_path / STOP).read_text() == str(int(signal.SIGTERM))
    finally:
        for p in sleepers:
            p.kill()
            p.wait()


def test_the_handlers_are_put_back_and_an_ignored_sigint_stays_ignored(tmp_path):
    """Within the block SIGTERM is forwarded; after it the previous handlers are back.
    A SIGINT this process ignores (a shell's background job) is not taken over."""
    before_term = signal.getsignal(signal.SIGTERM)
    before_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forwarder = Forwarder(tmp_path, going=list, on_stop=lambda status: None)
        with forwarder:
            assert signal.getsignal(signal.SIGTERM) == forwarder.forward
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == before_term
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before_int)


def test_the_stop_mark_is_read_once_for_its_status(tmp_path):
    from iwx.figures.stops import stop_status

    assert stop_status(tmp_path) is None                       # no mark: no stop
    (tmp_path / STOP).write_text(str(int(signal.SIGINT)))
    assert stop_status(tmp_path) == 130
    (tmp_path / STOP).write_text(str(int(signal.SIGTERM)))
    assert stop_status(tmp_path) == 143
    (tmp_path / STOP).write_text("")                           # a mark that does not say
    assert stop_status(tmp_path) == 143
