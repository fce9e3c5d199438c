"""runkit: typed actions as durable runs, embeddable, on memory, SQLite or PostgreSQL."""

from .authoring import Fatal, ParkForApproval, Retryable, RunContext, SyncRunContext, hookimpl
from .domain.clock import Clock, ManualClock, SystemClock
from .domain.config_schema import config_schema
from .domain.cursor import Cursor
from .domain.errors import (
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
from .domain.idempotency import IdempotencyPolicy
from .domain.kind import ApprovalPolicy, Kind, KindChecks, KindRegistry, RetryPolicy, camel
from .domain.models import (
    SYSTEM,
    Created,
    Expect,
    Lease,
    LogEntry,
    LogPage,
    NewLogEntry,
    NewRun,
    Principal,
    Run,
    RunPage,
    RunQuery,
    UserProfile,
    WorkerInfo,
)
from .domain.states import TRANSITIONS, Action, Status
from .engine import (
    Worker,
    embedded_workers,
    run_workers,
)
from .service.runkit import Runkit, Settings
from .service.sync import SyncRunkit

__all__ = [
    "SYSTEM",
    "TRANSITIONS",
    "Action",
    "ApprovalPolicy",
    "Clock",
    "ConfigurationError",
    "Created",
    "Cursor",
    "ErrorDetail",
    "Expect",
    "Fatal",
    "IdempotencyConflict",
    "IdempotencyPolicy",
    "IllegalTransition",
    "Kind",
    "KindChecks",
    "KindRegistry",
    "Lease",
    "LeaseLost",
    "LogEntry",
    "LogPage",
    "ManualClock",
    "NewLogEntry",
    "NewRun",
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
    "WorkerInfo",
    "camel",
    "config_schema",
    "embedded_workers",
    "hookimpl",
    "run_workers",
]
