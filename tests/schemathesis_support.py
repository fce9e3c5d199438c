"""Shared by the schemathesis tests (the bare app and every mounted framework)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import schemathesis
from schemathesis import GenerationMode

from runkit import Lease, Principal, Runkit

_CURSOR = re.compile(r"[0-9a-f]{8}-[0-9]{1,18}")
#: Valid definitions of the kinds whose rules a schema cannot state (created, never
#: executed: no worker runs here): the web kinds, and the composing kinds (child kinds that
#: exist, expressions that compile).
WEB_DEFINITIONS: dict[str, dict[str, Any]] = {
    "http_request": {"url": "https://api.example.com/v1/items"},
    "fetch_page": {"url": "https://example.com/"},
    "web_search": {"query": "runkit"},
    "conditional_branch": {
        "condition": "inputs.ok",
        "inputs": {"ok": True},
        "then": {"kind": "approval_gate", "definition": {"title": {"$expr": "'Go?'"}}},
    },
    "call_automation": {"steps": [{"name": "gate", "kind": "approval_gate", "definition": {}}]},
    # The schema cannot say which SQL parses or which paths overlap: fuzzed "valid" bodies
    # of the data kinds may still be 422s; these are valid.
    "duckdb_transform": {"sql": "SELECT 1"},
    "file_sync": {"source": "exports", "destination": "archive"},
    "dlt_extract": {
        "source": {
            "type": "rest_api",
            "config": {
                "client": {"base_url": "https://api.example.com/v1/"},
                "resources": ["items"],
            },
        },
        "pipelineName": "items",
        "datasetName": "raw",
    },
    # The language-model kinds: valid definitions (the model is configured below; no run
    # is executed here, so no model is ever asked).
    "explain_schema": {"schema": "CREATE TABLE t (x INT)"},
    "generate_query": {"question": "How many?", "schema": "CREATE TABLE t (x INT)"},
    "call_agent": {"prompt": "What is runkit?", "tools": ["web_search"]},
    "agent_search": {"question": "What is runkit?"},
    "agent_fetch_page": {"url": "https://example.com/", "instruction": "the title"},
    "create_flashboard": {
        "title": "Sales",
        "database": "warehouse/sales.duckdb",
        "queries": [{"title": "n", "sql": "SELECT 1 AS n"}],
    },
}


@pytest.fixture(autouse=True)
def search_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """web_search refuses creates (422) until a provider is configured; name one."""
    monkeypatch.setenv("RUNKIT_SEARCH_URL", "https://search.example.org/")
    # ... and the language-model kinds until a model is; runs are created, never executed.
    monkeypatch.setenv("RUNKIT_LLM_BASE_URL", "https://llm.example.org/v1")
    monkeypatch.setenv("RUNKIT_LLM_MODEL", "m")


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


async def finished_run(runkit: Runkit, gate_kind: str) -> str:
    """A run that went all the way through an approval gate (so it has a log of several
    entries and a terminal status): its log stream ends on its own, with an end event."""
    await runkit.create(gate_kind, {}, execute=True)
    (run,) = await runkit.ops.claim("fuzz-worker", 1)
    parked = await runkit.ops.park(Lease(run.id, run.attempt, run.lease_token or ""), timeout=None)
    done = await runkit.approve(parked.id, principal=Principal("fuzz-approver"))
    assert done.status.terminal, done.status
    return str(done.id)


def honour_cross_field_rules(case: schemathesis.Case, parent: str, finished: str) -> None:
    """Make a generated case obey the rules an OpenAPI schema cannot state, so that a
    "valid" case is valid: a parent run that exists, a fresh idempotency key (a reused one
    with another body is a 422 by design), and a cursor that belongs to the run in the path.

    A log stream of a valid run id streams ``finished`` (a random id is only ever a 404,
    and a live run's stream would not end): so every event schemathesis reads is checked
    against the document's ``itemSchema``, the end event included.
    """
    positive = case.meta is not None and case.meta.generation.mode is GenerationMode.POSITIVE
    body = case.body
    # A batch's items are create bodies, each held to the same rules.
    items = body.get("items") if isinstance(body, dict) else None
    for each in [body, *items] if isinstance(items, list) else [body]:
        if isinstance(each, dict):
            _honour_create_rules(each, parent, positive)
    path = case.path_parameters or {}
    run_id = path.get("run_id")
    if case.operation.path.endswith("/logs/stream") and _is_uuid(run_id):
        path["run_id"] = run_id = finished
    if not _is_uuid(run_id):
        return
    prefix = uuid.UUID(run_id).hex[:8]
    after = (case.query or {}).get("after")
    if isinstance(after, str) and _CURSOR.fullmatch(after):
        case.query["after"] = prefix + after[8:]
    last = (case.headers or {}).get("Last-Event-ID")
    if isinstance(last, str) and _CURSOR.fullmatch(last):
        case.headers["Last-Event-ID"] = prefix + last[8:]


def _honour_create_rules(body: dict[str, Any], parent: str, positive: bool) -> None:
    web = WEB_DEFINITIONS.get(str(body.get("kind")))
    if web is not None and positive:
        # The web kinds' rules (the outbound policy, header syntax, a configured search
        # provider) and the composing kinds' (child kinds, expressions) are beyond a
        # schema: a valid case gets a valid definition. No worker
        # runs here, so nothing is ever sent to these addresses.
        body["definition"] = dict(web)
    if _is_uuid(body.get("parentActionRunId")):
        body["parentActionRunId"] = parent
    key = body.get("idempotencyKey")
    if isinstance(key, str) and 1 <= len(key) <= 255:
        body["idempotencyKey"] = uuid.uuid4().hex
