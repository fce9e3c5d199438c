"""Helpers of the shared suite (test_shared_suite.py, test_shared_errors.py): credentials,
creating runs through a host, a run parked at an approval gate, a claimed run."""

from __future__ import annotations

import re
from typing import Any

import httpx

from runkit import Lease, Run, Runkit

from .clients import FrameworkClient
from .conftest import API_KEY, SESSION

AUTH = {"X-API-Key": API_KEY}
COOKIE = {"Cookie": f"vai_token={SESSION}"}
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")


async def create(host: FrameworkClient, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await host.http.post(host.api(), json=body, headers={**AUTH, **headers})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def post(host: FrameworkClient, run_id: str, action: str, **kw: Any) -> httpx.Response:
    return await host.http.post(host.api(f"/{run_id}/{action}"), headers=AUTH, **kw)


async def awaiting_approval(runkit: Runkit, approvers: list[str] | None = None) -> Run:
    """A gate run parked by a fake worker, as the engine would leave it."""
    await runkit.create("t_gate", {"approvers": approvers or []}, execute=True)
    (run,) = await runkit.ops.claim("test-worker", 1)
    return await runkit.ops.park(Lease(run.id, run.attempt, run.lease_token or ""), timeout=None)


async def claimed(runkit: Runkit, run_id: str) -> Lease:
    """Execute and claim ``run_id`` as a fake worker; the lease of its attempt."""
    await runkit.execute(run_id)
    (run,) = await runkit.ops.claim("test-worker", 1)
    assert str(run.id) == run_id
    return Lease(run.id, run.attempt, run.lease_token or "")


def detail_locs(response: httpx.Response) -> list[list[Any]]:
    """The ``loc`` of each problem of a 422 (which must have ``loc``, ``msg``, ``type``)."""
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert all(set(d) == {"loc", "msg", "type"} for d in details), details
    return [d["loc"] for d in details]
