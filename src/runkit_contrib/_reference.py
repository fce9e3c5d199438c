"""The HTTP reference (docs/http-reference.md) rendered from the OpenAPI document, so the
prose reference and the machine contract cannot drift apart: ``python docs/generate.py``
writes it, and a test fails when the file differs from what this module renders.

:func:`render_reference` is a pure function of the document. :func:`reference_document`
builds the document the reference is made from: a Runkit on ``memory://`` with the kinds
runkit registers by default, whatever the environment says (no entry-point plugins, no
test kinds), mounted at the root, anonymous access off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from runkit import KindRegistry, Runkit

from ._openapi import build_openapi

_METHODS = ("get", "post", "put", "patch", "delete")
#: The plugin module of the test kinds, which only ``RUNKIT_ENABLE_TEST_KINDS`` turns on.
_TEST_KINDS_OWNER = "runkit.kinds.testing"
_BOUNDS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("minLength", "length >= {}"),
    ("maxLength", "length <= {}"),
    ("minItems", "items >= {}"),
    ("maxItems", "items <= {}"),
)


def reference_document() -> dict[str, Any]:
    """The OpenAPI document of a server with runkit's default kinds, independent of the
    environment the generator runs in."""
    runkit = Runkit("memory://", autoload_plugins=False)
    defaults = KindRegistry()
    for kind in runkit.kinds:
        owner = runkit.kinds.owner(kind.name) or "<direct>"
        if owner != _TEST_KINDS_OWNER:
            defaults.register(kind, owner=owner)
    runkit.kinds = defaults
    return build_openapi(runkit, allow_anonymous=False, sessions=True)


# ------------------------------------------------------------------ rendering helpers -----
def _anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-")


def _code(value: Any) -> str:
    return f"`{json.dumps(value, ensure_ascii=False)}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _link(name: str) -> str:
    return f"[{name}](#{_anchor(name)})"


def _type(schema: Any) -> str:
    """A schema's type in a few words, linking to named schemas."""
    if not isinstance(schema, dict):
        return "any"
    if "$ref" in schema:
        return _link(_ref_name(schema["$ref"]))
    if "const" in schema:
        return _code(schema["const"])
    if "oneOf" in schema:
        return "one of " + ", ".join(_type(s) for s in schema["oneOf"])
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else []
    if not types:
        return "enum" if "enum" in schema else "any"
    return " or ".join(_one_type(t, schema) for t in types)


def _one_type(name: str, schema: dict[str, Any]) -> str:
    if name == "array":
        if "prefixItems" in schema:
            return "array of [" + ", ".join(_type(s) for s in schema["prefixItems"]) + "]"
        return f"array of {_type(schema['items'])}" if "items" in schema else "array"
    if name == "string" and "contentMediaType" in schema:
        content = schema.get("contentSchema")
        inner = f" of {_type(content)}" if content is not None else ""
        return f"string: `{schema['contentMediaType']}`{inner}"
    if name == "string" and "format" in schema:
        return f"string ({schema['format']})"
    extra = schema.get("additionalProperties")
    if name == "object" and isinstance(extra, dict) and extra and "properties" not in schema:
        return f"object of {_type(extra)}"
    return str(name)


def _constraints(schema: Any) -> str:
    if not isinstance(schema, dict):
        return ""
    if "anyOf" in schema:  # "X or null": X's bounds are the field's
        return "; ".join(filter(None, (_constraints(s) for s in schema["anyOf"])))
    notes: list[str] = []
    if "enum" in schema:
        notes.append("one of " + ", ".join(_code(v) for v in schema["enum"]))
    for key, template in _BOUNDS:
        if key in schema:
            notes.append(template.format(schema[key]))
    if "pattern" in schema:
        notes.append(f"pattern `{schema['pattern']}`")
    if "default" in schema:
        notes.append(f"default {_code(schema['default'])}")
    return "; ".join(notes)


def _object_part(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The inline object of a schema (itself, or the object member of ``X or null``)."""
    if "properties" in schema:
        return schema
    for member in schema.get("anyOf", ()):
        if isinstance(member, dict) and "properties" in member:
            return member
    return None


def _nested(name: str, prop: Any) -> tuple[str, dict[str, Any]] | None:
    """The inline object under a field, and the path prefix of its fields: ``name.`` for an
    object, ``name[].`` for an array of objects."""
    if not isinstance(prop, dict):
        return None
    inner = _object_part(prop)
    if inner is not None:
        return f"{name}.", inner
    items = prop.get("items")
    if isinstance(items, dict) and "properties" in items:
        return f"{name}[].", items
    return None


def _field_rows(schema: dict[str, Any], prefix: str = "") -> Iterator[str]:
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        description = prop.get("description", "") if isinstance(prop, dict) else ""
        if not description and isinstance(prop, dict):
            described = _object_part(prop)
            description = described.get("description", "") if described else ""
        yield (
            f"| `{prefix}{name}` | {_cell(_type(prop))} | {'yes' if name in required else 'no'} "
            f"| {_cell(_constraints(prop))} | {_cell(description)} |"
        )
        nested = _nested(f"{prefix}{name}", prop)
        if nested is not None:
            yield from _field_rows(nested[1], nested[0])


def _fields(schema: dict[str, Any]) -> list[str]:
    lines = [
        "| field | type | required | constraints | description |",
        "|---|---|---|---|---|",
        *_field_rows(schema),
    ]
    closed = [
        f"`{path.rstrip('.')}`" if path else "the object"
        for path, part in _closed_objects(schema, "")
        if part.get("additionalProperties") is False
    ]
    if closed:
        lines += ["", "No other fields are accepted in " + ", ".join(closed) + "."]
    return lines


def _closed_objects(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield prefix, schema
    for name, prop in schema.get("properties", {}).items():
        nested = _nested(f"{prefix}{name}", prop)
        if nested is not None:
            yield from _closed_objects(nested[1], nested[0])


# ------------------------------------------------------------------ sections --------------
def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def _op_heading(method: str, path: str) -> str:
    return f"{method.upper()} {path}"


def _parameters(op: dict[str, Any]) -> list[str]:
    params = op.get("parameters", [])
    if not params:
        return []
    lines = [
        "**Parameters**",
        "",
        "| name | in | type | required | constraints | description |",
        "|---|---|---|---|---|---|",
    ]
    for p in params:
        schema = p.get("schema", {})
        lines.append(
            f"| `{p['name']}` | {p['in']} | {_cell(_type(schema))} "
            f"| {'yes' if p.get('required') else 'no'} | {_cell(_constraints(schema))} "
            f"| {_cell(p.get('description', ''))} |"
        )
    return [*lines, ""]


def _content(content: dict[str, Any]) -> str:
    parts = []
    for media, entry in content.items():
        if "itemSchema" in entry:
            parts.append(f"`{media}`, each event {_type(entry['itemSchema'])}")
        elif "schema" in entry:
            parts.append(f"`{media}`: {_type(entry['schema'])}")
        else:
            parts.append(f"`{media}`")
    return "; ".join(parts)


def _request_body(op: dict[str, Any]) -> list[str]:
    body = op.get("requestBody")
    if body is None:
        return []
    needed = "required" if body.get("required") else "optional"
    lines = [f"**Request body** ({needed}): {_content(body['content'])}", ""]
    for entry in body["content"].values():
        discriminator = entry.get("schema", {}).get("discriminator")
        if discriminator:
            lines += [f"The variant is chosen by `{discriminator['propertyName']}`.", ""]
    return lines


def _responses(op: dict[str, Any]) -> list[str]:
    lines = [
        "**Responses**",
        "",
        "| status | meaning | body | headers |",
        "|---|---|---|---|",
    ]
    for status, response in op["responses"].items():
        headers = ", ".join(f"`{name}`" for name in response.get("headers", {}))
        body = _content(response["content"]) if "content" in response else "none"
        lines.append(
            f"| {status} | {_cell(response.get('description', ''))} | {_cell(body)} | {headers} |"
        )
    return [*lines, ""]


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### {_op_heading(method, path)}", "", f"**{op.get('summary', '')}**", ""]
    if op.get("description"):
        lines += [op["description"], ""]
    return [*lines, *_parameters(op), *_request_body(op), *_responses(op)]


def _security(doc: dict[str, Any]) -> list[str]:
    schemes = doc["components"].get("securitySchemes", {})
    carriers = []
    for scheme in schemes.values():
        if scheme["type"] == "http":
            carriers.append(f"`Authorization: {scheme['scheme'].title()} <token>`")
        elif scheme["in"] == "header":
            carriers.append(f"header `{scheme['name']}: <key>`")
        else:
            carriers.append(f"{scheme['in']} `{scheme['name']}`")
    anonymous = {} in doc.get("security", [])
    lines = [
        "## Authentication",
        "",
        "Every operation needs one credential, carried as one of: "
        + ", ".join(carriers)
        + ". The first carrier present decides (in that order); a request with none, or a "
        "bad one, answers 401.",
    ]
    if anonymous:
        lines.append("This server also accepts requests with no credential at all.")
    return [*lines, ""]


def _schema_section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    if "oneOf" in schema:
        lines += [f"One of {', '.join(_type(s) for s in schema['oneOf'])}."]
        discriminator = schema.get("discriminator")
        if discriminator:
            lines[-1] += f" The variant is chosen by `{discriminator['propertyName']}`."
        return [*lines, ""]
    if "properties" in schema:
        lines += _fields(schema)
    else:
        lines += [f"Type: {_type(schema)}."]
    for example in schema.get("examples", ()):
        lines += ["", "Example:", "", "```json", json.dumps(example, indent=2), "```"]
    return [*lines, ""]


def render_reference(doc: dict[str, Any]) -> str:
    """The Markdown reference of an OpenAPI document as :func:`build_openapi` makes it."""
    ops = list(_operations(doc))
    tags: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, method, op in ops:
        tags.setdefault((op.get("tags") or ["Other"])[0], []).append((path, method, op))
    kinds = sorted(
        n.split(".", 1)[1] for n in doc["components"]["schemas"] if n.startswith("CreateRun.")
    )
    lines = [
        "# HTTP API reference",
        "",
        "<!-- Generated from the OpenAPI document by `python docs/generate.py`; "
        "do not edit by hand. -->",
        "",
        f"Every operation of the runkit HTTP API (`{doc['info']['title']}`, OpenAPI "
        f"{doc['openapi']}), with its parameters and their bounds, request bodies, answers and "
        "schemas. A server serves the same document at `/openapi.json` and a page listing it "
        "at `/docs`; paths are relative to where the app is mounted. The guide to the API is "
        "[http.md](http.md).",
        "",
        "The variants of the create body below are the kinds runkit registers by default ("
        + ", ".join(f"`{k}`" for k in kinds)
        + "); a server's own `/openapi.json` and `GET /api/v1/kinds` list the kinds it has.",
        "",
        *_security(doc),
        "## Operations",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    for path, method, op in ops:
        heading = _op_heading(method, path)
        lines.append(
            f"| {method.upper()} | [`{path}`](#{_anchor(heading)}) | {op.get('summary', '')} |"
        )
    lines.append("")
    for tag, tagged in tags.items():
        lines += [f"## {tag}", ""]
        for path, method, op in tagged:
            lines += _operation(path, method, op)
    lines += ["## Schemas", ""]
    for name, schema in doc["components"]["schemas"].items():
        lines += _schema_section(name, schema)
    return "\n".join(lines).rstrip("\n") + "\n"
