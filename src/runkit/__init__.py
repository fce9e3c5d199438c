"""runkit: typed actions as durable runs, embeddable, on memory, SQLite or PostgreSQL."""

from ._clock import Clock, ManualClock, SystemClock
from ._errors import (
    ConfigurationError,
    ErrorDetail,
    IdempotencyConflict,
    IllegalTransition,
    LeaseLost,
    NotAllowed,
    RunkitError,
    RunNotFound,
    StorageUnavailable,
    ValidationError,
)
from ._hookspecs import hookimpl
from ._idempotency import IdempotencyPolicy
from ._kinds import ApprovalPolicy, Kind, KindRegistry, RetryPolicy
from ._models import (
    SYSTEM,
    Created,
    Expect,
    Lease,
    LogEntry,
    LogPage,
    NewLogEntry,
    Principal,
    Run,
    RunPage,
    RunQuery,
    UserProfile,
)
from ._service import Runkit, Settings
from ._states import TRANSITIONS, Action, Status
from ._sync import SyncRunkit
from .engine import (
    Fatal,
    ParkForApproval,
    Retryable,
    RunContext,
    SyncRunContext,
    Worker,
    embedded_workers,
    run_workers,
)

__all__ = [
    "SYSTEM",
    "TRANSITIONS",
    "Action",
    "ApprovalPolicy",
    "Clock",
    "ConfigurationError",
    "Created",
    "ErrorDetail",
    "Expect",
    "Fatal",
    "IdempotencyConflict",
    "IdempotencyPolicy",
    "IllegalTransition",
    "Kind",
    "KindRegistry",
    "Lease",
    "LeaseLost",
    "LogEntry",
    "LogPage",
    "ManualClock",
    "NewLogEntry",
    "NotAllowed",
    "ParkForApproval",
    "Principal",
    "RetryPolicy",
    "Retryable",
    "Run",
    "RunContext",
    "RunNotFound",
    "RunPage",
    "RunQuery",
    "Runkit",
    "RunkitError",
    "Settings",
    "Status",
    "StorageUnavailable",
    "SyncRunContext",
    "SyncRunkit",
    "SystemClock",
    "UserProfile",
    "ValidationError",
    "Worker",
    "embedded_workers",
    "hookimpl",
    "run_workers",
]
