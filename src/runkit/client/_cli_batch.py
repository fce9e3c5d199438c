"""``runkit runs create-many --file FILE|@-``: many runs in one request
(``POST /api/v1/action-runs:batch``, :meth:`runkit.client.Client.create_many`).

The file holds a JSON list of create bodies, as the API takes them (``{"kind": "sleep",
"definition": {...}, "idempotencyKey": "..."}``), or the batch body itself (``{"items":
[...]}``). One line an item, in order; ``--json`` prints the API's answer. Exit 0 when
every item has its run (created, or the one its key made), 2 when an item's idempotency
key was used for another request (its line says which run holds it) or the server refused
the batch (nothing is created then).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

import runkit
from runkit_contrib import _wire

from ._cli_errors import FAILED_TO_ASK, OK, UsageError, guarded
from ._cli_render import Output, display_of

#: The keys of a create body, and the NewRun fields they fill.
FIELDS = {
    "kind": "kind",
    "definition": "definition",
    "idempotencyKey": "idempotency_key",
    "concurrencyKey": "concurrency_key",
    "parentActionRunId": "parent_action_run_id",
    "actionId": "action_id",
}
Answer = runkit.Created | runkit.IdempotencyConflict


def add_create_many(action: Any, server: Any, as_json: Any, client: Any) -> None:
    """Add ``create-many`` with ``runs``' own ``action`` helper; ``client(args)`` makes the
    client from ``--url`` and ``--api-key``."""
    parser = action(
        "create-many", "create many runs in one request, all or none checked first", server, as_json
    )
    parser.add_argument(
        "--file",
        required=True,
        metavar="FILE|@-",
        help="a JSON list of create bodies ({kind, definition, idempotencyKey, ...}), or "
        '{"items": [...]}; @- reads it from stdin',
    )
    parser.add_argument("--execute", action="store_true", help="queue every run for a worker")
    parser.set_defaults(handler=guarded(lambda args: create_many(args, client)))


def read_items(name: str) -> list[runkit.NewRun]:
    """``--file``: the items as NewRun, or a UsageError saying what is wrong with them."""
    source = "stdin" if name in ("@-", "-") else name.removeprefix("@")
    try:
        text = sys.stdin.read() if source == "stdin" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --file {source}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not JSON: {exc}") from None
    if isinstance(value, dict) and set(value) == {"items"}:
        value = value["items"]
    if not isinstance(value, list):
        raise UsageError(f"{source} must hold a JSON list of create bodies")
    return [_item(source, i, body) for i, body in enumerate(value)]


def _item(source: str, index: int, body: Any) -> runkit.NewRun:
    where = f"{source}: item {index}"
    if not isinstance(body, dict):
        raise UsageError(f"{where} must be a create body (a JSON object)")
    unknown = sorted(set(body) - FIELDS.keys())
    if unknown:
        raise UsageError(f"{where}: unknown field {', '.join(map(repr, unknown))}")
    if "kind" not in body:
        raise UsageError(f"{where} has no kind")
    return runkit.NewRun(**{FIELDS[key]: value for key, value in body.items()})


def create_many(args: argparse.Namespace, client: Any) -> int:
    items = read_items(args.file)
    if args.execute:
        items = [attrs.evolve(item, execute=True) for item in items]
    out = Output()
    with client(args) as c:
        answers = c.create_many(items)
    if args.json:
        out.json(answers_json(answers))
    else:
        for i, answer in enumerate(answers):
            out.line(line(i, answer, items[i]))
    refused = sum(isinstance(a, runkit.IdempotencyConflict) for a in answers)
    if refused:
        out.note(f"{refused} of {len(answers)} items made no run: their keys hold other runs.")
    return FAILED_TO_ASK if refused else OK


def line(index: int, answer: Answer, item: runkit.NewRun) -> str:
    """What an item's answer says to people."""
    if isinstance(answer, runkit.IdempotencyConflict):
        said = "; ".join(d.msg for d in answer.details)
        return f"Item {index}: not created: {said}"
    run = answer.run
    if answer.created:
        return f"Created run {run.id} ({run.kind}): {display_of(run)}"
    key = item.idempotency_key
    return f"Run {run.id} ({run.kind}) already had idempotency key {key!r}: {display_of(run)}"


def answers_json(answers: Sequence[Answer]) -> dict[str, Any]:
    """The answers as the API wrote them (``{"items": [{status, actionRun, error}]}``)."""
    items = []
    for answer in answers:
        if isinstance(answer, runkit.IdempotencyConflict):
            detail = [
                _wire.ValidationDetail(loc=list(d.loc), msg=d.msg, type=d.type)
                for d in answer.details
            ]
            error = _wire.HTTPValidationError(detail=detail)
            items.append(_wire.CreatedRun(status=422, action_run=None, error=error))
        else:
            run = _wire.wire_run(answer.run, display_of(answer.run), answer.run.definition)
            status = 201 if answer.created else 200
            items.append(_wire.CreatedRun(status=status, action_run=run, error=None))
    return _wire.to_json(_wire.CreatedRuns(items=items))
