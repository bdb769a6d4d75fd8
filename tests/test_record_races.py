"""The file store's observer under Sacred's heartbeat thread (iwx/experiment/durable.py).

Sacred calls ``heartbeat_event`` / ``log_metrics`` from its heartbeat thread while the
run's main thread adds artifacts and keeps changing ``_run.info``; an exception
escaping either switches the observer off for the rest of the run (Sacred's
``_safe_call``), and the run then misses artifacts written afterwards. A CI run
lost ``results.json``, ``series.json`` and ``training.png`` of a sweep trial that
way (artifacts 1–3 on disk, 4–6 never handed to the observer).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading

import pytest

from iwx.experiment.durable import DurableFileObserver


def _started(tmp_path) -> DurableFileObserver:
    obs = DurableFileObserver(str(tmp_path / "runs"), retry_s=2)
    obs.started_event(ex_info={"name": "race", "base_dir": str(tmp_path), "sources": [],
                               "dependencies": [], "repositories": [], "mainfile": None},
                      command="main", host_info={}, start_time=dt.datetime.utcnow(),
                      config={"seed": 0}, meta_info={}, _id=None)
    return obs


@pytest.fixture
def fast_switching():
    """Thread switches every microsecond: a race that needs an unlucky 5 ms slice in a
    real run shows up within a few hundred heartbeats here."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_heartbeats_racing_a_changing_info_and_artifacts_never_raise(tmp_path, fast_switching):
    obs = _started(tmp_path)
    info = {"throughput": {}}            # the live dict Sacred hands to every heartbeat
    errors: list[BaseException] = []
    stop = threading.Event()

    def heartbeat():
        step = 0
        while not stop.is_set():
            try:
                obs.log_metrics({"train/return": {"values": [float(step)], "steps": [step],
                                                  "timestamps": [dt.datetime.utcnow()]}}, info)
                obs.heartbeat_event(info=info, captured_out=f"line {step}\n",
                                    beat_time=dt.datetime.utcnow(), result=None)
            except BaseException as exc:   # what Sacred's _safe_call would see
                errors.append(exc)
                return
            step += 1

    beat = threading.Thread(target=heartbeat)
    beat.start()
    names = []
    try:
        for i in range(40):
            for k in range(200):            # the main thread's logger adding and replacing
                info["throughput"][f"k{i}_{k}"] = float(k)
            info[f"entry{i}"] = {"n": i}
            art = tmp_path / f"a{i:02d}.txt"
            art.write_text(str(i))
            obs.artifact_event(art.name, str(art))   # the main thread, as in the runner
            names.append(art.name)
            info["throughput"].clear()
    finally:
        stop.set()
        beat.join()
    assert not errors, f"an observer event raised (Sacred would switch it off): {errors[0]!r}"
    # Sacred's last heartbeat comes from the main thread, then the run's end
    obs.heartbeat_event(info=info, captured_out="end\n", beat_time=dt.datetime.utcnow(),
                        result=None)
    obs.completed_event(stop_time=dt.datetime.utcnow(), result=None)
    obs.verify(names)                    # every artifact and a COMPLETED run.json on disk
    run = json.loads((tmp_path / "runs" / "1" / "run.json").read_text())
    assert run["artifacts"] == names
    saved = json.loads((tmp_path / "runs" / "1" / "info.json").read_text())
    assert saved["entry39"] == {"n": 39}   # the last heartbeat's info
    metrics = json.loads((tmp_path / "runs" / "1" / "metrics.json").read_text())
    steps = metrics["train/return"]["steps"]
    assert steps == list(range(len(steps))), "a heartbeat's metrics were lost or doubled"
