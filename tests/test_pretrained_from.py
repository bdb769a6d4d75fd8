"""RunSpec.pretrained_from: an adaptation-only run that loads the model.pt of another
configuration's COMPLETED run (what a figure's ``adapt_from`` plans), end to end with
the real pipeline on a tiny budget, Sacred's record read back."""

from __future__ import annotations

import dataclasses

import pytest

from cli import ROOT, TINY, read_json, run_dirs
from iwx.experiment.runner import RunSpec, RunStopped, prepare, run as run_spec

IWPL = str(ROOT / "gin/point_nav_iwpl.gin")


def spec(tmp_path, **kw) -> RunSpec:
    return RunSpec(gin_files=(IWPL,), bindings=tuple(TINY), runs_dir=str(tmp_path),
                   progress=False, **kw)


def test_an_adaptation_only_run_loads_the_named_pretraining(tmp_path):
    import gin

    first = run_spec(spec(tmp_path))
    assert first is not None
    second_spec = spec(tmp_path, pretrained_from=first.key)
    second_spec = dataclasses.replace(
        second_spec, bindings=(*second_spec.bindings,
                               "pretrain_and_adapt.variants = {'IW': @iw/IWPA}"))
    key = prepare(second_spec).key
    gin.clear_config()
    assert key != prepare(dataclasses.replace(second_spec, pretrained_from=None)).key
    gin.clear_config()
    second = run_spec(second_spec)
    assert second is not None and second.key == key
    info = read_json(second.run_dir / "info.json")
    assert info["pretrained_from"]["checkpoint_key"] == first.key
    assert info["pretrained_from"]["run_id"] == first.run_dir.name
    series = read_json(second.run_dir / "series.json")
    assert not any(name.startswith("train/") for name in series)   # nothing pretrained again
    assert list(read_json(second.run_dir / "results.json")["returns"]) == ["IW"]
    operative = (second.run_dir / "operative_config.gin").read_text()
    assert str(first.run_dir / "model.pt") in operative
    # the same command again is the same key: reused, not rerun
    again = run_spec(dataclasses.replace(second_spec, reuse=True))
    assert again.reused and again.run_dir == second.run_dir


def test_a_missing_pretraining_stops_before_any_record(tmp_path):
    with pytest.raises(RunStopped, match="run that pretraining first") as stopped:
        run_spec(spec(tmp_path, pretrained_from="0123456789abcdef"))
    assert stopped.value.exit_code == 2
    assert run_dirs(tmp_path) == []
