"""Cross-process wake-ups over PostgreSQL LISTEN/NOTIFY, fed into ``runkit.wakeups``.

Outgoing: ``runkit.wakeups.remote`` is set to a callback that only records that work may be
claimable; a sender task coalesces everything recorded within a few ms into one NOTIFY.
Incoming: a listener task fires ``work_available(local_only=True)`` (so a notification is
never echoed back). Notifications are hints: workers also poll, so a lost NOTIFY
(connection drop, restart) costs latency only.

Log wake-ups are not bridged: ``SqlStore.wait_for_notification`` answers only whether a
notification came, not its payload (which run), and cancel/pause already reach the worker
through its heartbeat within ``Worker.control_interval``. Cross-process log tails poll.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
from anyio.abc import TaskStatus

if TYPE_CHECKING:
    from .._service import Runkit

log = logging.getLogger("runkit.engine")

CHANNEL = "runkit_work"
_COALESCE = 0.005


class NotificationBridge:
    def __init__(self, runkit: Runkit, *, poll: float = 1.0) -> None:
        self.runkit = runkit
        self.poll = poll
        self._pending = anyio.Event()

    @staticmethod
    def supported(runkit: Runkit) -> bool:
        """Whether the store can notify other processes (PostgreSQL), and no bridge is
        installed on this Runkit yet (one per Runkit serves all its workers)."""
        store: Any = runkit.store
        return (
            runkit.wakeups.remote is None
            and getattr(store, "dialect", None) == "postgresql"
            and hasattr(store, "wait_for_notification")
            and hasattr(store, "notify")
        )

    def _record(self, what: str, run_id: UUID | None) -> None:
        if what == "work":
            self._pending.set()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        wakeups = self.runkit.wakeups
        wakeups.remote = self._record
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._send_loop)
                tg.start_soon(self._listen_loop)
                task_status.started()
        finally:
            if wakeups.remote == self._record:
                wakeups.remote = None

    async def _send_loop(self) -> None:
        store: Any = self.runkit.store
        while True:
            await self._pending.wait()
            await anyio.sleep(_COALESCE)
            self._pending = anyio.Event()
            try:
                await store.notify(CHANNEL, "")
            except Exception:
                log.debug("NOTIFY failed; polling covers it", exc_info=True)

    async def _listen_loop(self) -> None:
        store: Any = self.runkit.store
        while True:
            try:
                woke = await store.wait_for_notification(CHANNEL, self.poll)
            except Exception:
                log.debug("LISTEN failed; retrying", exc_info=True)
                await anyio.sleep(self.poll)
                continue
            if woke:
                self.runkit.wakeups.work_available(local_only=True)
