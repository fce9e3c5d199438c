"""The OpenAPI 3.2 document of the API: its operations here, its component schemas
generated from the wire models (``_components``), the create body from the registered kinds.

3.2 rather than 3.1 for one feature: ``itemSchema``, which describes each event of the log
stream (3.1 can only call a ``text/event-stream`` body a string, so no contract tester can
check an event)."""

from __future__ import annotations

from typing import Any

from runkit import Cursor, Runkit, Status

from ._components import component_schemas, create_schemas, ref

_UUID = {"type": "string", "format": "uuid"}
#: A cursor, or nothing (an empty ``Last-Event-ID`` counts as absent).
_CURSOR_EMPTY_OK = "^(?:" + Cursor.PATTERN.removeprefix("^").removesuffix("$") + ")?$"
#: ``after``: a cursor, or empty for the start (``?after=`` as a client builds it with none).
_CURSOR_OR_START = {"type": "string", "pattern": _CURSOR_EMPTY_OK}
_STATUS = {"type": "string", "enum": [s.value for s in Status]}


def _json(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref(name)}},
        **extra,
    }


_STREAM_DESCRIPTION = (
    "Server-Sent Events. First `retry: 3000` (no data: not an event), then one `log` event "
    "per log entry (`id` = its cursor, `data` = the LogEntry as JSON), `: ping` comment lines "
    "while idle (every 15 s by default; not events either), and, once the run is terminal "
    "and every entry up to its terminal transition was sent, one `end` event whose `data` is "
    "`{status, displayStatus}` and which has no `id` line of its own. Then the stream closes."
)
_ERRORS: dict[str, dict[str, Any]] = {
    "401": _json("Error", "missing or invalid credentials"),
    "403": _json("Error", "not allowed (authorize hook, approval policy, CSRF)"),
    "404": _json("Error", "no such run"),
    "409": _json("Conflict", "the run's status does not allow this action"),
    "413": _json("Error", "request body too large"),
    "415": _json("Error", "request body is not application/json"),
    "422": _json("HTTPValidationError", "invalid input"),
    "429": _json(
        "Error",
        "too many open log streams (this server's, or this caller's); retry later",
        headers={
            "Retry-After": {
                "description": "seconds to wait before retrying",
                "schema": {"type": "integer", "minimum": 0},
            }
        },
    ),
    "503": _json("Error", "storage unavailable; retry later"),
}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: _ERRORS[c] for c in ("401", "403", "422", "503", *codes)}


def _listing(op_id: str, summary: str, tag: str, schema: str, description: str) -> dict[str, Any]:
    """A GET that takes nothing: no 422 to document."""
    return {
        "get": {
            "operationId": op_id,
            "summary": summary,
            "description": description,
            "tags": [tag],
            "responses": {
                "200": _json(schema, summary.lower()),
                **{c: _ERRORS[c] for c in ("401", "403", "503")},
            },
        }
    }


def _run_id_param() -> dict[str, Any]:
    return {
        "name": "run_id",
        "in": "path",
        "required": True,
        "schema": _UUID,
        "description": "the run's `id`",
    }


def _query(name: str, schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _body(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _run_op(
    op_id: str, summary: str, codes: tuple[str, ...], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["Action runs"],
        "parameters": [_run_id_param()],
        "responses": {"200": _json("Run", "the run"), **_errors("404", "409", *codes)},
    }
    if body is not None:
        op["requestBody"] = body
    return op


def build_openapi(
    runkit: Runkit, *, allow_anonymous: bool, root_path: str = "", sessions: bool = False
) -> dict[str, Any]:
    create_body, variants = create_schemas(runkit)
    reason = _body(ref("ReasonBody"), False)
    base = "/api/v1/action-runs"
    one = base + "/{run_id}"
    paths: dict[str, Any] = {
        base: {
            "get": {
                "operationId": "list_runs",
                "summary": "List Runs",
                "tags": ["Action runs"],
                "parameters": [
                    _query("action_id", {"type": "string"}, "only runs with this `actionId`"),
                    _query("kind", {"type": "string"}, "only runs of this kind"),
                    _query("status", _STATUS, "only runs in this status"),
                    _query("parent_action_run_id", _UUID, "only children of this run"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
                        "runs a page",
                    ),
                    _query(
                        "offset", {"type": "integer", "minimum": 0, "default": 0}, "runs skipped"
                    ),
                ],
                "responses": {"200": _json("RunPage", "a page of runs"), **_errors()},
            },
            "post": {
                "operationId": "create_run",
                "summary": "Create Run",
                "tags": ["Action runs"],
                "parameters": [
                    _query(
                        "execute",
                        {"type": "boolean", "default": False},
                        "true: create the run straight in `queued` (one commit), as if "
                        "`execute` followed; also `1`/`0`",
                    )
                ],
                "requestBody": _body(create_body, True),
                "responses": {
                    "201": _json(
                        "Run", "created", headers={"Location": {"schema": {"type": "string"}}}
                    ),
                    "200": _json(
                        "Run",
                        "idempotent replay: the run this key created before",
                        headers={
                            "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}
                        },
                    ),
                    **_errors("413", "415"),
                },
            },
        },
        base + ":batch": {"post": _batch_op()},
        one: {
            "get": {
                "operationId": "get_run",
                "summary": "Get Run",
                "tags": ["Action runs"],
                "parameters": [_run_id_param()],
                "responses": {"200": _json("Run", "the run"), **_errors("404")},
            },
            "delete": {
                "operationId": "delete_run",
                "summary": "Delete Run",
                "tags": ["Action runs"],
                "parameters": [_run_id_param()],
                "responses": {"204": {"description": "deleted"}, **_errors("404", "409")},
            },
        },
        one + "/approve": {"post": _run_op("approve_run", "Approve Run", ("413", "415"), reason)},
        one + "/reject": {"post": _run_op("reject_run", "Reject Run", ("413", "415"), reason)},
        one + "/logs": {
            "get": {
                "operationId": "get_run_logs",
                "summary": "Get Run Logs",
                "tags": ["Action runs"],
                "parameters": [
                    _run_id_param(),
                    _query(
                        "after",
                        _CURSOR_OR_START,
                        "cursor: entries after this id; empty: from the first",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 500, "default": 100},
                        "entries a page",
                    ),
                ],
                "responses": {"200": _json("LogPage", "a page of log entries"), **_errors("404")},
            }
        },
        one + "/logs/stream": {
            "get": {
                "operationId": "stream_run_logs",
                "summary": "Stream Run Logs",
                "description": _STREAM_DESCRIPTION + " Resume with `Last-Event-ID` (wins over "
                "`after`). 204 when the run already ended and nothing follows the cursor. "
                "429 (with `Retry-After`) beyond the server's cap of open streams, in total "
                "or for one caller (anonymous callers share one).",
                "tags": ["Action runs"],
                "parameters": [
                    _run_id_param(),
                    _query(
                        "after",
                        _CURSOR_OR_START,
                        "cursor: start after this id; empty: from the first",
                    ),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        # Empty means none, as for EventSource (which never sends it empty).
                        "schema": {"type": "string", "pattern": _CURSOR_EMPTY_OK},
                        "description": "cursor: resume after this id (EventSource sends it); "
                        "empty: as if absent",
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the event stream",
                        "content": {"text/event-stream": {"itemSchema": ref("LogStreamEvent")}},
                    },
                    "204": {"description": "the run ended and everything was sent"},
                    **_errors("404", "429"),
                },
            }
        },
    }
    for action in ("execute", "pause", "resume", "cancel", "retry"):
        paths[f"{one}/{action}"] = {"post": _run_op(f"{action}_run", f"{action.title()} Run", ())}
    paths["/api/v1/kinds"] = _listing(
        "list_kinds",
        "List Kinds",
        "Kinds",
        "KindList",
        "The kinds this server can create runs of, by name, each with its definition's "
        "JSON Schema.",
    )
    paths["/api/v1/workers"] = _listing(
        "list_workers",
        "List Workers",
        "Workers",
        "WorkerList",
        "The live workers: registered, and heard from within one lease. A worker that "
        "stopped gracefully is gone at once; one that crashed, one lease after its last "
        "heartbeat.",
    )
    if sessions:
        paths["/api/v1/sessions"] = _session_paths()
    security: list[dict[str, list[str]]] = [
        {"bearerAuth": []},
        {"apiKeyHeader": []},
        {"cookieAuth": []},
    ]
    if allow_anonymous:
        security.append({})
    doc: dict[str, Any] = {
        "openapi": "3.2.0",
        "info": {"title": "runkit Action Runs API", "version": "1"},
        "paths": paths,
        "security": security,
        "components": {
            "schemas": component_schemas(variants, create_body),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "vai_token"},
            },
        },
    }
    if root_path:
        doc["servers"] = [{"url": root_path}]
    return doc


_BATCH_DESCRIPTION = (
    "Create up to 1,000 runs at once, each item a create body, in one transaction. Every "
    "item is checked first: any invalid item answers one 422 naming each bad item at "
    '`["body", "items", <index>, ...]`, and nothing is written. Otherwise 200, with one '
    "answer an item in their order: `status` 201 (created) or 200 (idempotent replay) with "
    "its `actionRun`, or 422 with the `error` a create of it alone would answer (an "
    "idempotency conflict); a conflict holds up no other item. `execute=true` queues every "
    "item. Each item carries its own `idempotencyKey`; the `Idempotency-Key` header is "
    "refused (422)."
)


def _batch_op() -> dict[str, Any]:
    return {
        "operationId": "create_runs",
        "summary": "Create Runs",
        "description": _BATCH_DESCRIPTION,
        "tags": ["Action runs"],
        "parameters": [
            _query(
                "execute",
                {"type": "boolean", "default": False},
                "true: create every run straight in `queued`; also `1`/`0`",
            )
        ],
        "requestBody": _body(ref("CreateRuns"), True),
        "responses": {
            "200": _json("CreatedRuns", "one answer an item, in their order"),
            **_errors("413", "415"),
        },
    }


def _session_paths() -> dict[str, Any]:
    cookie = {
        "Set-Cookie": {
            "description": "`vai_token=<token>; Path=<mount>/; HttpOnly; SameSite=Lax` (and "
            "`Secure` over https): the session, sent back on every request",
            "schema": {"type": "string"},
        }
    }
    return {
        "post": {
            "operationId": "sign_in",
            "summary": "Sign In",
            "description": "Trade an API key (in the body, or as a bearer token or "
            "`X-API-Key`) for a session: a signed, expiring `vai_token` cookie that "
            "authenticates every endpoint (unsafe methods also need `X-Runkit-CSRF: 1` or "
            "same-origin Fetch metadata). Refused from another site's page.",
            "tags": ["Sessions"],
            "security": [],
            "requestBody": _body(ref("SignIn"), False),
            "responses": {
                "200": _json("Session", "signed in", headers=cookie),
                **{c: _ERRORS[c] for c in ("401", "403", "413", "415", "422")},
            },
        },
        "delete": {
            "operationId": "sign_out",
            "summary": "Sign Out",
            "description": "End the session of the `vai_token` cookie (it is refused from "
            "then on) and clear the cookie. Without a live session it only clears it.",
            "tags": ["Sessions"],
            "security": [],
            "responses": {
                "204": {"description": "signed out"},
                "403": _ERRORS["403"],
            },
        },
    }
