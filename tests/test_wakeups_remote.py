"""Which moves tell other processes there is work (``Wakeups.remote``: PostgreSQL NOTIFY)."""

from __future__ import annotations

from typing import Any

import pytest

from run_support import wait_status
from runkit import Kind, Runkit, Status
from runkit.engine import embedded_workers

pytestmark = pytest.mark.anyio


async def _noop(ctx: Any) -> dict[str, Any]:
    return {}


@pytest.mark.parametrize(
    ("key", "expected"),
    [(None, ["created"]), ("k", ["created", "freed"])],
    ids=["unkeyed", "keyed"],
)
async def test_a_run_that_ends_notifies_only_when_it_frees_a_key(
    key: str | None, expected: list[str]
) -> None:
    """A new queued run is news to every worker process; the end of an unkeyed run frees only
    its worker's own slot (woken in-process), so it must not wake every other process; the
    end of a keyed run frees a slot of its key, which a worker elsewhere may be waiting for."""
    async with Runkit(
        "memory://", kinds=[Kind("noop", executor=_noop)], autoload_plugins=False
    ) as rk:
        sent: list[str] = []
        phase = ["created"]
        rk.wakeups.remote = lambda what, run_id: sent.append(phase[0]) if what == "work" else None
        run = (await rk.create("noop", concurrency_key=key, execute=True)).run
        phase[0] = "freed"
        async with embedded_workers(rk, concurrency=1, poll_interval=0.05):
            await wait_status(rk, run.id, {Status.SUCCEEDED})
        assert sorted(set(sent)) == expected
