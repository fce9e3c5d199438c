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
    "Principal",
    "RetryPolicy",
    "Run",
    "RunNotFound",
    "RunPage",
    "RunQuery",
    "Runkit",
    "RunkitError",
    "Settings",
    "Status",
    "StorageUnavailable",
    "SyncRunkit",
    "SystemClock",
    "UserProfile",
    "ValidationError",
    "hookimpl",
]
