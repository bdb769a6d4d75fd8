"""How a run names and summarises itself in its record, so runs can be told apart
and filtered in Omniboard (which filters and shows columns only of top-level config
keys) and read at a glance:

* :func:`experiment_name`: the Sacred experiment's name, ``<task>_<method>``
  (``point_nav_iwpl``), else the gin files' names;
* :func:`headline_config`: top-level config keys beside the full ``bindings``:
  ``task``, ``method``, ``uid`` (the run's id in every store: the first 8 hex
  digits of ``meta.iwx_uid``), ``K`` (prior samples), ``alpha`` (the
  adaptation temperature), ``updates`` (the pretraining budget) and each swept
  binding of a sweep trial under its name with dots and slashes as underscores
  (``IWPA.alpha`` -> ``IWPA_alpha``: MongoDB and Omniboard read a dot as a path);
* :func:`compact_result`: Sacred's ``result`` as a few rounded numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

UID_LENGTH = 8


def short_uid(uid: str | None) -> str | None:
    return None if not uid else uid[:UID_LENGTH]


def experiment_name(identity: dict, gin_files) -> str:
    task, method = identity.get("task"), identity.get("method")
    if task and method:
        return f"{task}_{method}"
    return "+".join(Path(f).stem for f in gin_files) or "iwx"


def field_name(binding: str) -> str:
    """'IWPA.alpha' -> 'IWPA_alpha'; 'iw/IWPA.alpha' -> 'iw_IWPA_alpha'."""
    return re.sub(r"\W", "_", binding)


def _first(bindings: dict, names) -> object:
    for configurable, param in names:
        value = (bindings.get(configurable) or {}).get(param)
        if value is not None:
            return value
    return None


def headline_config(bindings: dict, identity: dict, uid: str, swept: dict | None = None) -> dict:
    """The top-level keys (None-valued ones left out: a method without prior samples
    has no K)."""
    out = {"task": identity.get("task"), "method": identity.get("method"),
           "uid": short_uid(uid),
           "K": _first(bindings, [("IWPL", "num_samples"), ("IWPA", "num_samples")]),
           "alpha": _first(bindings, [("IWPA", "alpha"), ("shared_q_iw/IWPA", "alpha")]),
           "updates": _first(bindings, [("MultiTaskTraining", "updates"),
                                        ("DistributedTraining", "updates")])}
    for name, value in (swept or {}).items():
        out[field_name(name)] = value
    return {k: v for k, v in out.items() if v is not None}


def rounded(value: float | None, digits: int = 3) -> float | None:
    """``digits`` significant digits (Sacred's result is read, not computed with)."""
    return None if value is None else float(f"{value:.{digits}g}")


def compact_result(headline: dict[str, dict], train_final_return: float | None) -> dict:
    """{"<variant>/last3": mean of the last 3 adaptation episodes, "<variant>/oracle_%":
    that as a percentage of the oracle, "train/final_return": ...}, rounded."""
    out = {}
    for variant, h in headline.items():
        out[f"{variant}/last3"] = rounded(h["last3_mean"])
        if "last3_fraction_of_oracle" in h:
            out[f"{variant}/oracle_%"] = rounded(100 * h["last3_fraction_of_oracle"])
    if train_final_return is not None:
        out["train/final_return"] = rounded(train_final_return)
    return out
