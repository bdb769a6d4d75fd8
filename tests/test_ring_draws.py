"""docs/experiments/ring_draws.py, which the README's per-seed Go To Ring target radii come
from: the task file's bindings reach the draw, a seed draws the same targets every time
and other seeds other ones, and the printed row is those targets' numbers."""

from __future__ import annotations

import importlib.util

import gin
import numpy as np
import pytest

from cli import ROOT

SCRIPT = ROOT / "docs" / "experiments" / "ring_draws.py"


@pytest.fixture
def ring_draws():
    spec = importlib.util.spec_from_file_location("ring_draws", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    gin.clear_config()


def rows(text: str) -> dict[int, list[float]]:
    return {int(line.split()[0]): [float(v) for v in line.split()[1:]]
            for line in text.splitlines()[1:]}


def test_the_cpu_task_file_binds_the_draw(ring_draws, capsys):
    ring_draws.main([str(ROOT / "gin/tasks/go_to_ring_cpu.gin"), "--seeds", "0", "1", "2",
                     "--under", "1.5"])
    got = rows(capsys.readouterr().out)
    assert sorted(got) == [0, 1, 2]
    for seed, (tasks, mean, low, high, under) in got.items():
        r = ring_draws.radii(seed)
        assert tasks == 20 and len(r) == 20                    # num_train = 20
        assert 1.25 <= r.min() and r.max() <= 2.0               # radii in [1.25, 2.0]
        assert (mean, low, high) == pytest.approx((r.mean(), r.min(), r.max()), abs=6e-3)
        assert under == pytest.approx(np.mean(r < 1.5), abs=6e-3)
    assert not np.allclose(ring_draws.radii(0), ring_draws.radii(1))
    assert np.array_equal(ring_draws.radii(2), ring_draws.radii(2))


def test_without_a_task_file_the_papers_ring(ring_draws, capsys):
    ring_draws.main(["--seeds", "0"])
    (tasks, mean, low, high, under), = rows(capsys.readouterr().out).values()
    assert tasks == 100 and 3.0 <= low and high <= 7.0 and under == 0.0
