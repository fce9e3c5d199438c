"""The registered kinds as the API shows them (``GET /api/v1/kinds``): what each is called,
what it can do, and the JSON Schema its ``definition`` must fit (the same schema the
OpenAPI create body uses, so a client that builds forms from one agrees with the other)."""

from __future__ import annotations

from typing import Any

from runkit import Kind, Runkit

from . import _wire as wire
from ._schema import config_schema


def definition_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema of ``kind``'s definition; any JSON object for a kind without config."""
    return config_schema(kind.config) if kind.config is not None else {"type": "object"}


def kind_to_wire(kind: Kind) -> wire.Kind:
    return wire.project(
        wire.Kind,
        kind,
        # Always a label a UI can show: kinds without one fall back to their name.
        display_name=kind.display_name or kind.name,
        capabilities=wire.project(
            wire.Capabilities, kind, retry=wire.project(wire.RetryPolicy, kind.retry)
        ),
        definition_schema=definition_schema(kind),
        example=dict(kind.example) if kind.example is not None else None,
    )


def kinds_to_wire(runkit: Runkit) -> dict[str, Any]:
    """Every registered kind, by name (registration order depends on plugin load order)."""
    kinds = [kind_to_wire(k) for k in sorted(runkit.kinds, key=lambda k: k.name)]
    return wire.to_json(wire.KindList(kinds=kinds))
