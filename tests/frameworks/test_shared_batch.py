"""The shared suite's batch create (``POST .../action-runs:batch``) through every framework
host, on every store (conftest.py): the colon in the path reaches runkit's own route under
the prefix, each item answers as its create would, and the refusals are the create's."""

from __future__ import annotations

import uuid

import pytest

from .clients import FrameworkClient
from .conftest import MAX_BODY
from .support import AUTH, COOKIE, create, detail_locs

pytestmark = pytest.mark.anyio


def batch(host: FrameworkClient) -> str:
    return host.api(":batch")


async def test_each_item_answers_in_order(host: FrameworkClient) -> None:
    held = await create(
        host, {"kind": "t_echo", "definition": {"seconds": 1}, "idempotencyKey": "k"}
    )
    items = [
        {"kind": "t_noop", "actionId": "a1"},
        {"kind": "t_echo", "definition": {"seconds": 1}, "idempotencyKey": "k"},
        {"kind": "t_echo", "definition": {"seconds": 2}, "idempotencyKey": "k"},
    ]
    response = await host.http.post(batch(host), json={"items": items}, headers=AUTH)
    assert response.status_code == 200, response.text
    new, replay, conflict = response.json()["items"]
    assert (new["status"], new["actionRun"]["actionId"], new["error"]) == (201, "a1", None)
    assert (replay["status"], replay["actionRun"]) == (200, held)
    assert (conflict["status"], conflict["actionRun"]) == (422, None)
    (problem,) = conflict["error"]["detail"]
    assert problem["loc"] == ["body", "items", 2, "idempotencyKey"]
    assert problem["type"] == "idempotency_conflict"
    got = await host.http.get(host.api(f"/{new['actionRun']['id']}"), headers=AUTH)
    assert got.json() == new["actionRun"]
    queued = await host.http.post(
        batch(host), params={"execute": "true"}, json={"items": [{"kind": "t_noop"}]}, headers=AUTH
    )
    assert queued.json()["items"][0]["actionRun"]["status"] == "queued"


async def test_a_bad_item_writes_nothing(host: FrameworkClient) -> None:
    items = [{"kind": "t_noop"}, {"kind": "t_echo", "definition": {"seconds": -1}}, {"kind": 1}]
    response = await host.http.post(batch(host), json={"items": items}, headers=AUTH)
    assert detail_locs(response) == [["body", "items", 2, "kind"]]
    items[2] = {"kind": "t_noop", "parentActionRunId": str(uuid.uuid4())}
    response = await host.http.post(batch(host), json={"items": items}, headers=AUTH)
    assert detail_locs(response) == [
        ["body", "items", 1, "definition", "seconds"],
        ["body", "items", 2, "parentActionRunId"],
    ]
    too_many = {"items": [{"kind": "t_noop"}] * 1001}
    # Over the host's 4 KiB body limit first: 413 before any item is read.
    assert (await host.http.post(batch(host), json=too_many, headers=AUTH)).status_code == 413
    assert (await host.http.get(host.api(), headers=AUTH)).json()["total"] == 0


async def test_the_create_s_credentials_and_limits(host: FrameworkClient) -> None:
    body = {"items": [{"kind": "t_noop"}]}
    assert (await host.http.post(batch(host), json=body)).status_code == 401
    no_proof = await host.http.post(batch(host), json=body, headers=COOKIE)
    assert no_proof.status_code == 403  # a cookie without CSRF proof
    signed = await host.http.post(batch(host), json=body, headers={**COOKIE, "X-Runkit-CSRF": "1"})
    assert signed.json()["items"][0]["actionRun"]["triggerMethod"] == "ui"
    big = {"items": [{"kind": "t_noop", "actionId": "x" * 100}] * (MAX_BODY // 100)}
    assert (await host.http.post(batch(host), json=big, headers=AUTH)).status_code == 413
    wrong = await host.http.get(batch(host), headers=AUTH)
    assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
    as_run = await host.http.get(host.api("/:batch"), headers=AUTH)
    assert detail_locs(as_run) == [["path", "run_id"]]
    assert (await host.http.get(host.api(), headers=AUTH)).json()["total"] == 1


async def test_the_document_under_the_prefix_lists_it(host: FrameworkClient) -> None:
    doc = (await host.http.get(f"{host.prefix}/openapi.json")).json()
    assert doc["paths"]["/api/v1/action-runs:batch"]["post"]["operationId"] == "create_runs"
