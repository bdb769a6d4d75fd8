"""Importing this module registers every gin configurable of iwx.

Gin only knows a name once its module is imported, and only then can it check
a binding's parameter names at parse time; the command lines import this first.
Every module of the packages below is imported, so a new agent, network or
environment module is bindable the moment it exists.
"""

import importlib
import pkgutil

import iwx

PACKAGES = ("agents", "envs", "loops", "nets", "ops", "replay")

for _package in PACKAGES:
    _module = importlib.import_module(f"iwx.{_package}")
    for _info in pkgutil.iter_modules(_module.__path__):
        importlib.import_module(f"iwx.{_package}.{_info.name}")
importlib.import_module("iwx.experiment.identity")
del iwx
