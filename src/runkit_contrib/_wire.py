"""The wire format: every JSON object of the API described once, and the one converter.

Each object a client sends or reads is an attrs class below. Its fields say everything the
wire needs: the key (the field's name in camelCase), the JSON type and nullability (the
field's type), whether a client can count on the key (a field without a default is
``required`` in the schema), a description for people and any further JSON Schema keywords
(:func:`doc`). The converter reads these classes to write JSON and to decode request
bodies, and the OpenAPI document's component schemas are generated from the same classes
(``_components``, under each class's name), so the document cannot drift from the answers.

camelCase keys, RFC 3339 UTC timestamps ending in ``Z``, ``null`` for absent values, UUIDs
as strings (``_convert``), log ids as cursors. A runkit model becomes its wire object by
:func:`project`, field by field of the same name. Engine bookkeeping stays off the wire
except ``attempt``, ``statusReason`` and ``approvals``, which clients need to read retries
and outcomes (a rejection's reason lives only in its approval record).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from uuid import UUID

import attrs

import runkit
from runkit import Cursor, Status

from ._convert import format_time, make_converter, parse_time

W = TypeVar("W", bound=attrs.AttrsInstance)


def doc(description: str = "", **schema: Any) -> dict[str, Any]:
    """A wire field's metadata: its description and JSON Schema keywords beyond its type."""
    return {"description": description, "schema": schema}


_TIME = {"format": "date-time"}
#: A key the core checks (``runkit.Runkit.create``): 1 to 255 characters, or null.
_KEY = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}


# ------------------------------------------------------------------ runs ------------------
@attrs.frozen(kw_only=True)
class Approval:
    """One decision taken on a run at an approval gate."""

    by: str = attrs.field(metadata=doc("who decided: a principal id"))
    decision: Literal["approve", "reject"]
    reason: str | None = attrs.field(metadata=doc("the reason given, if any"))
    # A string, not a datetime: the store keeps what the core wrote, and a time that does
    # not parse is passed on as is rather than failing the whole run (:func:`approval`).
    at: str = attrs.field(metadata=doc(**_TIME))


@attrs.frozen(kw_only=True)
class Run:
    """A run: what was asked (kind, definition), where it stands, and what came of it."""

    # In the order the JSON has always had (runkit.Run's); the computed two come last.
    id: UUID
    kind: str = attrs.field(metadata=doc("what runs: decides the executor and the definition"))
    status: Status
    created_at: datetime
    updated_at: datetime
    definition: dict[str, Any] = attrs.field(
        metadata=doc("what the run was created with, as its kind structured it")
    )
    action_id: str | None = attrs.field(
        default=None, metadata=doc("the host's grouping of runs (a list filter)")
    )
    idempotency_key: str | None = attrs.field(
        default=None, metadata=doc("the key that made creating it safe to repeat")
    )
    concurrency_key: str | None = attrs.field(
        default=None, metadata=doc("runs sharing it run at most its limit at once")
    )
    parent_action_run_id: UUID | None = attrs.field(
        default=None, metadata=doc("the run this one belongs to; cancelling the parent cancels it")
    )
    progress: dict[str, Any] = attrs.field(
        factory=dict, metadata=doc("what the executor last reported")
    )
    result: dict[str, Any] | None = attrs.field(
        default=None, metadata=doc("what the executor returned (succeeded runs)")
    )
    error: dict[str, Any] | None = attrs.field(
        default=None, metadata=doc("why the last attempt failed, if it did")
    )
    retry_count: int = attrs.field(
        default=0, metadata=doc("retries so far, automatic or asked for")
    )
    interrupt_count: int = attrs.field(
        default=0, metadata=doc("attempts lost with their worker and taken over by another")
    )
    trigger_method: str | None = attrs.field(
        default=None, metadata=doc("how it was created: `api`, `ui`, `system`")
    )
    trigger_source_type: str | None = attrs.field(
        default=None, metadata=doc("who created it: `api_key`, `user`, `system`")
    )
    trigger_source_id: str | None = attrs.field(
        default=None, metadata=doc("the principal id of its creator")
    )
    started_at: datetime | None = attrs.field(
        default=None, metadata=doc("when its first attempt began")
    )
    completed_at: datetime | None = attrs.field(
        default=None, metadata=doc("when it reached a terminal status")
    )
    status_reason: str | None = attrs.field(
        default=None,
        metadata=doc(
            "why it is in its status: `user`, `crashed`, `timeout`, `retries_exhausted`, ..."
        ),
    )
    attempt: int = attrs.field(
        default=0, metadata=doc("attempts started; log entries carry theirs")
    )
    approvals: list[Approval] = attrs.field(
        metadata=doc("the decisions taken on it (approval gates), oldest first")
    )
    display_status: str = attrs.field(metadata=doc("English for people; never parse"))
    duration_seconds: float | None = attrs.field(
        default=None, metadata=doc("from start to completion (or to its last change)")
    )


@attrs.frozen(kw_only=True)
class UserProfile:
    """A person who created runs, as the host's directory describes them."""

    id: str
    first_name: str | None = None
    last_name: str | None = None
    profile_picture_url: str | None = None


@attrs.frozen(kw_only=True)
class RunPage:
    """A page of runs, newest first, and the people who created them."""

    has_next: bool = attrs.field(metadata=doc("more runs follow this page"))
    limit: int
    offset: int
    runs: list[Run] = attrs.field(metadata=doc("newest first"))
    total: int = attrs.field(metadata=doc("runs matching the filters"))
    users: dict[str, UserProfile] = attrs.field(
        metadata=doc("the creators of these runs, by `triggerSourceId`")
    )


# ------------------------------------------------------------------ logs ------------------
@attrs.frozen(kw_only=True)
class LogEntry:
    """One entry of a run's log."""

    id: str = attrs.field(metadata=doc("the entry's cursor", pattern=Cursor.PATTERN))
    attempt: int = attrs.field(metadata=doc("the attempt that wrote it (0: before any)"))
    level: str = attrs.field(metadata=doc("`debug`, `info`, `warning` or `error`"))
    event: str | None = attrs.field(
        default=None, metadata=doc("a machine-readable name, e.g. `status.changed`")
    )
    message: str
    data: dict[str, Any] = attrs.field(metadata=doc("structured detail (secrets redacted)"))
    occurred_at: datetime
    worker_id: str | None = attrs.field(default=None, metadata=doc("the worker that wrote it"))


@attrs.frozen(kw_only=True)
class LogPage:
    """A page of a run's log, oldest entry first."""

    entries: list[LogEntry] = attrs.field(metadata=doc("oldest first"))
    has_more: bool = attrs.field(metadata=doc("more entries follow: ask with `after=nextCursor`"))
    next_cursor: str | None = attrs.field(metadata=doc("the last entry's cursor"))


@attrs.frozen(kw_only=True)
class StreamEnd:
    """The data of a log stream's last event: how the run ended."""

    status: Status = attrs.field(metadata=doc(enum=[s.value for s in Status if s.terminal]))
    display_status: str = attrs.field(metadata=doc("English for people; never parse"))


# ------------------------------------------------------------------ kinds, workers --------
@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How a kind's failed attempts are retried."""

    max_attempts: int = attrs.field(metadata=doc("1: never retried", minimum=1))
    backoff_base: float = attrs.field(metadata=doc("seconds before the 2nd attempt"))
    backoff_max: float = attrs.field(metadata=doc("longest wait, seconds"))
    jitter: float = attrs.field(metadata=doc("each wait varies by this fraction"))


@attrs.frozen(kw_only=True)
class Capabilities:
    pausable: bool
    cancellable: bool
    retry: RetryPolicy


@attrs.frozen(kw_only=True)
class Kind:
    """A kind of run this server can create."""

    name: str = attrs.field(metadata=doc("the `kind` of a create body"))
    display_name: str = attrs.field(metadata=doc("a label (the name if none is set)"))
    description: str
    capabilities: Capabilities
    definition_schema: dict[str, Any] = attrs.field(
        metadata=doc("the JSON Schema (2020-12) a run's `definition` must fit")
    )
    example: dict[str, Any] | None = attrs.field(
        metadata=doc("a definition the kind accepts, if any")
    )


@attrs.frozen(kw_only=True)
class KindList:
    kinds: list[Kind]


@attrs.frozen(kw_only=True)
class Worker:
    """A live worker: registered, and heard from within one lease."""

    id: str
    host: str
    pid: int
    kinds: list[str] = attrs.field(metadata=doc("the kinds it executes"))
    concurrency: int = attrs.field(metadata=doc("runs it executes at once"))
    started_at: datetime
    last_seen_at: datetime = attrs.field(metadata=doc("its last heartbeat"))


@attrs.frozen(kw_only=True)
class WorkerList:
    workers: list[Worker]


# ------------------------------------------------------------------ errors ----------------
@attrs.frozen(kw_only=True)
class Error:
    detail: str


@attrs.frozen(kw_only=True)
class Conflict:
    detail: str = attrs.field(metadata=doc("the refusal, for people"))
    status: Status = attrs.field(metadata=doc("the run's status"))
    allowed: list[str] = attrs.field(metadata=doc("the API actions the run's status allows"))


@attrs.frozen(kw_only=True)
class ValidationDetail:
    loc: list[str | int] = attrs.field(
        metadata=doc("where: `body`, `query`, `path` or `header`, then names")
    )
    msg: str
    type: str = attrs.field(metadata=doc("a machine-readable kind of problem"))


@attrs.frozen(kw_only=True)
class HTTPValidationError:
    detail: list[ValidationDetail]


# ------------------------------------------------------------------ request bodies --------
# The values of a request are checked where their rules live: the HTTP layer checks the
# envelope (unknown keys, a missing or non-string ``kind``), the core checks each value
# (``runkit.Runkit.create``: the kind exists, the definition fits it, key lengths, the
# parent's UUID). So the fields the core checks are ``Any`` here and pass through as sent,
# their JSON Schema spelled out beside them; decoding them here as well would answer a
# different first error than the core, and answer it before the authorize hook.
@attrs.frozen(kw_only=True)
class CreateRun:
    kind: str = attrs.field(metadata=doc("the kind of run: decides what `definition` takes"))
    definition: Any = attrs.field(
        default=None,
        metadata=doc("the kind's configuration (none: `{}`)", type=["object", "null"]),
    )
    idempotency_key: Any = attrs.field(
        default=None,
        metadata=doc("repeating the request with it returns the same run", **_KEY),
    )
    concurrency_key: Any = attrs.field(
        default=None, metadata=doc("runs sharing it run at most its limit at once", **_KEY)
    )
    parent_action_run_id: Any = attrs.field(
        default=None,
        metadata=doc(
            "the run this one belongs to (it must exist)", type=["string", "null"], format="uuid"
        ),
    )
    action_id: Any = attrs.field(
        default=None,
        metadata=doc("the host's grouping of runs (a list filter)", type=["string", "null"]),
    )


#: The most items a batch create takes: the core's bound (``runkit.Runkit.create_many``).
MAX_BATCH = 1000


@attrs.frozen(kw_only=True)
class CreateRuns:
    """Runs to create at once: each item is a create body. All are checked before any is
    written; then all are written in one transaction."""

    items: Any = attrs.field(
        metadata=doc("create bodies, answered in this order", type="array", maxItems=MAX_BATCH)
    )


@attrs.frozen(kw_only=True)
class ReasonBody:
    reason: Any = attrs.field(
        default=None,
        metadata=doc("why; kept on the run in `approvals`", type=["string", "null"]),
    )


@attrs.frozen(kw_only=True)
class SignIn:
    api_key: Any = attrs.field(
        default=None,
        metadata=doc(
            "an API key (or send it as `Authorization: Bearer`/`X-API-Key` instead)",
            type=["string", "null"],
            minLength=1,
            maxLength=4096,
        ),
    )


# ------------------------------------------------------------------ sessions --------------
@attrs.frozen(kw_only=True)
class SessionPrincipal:
    """Who a session acts as."""

    id: str = attrs.field(metadata=doc("the runs it creates name it in `triggerSourceId`"))
    kind: str = attrs.field(metadata=doc("`user` for a person signed in with a key"))
    roles: list[str] | None = attrs.field(metadata=doc("null: the host decides, not roles"))
    tenant: str | None = attrs.field(metadata=doc("the tenant whose runs alone it sees"))


@attrs.frozen(kw_only=True)
class Session:
    """A signed-in session: its token is the `vai_token` cookie set beside this answer."""

    principal: SessionPrincipal
    user: UserProfile | None = attrs.field(metadata=doc("the person, when the key names one"))
    expires_at: datetime = attrs.field(metadata=doc("when the session ends", **_TIME))


# ------------------------------------------------------------------ batch answers ---------
@attrs.frozen(kw_only=True)
class CreatedRun:
    """One item's answer: the status its create alone would have, and its run or error."""

    status: int = attrs.field(
        metadata=doc(
            "201 created; 200 idempotent replay; 422 idempotency conflict", enum=[201, 200, 422]
        )
    )
    action_run: Run | None = attrs.field(metadata=doc("the run (201, 200); null for a 422"))
    error: HTTPValidationError | None = attrs.field(
        metadata=doc("why no run (422): a create's 422 body, its `loc` naming the item")
    )


@attrs.frozen(kw_only=True)
class CreatedRuns:
    """The answer to a batch create: one item per item sent, in their order."""

    items: list[CreatedRun]


#: Bodies clients send: decoding refuses keys they do not declare, and their schemas say so
#: (``additionalProperties: false``).
REQUESTS: frozenset[type[Any]] = frozenset({CreateRun, CreateRuns, ReasonBody, SignIn})


# ------------------------------------------------------------------ the converter ---------
def _is_wire(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls) and cls.__module__ == __name__


#: The one converter of the API's JSON: every class above, camelCase keys, strict types.
converter = make_converter(_is_wire, REQUESTS)


@functools.cache
def _field_names(cls: type[Any]) -> tuple[str, ...]:
    return tuple(a.name for a in attrs.fields(cls))


def project(cls: type[W], source: object, **given: Any) -> W:
    """A wire object of ``cls`` whose fields are ``given`` or, for the rest, the attributes
    of the same name on ``source`` (a runkit model)."""
    values = {n: given[n] if n in given else getattr(source, n) for n in _field_names(cls)}
    return cls(**values)


def to_json(obj: attrs.AttrsInstance) -> dict[str, Any]:
    data: dict[str, Any] = converter.unstructure(obj)
    return data


# ------------------------------------------------------------------ runkit models ---------
#: The fields of the wire Run the core does not store but works out when asked.
_COMPUTED = frozenset({"display_status", "duration_seconds"})
#: Run fields that appear on the wire, in their order on it.
PUBLIC_RUN_FIELDS = tuple(n for n in _field_names(Run) if n not in _COMPUTED)


def approval(record: Mapping[str, Any]) -> Approval:
    """A stored decision with exactly the documented keys, its time in the wire's own
    format (the store keeps whatever the core wrote; an unreadable time is passed on)."""
    at = record.get("at")
    if isinstance(at, str):
        with contextlib.suppress(ValueError):
            at = format_time(parse_time(at))
    values: dict[str, Any] = {name: record.get(name) for name in _field_names(Approval)}
    return Approval(**{**values, "at": at})


def wire_run(run: runkit.Run, display_status: str, definition: Mapping[str, Any]) -> Run:
    """``run`` as clients see it, with ``definition`` as shown (its kind's secret fields
    masked: ``KindRegistry.shown_definition``)."""
    return project(
        Run,
        run,
        definition=dict(definition),
        approvals=[approval(a) for a in run.approvals],
        display_status=display_status,
    )


def run_to_wire(
    run: runkit.Run, display_status: str, definition: Mapping[str, Any]
) -> dict[str, Any]:
    return to_json(wire_run(run, display_status, definition))


def run_from_wire(data: Mapping[str, Any]) -> runkit.Run:
    """The public part of a run back from JSON (bookkeeping fields take their defaults)."""
    wire = converter.structure(dict(data), Run)
    values = {n: getattr(wire, n) for n in PUBLIC_RUN_FIELDS}
    values["approvals"] = tuple(attrs.asdict(a) for a in wire.approvals)
    return runkit.Run(**values)


def public_part(run: runkit.Run) -> runkit.Run:
    """``run`` with its bookkeeping fields reset: what survives a trip over the wire."""
    return runkit.Run(**{n: getattr(run, n) for n in PUBLIC_RUN_FIELDS})


def log_to_wire(entry: runkit.LogEntry) -> dict[str, Any]:
    return to_json(project(LogEntry, entry, id=entry.cursor))


def log_page_to_wire(page: runkit.LogPage) -> dict[str, Any]:
    entries = [project(LogEntry, e, id=e.cursor) for e in page.entries]
    return to_json(project(LogPage, page, entries=entries))


def run_page_to_wire(
    page: runkit.RunPage,
    display_statuses: Sequence[str],
    definitions: Sequence[Mapping[str, Any]],
    *,
    has_next: bool | None = None,
) -> dict[str, Any]:
    """``has_next``: when the runs shown are a filtered part of ``page``, whether more
    follow the page as the store read it."""
    runs = [
        wire_run(r, d, definition)
        for r, d, definition in zip(page.runs, display_statuses, definitions, strict=True)
    ]
    users = {uid: project(UserProfile, p) for uid, p in page.users.items()}
    more = page.has_next if has_next is None else has_next
    return to_json(project(RunPage, page, runs=runs, users=users, has_next=more))


def stream_end_to_wire(status: Status, display_status: str) -> dict[str, Any]:
    return to_json(StreamEnd(status=status, display_status=display_status))


def workers_to_wire(workers: Sequence[runkit.WorkerInfo]) -> dict[str, Any]:
    listed = [project(Worker, w, kinds=list(w.kinds)) for w in workers]
    return to_json(WorkerList(workers=listed))
