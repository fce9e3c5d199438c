"""Cross-process wake-ups, fed into ``runkit.wakeups``: PostgreSQL LISTEN/NOTIFY, and on
SQLite the store's ``PRAGMA data_version`` watch (it wakes on any other commit).

Outgoing: the Runkit itself, while open, coalesces local "work" signals into one NOTIFY per
few ms (``Wakeups.send_remote``), so a process that only creates runs wakes workers too.
Incoming (here): a listener task fires ``work_available(local_only=True)`` (so a
notification is never echoed back). Notifications are hints: workers also poll, so a lost NOTIFY
(connection drop, restart) costs latency only.

Log wake-ups are not bridged: ``SqlStore.wait_for_notification`` answers only whether a
notification came, not its payload (which run), and cancel/pause already reach the worker
through its heartbeat within ``Worker.control_interval``. Cross-process log tails poll.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from .._wakeups import WORK_CHANNEL

if TYPE_CHECKING:
    from .._service import Runkit

log = logging.getLogger("runkit.engine")


class NotificationBridge:
    """Listens for other processes' "work" notifications and fires the local signal. The
    sending side is the Runkit's own (``Wakeups.send_remote``, run while it is open)."""

    def __init__(self, runkit: Runkit, *, poll: float = 1.0) -> None:
        self.runkit = runkit
        self.poll = poll

    @staticmethod
    def supported(runkit: Runkit) -> bool:
        """Whether the store can hear other processes: PostgreSQL LISTEN, or SQLite's
        ``PRAGMA data_version`` watch (any commit by another connection is a hint)."""
        return hasattr(runkit.store, "wait_for_notification")

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        store: Any = self.runkit.store
        task_status.started()
        while True:
            try:
                woke = await store.wait_for_notification(WORK_CHANNEL, self.poll)
            except Exception:
                log.debug("LISTEN failed; retrying", exc_info=True)
                await anyio.sleep(self.poll)
                continue
            if woke:
                self.runkit.wakeups.work_available(local_only=True)
