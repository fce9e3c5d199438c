"""Secrets an executor logs or raises are redacted before they are stored: planted secrets
are searched for in the database file itself and must not be found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from run_support import wait_status
from runkit import Kind, NewLogEntry, Runkit, Status
from runkit.domain.redact import MAX_MESSAGE_CHARS, clean
from runkit.engine import RunContext, embedded_workers

pytestmark = pytest.mark.anyio

SECRETS = [
    "hunter2-planted-password",
    "sk-planted-token-0123456789",
    "rk_plantedApiKey0123456789abcdef",
    "Zm9vYmFyOnBsYW50ZWQ=",  # a basic-auth credential
    "planted-cookie-value-42",
]


async def leaky(ctx: RunContext) -> dict[str, Any]:
    await ctx.log("info", f"calling https://bob:{SECRETS[0]}@db.internal/x")
    await ctx.log("info", f"Authorization: Bearer {SECRETS[1]}")
    await ctx.log("info", f"using key {SECRETS[2]}", data={"nested": {"api_key": "x" + SECRETS[2]}})
    await ctx.log("info", "headers", data={"headers": {"Authorization": f"Basic {SECRETS[3]}"}})
    await ctx.log("info", "cookies", data={"Cookie": SECRETS[4], "count": 3})
    raise RuntimeError(f"connect failed: password={SECRETS[0]} token={SECRETS[1]}")


async def test_planted_secrets_never_reach_the_database(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    kinds = [Kind("leaky", executor=leaky)]
    async with Runkit(f"sqlite:///{db}", kinds=kinds, autoload_plugins=False) as rk:
        run = (await rk.create("leaky", execute=True)).run
        async with embedded_workers(rk, concurrency=1):
            await wait_status(rk, run.id, {Status.FAILED}, within=20)
        page = await rk.logs(run.id, limit=500)
        messages = [e.message for e in page.entries]
        assert any("[redacted]" in m for m in messages)
        assert page.entries[-2].event == "attempt.failed"
        assert (await rk.get(run.id)).error is not None
    stored = _database_bytes(tmp_path)
    for secret in SECRETS:
        assert secret.encode() not in stored, f"{secret} was persisted"


def _database_bytes(folder: Path) -> bytes:
    """The SQLite file with its WAL: every byte the store persisted."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("runs.db"))


def test_cleaning_keeps_the_harmless_and_bounds_sizes() -> None:
    plain = NewLogEntry("fetched 3 pages", data={"pages": 3, "url": "https://example.org/a"})
    assert clean(plain) is plain
    huge = clean(NewLogEntry("x" * (MAX_MESSAGE_CHARS + 10), data={"n": 1}))
    assert len(huge.message) == MAX_MESSAGE_CHARS and huge.data == {"n": 1, "truncated": True}
    bulky = clean(NewLogEntry("big", data={"blob": "y" * (MAX_MESSAGE_CHARS + 1)}))
    assert bulky.data == {"truncated": True}
