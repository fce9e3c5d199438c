"""Helpers shared by tests that wait on runs executed by real workers."""

from __future__ import annotations

from typing import Any

import anyio

from runkit import Run, Runkit, Status


async def wait_status(rk: Runkit, run_id: Any, statuses: set[Status], within: float = 10.0) -> Run:
    """The run once its status is one of ``statuses``; fails after ``within`` seconds."""
    with anyio.fail_after(within):
        while True:
            run = await rk.get(run_id)
            if run.status in statuses:
                return run
            await anyio.sleep(0.02)
