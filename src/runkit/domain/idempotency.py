"""Idempotency keys: what makes two creates "the same request", and the key's scope."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import attrs

from .models import Principal

Scope = Literal["global", "principal", "kind"]


@attrs.frozen
class IdempotencyPolicy:
    """``scope``: keys are unique over all runs (``global``), per principal (``principal``,
    the default: two API keys never collide), or per kind. ``ttl``: after this a key may be
    used again for a new run (None: forever, until the run is deleted)."""

    scope: Scope = "principal"
    ttl: timedelta | None = timedelta(hours=24)


def fingerprint(kind: str, definition: Any, parent: UUID | None, action_id: str | None) -> str:
    canonical = json.dumps(
        {
            "kind": kind,
            "definition": definition,
            "parent": str(parent) if parent else None,
            "action": action_id,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def scope_key(policy: IdempotencyPolicy, key: str, kind: str, principal: Principal | None) -> str:
    # A tenant's keys never meet another tenant's, whatever the scope: a replay would hand
    # one tenant the other's run.
    tenant = f"t:{principal.tenant}:" if principal is not None and principal.tenant else ""
    if policy.scope == "global":
        return f"{tenant}g:{key}"
    if policy.scope == "kind":
        return f"{tenant}k:{kind}:{key}"
    who = f"{principal.kind}/{principal.id}" if principal else "-"
    return f"{tenant}p:{who}:{key}"
