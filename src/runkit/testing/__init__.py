"""Test support for runkit users and plugin authors: the storage conformance suite, a
controllable clock, hypothesis strategies. Importing this module needs pytest and
hypothesis (the ``test`` extra)."""

from ..domain.clock import ManualClock
from ._conformance import StoreConformance
from ._strategies import json_objects, json_values, runs
from ._support import make_run

__all__ = ["ManualClock", "StoreConformance", "json_objects", "json_values", "make_run", "runs"]
