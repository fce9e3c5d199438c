"""The run model: pure, frozen attrs classes. The wire format lives in
``runkit_contrib._wire``."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import attrs

from .cursor import Cursor
from .states import Status

JSON = dict[str, Any]


def _roles(value: Iterable[str] | None) -> frozenset[str] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class Principal:
    """Who acts: a user (cookie session), an API key, or runkit itself (``system``).

    ``kind`` decides the trigger fields of runs the principal creates: a user creates runs
    with ``triggerMethod="ui"`` and ``triggerSourceType="user"``; an API key with ``"api"``.
    """

    id: str
    kind: str = "user"  # "user" | "api_key" | "system"
    groups: frozenset[str] = frozenset()
    #: What the principal may do at the HTTP edge (``read``, ``operate``, ``approve``,
    #: ``admin``; see ``runkit_contrib``'s roles). None: no built-in limit, the host's
    #: ``authorize`` hook alone decides (principals a host's own authenticator makes).
    roles: frozenset[str] | None = attrs.field(default=None, converter=_roles)
    #: The tenant whose runs alone it sees and touches; None: every run. Runs it creates
    #: belong to this tenant, and so do their children.
    tenant: str | None = None

    @property
    def trigger_method(self) -> str:
        return {"user": "ui", "api_key": "api"}.get(self.kind, self.kind)

    @property
    def trigger_source_type(self) -> str:
        return self.kind


SYSTEM = Principal("runkit", kind="system")


@attrs.frozen
class Run:
    """A run. The first block is the public resource of the spec; the rest is the engine's
    bookkeeping, stored with it and changed only through the state table."""

    #: The run's id (a uuid4), chosen at create.
    id: UUID
    #: The action kind: which executor runs it and what ``definition`` it takes.
    kind: str
    #: Where the run is in the state machine (``docs/state-machine.md``).
    status: Status
    created_at: datetime
    #: The last change of any field (status, progress, ...).
    updated_at: datetime
    #: The kind's configuration, as the client sent it (validated against the kind).
    definition: JSON = attrs.field(factory=dict)
    #: The client's own label for the action this run performs (a filter of ``list``).
    action_id: str | None = None
    #: Runs sharing it in its scope are one run (see ``docs/concepts.md``).
    idempotency_key: str | None = None
    #: Runs sharing it never run at once beyond its limit; the rest wait in order.
    concurrency_key: str | None = None
    #: The run that started this one, if any; cancelling the parent cancels it.
    parent_action_run_id: UUID | None = None
    #: What the executor last reported (``ctx.progress``); free-form.
    progress: JSON = attrs.field(factory=dict)
    #: What the executor returned, once succeeded (an approval's decisions for a gate).
    result: JSON | None = None
    #: Why the last attempt failed: ``{type, message, retryable, ...}``.
    error: JSON | None = None
    #: Attempts that failed and were retried (automatically or by ``retry``).
    retry_count: int = 0
    #: Times a worker was lost while holding the run (lease expired, run taken over).
    interrupt_count: int = 0
    #: How the run was started: ``api`` (a key), ``ui`` (a person), or a host's own.
    trigger_method: str | None = None
    #: Who started it: ``api_key``, ``user``, ``system``.
    trigger_source_type: str | None = None
    #: The id of that key or user.
    trigger_source_id: str | None = None
    #: The tenant the run belongs to (its creator's, or its parent's); None: no tenant.
    #: Principals of a tenant see only its runs. Not part of the wire resource.
    tenant: str | None = None
    #: The first claim by a worker.
    started_at: datetime | None = None
    #: When the run reached a terminal status.
    completed_at: datetime | None = None
    # --- engine bookkeeping ---------------------------------------------------------------
    #: Store-assigned insertion order (FIFO within a concurrency key). 0 before insertion.
    seq: int = 0
    #: Why the run is in its status: "user", "crashed", "timeout", "retries_exhausted", ...
    status_reason: str | None = None
    #: Attempts started (claims). Log entries carry it; the lease fence compares it.
    attempt: int = 0
    lease_token: str | None = None
    worker_id: str | None = None
    #: When the run's current status times out: lease expiry while leased, approval
    #: timeout while awaiting approval. The rescuer acts on it.
    deadline_at: datetime | None = None
    #: A queued run is not claimed before this (retry backoff).
    not_before: datetime | None = None
    concurrency_limit: int = 1
    #: "<scope>:<key>", unique among runs; None once released (deleted, expired).
    idempotency_scope: str | None = None
    fingerprint: str | None = None
    #: Last log entry id written for this run.
    log_seq: int = 0
    #: Opaque state a pausable executor saved; handed back on the next attempt.
    checkpoint: JSON | None = None
    #: Approval decisions: ``{"by", "decision", "reason", "at"}`` each.
    approvals: tuple[JSON, ...] = ()
    #: What a ``waiting`` run waits for: ``{"runs", "failFast", "until"}``
    #: (:class:`runkit.domain.waits.Wait`); None in every other status.
    wait: JSON | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.completed_at or self.updated_at
        return max(0.0, (end - self.started_at).total_seconds())


#: Run's fields in their order, which its ``__init__`` takes positionally (checked below).
_RUN_FIELDS = tuple(a.name for a in attrs.fields(Run))
assert all(a.init and not a.kw_only and a.alias == a.name for a in attrs.fields(Run))
_read_run = operator.attrgetter(*_RUN_FIELDS)
_RUN_INDEX = {name: i for i, name in enumerate(_RUN_FIELDS)}


def replace(run: Run, **changes: Any) -> Run:
    """``attrs.evolve(run, **changes)`` in half the time: every move of a run makes a new
    one (evolve read the fields one by one in Python, about 5 µs a run; this reads them in
    one C call and passes them positionally)."""
    values = list(_read_run(run))
    for name, value in changes.items():
        try:
            values[_RUN_INDEX[name]] = value
        except KeyError:
            raise TypeError(f"Run has no field {name!r}") from None
    return Run(*values)


@attrs.frozen
class NewLogEntry:
    """A log entry before the store gives it an id (what executors and the core write)."""

    message: str
    #: ``debug``, ``info``, ``warning`` or ``error``.
    level: str = "info"
    #: A machine name for entries runkit writes (``status.changed``, ``attempt.failed``).
    event: str | None = None
    data: JSON = attrs.field(factory=dict)
    occurred_at: datetime | None = None  # the store fills in its clock's time if None
    attempt: int | None = None  # None: the run's current attempt
    worker_id: str | None = None


@attrs.frozen
class LogEntry:
    """One entry of a run's log, as stored. Entries of a run are numbered 1, 2, 3, ... in
    commit order (``seq``); :attr:`cursor` is what ``logs(after=...)`` takes."""

    #: The run it belongs to.
    run_id: UUID
    #: Its number in the run's log: 1, 2, 3, ..., never reused.
    seq: int
    #: The attempt that wrote it (0 before the first claim).
    attempt: int
    #: ``debug``, ``info``, ``warning`` or ``error``.
    level: str
    #: The text for people (secrets redacted, at most 64 KiB).
    message: str
    #: When it happened (the writer's clock).
    occurred_at: datetime
    #: A machine name for entries runkit writes: ``status.changed`` (data: from, to,
    #: reason, actor), ``attempt.failed`` (data: error), ``approval.*``; None for an
    #: executor's own lines unless it names one.
    event: str | None = None
    #: Structured details (JSON), redacted like the message.
    data: JSON = attrs.field(factory=dict)
    #: The worker that wrote it, if a worker did.
    worker_id: str | None = None

    @property
    def cursor(self) -> str:
        """This entry's position as a cursor: pass it as ``after`` to read what follows."""
        return str(Cursor(self.run_id, self.seq))


@attrs.frozen
class WorkerInfo:
    """A worker as it registered itself in storage (``Runkit.workers()`` lists the live ones).

    ``kinds`` are the kinds it executes; ``last_seen_at`` is its last heartbeat. A worker
    removes its row when it stops gracefully; a crashed worker's row expires once
    ``last_seen_at`` is older than the lease (:attr:`Settings.lease`).
    """

    id: str
    host: str
    pid: int
    kinds: tuple[str, ...]
    concurrency: int
    started_at: datetime
    last_seen_at: datetime


@attrs.frozen
class Lease:
    """What fences a worker's writes: the run, the attempt it claimed and its lease token."""

    run_id: UUID
    attempt: int
    token: str


@attrs.frozen
class RunQuery:
    """Filters and page of :meth:`Runkit.list` (every filter given must match)."""

    action_id: str | None = None
    kind: str | None = None
    status: Status | None = None
    parent_action_run_id: UUID | None = None
    #: Only runs of this tenant (None: runs of every tenant and of none).
    tenant: str | None = None
    limit: int = 100
    offset: int = 0
    #: Creation order instead of newest first (a parent's children are listed so).
    oldest_first: bool = False


@attrs.frozen
class UserProfile:
    """A person who started runs, as the list's ``users`` map shows them (filled by the
    ``runkit_resolve_users`` hook)."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    profile_picture_url: str | None = None


@attrs.frozen
class RunPage:
    """One page of :meth:`Runkit.list`: newest first."""

    runs: tuple[Run, ...]
    #: How many runs match the filters in all.
    total: int
    limit: int
    offset: int
    #: The people among the page's ``trigger_source_id``, by id.
    users: Mapping[str, UserProfile] = attrs.field(factory=dict)

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.runs) < self.total


@attrs.frozen
class LogPage:
    """One page of a run's log (:meth:`Runkit.logs`)."""

    entries: tuple[LogEntry, ...]
    #: Whether entries follow this page (now: a running run may write more later).
    has_more: bool
    #: Pass as ``after`` for the next page (the last entry's cursor, or ``after`` again).
    next_cursor: str | None


@attrs.frozen
class Created:
    """The answer to create: the run, and whether this call made it (False: a replay)."""

    run: Run
    created: bool

    @property
    def replayed(self) -> bool:
        return not self.created


@attrs.frozen(kw_only=True)
class NewRun:
    """One item of :meth:`Runkit.create_many <runkit.Runkit.create_many>`: the arguments
    :meth:`~runkit.Runkit.create` takes, as a value."""

    kind: str = attrs.field(kw_only=False)
    definition: Mapping[str, Any] | None = attrs.field(default=None, kw_only=False)
    idempotency_key: str | None = None
    concurrency_key: str | None = None
    concurrency_limit: int | None = None
    parent_action_run_id: UUID | str | None = None
    action_id: str | None = None
    execute: bool = False


@attrs.frozen
class Expect:
    """The compare-and-set guard of a store update: the row changes only if its status is
    one of ``statuses`` and, when given, its attempt and lease token match."""

    statuses: frozenset[Status]
    attempt: int | None = None
    lease_token: str | None = None

    def matches(self, run: Run) -> bool:
        return (
            run.status in self.statuses
            and (self.attempt is None or run.attempt == self.attempt)
            and (self.lease_token is None or run.lease_token == self.lease_token)
        )
