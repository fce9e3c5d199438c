"""The engine: workers that claim, execute and finish runs. Light to import (no drivers)."""

from ..domain.context import RunContext, SyncRunContext
from ..domain.signals import Fatal, ParkForApproval, Retryable
from ._embedded import embedded_workers, run_workers
from ._worker import Worker

__all__ = [
    "Fatal",
    "ParkForApproval",
    "Retryable",
    "RunContext",
    "SyncRunContext",
    "Worker",
    "embedded_workers",
    "run_workers",
]
