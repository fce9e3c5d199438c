"""The OpenAPI 3.1 document of the API, built from the wire models and the registered kinds,
and a self-contained HTML page that lists it (no script or stylesheet from the internet)."""

from __future__ import annotations

import html
import json
from typing import Any

from runkit import Runkit
from runkit._states import Status  # not in runkit.__all__ yet

from ._schema import config_schema

_REF = "#/components/schemas/"
_NULLABLE_STR = {"type": ["string", "null"]}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
_OBJ = {"type": "object"}
_NULLABLE_OBJ = {"type": ["object", "null"]}
_KEY = {"type": ["string", "null"], "minLength": 1, "maxLength": 255}
_UUID = {"type": "string", "format": "uuid"}
#: A log cursor: the first 8 hex digits of its run's id, a dash, the entry's number.
_CURSOR = {"type": "string", "pattern": "^[0-9a-f]{8}-[0-9]{1,18}$"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(name: str, description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref(name)}},
        **extra,
    }


_RUN = {
    "type": "object",
    "properties": {
        "id": _UUID,
        "actionId": _NULLABLE_STR,
        "kind": {"type": "string"},
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "displayStatus": {"type": "string", "description": "English for people; never parse"},
        "definition": _OBJ,
        "idempotencyKey": _NULLABLE_STR,
        "concurrencyKey": _NULLABLE_STR,
        "parentActionRunId": {"type": ["string", "null"], "format": "uuid"},
        "progress": _OBJ,
        "result": _NULLABLE_OBJ,
        "error": _NULLABLE_OBJ,
        "retryCount": {"type": "integer"},
        "interruptCount": {"type": "integer"},
        "triggerMethod": _NULLABLE_STR,
        "triggerSourceType": _NULLABLE_STR,
        "triggerSourceId": _NULLABLE_STR,
        "createdAt": {"type": "string", "format": "date-time"},
        "startedAt": _NULLABLE_TIME,
        "completedAt": _NULLABLE_TIME,
        "updatedAt": {"type": "string", "format": "date-time"},
        "durationSeconds": {"type": ["number", "null"]},
        "attempt": {"type": "integer"},
        "statusReason": _NULLABLE_STR,
    },
    "required": ["id", "kind", "status", "displayStatus", "definition", "createdAt", "updatedAt"],
}
_USER = {
    "type": "object",
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
        "hasNext": {"type": "boolean"},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "runs": {"type": "array", "items": _ref("Run")},
        "total": {"type": "integer"},
        "users": {"type": "object", "additionalProperties": _ref("UserProfile")},
    },
    "required": ["hasNext", "limit", "offset", "runs", "total", "users"],
}
_LOG_ENTRY = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "description": "the entry's cursor"},
        "attempt": {"type": "integer"},
        "level": {"type": "string"},
        "event": _NULLABLE_STR,
        "message": {"type": "string"},
        "data": _OBJ,
        "occurredAt": {"type": "string", "format": "date-time"},
        "workerId": _NULLABLE_STR,
    },
    "required": ["id", "attempt", "level", "message", "data", "occurredAt"],
}
_LOG_PAGE = {
    "type": "object",
    "properties": {
        "entries": {"type": "array", "items": _ref("LogEntry")},
        "hasMore": {"type": "boolean"},
        "nextCursor": _NULLABLE_STR,
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
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
                "required": ["loc", "msg", "type"],
            },
        }
    },
    "required": ["detail"],
}
_ERROR = {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]}
_REASON = {
    "type": "object",
    "properties": {"reason": {"type": ["string", "null"]}},
    "additionalProperties": False,
}

_ERRORS: dict[str, dict[str, Any]] = {
    "401": _json("Error", "missing or invalid credentials"),
    "403": _json("Error", "not allowed (authorize hook, approval policy, CSRF)"),
    "404": _json("Error", "no such run"),
    "409": _json("Error", "the run's status does not allow this action"),
    "413": _json("Error", "request body too large"),
    "415": _json("Error", "request body is not application/json"),
    "422": _json("HTTPValidationError", "invalid input"),
    "503": _json("Error", "storage unavailable; retry later"),
}


def _errors(*codes: str) -> dict[str, Any]:
    return {c: _ERRORS[c] for c in ("401", "403", "422", "503", *codes)}


def _run_id_param() -> dict[str, Any]:
    return {"name": "run_id", "in": "path", "required": True, "schema": _UUID}


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
        definition = config_schema(kind.config) if kind.config is not None else dict(_OBJ)
        if kind.description:
            definition["description"] = kind.description
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
                    _query("action_id", {"type": "string"}),
                    _query("kind", {"type": "string"}),
                    _query("status", {"type": "string", "enum": [s.value for s in Status]}),
                    _query("parent_action_run_id", _UUID),
                    _query(
                        "limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 100}
                    ),
                    _query("offset", {"type": "integer", "minimum": 0, "default": 0}),
                ],
                "responses": {"200": _json("RunPage", "a page of runs"), **_errors()},
            },
            "post": {
                "operationId": "create_run",
                "summary": "Create Run",
                "tags": ["Action runs"],
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
                        "limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}
                    ),
                ],
                "responses": {"200": _json("LogPage", "a page of log entries"), **_errors("404")},
            }
        },
        one + "/logs/stream": {
            "get": {
                "operationId": "stream_run_logs",
                "summary": "Stream Run Logs",
                "description": "Server-Sent Events: `event: log` frames (id = cursor, data = a "
                "LogEntry), `: ping` comments while idle, and `event: end` with "
                "`{status, displayStatus}` once the run is terminal. Resume with "
                "`Last-Event-ID` (wins over `after`). 204 when the run already ended and "
                "nothing follows the cursor.",
                "tags": ["Action runs"],
                "parameters": [
                    _run_id_param(),
                    _query("after", _CURSOR, "cursor: start after this id"),
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the event stream",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "204": {"description": "the run ended and everything was sent"},
                    **_errors("404"),
                },
            }
        },
    }
    for action in ("execute", "pause", "resume", "cancel", "retry"):
        paths[f"{one}/{action}"] = {"post": _run_op(f"{action}_run", f"{action.title()} Run", ())}
    security: list[dict[str, list[str]]] = [
        {"bearerAuth": []},
        {"apiKeyHeader": []},
        {"cookieAuth": []},
    ]
    if allow_anonymous:
        security.append({})
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "runkit Action Runs API", "version": "1"},
        "paths": paths,
        "security": security,
        "components": {
            "schemas": {
                "Run": _RUN,
                "UserProfile": _USER,
                "RunPage": _RUN_PAGE,
                "LogEntry": _LOG_ENTRY,
                "LogPage": _LOG_PAGE,
                "HTTPValidationError": _VALIDATION,
                "Error": _ERROR,
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
