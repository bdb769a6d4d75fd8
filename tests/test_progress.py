"""Progress output (issue 15): plain, bounded log lines off a terminal, a tqdm bar on one,
and a Sacred record (cout.txt) that reads as a log with no torn bar in it."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest
from tqdm import tqdm

from cli import ROOT, TINY, read_json, run_dirs
from iwx.experiment.captured import clean_captured_out
from iwx.loops import progress
from iwx.loops.progress import progress_bar, terminal_stream

STATUS = re.compile(r"^\[(?P<phase>[^\]]+)\] (?:\D*?)(?P<n>\d+)/(?P<total>\d+) ")


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def plain(total, clock, out, **kw):
    return progress_bar(total, "pretrain", "upd", stream=out, clock=clock, terminal=None, **kw)


def simulate(total, seconds, *, updates=None, postfix_every=250):
    """``updates`` updates (default ``total``) evenly over ``seconds`` of the injected
    clock; returns the lines written and their bytes."""
    clock, out = Clock(), io.StringIO()
    bar = plain(total, clock, out)
    updates = total if updates is None else updates
    for i in range(updates):
        clock.t += seconds / updates
        bar.update(1)
        if (i + 1) % postfix_every == 0:
            bar.set_postfix(ret=f"{0.42:.2f}")
    bar.close()
    text = out.getvalue()
    return text, len(text.encode())


def test_an_hour_of_pretraining_is_a_bounded_plain_log():
    text, size = simulate(25000, 3600.0)
    lines = text.splitlines(keepends=True)
    assert "\r" not in text and all(line.endswith("\n") for line in lines)
    # the rule: at most one time-driven line per INTERVAL_S, plus start, 5 %…95 %, close
    bound = 3600 / progress.INTERVAL_S + 21
    assert len(lines) <= bound, len(lines)
    assert len(lines) >= 3600 / progress.INTERVAL_S - 1          # it does report periodically
    assert lines[0] == "[pretrain] start: 0/25000 upd (0.0%)\n"
    assert lines[-1].startswith("[pretrain] done: 25000/25000 upd in 59:59")
    counts = [int(STATUS.match(line)["n"]) for line in lines]
    assert counts == sorted(counts)
    assert max(len(line) for line in lines) < 120
    assert size < 16_000, size                                    # vs ~2.5 MB from tqdm
    print(f"\nan hour of 25000 updates: {len(lines)} lines, {size} bytes")


def test_time_lines_are_bounded_when_progress_is_slow_and_step_lines_when_fast():
    slow, _ = simulate(10**6, 3600.0, updates=3600)     # never reaches 5 %
    assert len(slow.splitlines()) <= 3600 / progress.INTERVAL_S + 2
    fast, _ = simulate(25000, 10.0)                     # no interval ever passes
    lines = fast.splitlines()
    assert len(lines) == 21                              # start, 5 % … 95 %, close
    percents = [float(re.search(r"\(([\d.]+)%\)", line)[1]) for line in lines[1:-1]]
    assert percents == [5.0 * k for k in range(1, 20)]


def test_a_line_when_the_interval_passed_or_a_new_step_was_reached():
    clock, out = Clock(), io.StringIO()
    bar = plain(1000, clock, out, interval_s=30.0)
    clock.t = 29.0
    bar.update(1)
    assert len(out.getvalue().splitlines()) == 1        # 0.1 %, 29 s: nothing yet
    clock.t = 30.0
    bar.update(1)
    assert out.getvalue().splitlines()[-1] == \
        "[pretrain] 2/1000 upd (0.2%) 15.0 s/upd, elapsed 0:30, ETA 4:09:30"
    clock.t = 31.0
    bar.update(48)                                       # 5 %: a line, 1 s later
    assert out.getvalue().splitlines()[-1].startswith("[pretrain] 50/1000 upd (5.0%) 1.6 upd/s")
    clock.t = 60.0
    bar.update(1)                                        # 29 s after the last line
    assert len(out.getvalue().splitlines()) == 3


def test_closing_line_says_done_or_interrupted_and_by_what():
    clock, out = Clock(), io.StringIO()
    with pytest.raises(KeyboardInterrupt):
        bar = plain(384, clock, out)
        try:
            bar.update(19)
            clock.t = 97.0
            raise KeyboardInterrupt
        finally:
            bar.close()
    assert out.getvalue().splitlines()[-1] == \
        "[pretrain] interrupted by KeyboardInterrupt at 19/384 upd (4.9%) after 1:37"
    bar.close()                                          # once only
    assert out.getvalue().count("interrupted") == 1

    out = io.StringIO()
    bar = plain(10, clock, out, initial=4)
    assert out.getvalue() == "[pretrain] resumed at 4/10 upd (40.0%)\n"
    bar.update(6)
    bar.set_postfix(env_steps=1200, ret="0.50", spi=2.0)
    bar.close()
    assert out.getvalue().splitlines()[-1] == \
        "[pretrain] done: 10/10 upd in 0:00 (0.0 upd/s), env_steps=1200, ret=0.50, spi=2"


def test_no_progress_keeps_only_the_opening_and_closing_lines():
    clock, out = Clock(), io.StringIO()
    bar = progress_bar(25000, "pretrain", "upd", enabled=False, stream=out, clock=clock,
                       terminal=io.StringIO())
    assert bar._bar is None                              # no bar, even on a terminal
    for _ in range(25000):
        clock.t += 1.0
        bar.update(1)
    bar.close()
    assert out.getvalue().splitlines() == [
        "[pretrain] start: 0/25000 upd (0.0%)",
        "[pretrain] done: 25000/25000 upd in 6:56:40 (1.0 upd/s)"]


def test_on_a_terminal_the_bar_is_tqdm_and_the_lines_go_above_it(capsys):
    screen, log = io.StringIO(), io.StringIO()
    with progress_bar(100, "adapt IW", "ep", terminal=screen, stream=log) as bar:
        assert isinstance(bar._bar, tqdm)
        for _ in range(100):
            bar.update(1)
        bar.set_postfix(ret="0.12")
        bar.write("  a message")
    assert "\r" in screen.getvalue() and "100/100" in screen.getvalue()   # tqdm frames
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 21
    assert lines[-1].startswith("[adapt IW] done: 100/100 ep")
    assert capsys.readouterr().out == "  a message\n"   # like tqdm.write: to stdout


class Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("real, current, bar", [(True, True, True), (True, False, False),
                                                (False, True, False)])
def test_a_bar_only_when_both_stderrs_are_terminals(monkeypatch, real, current, bar):
    """A file, a pipe, a Ray worker's log, a stream someone captures: status lines."""
    monkeypatch.setattr(sys, "__stderr__", Stream(real))
    monkeypatch.setattr(sys, "stderr", Stream(current))
    assert (terminal_stream() is sys.__stderr__) is bar


def test_sacred_capture_gets_the_lines_never_the_frames():
    """Sacred's "sys" capture tees sys.stdout / sys.stderr; the bar draws past it."""
    from sacred.stdout_capturing import tee_output_python

    screen = Stream(True)
    with tee_output_python() as captured:
        bar = progress_bar(384, "pretrain", "upd", terminal=screen)
        for i in range(384):
            bar.update(1)
            if i == 18:
                print("[iwx] a line printed while the bar is open")
        bar.close()
    text = clean_captured_out(captured.final)
    assert "\r" in screen.getvalue() and "\r" not in text and "%|" not in text
    assert "[iwx] a line printed while the bar is open\n" in text
    assert "[pretrain] done: 384/384 upd" in text


# Sacred's filter, on what a foreign tqdm bar leaves in the capture.
TORN = ("\rpretrain:   5%|▍         | 19/384 [00:01<00:20, 17.5upd/s][iwx] a line\n"
        "\rpretrain:  50%|█████     | 192/384 [00:10<00:10, 17.5upd/s]"
        "\rpretrain: 100%|██████████| 384/384 [00:20<00:00, 17.5upd/s]\n"
        "done\b\b\b\bDONE\n"
        "\rdownload 1 MB\rdownload 2 MB")


def test_filter_keeps_final_states_and_unglues_frames():
    assert clean_captured_out(TORN) == (
        "[iwx] a line\n"
        "pretrain: 100%|██████████| 384/384 [00:20<00:00, 17.5upd/s]\n"
        "DONE\n"
        "download 2 MB")
    assert clean_captured_out("a table | with | bars |\n  indented  \n") == \
        "a table | with | bars |\n  indented  \n"


def test_filter_at_heartbeats_equals_filter_at_the_end():
    """Sacred filters (what it kept + what came since) at every heartbeat: wherever a
    heartbeat falls, the record is the same; and filtering again changes nothing."""
    whole = clean_captured_out(TORN)
    for cut in range(1, len(TORN)):
        kept = clean_captured_out(TORN[:cut])
        assert clean_captured_out(kept + TORN[cut:]) == whole, cut
    assert clean_captured_out(whole) == whole


def test_a_run_logged_to_a_file_and_its_cout_read_as_a_log(tmp_path):
    """A real tiny run with progress on, stdout and stderr redirected to one file."""
    runs, log = tmp_path / "runs", tmp_path / "run.log"
    args = [sys.executable, "-m", "iwx.run", "--gin", str(ROOT / "gin/point_nav_iwpl.gin"),
            "--runs-dir", str(runs)]
    for binding in TINY:
        args += ["--gin_param", binding]
    with open(log, "w") as out:
        proc = subprocess.run(args, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                              timeout=120)
    written = log.read_text()
    assert proc.returncode == 0, written[-3000:]
    (run,) = run_dirs(runs)
    assert read_json(run / "run.json")["status"] == "COMPLETED"
    cout = (run / "cout.txt").read_text()
    for text in (written, cout):
        assert "\r" not in text and "%|" not in text          # no bar frame at all
        assert max(len(line) for line in text.splitlines()) <= 300
        latest = {}
        for line in text.splitlines():
            status = STATUS.match(line)
            if status:                                      # never a stale count
                assert int(status["n"]) >= latest.get(status["phase"], 0), line
                latest[status["phase"]] = int(status["n"])
        assert latest["pretrain"] == 48
        assert "[pretrain] start: 0/48 upd" in text
        assert re.search(r"^\[pretrain\] done: 48/48 upd", text, re.M)
        for variant in ("Shared Q + IW", "IW"):
            assert re.search(rf"^\[adapt {re.escape(variant)}\] done: 3/3 ep", text, re.M)
        assert "Mean held-out return per adaptation episode" in text
        assert re.search(r"^\| 3 \| ", text, re.M)              # the summary table's last row
