"""Helpers shared by tests that wait on runs executed by real workers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


def scripted_wait(
    answers: list[set[str]],
) -> Callable[[tuple[str, ...], float], Awaitable[set[str]]]:
    """A store's ``wait_for_notifications`` for ``Wakeups.listen_remote``: it answers each of
    ``answers`` in turn (taking them from the list), then waits forever."""

    async def wait(channels: tuple[str, ...], timeout: float) -> set[str]:
        if not answers:
            await anyio.sleep_forever()
        return answers.pop(0)

    return wait
