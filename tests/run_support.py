"""Helpers shared by tests that wait on runs executed by real workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import anyio

from runkit import Run, Runkit, Settings, Status

#: Engine timings shrunk for tests that run real workers in-process (kinds' tests).
SETTINGS = Settings(
    lease=timedelta(seconds=2),
    heartbeat=timedelta(seconds=0.3),
    rescue_interval=timedelta(seconds=0.3),
)
#: Worker options to match: quick polls and control, a short grace on shutdown.
FAST: dict[str, Any] = {"poll_interval": 0.05, "control_interval": 0.1, "grace_period": 2.0}


async def wait_status(rk: Runkit, run_id: Any, statuses: set[Status], within: float = 10.0) -> Run:
    """The run once its status is one of ``statuses``; fails after ``within`` seconds."""
    with anyio.fail_after(within):
        while True:
            run = await rk.get(run_id)
            if run.status in statuses:
                return run
            await anyio.sleep(0.02)
