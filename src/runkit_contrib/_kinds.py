"""The registered kinds as the API shows them (``GET /api/v1/kinds``): what each is called,
what it can do, and the JSON Schema its ``definition`` must fit (the same schema the
OpenAPI create body uses, so a client that builds forms from one agrees with the other)."""

from __future__ import annotations

from typing import Any

from runkit import Kind, Runkit

from ._schema import config_schema


def definition_schema(kind: Kind) -> dict[str, Any]:
    """The JSON Schema of ``kind``'s definition; any JSON object for a kind without config."""
    return config_schema(kind.config) if kind.config is not None else {"type": "object"}


def kind_to_wire(kind: Kind) -> dict[str, Any]:
    retry = kind.retry
    return {
        "name": kind.name,
        # Always a label a UI can show: kinds without one fall back to their name.
        "displayName": kind.display_name or kind.name,
        "description": kind.description,
        "capabilities": {
            "pausable": kind.pausable,
            "cancellable": kind.cancellable,
            "retry": {
                "maxAttempts": retry.max_attempts,
                "backoffBase": retry.backoff_base,
                "backoffMax": retry.backoff_max,
                "jitter": retry.jitter,
            },
        },
        "definitionSchema": definition_schema(kind),
        "example": dict(kind.example) if kind.example is not None else None,
    }


def kinds_to_wire(runkit: Runkit) -> dict[str, Any]:
    """Every registered kind, by name (registration order depends on plugin load order)."""
    return {"kinds": [kind_to_wire(k) for k in sorted(runkit.kinds, key=lambda k: k.name)]}
