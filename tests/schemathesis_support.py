"""Shared by the schemathesis tests (the bare app and every mounted framework)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

_CURSOR = re.compile(r"[0-9a-f]{8}-[0-9]{1,18}")


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def honour_cross_field_rules(case: schemathesis.Case, parent: str) -> None:
    """Make a generated case obey the rules an OpenAPI schema cannot state, so that a
    "valid" case is valid: a parent run that exists, a fresh idempotency key (a reused one
    with another body is a 422 by design), and a cursor that belongs to the run in the path.
    """
    body = case.body
    if isinstance(body, dict):
        if _is_uuid(body.get("parentActionRunId")):
            body["parentActionRunId"] = parent
        key = body.get("idempotencyKey")
        if isinstance(key, str) and 1 <= len(key) <= 255:
            body["idempotencyKey"] = uuid.uuid4().hex
    run_id = (case.path_parameters or {}).get("run_id")
    after = (case.query or {}).get("after")
    if isinstance(after, str) and _CURSOR.fullmatch(after) and _is_uuid(run_id):
        case.query["after"] = uuid.UUID(run_id).hex[:8] + after[8:]
