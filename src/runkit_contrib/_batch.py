"""``POST /api/v1/action-runs:batch``: many creates in one request, written in one
transaction by :meth:`runkit.Runkit.create_many` (docs/http.md, "Creating many runs at once").

The body is ``{"items": [<create body>, ...]}``, at most :data:`._wire.MAX_BATCH` items.
Every item is checked before anything is written: the HTTP layer checks each item's
envelope as a create does (unknown keys, ``kind``), the core each value; any problem
answers one 422 listing every bad item at ``["body", "items", i, ...]``, and nothing is
written. Otherwise the answer is 200 with one item per item sent, in order, each the status
its create alone would have answered (201, 200 for an idempotent replay, 422 for an
idempotency conflict) with its run or its error: a conflict holds up no other item.

Decisions: ``?execute=true`` applies to every item (as it does to a create; a batch is
asked ``create`` and ``execute`` of the ``authorize`` hook once each, run None); the
``Idempotency-Key`` header is refused (422): a batch has no key of its own, each item
carries its ``idempotencyKey``. The body size limit is the app's ``max_body_bytes`` (1 MiB),
which holds 1,000 items of up to about 1 KB each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio.to_thread
import attrs
from starlette.requests import Request
from starlette.responses import Response

from runkit import (
    Created,
    ErrorDetail,
    IdempotencyConflict,
    NewRun,
    Principal,
    Run,
    Runkit,
    ValidationError,
    camel,
)

from ._body import MAX_KEY, decode, json_object
from ._errors import invalid
from ._json import JSONResponse, dumps
from ._wire import (
    MAX_BATCH,
    CreatedRun,
    CreatedRuns,
    CreateRun,
    CreateRuns,
    HTTPValidationError,
    ValidationDetail,
    approval,
    converter,
    to_json,
)
from ._wire import Run as WireRun

Answer = Created | IdempotencyConflict
_ITEMS = ("body", "items")


async def read_items(request: Request, max_bytes: int) -> list[CreateRun]:
    """The batch body's items, each decoded as a create body; one 422 naming every bad
    item (its first problem, as a create answers one) otherwise."""
    body = decode(await json_object(request, max_bytes, required=True), CreateRuns)
    items = body.items
    if not isinstance(items, list):
        raise invalid(_ITEMS, "must be a list of create bodies", "list_type")
    if len(items) > MAX_BATCH:
        raise invalid(_ITEMS, f"at most {MAX_BATCH} items", "too_long")
    decoded: list[CreateRun] = []
    problems: list[ErrorDetail] = []
    for i, item in enumerate(items):
        at = (*_ITEMS, i)
        if not isinstance(item, dict):
            problems.append(ErrorDetail(at, "must be a create body (an object)", "dict_type"))
            continue
        try:
            run = _quick(item) or decode(item, CreateRun, at)
        except ValidationError as err:
            problems.extend(err.details)
            continue
        if isinstance(run.kind, str) and len(run.kind) > MAX_KEY:
            # Registered kinds have short names: a longer one is refused before it is echoed.
            problems.append(
                ErrorDetail(
                    (*at, "kind"), f"must be at most {MAX_KEY} characters", "string_too_long"
                )
            )
            continue
        decoded.append(run)
    if problems:
        raise ValidationError(problems)
    return decoded


#: The create body's keys, and its fields' names.
_FIELDS = {camel(a.name): a.name for a in attrs.fields(CreateRun)}


def _quick(item: dict[str, Any]) -> CreateRun | None:
    """``item`` as a create body when it is plainly one (known keys, a string ``kind``: all
    :func:`decode` checks, its other fields being the core's to check), without the
    converter's per-field machinery; None otherwise, and :func:`decode` says what is wrong."""
    if not (item.keys() <= _FIELDS.keys() and type(item.get("kind")) is str):
        return None
    return CreateRun(**{_FIELDS[key]: value for key, value in item.items()})


def no_key_header(request: Request) -> None:
    """A batch has no key of its own: an ``Idempotency-Key`` header would promise a safety
    it does not give, so it is refused rather than ignored."""
    if request.headers.get("idempotency-key") is not None:
        raise invalid(
            ("header", "idempotency-key"),
            "a batch takes no Idempotency-Key; give each item its idempotencyKey",
            "extra_forbidden",
        )


async def create_all(
    rk: Runkit, items: Sequence[CreateRun], *, execute: bool, principal: Principal | None
) -> list[Answer]:
    """The core's answers for ``items``; its ValidationError located in the body."""
    runs = [
        NewRun(
            item.kind,
            item.definition,
            idempotency_key=item.idempotency_key,
            concurrency_key=item.concurrency_key,
            parent_action_run_id=item.parent_action_run_id,
            action_id=item.action_id,
            execute=execute,
        )
        for item in items
    ]
    try:
        return await rk.create_many(runs, principal=principal)
    except ValidationError as err:
        details = [ErrorDetail(_in_body(d.loc), d.msg, d.type) for d in err.details]
        raise ValidationError(details) from None


def _in_body(loc: Sequence[str | int]) -> tuple[str | int, ...]:
    """The core's ``("items", i, "idempotency_key", ...)`` as the request has it:
    ``("body", "items", i, "idempotencyKey", ...)`` (the names within a definition are the
    kind's own, kept as they are)."""
    rest = tuple(loc[1:]) if loc and loc[0] == "items" else tuple(loc)
    if len(rest) >= 2 and isinstance(rest[1], str):
        rest = (rest[0], camel(rest[1]), *rest[2:])
    return (*_ITEMS, *rest)


async def answer(rk: Runkit, answers: Sequence[Answer]) -> Response:
    """200 with one answer an item: display statuses worked out once for the whole batch,
    each run written by :func:`run_json`."""
    runs = [a.run for a in answers if isinstance(a, Created)]
    statuses = iter(await rk.display_statuses(runs))
    shown, write = rk.kinds.shown_definition, _run_writer()
    status, action_run, error = _ITEM_KEYS
    items: list[dict[str, Any]] = []
    for i, each in enumerate(answers):
        if isinstance(each, Created):
            run = write(each.run, next(statuses), shown(each.run))
            items.append({status: 201 if each.created else 200, action_run: run, error: None})
        else:
            items.append({status: 422, action_run: None, error: to_json(_conflict(each, i))})
    content = {_ANSWER_KEY: items}
    if len(items) <= _THREAD_ITEMS:
        return JSONResponse(content)
    # Some 700 bytes a run: written off the event loop, as a large body is read off it.
    body = await anyio.to_thread.run_sync(dumps, content)
    return Response(body, media_type="application/json")


#: Answers of more items than this are written in a worker thread.
_THREAD_ITEMS = 100


#: The keys of an item's answer and of the whole (``CreatedRun``'s, ``CreatedRuns``').
_ITEM_KEYS = tuple(camel(a.name) for a in attrs.fields(CreatedRun))
(_ANSWER_KEY,) = (camel(a.name) for a in attrs.fields(CreatedRuns))


def run_json(run: Run, display_status: str, definition: Mapping[str, Any]) -> dict[str, Any]:
    """``to_json(wire_run(run, display_status, definition))``: the same keys and values
    in the same order, without building the wire object first (4 µs instead of 9 a run).
    Every answer that is one run, or a batch of them, is written by it. A test holds the
    two equal."""
    return _run_writer()(run, display_status, definition)


#: The wire Run's fields that ``wire_run`` fills itself; the rest are the run's own.
_GIVEN = {
    "definition": "dict(definition)",
    "approvals": "approvals",
    "display_status": "display_status",
}


@functools.cache
def _run_writer() -> Callable[[Run, str, Mapping[str, Any]], dict[str, Any]]:
    """A function writing one run's JSON object: each field of the wire's Run in its
    order, under its key, through the converter's own hook for its type (a value the
    converter passes on as it is, as it is). Generated once, as cattrs generates its own:
    a loop over the fields took about twice as long, building the wire object first three
    times."""
    attrs.resolve_types(WireRun)
    namespace: dict[str, Any] = {"approval": approval}
    entries = []
    for field in attrs.fields(WireRun):
        value = _GIVEN.get(field.name, f"run.{field.name}")
        hook = converter.get_unstructure_hook(field.type)
        if not _passes_on(hook):
            namespace[f"hook_{field.name}"] = hook
            value = f"hook_{field.name}({value})"
        entries.append(f"        {camel(field.name)!r}: {value},")
    source = "\n".join(
        [
            "def write(run, display_status, definition):",
            "    approvals = [approval(a) for a in run.approvals] if run.approvals else []",
            "    return {",
            *entries,
            "    }",
        ]
    )
    exec(compile(source, "<runkit_contrib._batch run writer>", "exec"), namespace)
    writer: Callable[[Run, str, Mapping[str, Any]], dict[str, Any]] = namespace["write"]
    return writer


def _passes_on(hook: Callable[[Any], Any]) -> bool:
    """Whether the converter's ``hook`` hands its value back untouched (text, numbers,
    JSON objects)."""
    probe = object()
    try:
        return hook(probe) is probe
    except Exception:  # a hook that reads its value (a time, a UUID): not passed on
        return False


def _conflict(conflict: IdempotencyConflict, index: int) -> HTTPValidationError:
    """The body a create's 422 has for the conflict, at the item's ``idempotencyKey``."""
    details = [
        ValidationDetail(loc=list(_in_body(("items", index, *d.loc))), msg=d.msg, type=d.type)
        for d in conflict.details
    ]
    return HTTPValidationError(detail=details)
