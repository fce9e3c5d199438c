"""The component schemas of the OpenAPI document, generated from the wire models of
``_wire`` (one schema per model, under its class name), plus the two things no model
describes: the events of the log stream as ``EventSource`` delivers them, and the create
body's one variant per registered kind (which the batch body's items are too)."""

from __future__ import annotations

from typing import Any

from runkit import Cursor, Runkit

from . import _wire as wire
from ._kinds import definition_schema
from ._schema import REF, model_schema

#: The models with a schema of their own (a field of another refers to it by ``$ref``);
#: the rest (a kind's capabilities, one validation problem) are written inline.
NAMED: tuple[type[Any], ...] = (
    wire.Run,
    wire.Approval,
    wire.UserProfile,
    wire.RunPage,
    wire.CreatedRuns,
    wire.CreatedRun,
    wire.LogEntry,
    wire.LogPage,
    wire.StreamEnd,
    wire.Kind,
    wire.RetryPolicy,
    wire.KindList,
    wire.Worker,
    wire.WorkerList,
    wire.HTTPValidationError,
    wire.Error,
    wire.Conflict,
    wire.CreateRuns,
    wire.ReasonBody,
    wire.SignIn,
    wire.SessionPrincipal,
    wire.Session,
)


def ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def schema_of(cls: type[Any]) -> dict[str, Any]:
    return model_schema(cls, NAMED, closed=cls in wire.REQUESTS)


def _json_data(schema: str) -> dict[str, Any]:
    """An SSE ``data`` field that holds one line of JSON fitting ``schema``."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": ref(schema)}


#: Events as ``EventSource`` hands them over (and as OpenAPI 3.2 reads a stream): ``id``
#: is the last id seen, so the end event carries its last log event's cursor.
STREAM_EVENTS: dict[str, Any] = {
    "LogStreamEvent": {
        "description": "one event of a log stream",
        "oneOf": [ref("LogEvent"), ref("EndEvent")],
    },
    "LogEvent": {
        "type": "object",
        "description": "a log entry; `id` is its cursor (what `Last-Event-ID` resumes after)",
        "properties": {
            "event": {"const": "log"},
            "id": {"type": "string", "pattern": Cursor.PATTERN},
            "data": _json_data("LogEntry"),
        },
        "required": ["event", "id", "data"],
    },
    "EndEvent": {
        "type": "object",
        "description": "the last event: the run is terminal and every entry was sent",
        "properties": {"event": {"const": "end"}, "data": _json_data("StreamEnd")},
        "required": ["event", "data"],
    },
}


def create_schemas(runkit: Runkit) -> tuple[dict[str, Any], dict[str, Any]]:
    """The create body: a ``oneOf`` of one ``CreateRun.<kind>`` schema a kind,
    discriminated by ``kind``; and those variants, for the components."""
    base = schema_of(wire.CreateRun)
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
        properties = {
            **base["properties"],
            "kind": {"const": name, "type": "string"},
            "definition": definition,
        }
        variants[f"CreateRun.{name}"] = {
            **base,
            "properties": properties,
            "required": ["kind", "definition"] if needs_definition else ["kind"],
        }
    if not variants:
        return base, {}
    body = {
        "oneOf": [ref(n) for n in variants],
        "discriminator": {
            "propertyName": "kind",
            "mapping": {n.split(".", 1)[1]: REF + n for n in variants},
        },
    }
    return body, variants


def component_schemas(variants: dict[str, Any], create_body: dict[str, Any]) -> dict[str, Any]:
    """Every named schema, the log stream's events after the log's own models; the batch
    body's items are ``create_body`` (the first value of :func:`create_schemas`)."""
    schemas: dict[str, Any] = {}
    for cls in NAMED:
        schemas[cls.__name__] = schema_of(cls)
        if cls is wire.LogPage:
            schemas.update(STREAM_EVENTS)
    schemas["CreateRuns"]["properties"]["items"]["items"] = create_body
    return {**schemas, **variants}
