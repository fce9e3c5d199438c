"""runkit.config_schema: the JSON Schema of kind configs, in the core (call_agent gives it to
the model as a tool's parameters; the HTTP layer's OpenAPI document uses the same function).
Every kind's example must be valid against it."""

from __future__ import annotations

from typing import Any, Literal

import attrs
import jsonschema
import pytest

from runkit import Runkit, config_schema
from runkit_contrib import _schema

KINDS = [k for k in Runkit("memory://", autoload_plugins=False).kinds if k.config is not None]


def test_the_openapi_document_uses_the_core_schema() -> None:
    assert _schema.config_schema is config_schema


@pytest.mark.parametrize("kind", [k for k in KINDS if k.example], ids=lambda k: k.name)
def test_every_example_is_valid_against_its_schema(kind: Any) -> None:
    schema = config_schema(kind.config)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    jsonschema.validate(kind.example, schema)


@attrs.frozen
class Inner:
    """An inner object."""

    n: int = attrs.field(validator=attrs.validators.ge(0))


@attrs.frozen
class Sample:
    """A sample config."""

    name: str = attrs.field(validator=attrs.validators.max_len(5))
    mode: Literal["a", "b"] = "a"
    inner: Inner | None = None
    tags: list[str] = attrs.field(factory=list)


def test_a_schema_describes_and_checks_definitions() -> None:
    schema = config_schema(Sample)
    assert schema["required"] == ["name"] and schema["description"] == "A sample config."
    assert schema["properties"]["mode"] == {"enum": ["a", "b"], "default": "a"}
    assert "default" not in schema["properties"]["tags"]  # a factory has no JSON default
    jsonschema.validate({"name": "x", "inner": {"n": 1}, "tags": ["t"]}, schema)
    for bad in ({}, {"name": "toolong"}, {"name": "x", "inner": {"n": -1}}, {"name": "x", "y": 1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
