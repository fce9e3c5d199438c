"""The OpenAPI 3.2 document of the API, built from the wire models and the registered kinds,
and a self-contained HTML page that lists it (no script or stylesheet from the internet).

3.2 rather than 3.1 for one feature: ``itemSchema``, which describes each event of the log
stream (3.1 can only call a ``text/event-stream`` body a string, so no contract tester can
check an event)."""

from __future__ import annotations

import html
import json
from typing import Any

from runkit import Runkit
from runkit.domain.states import TERMINAL, Status  # not in runkit.__all__ yet

from ._kinds import definition_schema

_REF = "#/components/schemas/"
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_OBJ = {"type": "object"}
_NULLABLE_OBJ = {"type": ["object", "null"]}
_KEY = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
_UUID = {"type": "string", "format": "uuid"}
#: A log cursor: the first 8 hex digits of its run's id, a dash, the entry's number.
_CURSOR = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9]{1,18}$"}
_CURSOR_EMPTY_OK = "^(?:[0-9a-f]{8}-[0-9]{1,18})?$"
_TIME = {"type": "string", "format": "date-time"}
_STATUS = {"type": "string", "enum": [s.value for s in Status]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
        **extra,
    }


def _d(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description}


_RUN = {
    "type": "object",
    "properties": {
        "id": _UUID,
        "actionId": _d(_NULLABLE_STR, "the host's grouping of runs (a list filter)"),
        "kind": _d({"type": "string"}, "what runs: decides the executor and the definition"),
        "status": _STATUS,
        "displayStatus": _d({"type": "string"}, "English for people; never parse"),
        "definition": _d(_OBJ, "what the run was created with, as its kind structured it"),
        "idempotencyKey": _d(_NULLABLE_STR, "the key that made creating it safe to repeat"),
        "concurrencyKey": _d(_NULLABLE_STR, "runs sharing it run at most its limit at once"),
        "parentActionRunId": _d(
            {"type": ["string", "null"], "format": "uuid"},
            "the run this one belongs to; cancelling the parent cancels it",
        ),
        "progress": _d(_OBJ, "what the executor last reported"),
        "result": _d(_NULLABLE_OBJ, "what the executor returned (succeeded runs)"),
        "error": _d(_NULLABLE_OBJ, "why the last attempt failed, if it did"),
        "retryCount": _d({"type": "integer"}, "retries so far, automatic or asked for"),
        "interruptCount": _d(
            {"type": "integer"}, "attempts lost with their worker and taken over by another"
        ),
        "triggerMethod": _d(_NULLABLE_STR, "how it was created: `api`, `ui`, `system`"),
        "triggerSourceType": _d(_NULLABLE_STR, "who created it: `api_key`, `user`, `system`"),
        "triggerSourceId": _d(_NULLABLE_STR, "the principal id of its creator"),
        "createdAt": _TIME,
        "startedAt": _d(_NULLABLE_TIME, "when its first attempt began"),
        "completedAt": _d(_NULLABLE_TIME, "when it reached a terminal status"),
        "updatedAt": _TIME,
        "durationSeconds": _d(
            {"type": ["number", "null"]}, "from start to completion (or to its last change)"
        ),
        "attempt": _d({"type": "integer"}, "attempts started; log entries carry theirs"),
        "statusReason": _d(
            _NULLABLE_STR,
            "why it is in its status: `user`, `crashed`, `timeout`, `retries_exhausted`, ...",
        ),
        "approvals": {
            "type": "array",
            "items": _ref("Approval"),
            "description": "the decisions taken on it (approval gates), oldest first",
        },
    },
    "required": [
        "id",
        "kind",
        "status",
        "displayStatus",
        "definition",
        "createdAt",
        "updatedAt",
        "approvals",
    ],
}
_APPROVAL = {
    "type": "object",
    "properties": {
        "by": {"type": "string", "description": "who decided: a principal id"},
        "decision": {"type": "string", "enum": ["approve", "reject"]},
        "reason": {"type": ["string", "null"], "description": "the reason given, if any"},
        "at": _TIME,
    },
    "required": ["by", "decision", "reason", "at"],
}
_USER = {
    "type": "object",
    "description": "a person who created runs, as the host's directory describes them",
    "properties": {
        "id": {"type": "string"},
        "firstName": _NULLABLE_STR,
        "lastName": _NULLABLE_STR,
        "profilePictureUrl": _NULLABLE_STR,
    },
    "required": ["id"],
}
_RUN_PAGE = {
    "type": "object",
    "properties": {
        "hasNext": _d({"type": "boolean"}, "more runs follow this page"),
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "runs": {"type": "array", "items": _ref("Run"), "description": "newest first"},
        "total": _d({"type": "integer"}, "runs matching the filters"),
        "users": {
            "type": "object",
            "additionalProperties": _ref("UserProfile"),
            "description": "the creators of these runs, by `triggerSourceId`",
        },
    },
    "required": ["hasNext", "limit", "offset", "runs", "total", "users"],
}
_LOG_ENTRY = {
    "type": "object",
    "properties": {
        "id": _d(_CURSOR, "the entry's cursor"),
        "attempt": _d({"type": "integer"}, "the attempt that wrote it (0: before any)"),
        "level": _d({"type": "string"}, "`debug`, `info`, `warning` or `error`"),
        "event": _d(_NULLABLE_STR, "a machine-readable name, e.g. `status.changed`"),
        "message": {"type": "string"},
        "data": _d(_OBJ, "structured detail (secrets redacted)"),
        "occurredAt": _TIME,
        "workerId": _d(_NULLABLE_STR, "the worker that wrote it"),
    },
    "required": ["id", "attempt", "level", "message", "data", "occurredAt"],
}
_LOG_PAGE = {
    "type": "object",
    "properties": {
        "entries": {"type": "array", "items": _ref("LogEntry"), "description": "oldest first"},
        "hasMore": _d({"type": "boolean"}, "more entries follow: ask with `after=nextCursor`"),
        "nextCursor": _d(_NULLABLE_STR, "the last entry's cursor"),
    },
    "required": ["entries", "hasMore", "nextCursor"],
}
_VALIDATION = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"type": ["string", "integer"]},
                        "description": "where: `body`, `query`, `path` or `header`, then names",
                    },
                    "msg": {"type": "string"},
                    "type": _d({"type": "string"}, "a machine-readable kind of problem"),
                },
                "required": ["loc", "msg", "type"],
            },
        }
    },
    "required": ["detail"],
}
_ERROR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_CONFLICT = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "the refusal, for people"},
        "status": {**_STATUS, "description": "the run's status"},
        "allowed": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the API actions the run's status allows",
        },
    },
    "required": ["detail", "status", "allowed"],
}
_RETRY_POLICY = {
    "type": "object",
    "properties": {
        "maxAttempts": {"type": "integer", "minimum": 1, "description": "1: never retried"},
        "backoffBase": {"type": "number", "description": "seconds before the 2nd attempt"},
        "backoffMax": {"type": "number", "description": "longest wait, seconds"},
        "jitter": {"type": "number", "description": "each wait varies by this fraction"},
    },
    "required": ["maxAttempts", "backoffBase", "backoffMax", "jitter"],
}
_KIND = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "the `kind` of a create body"},
        "displayName": {"type": "string", "description": "a label (the name if none is set)"},
        "description": {"type": "string"},
        "capabilities": {
            "type": "object",
            "properties": {
                "pausable": {"type": "boolean"},
                "cancellable": {"type": "boolean"},
                "retry": _ref("RetryPolicy"),
            },
            "required": ["pausable", "cancellable", "retry"],
        },
        "definitionSchema": {
            "type": "object",
            "description": "the JSON Schema (2020-12) a run's `definition` must fit",
        },
        "example": {**_NULLABLE_OBJ, "description": "a definition the kind accepts, if any"},
    },
    "required": [
        "name",
        "displayName",
        "description",
        "capabilities",
        "definitionSchema",
        "example",
    ],
}
_KIND_LIST = {
    "type": "object",
    "properties": {"kinds": {"type": "array", "items": _ref("Kind")}},
    "required": ["kinds"],
}
_WORKER = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "host": {"type": "string"},
        "pid": {"type": "integer"},
        "kinds": {
            "type": "array",
            "items": {"type": "string"},
            "description": "the kinds it executes",
        },
        "concurrency": {"type": "integer", "description": "runs it executes at once"},
        "startedAt": _TIME,
        "lastSeenAt": {**_TIME, "description": "its last heartbeat"},
    },
    "required": ["id", "host", "pid", "kinds", "concurrency", "startedAt", "lastSeenAt"],
}
_WORKER_LIST = {
    "type": "object",
    "properties": {"workers": {"type": "array", "items": _ref("Worker")}},
    "required": ["workers"],
}


def _json_data(schema: str) -> dict[str, Any]:
    """An SSE ``data`` field that holds one line of JSON fitting ``schema``."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": _ref(schema)}


#: Events as ``EventSource`` hands them over (and as OpenAPI 3.2 reads a stream): ``id``
#: is the last id seen, so the end event carries its last log event's cursor.
_LOG_EVENT = {
    "type": "object",
    "description": "a log entry; `id` is its cursor (what `Last-Event-ID` resumes after)",
    "properties": {"event": {"const": "log"}, "id": _CURSOR, "data": _json_data("LogEntry")},
    "required": ["event", "id", "data"],
}
_END_EVENT = {
    "type": "object",
    "description": "the last event: the run is terminal and every entry was sent",
    "properties": {"event": {"const": "end"}, "data": _json_data("StreamEnd")},
    "required": ["event", "data"],
}
_STREAM_END = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": [s.value for s in Status if s in TERMINAL]},
        "displayStatus": _d({"type": "string"}, "English for people; never parse"),
    },
    "required": ["status", "displayStatus"],
}
_STREAM_DESCRIPTION = (
    "Server-Sent Events. First `retry: 3000` (no data: not an event), then one `log` event "
    "per log entry (`id` = its cursor, `data` = the LogEntry as JSON), `: ping` comment lines "
    "while idle (every 15 s by default; not events either), and, once the run is terminal "
    "and every entry up to its terminal transition was sent, one `end` event whose `data` is "
    "`{status, displayStatus}` and which has no `id` line of its own. Then the stream closes."
)
_REASON = {
    "type": "object",
    "properties": {"reason": _d(_NULLABLE_STR, "why; kept on the run in `approvals`")},
    "additionalProperties": False,
}

_ERRORS: dict[str, dict[str, Any]] = {
    "401": _json("Error", "missing or invalid credentials"),
    "403": _json("Error", "not allowed (authorize hook, approval policy, CSRF)"),
    "404": _json("Error", "no such run"),
    "409": _json("Conflict", "the run's status does not allow this action"),
    "413": _json("Error", "request body too large"),
    "415": _json("Error", "request body is not application/json"),
    "422": _json("HTTPValidationError", "invalid input"),
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


def _create_schemas(runkit: Runkit) -> tuple[dict[str, Any], dict[str, Any]]:
    """One ``CreateRun.<kind>`` schema a kind, and a ``oneOf`` of them discriminated by kind."""
    variants: dict[str, Any] = {}
    for name in runkit.kinds.names():
        kind = runkit.kinds.get(name)
        assert kind is not None
        definition = definition_schema(kind)
        if kind.description:
            definition["description"] = kind.description
        if kind.example is not None:
            definition["examples"] = [dict(kind.example)]
        needs_definition = bool(definition.get("required"))
        if not needs_definition:
            definition = {"anyOf": [definition, {"type": "null"}]}
        variants[f"CreateRun.{name}"] = {
            "type": "object",
            "properties": {
                "kind": {"const": name, "type": "string"},
                "definition": definition,
                "idempotencyKey": _KEY,
                "concurrencyKey": _KEY,
                "parentActionRunId": {"type": ["string", "null"], "format": "uuid"},
                "actionId": _NULLABLE_STR,
            },
            "required": ["kind", "definition"] if needs_definition else ["kind"],
            "additionalProperties": False,
        }
    if not variants:
        return {
            "type": "object",
            "properties": {"kind": {"type": "string"}},
            "required": ["kind"],
        }, {}
    body = {
        "oneOf": [_ref(n) for n in variants],
        "discriminator": {
            "propertyName": "kind",
            "mapping": {n.split(".", 1)[1]: _REF + n for n in variants},
        },
    }
    return body, variants


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


def build_openapi(runkit: Runkit, *, allow_anonymous: bool, root_path: str = "") -> dict[str, Any]:
    create_body, variants = _create_schemas(runkit)
    reason = _body(_ref("ReasonBody"), False)
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
                    _query("after", _CURSOR, "cursor: entries after this id"),
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
                "`after`). 204 when the run already ended and nothing follows the cursor.",
                "tags": ["Action runs"],
                "parameters": [
                    _run_id_param(),
                    _query("after", _CURSOR, "cursor: start after this id"),
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
                        "content": {"text/event-stream": {"itemSchema": _ref("LogStreamEvent")}},
                    },
                    "204": {"description": "the run ended and everything was sent"},
                    **_errors("404"),
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
            "schemas": {
                "Run": _RUN,
                "Approval": _APPROVAL,
                "UserProfile": _USER,
                "RunPage": _RUN_PAGE,
                "LogEntry": _LOG_ENTRY,
                "LogPage": _LOG_PAGE,
                "LogStreamEvent": {
                    "description": "one event of a log stream",
                    "oneOf": [_ref("LogEvent"), _ref("EndEvent")],
                },
                "LogEvent": _LOG_EVENT,
                "EndEvent": _END_EVENT,
                "StreamEnd": _STREAM_END,
                "Kind": _KIND,
                "RetryPolicy": _RETRY_POLICY,
                "KindList": _KIND_LIST,
                "Worker": _WORKER,
                "WorkerList": _WORKER_LIST,
                "HTTPValidationError": _VALIDATION,
                "Error": _ERROR,
                "Conflict": _CONFLICT,
                "ReasonBody": _REASON,
                **variants,
            },
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


def docs_page(doc: dict[str, Any]) -> str:
    """A readable listing of the operations and schemas; works offline, no JavaScript."""
    esc = html.escape
    rows: list[str] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = ", ".join(f"{p['name']} ({p['in']})" for p in op.get("parameters", ()))
            codes = ", ".join(op["responses"])
            rows.append(
                f"<tr><td><b>{esc(method.upper())}</b></td><td><code>{esc(path)}</code></td>"
                f"<td>{esc(op.get('summary', ''))}</td><td>{esc(params)}</td>"
                f"<td>{esc(codes)}</td></tr>"
            )
    schemas = "".join(
        f"<h3 id='{esc(name)}'>{esc(name)}</h3><pre>{esc(json.dumps(schema, indent=2))}</pre>"
        for name, schema in doc["components"]["schemas"].items()
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>runkit API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.3em .6em;"
        "border-bottom:1px solid #ddd;text-align:left}pre{background:#f6f6f6;padding:1em}</style>"
        f"</head><body><h1>{esc(doc['info']['title'])}</h1>"
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>. Credentials: "
        "<code>Authorization: Bearer</code>, <code>X-API-Key</code> or cookie "
        "<code>vai_token</code>.</p><table><tr><th>method</th><th>path</th><th>summary</th>"
        f"<th>parameters</th><th>responses</th></tr>{''.join(rows)}</table>"
        f"<h2>Schemas</h2>{schemas}</body></html>"
    )
