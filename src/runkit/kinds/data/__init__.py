"""Kinds that move data on the host: ``duckdb_transform``, ``file_sync`` and ``dlt_extract``,
each confined to one directory, the data root (:mod:`.root`).

Registered like any plugin, through ``runkit_register_kinds``. Importing this package needs
none of the heavy libraries (``runkit[duckdb]``, ``runkit[files]``, ``runkit[dlt]``): without
one, its kind is still listed, and creating a run of it is a 422 naming the extra.

A host sets the root with ``RUNKIT_DATA_ROOT`` (read at each check) or, from Python, once for
the process::

    from runkit.kinds.data import DataPolicy, configure_data

    configure_data(DataPolicy(root="/srv/runkit-data", protocols=("s3",)))
"""

from __future__ import annotations

from collections.abc import Callable

from ...authoring import Kind, hookimpl
from . import dlt_extract, duckdb_transform, file_sync
from .root import DataPolicy, DataRoot, PathRefused, configure_data, current_policy, current_root

KINDS = (duckdb_transform.KIND, file_sync.KIND, dlt_extract.KIND)

__all__ = [
    "KINDS",
    "DataPolicy",
    "DataRoot",
    "PathRefused",
    "configure_data",
    "current_policy",
    "current_root",
]


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    for kind in KINDS:
        register(kind)
