"""Kinds that move data on the host, each confined to one directory, the data root
(:mod:`.root`)."""

from __future__ import annotations

from .root import DataPolicy, DataRoot, PathRefused, configure_data, current_policy, current_root

__all__ = [
    "DataPolicy",
    "DataRoot",
    "PathRefused",
    "configure_data",
    "current_policy",
    "current_root",
]
