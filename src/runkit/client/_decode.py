"""Answers' JSON into runkit's own models, through the server's wire classes and converter
(``runkit_contrib._wire``): the client never maps a key by hand, so it reads exactly what
the server writes. What ``_wire`` does not turn back into a runkit model is done here, from
the wire object: a log entry's ``id`` is its cursor, which names its ``seq``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import attrs
import httpx

import runkit
from runkit import Cursor
from runkit_contrib import _wire as wire

from ._errors import Context, validation_error

#: What ``GET /api/v1/kinds`` lists: the wire object itself (its name, display name,
#: description, capabilities, definition schema and example), as the server writes it.
KindInfo = wire.Kind


@attrs.frozen
class RemoteRun(runkit.Run):
    """A :class:`runkit.Run` as a server answered it, with the server's ``displayStatus``:
    English for people (never parse it) that the server worked out from what only it can
    see (a queued run's concurrency key, the live workers, a waiting run's children). Not
    part of equality: two reads of the same run are equal whatever the time says."""

    display_status: str | None = attrs.field(default=None, eq=False)


def run(data: Any) -> RemoteRun:
    return _run(wire.converter.structure(dict(data), wire.Run))


def _run(item: wire.Run) -> RemoteRun:
    """``wire.run_from_wire`` for a run already structured, keeping its display status."""
    values: dict[str, Any] = {n: getattr(item, n) for n in wire.PUBLIC_RUN_FIELDS}
    values["approvals"] = tuple(attrs.asdict(a) for a in item.approvals)
    return RemoteRun(**values, display_status=item.display_status)


def created(response: httpx.Response) -> runkit.Created:
    """201: this request made the run; 200 with ``Idempotent-Replayed: true``: an earlier
    request with the same idempotency key did."""
    return runkit.Created(run(response.json()), created=response.status_code == 201)


def created_many(
    response: httpx.Response, keys: Sequence[str | None], context: Context
) -> list[runkit.Created | runkit.IdempotencyConflict]:
    """A batch create's answer, one item per item sent (``keys``: their idempotency keys):
    201 a new run, 200 an idempotent replay (``created`` False), 422 the item's
    :class:`runkit.IdempotencyConflict`, its ``loc`` the server's (``("body", "items", i,
    "idempotencyKey")``), as a create's conflict keeps it."""
    answer = wire.converter.structure(response.json(), wire.CreatedRuns)
    out: list[runkit.Created | runkit.IdempotencyConflict] = []
    for item, key in zip(answer.items, keys, strict=True):  # as many answers as items
        if item.status in (200, 201) and item.action_run is not None:
            out.append(runkit.Created(_run(item.action_run), created=item.status == 201))
            continue
        error = item.error and validation_error(wire.to_json(item.error), context.keyed(key))
        if item.status != 422 or not isinstance(error, runkit.IdempotencyConflict):
            raise ValueError(f"item {len(out)}: neither a run nor an idempotency conflict")
        out.append(error)
    return out


@attrs.frozen
class ListedPage:
    """A runs page, and how to page on: the wire's ``hasNext`` and ``limit``. The model's
    ``has_next`` is worked out from ``total``, which is not the same when the server's
    ``authorize`` hook hid runs from the page; and a page cut short by its size in bytes
    answers ``limit`` = the runs it holds, so the next page starts at ``offset + limit``."""

    page: runkit.RunPage
    has_next: bool


def run_page(data: Any) -> ListedPage:
    page = wire.converter.structure(data, wire.RunPage)
    runs = tuple(_run(r) for r in page.runs)
    users = {uid: runkit.UserProfile(**attrs.asdict(p)) for uid, p in page.users.items()}
    model = runkit.RunPage(runs, page.total, page.limit, page.offset, users)
    return ListedPage(model, page.has_next)


def _entry(item: wire.LogEntry, run_id: UUID) -> runkit.LogEntry:
    values = {a.name: getattr(item, a.name) for a in attrs.fields(wire.LogEntry)}
    cursor = Cursor.parse(values.pop("id"), run_id, ("id",))
    return runkit.LogEntry(run_id=run_id, seq=cursor.seq, **values)


def log_entry(data: Any, run_id: UUID) -> runkit.LogEntry:
    return _entry(wire.converter.structure(data, wire.LogEntry), run_id)


def log_page(data: Any, run_id: UUID) -> runkit.LogPage:
    page = wire.converter.structure(data, wire.LogPage)
    entries = tuple(_entry(e, run_id) for e in page.entries)
    return runkit.LogPage(entries, page.has_more, page.next_cursor)


def stream_end(data: Any) -> wire.StreamEnd:
    return wire.converter.structure(data, wire.StreamEnd)


def kinds(data: Any) -> list[KindInfo]:
    return list(wire.converter.structure(data, wire.KindList).kinds)


def workers(data: Any) -> list[runkit.WorkerInfo]:
    listed = wire.converter.structure(data, wire.WorkerList).workers
    return [
        runkit.WorkerInfo(
            id=w.id,
            host=w.host,
            pid=w.pid,
            kinds=tuple(w.kinds),
            concurrency=w.concurrency,
            started_at=w.started_at,
            last_seen_at=w.last_seen_at,
        )
        for w in listed
    ]
