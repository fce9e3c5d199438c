"""Shared pieces of the HTTP API tests: credentials, test kinds, a fake worker's claim.

A plain module, not a package: ``tests/`` is not a package and a ``tests/http`` package
would shadow the standard library's ``http``."""

from __future__ import annotations

from typing import Any

import attrs

from runkit import ApprovalPolicy, Kind, Lease, Run, Runkit

API_KEY = "rk_test_key_0123456789"
AUTH = {"X-API-Key": API_KEY}
BASE = "/api/v1/action-runs"


@attrs.frozen
class EchoConfig:
    """Waits ``seconds`` (never, here) and echoes ``label``."""

    seconds: int = attrs.field(validator=attrs.validators.ge(0))
    label: str | None = None


@attrs.frozen
class GateConfig:
    approvers: list[str] = attrs.field(factory=list)


async def _executor(ctx: Any) -> dict[str, Any]:
    return {}


KINDS = [
    Kind("echo", _executor, EchoConfig, description="test kind with a config"),
    Kind("free", _executor),  # any JSON object as definition
    Kind(
        "gate",
        _executor,
        GateConfig,
        approval=lambda cfg: ApprovalPolicy(approvers=frozenset(cfg.approvers)),
    ),
]


async def claim(runkit: Runkit, run: Run | str) -> Lease:
    """Execute and claim ``run`` as a fake worker; the lease of its attempt."""
    run_id = run if isinstance(run, str) else str(run.id)
    await runkit.execute(run_id)
    (claimed,) = await runkit.ops.claim("test-worker", 1)
    assert str(claimed.id) == run_id
    return Lease(claimed.id, claimed.attempt, claimed.lease_token or "")
