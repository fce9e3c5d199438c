"""The new-run page: its fields generated from each kind's definition schema, prefilled
from the kind's example and defaults; and the form generator on its own."""

from __future__ import annotations

import json

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser
from ui_support import (  # noqa: F401 (the fixtures runkit, app and client)
    KINDS,
    app_fixture,
    client_fixture,
    key,
    page,
    runkit_fixture,
)

from runkit import Runkit
from runkit_contrib._kinds import definition_schema
from runkit_contrib.ui.forms import Field, fields_for, initial_definition

pytestmark = pytest.mark.anyio


def by_prop(fields: list[Field]) -> dict[str, Field]:
    return {f.prop: f for f in fields}


def test_fields_of_a_kind_with_every_json_type() -> None:
    deploy = KINDS[0]
    fields = by_prop(fields_for(definition_schema(deploy), deploy.example))
    assert list(fields) == [
        "service",
        "replicas",
        "ratio",
        "dryRun",
        "mode",
        "color",
        "target",
        "tags",
        "note",
    ]
    service = fields["service"]
    assert (service.widget, service.type, service.required, service.value) == (
        "text",
        "string",
        True,
        "billing",  # from the example
    )
    assert service.min_length == 1 and "at least 1 character," in service.hint + ","
    replicas = fields["replicas"]
    assert (replicas.widget, replicas.type, replicas.value, replicas.step) == (
        "number",
        "integer",
        "3",
        "1",
    )
    assert replicas.minimum == 1 and not replicas.required
    assert "default 2" in replicas.hint
    ratio = fields["ratio"]
    assert (ratio.widget, ratio.type, ratio.value, ratio.step) == ("number", "number", "0.5", "any")
    dry = fields["dryRun"]
    assert (dry.widget, dry.type, dry.value) == ("checkbox", "boolean", "")  # default false
    mode = fields["mode"]
    assert (mode.widget, mode.value) == ("select", "safe")
    assert [o[0] for o in mode.options] == ["fast", "safe"]
    color = fields["color"]  # an optional enum: anyOf [enum, null]
    assert (color.widget, color.nullable, color.value) == ("select", True, "")
    assert [o[0] for o in color.options] == ["red", "green"]
    target = fields["target"]  # a nested object: JSON, prefilled from the example
    assert (target.widget, target.type) == ("json", "json")
    assert json.loads(target.value) == {"host": "eu-1", "port": 8443}
    tags = fields["tags"]
    assert (tags.widget, tags.value) == ("json", "")
    note = fields["note"]
    assert (note.widget, note.nullable, note.value) == ("text", True, "")
    assert json.loads(initial_definition(list(fields.values()), deploy.example)) == deploy.example


def test_fields_of_the_approval_gate() -> None:
    from runkit.kinds.approval_gate import KIND

    fields = by_prop(fields_for(definition_schema(KIND), KIND.example))
    assert fields["title"].value == "Deploy to production"
    assert fields["onTimeout"].widget == "select"
    assert [o[0] for o in fields["onTimeout"].options] == ["reject", "fail", "approve"]
    assert fields["allowSelfApproval"].widget == "checkbox"
    assert fields["allowSelfApproval"].value == ""  # the example says false
    assert fields["timeoutSeconds"].widget == "number" and fields["timeoutSeconds"].nullable
    assert fields["timeoutSeconds"].value == "86400"
    assert json.loads(fields["groups"].value) == ["release-managers"]
    assert not any(f.required for f in fields.values())


def test_fields_without_an_example_take_the_defaults() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "default": 7, "description": "How many  times."},
            "flag": {"type": "boolean", "default": True},
            "level": {"enum": [1, 2, 3], "default": 2},
            "anything": {},
            "pair": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "name": {"type": ["string", "null"], "format": "uuid"},
        },
        "required": ["n"],
    }
    fields = by_prop(fields_for(schema, None))
    assert fields["n"].value == "7" and fields["n"].required
    assert fields["n"].help == "How many times."
    assert fields["flag"].value == "true"
    level = fields["level"]
    assert level.value == "2" and [o[1] for o in level.options] == ["1", "2", "3"]
    assert fields["anything"].widget == "json" and fields["pair"].widget == "json"
    assert fields["name"].widget == "text" and fields["name"].nullable
    assert fields["name"].placeholder == "a UUID"
    assert json.loads(initial_definition(list(fields.values()), None)) == {
        "n": 7,
        "flag": True,
        "level": 2,
    }
    assert fields_for({"type": "object"}, None) == []


def form_fields(html: LexborHTMLParser) -> dict[str, str]:
    """name -> data-type of the form's definition fields."""
    return {
        n.attributes["name"] or "": n.attributes["data-type"] or ""
        for n in html.css('#new-run-form [name^="definition."]')
    }


async def test_new_run_page_renders_the_kinds_form(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    html = page(await client.get("/ui/new?kind=deploy", headers=key("operate")))
    form = html.css_first("form#new-run-form")
    assert form.attributes["data-api-url"] == "/api/v1/action-runs"
    assert html.css_first("select#kind[name=kind] option[selected]").attributes["value"] == "deploy"
    kinds = [o.attributes["value"] for o in html.css("select#kind option")]
    assert kinds == sorted(runkit.kinds.names())
    assert form_fields(html) == {
        "definition.service": "string",
        "definition.replicas": "integer",
        "definition.ratio": "number",
        "definition.dryRun": "boolean",
        "definition.mode": "enum",
        "definition.color": "enum",
        "definition.target": "json",
        "definition.tags": "json",
        "definition.note": "string",
    }
    service = html.css_first('[name="definition.service"]')
    assert service.attributes["value"] == "billing" and service.tag == "input"
    assert service.attributes["aria-required"] == "true"
    assert html.css_first('label[for="field-service"] .required') is not None
    assert html.css_first('label[for="field-replicas"] .required') is None
    assert html.css_first('[name="definition.replicas"]').attributes["type"] == "number"
    assert html.css_first('[name="definition.dryRun"]').attributes["type"] == "checkbox"
    mode = html.css_first('select[name="definition.mode"]')
    assert mode.css_first("option[selected]").attributes["value"] == "safe"
    target = html.css_first('textarea[name="definition.target"]')
    assert json.loads(target.text()) == {"host": "eu-1", "port": 8443}
    for name in form_fields(html):
        assert html.css_first(f'.field-error[data-for="{name}"]') is not None, name
    raw = html.css_first("textarea#definition-json")
    assert json.loads(raw.text()) == KINDS[0].example
    assert "hidden" in html.css_first("#raw-editor").attributes
    for selector in ("button#raw-toggle", "input#idempotency-key", "input#concurrency-key"):
        assert html.css_first(selector) is not None, selector
    assert html.css_first("button#create") is not None
    assert html.css_first("button#create-execute").attributes["data-execute"] == "true"
    assert html.css_first("#form-error") is not None
    assert [label.attributes["for"] for label in html.css("label[for]")]  # inputs labelled
    for node in html.css("#new-run-form input, #new-run-form select, #new-run-form textarea"):
        ident = node.attributes["id"]
        assert html.css_first(f'label[for="{ident}"]') is not None or node.parent.tag == "label"


async def test_a_kind_that_takes_any_object_shows_the_json_editor(
    client: httpx.AsyncClient,
) -> None:
    html = page(await client.get("/ui/new?kind=free", headers=key("admin")))
    assert form_fields(html) == {}
    assert "hidden" not in html.css_first("#raw-editor").attributes
    assert json.loads(html.css_first("textarea#definition-json").text()) == {}


async def test_new_run_page_defaults_and_unknown_kinds(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    html = page(await client.get("/ui/new", headers=key("admin")))
    first = sorted(runkit.kinds.names())[0]
    assert html.css_first("select#kind option[selected]").attributes["value"] == first
    html = page(await client.get("/ui/new?kind=%3Cscript%3E", headers=key("admin")))
    assert "<script>" in html.css_first("#kind-error").text()
    html = page(await client.get("/ui/new?kind=sleep", headers=key("admin")))
    assert form_fields(html) == {"definition.seconds": "number"}
    assert html.css_first('[name="definition.seconds"]').attributes["min"] == "0.0"


async def test_create_and_execute_needs_the_execute_right(runkit: Runkit) -> None:
    from ui_support import build_app

    app = build_app(runkit, authorize=lambda p, action, r: action != "execute")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        html = page(await client.get("/ui/new?kind=noop", headers=key("admin")))
        assert html.css_first("button#create") is not None
        assert html.css_first("button#create-execute") is None


def test_a_docstring_loses_its_list_of_fields_and_keeps_its_literals() -> None:
    from runkit_contrib.ui.forms import schema_help

    parts = schema_help(
        "``{title, message, approvers}``. No approvers: anyone may decide.  "
        "``allowSelfApproval: false`` turns on the four-eyes rule."
    )
    assert parts == [
        ("No approvers: anyone may decide. ", False),
        ("allowSelfApproval: false", True),
        (" turns on the four-eyes rule.", False),
    ]
    assert schema_help("``{url, format}``; only ``url`` is required.")[0] == ("Only ", False)
    assert schema_help("``{steps}`` or ``{automationId}``: 1 to 100 steps.") == [
        ("1 to 100 steps.", False)
    ]
    assert schema_help("Deploys a service somewhere.") == [("Deploys a service somewhere.", False)]
    assert schema_help(None) == []


async def test_the_definitions_description_is_shown_without_its_docstring_markup(
    client: httpx.AsyncClient,
) -> None:
    html = page(await client.get("/ui/new?kind=approval_gate", headers=key("admin")))
    described = html.css_first("#definition-help")
    text = described.text()
    assert text.startswith("No approvers and no groups"), text
    assert "{title" not in text and "``" not in text
    assert [c.text() for c in described.css("code")][:2] == [
        "allowSelfApproval: false",
        "requiredApprovals",
    ]
    html = page(await client.get("/ui/new?kind=deploy", headers=key("admin")))
    assert html.css_first("#definition-help").text() == "Deploys a service somewhere."
    assert "secondary" in (html.css_first("button#raw-toggle").attributes["class"] or "")
