"""Which logged scalars become Sacred metrics, and against which step.

The loops log everything they measure (iwx/loops/logger.py): per logging period
``train/<name>`` at the learner update, ``train/env_steps`` first; per adaptation
episode ``adapt/<variant>/return`` and its per-task series. A default
point-navigation run logs about 150 names. Drawn on one axis — Omniboard plots
every metric of a run at once by default, against one "steps" axis — they are
unreadable. So the run keeps the whole history as the ``series.json`` artifact
(:func:`series`; ``iwx.report`` reads it) and Sacred's metrics get a browsable set:

``train/<name>``
    the training aggregates (return, success, losses, α, KL to the prior, ...)
    against **environment steps** — the step at which the period's
    ``train/env_steps`` was logged;
``adapt/<variant>/return``
    against the **adaptation episode** (1, 2, ...), unchanged;
``perf/<name>``
    throughput and the replay ratio (env steps/s, updates/s, waiting, parameter
    lag, samples per insert), against environment steps, only when
    ``RecordedMetrics.throughput`` is True: values in the hundreds or thousands
    would flatten every return on a shared axis. By default they are kept in
    ``info.throughput`` (the latest value of each) and in ``series.json``;
per-task series (``.../task_NNN``)
    only when ``RecordedMetrics.per_task`` is True (``series.json`` always has them);
network diagnostics (``train/q_mean``, ``train/*_std``) and the mean episode length
    (``train/episode_steps``) only when ``RecordedMetrics.diagnostics`` is True.

Each series a run records costs Omniboard's runs list with a metric column (it joins
every metric document of every run; on the local server 20 demo-shaped runs took
2.1 s with 10 series each, 1.0 s with 5, 167 s with all ~150): hence the short list,
and a shorter one still in ``info.metrics`` (:data:`COLUMNS`).

``train/env_steps`` itself is the axis, not a metric.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import gin

PER_TASK = re.compile(r"/task_\d+$")
#: Training series that measure the machine or the schedule, not the learning.
THROUGHPUT = re.compile(r"^train/(env_steps_per_s|updates_per_s|actor_\d+/.*|\w*wait_fraction"
                        r"|param_lag|samples_per_insert\w*|actor_restarts)$")
#: Diagnostics of the networks (mean Q, the spread of a Gaussian): kept out of Sacred's
#: metrics by default, like per-task series: every series a run records costs its
#: Omniboard runs list (measured: iwx/benchmarks/omniboard.py).
#: So is the mean episode length in steps (``train/episode_steps``: on GTT the time the
#: humanoid stayed up, on Go To Ring how fast it got there), in the hundreds.
DIAGNOSTIC = re.compile(r"^train/(q_mean|\w+_std|episode_steps)$")
AXIS = "train/env_steps"
#: The series a run lists in its MongoDB ``info.metrics`` — the ones Omniboard's runs
#: list can show as a metric column. Omniboard builds that column by unwinding
#: ``info.metrics`` and joining each entry against the whole metrics collection
#: (server/runs.response.js), which costs (listed series) × (all metric documents):
#: measured on the local server for 20 runs, 2.3 s with all 8 default series listed
#: against about 1 s with these (``python -m iwx.bench omniboard``). Every series
#: stays in the metrics collection: a run's drill-down, the metric plots and the
#: compare view fetch metrics by ``run_id`` and show all of them.
COLUMNS = re.compile(r"^(train/(return|success)|adapt/[^/]+/return)$")


@gin.configurable
class RecordedMetrics:
    """The sink between a run's logger and Sacred's ``log_scalar`` (see the module)."""

    def __init__(self, log_scalar: Callable[[str, float, int], None] | None = None,
                 info: dict | None = None, *, per_task: bool = False, throughput: bool = False,
                 diagnostics: bool = False):
        """``log_scalar``: Sacred's ``run.log_scalar``; ``info``: the run's info, whose
        ``throughput`` entry keeps the latest throughput values."""
        self.log_scalar = log_scalar
        self.per_task, self.throughput, self.diagnostics = per_task, throughput, diagnostics
        self.latest_throughput: dict[str, float] = {}
        if info is not None:
            info["throughput"] = self.latest_throughput
            info["metric_axes"] = {"train/": "env steps", "perf/": "env steps",
                                   "adapt/": "adaptation episode"}
        self._env_step: dict[int, int] = {}   # learner update -> env steps at its period

    def route(self, name: str, value: float, step: int) -> tuple[str, int] | None:
        """(Sacred metric name, step) for one logged scalar, or None to leave it out."""
        if name == AXIS:
            self._env_step[step] = int(value)
            return None
        if PER_TASK.search(name) and not self.per_task:
            return None
        if not name.startswith("train/"):
            return name, step
        env_step = self._env_step.get(step, step)
        if THROUGHPUT.match(name):
            self.latest_throughput[name.removeprefix("train/")] = value
            return (f"perf/{name.removeprefix('train/')}", env_step) if self.throughput else None
        if DIAGNOSTIC.match(name) and not self.diagnostics:
            return None
        return name, env_step

    def __call__(self, name: str, value: float, step: int) -> None:
        routed = self.route(name, value, step)
        if routed is not None and self.log_scalar is not None:
            self.log_scalar(routed[0], value, routed[1])


def series(history) -> dict[str, dict[str, list]]:
    """The whole logged history in the layout of Sacred's ``metrics.json``:
    {name: {"steps": [...], "values": [...]}} — steps as the loops logged them
    (learner updates for ``train/*``, episodes for ``adapt/*``)."""
    out: dict[str, dict[str, list]] = {}
    for name, value, step in history:
        entry = out.setdefault(name, {"steps": [], "values": []})
        entry["steps"].append(int(step))
        entry["values"].append(float(value))
    return out
