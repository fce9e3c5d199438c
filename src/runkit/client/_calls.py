"""Every request of the API as data: its method, path, query, body, how safe it is to
repeat and how its answer is read. The synchronous and the asynchronous client send the
same :class:`Call` objects, so each endpoint is described once and the two cannot differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from uuid import UUID

import attrs
import httpx

import runkit
from runkit import Action, Cursor, Status, ValidationError

from . import _decode as decode
from ._errors import ClientError, Context, error_for
from ._retry import Safety

T = TypeVar("T")

RUNS = "/api/v1/action-runs"
#: No body at all (``None`` would be sent as JSON ``null``).
NO_BODY: Any = object()


@attrs.frozen
class Call(Generic[T]):
    method: str
    path: str
    safety: Safety
    context: Context
    read: Callable[[httpx.Response], T]
    params: Mapping[str, str] = attrs.field(factory=dict)
    body: Any = NO_BODY
    headers: Mapping[str, str] = attrs.field(factory=lambda: {"Accept": "application/json"})
    #: A 404 after an attempt whose outcome was lost means that attempt did it (delete).
    gone_is_done: bool = False

    def finish(self, response: httpx.Response, uncertain: bool) -> T:
        """The call's result from its final answer; raises the error an answer stands for.
        ``uncertain``: an earlier attempt may have been carried out."""
        status = response.status_code
        if status >= 400 and not (self.gone_is_done and uncertain and status == 404):
            raise error_for(response, self.context)
        try:
            return self.read(response)
        except Exception as exc:  # the server is not the runkit this client speaks to
            raise ClientError(
                f"{self.context.what}: unexpected answer ({response.status_code}): {exc}",
                status=response.status_code,
            ) from exc


def run_uuid(run_id: UUID | str) -> UUID:
    """A run id as a UUID, refused here (as the server would, at the same place) rather
    than put in a URL path as it is."""
    if isinstance(run_id, UUID):
        return run_id
    try:
        return UUID(str(run_id))
    except ValueError:
        raise ValidationError.at(
            ("path", "run_id"), f"not a valid UUID: {run_id!r}", "uuid_parsing"
        ) from None


def _context(method: str, path: str, **more: Any) -> Context:
    return Context(f"{method} {path}", **more)


def _call(
    method: str, path: str, read: Callable[[httpx.Response], T], safety: Safety, **more: Any
) -> Call[T]:
    context = more.pop("context", None) or _context(method, path)
    return Call(method, path, safety, context, read, **more)


def _text(value: Any) -> str:
    return value.value if isinstance(value, Status) else str(value)


def _query(**values: Any) -> dict[str, str]:
    return {k: _text(v) for k, v in values.items() if v is not None}


# ------------------------------------------------------------------ runs --------------
def list_runs(
    *,
    kind: str | None,
    status: Status | str | None,
    parent: UUID | str | None,
    action_id: str | None,
    limit: int,
    offset: int,
) -> Call[decode.ListedPage]:
    params = _query(
        kind=kind,
        status=status,
        parent_action_run_id=parent,
        action_id=action_id,
        limit=limit,
        offset=offset,
    )
    return _call("GET", RUNS, lambda r: decode.run_page(r.json()), Safety.SAFE, params=params)


def _create_body(
    kind: str,
    definition: Mapping[str, Any] | None,
    *,
    idempotency_key: str | None,
    concurrency_key: str | None,
    parent: UUID | str | None,
    action_id: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": kind}
    given = {
        "definition": dict(definition) if definition is not None else None,
        # In the body, not the Idempotency-Key header: JSON carries any character.
        "idempotencyKey": idempotency_key,
        "concurrencyKey": concurrency_key,
        "parentActionRunId": str(parent) if parent is not None else None,
        "actionId": action_id,
    }
    body.update({k: v for k, v in given.items() if v is not None})
    return body


def create(
    kind: str,
    definition: Mapping[str, Any] | None,
    *,
    idempotency_key: str | None,
    concurrency_key: str | None,
    parent: UUID | str | None,
    action_id: str | None,
    execute: bool,
) -> Call[runkit.Created]:
    body = _create_body(
        kind,
        definition,
        idempotency_key=idempotency_key,
        concurrency_key=concurrency_key,
        parent=parent,
        action_id=action_id,
    )
    # With a key the server answers a repeat with the run the first made: safe to repeat.
    safety = Safety.SAFE if idempotency_key is not None else Safety.UNSAFE
    return _call(
        "POST",
        RUNS,
        decode.created,
        safety,
        params={"execute": "true"} if execute else {},
        body=body,
        context=_context("POST", RUNS, idempotency_key=idempotency_key),
    )


BATCH = RUNS + ":batch"


def create_many(
    items: Sequence[runkit.NewRun],
) -> Call[list[runkit.Created | runkit.IdempotencyConflict]]:
    """``POST .../action-runs:batch``. Each :class:`runkit.NewRun` becomes a create body;
    its ``execute`` is the batch's ``?execute`` (so every item must say the same), and its
    ``concurrency_limit`` is the server's to decide (it must be None). Safe to repeat when
    every item carries an idempotency key: the repeat answers each item's run again."""
    given: object = items
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise ValidationError.at(("body", "items"), "expected a list of NewRun", "list_type")
    bodies: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        if not isinstance(item, runkit.NewRun):
            raise ValidationError.at(("body", "items", i), "expected a NewRun", "model_type")
        if item.concurrency_limit is not None:
            raise ValueError(
                f"items[{i}]: concurrency_limit is the server's to decide over HTTP; leave it None"
            )
        bodies.append(
            _create_body(
                item.kind,
                item.definition,
                idempotency_key=item.idempotency_key,
                concurrency_key=item.concurrency_key,
                parent=item.parent_action_run_id,
                action_id=item.action_id,
            )
        )
    execute = {item.execute for item in items}
    if len(execute) > 1:
        raise ValueError(
            "execute is the whole batch's over HTTP (?execute=true): give every item the same"
        )
    keys = [item.idempotency_key for item in items]
    keyed = all(key is not None for key in keys)
    context = _context("POST", BATCH)
    return _call(
        "POST",
        BATCH,
        lambda r: decode.created_many(r, keys, context),
        Safety.SAFE if keyed else Safety.UNSAFE,
        params={"execute": "true"} if True in execute else {},
        body={"items": bodies},
        context=context,
    )


def get(run_id: UUID | str) -> Call[runkit.Run]:
    rid = run_uuid(run_id)
    path = f"{RUNS}/{rid}"
    return _call(
        "GET",
        path,
        lambda r: decode.run(r.json()),
        Safety.SAFE,
        context=_context("GET", path, run_id=rid),
    )


def delete(run_id: UUID | str) -> Call[None]:
    rid = run_uuid(run_id)
    path = f"{RUNS}/{rid}"
    return _call(
        "DELETE",
        path,
        lambda r: None,
        Safety.SAFE,
        context=_context("DELETE", path, run_id=rid, action=Action.DELETE),
        gone_is_done=True,
    )


#: Actions whose repeat leaves the run where the first put it (see ``_retry``).
_SAFE_ACTIONS = frozenset({Action.EXECUTE, Action.PAUSE, Action.RESUME, Action.CANCEL})


def act(action: Action, run_id: UUID | str, reason: str | None = None) -> Call[runkit.Run]:
    """``POST .../{id}/{action}``; approve and reject carry ``{reason}`` when one is given."""
    rid = run_uuid(run_id)
    path = f"{RUNS}/{rid}/{action.value}"
    safety = Safety.SAFE if action in _SAFE_ACTIONS else Safety.UNSAFE
    return _call(
        "POST",
        path,
        lambda r: decode.run(r.json()),
        safety,
        body={"reason": reason} if reason is not None else NO_BODY,
        context=_context("POST", path, run_id=rid, action=action),
    )


# ------------------------------------------------------------------ logs --------------
def _after(after: Cursor | str | None) -> str | None:
    return None if after is None or after == "" else str(after)


def logs(run_id: UUID | str, *, after: Cursor | str | None, limit: int) -> Call[runkit.LogPage]:
    rid = run_uuid(run_id)
    path = f"{RUNS}/{rid}/logs"
    return _call(
        "GET",
        path,
        lambda r: decode.log_page(r.json(), rid),
        Safety.SAFE,
        params=_query(after=_after(after), limit=limit),
        context=_context("GET", path, run_id=rid),
    )


def stream(run_id: UUID, *, after: str | None, last_event_id: str | None) -> Call[None]:
    """The log stream's request; its answer is read by :mod:`._follow`, not here."""
    path = f"{RUNS}/{run_id}/logs/stream"
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return _call(
        "GET",
        path,
        lambda r: None,
        Safety.SAFE,
        params=_query(after=after),
        headers=headers,
        context=_context("GET", path, run_id=run_id),
    )


# ------------------------------------------------------------------ kinds, workers ----
def kinds() -> Call[list[decode.KindInfo]]:
    return _call("GET", "/api/v1/kinds", lambda r: decode.kinds(r.json()), Safety.SAFE)


def workers() -> Call[list[runkit.WorkerInfo]]:
    return _call("GET", "/api/v1/workers", lambda r: decode.workers(r.json()), Safety.SAFE)


def parent_of(parent: UUID | str | None, parent_action_run_id: UUID | str | None) -> Any:
    """``parent``, or its in-process API name ``parent_action_run_id`` (so code written
    for :class:`runkit.Runkit` runs against a client unchanged); not both."""
    if parent is not None and parent_action_run_id is not None:
        raise TypeError("give parent or parent_action_run_id, not both")
    return parent if parent is not None else parent_action_run_id
