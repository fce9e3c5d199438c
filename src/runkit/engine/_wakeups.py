"""In-process wake-ups: workers sleep until work may be claimable, log tails until entries
may have been appended. A wake-up is a hint, never a promise: sleepers always re-check the
store and also wake on a timeout (the polling fallback), so a lost wake-up costs latency,
never correctness. Cross-process wake-ups (PostgreSQL LISTEN/NOTIFY) feed the same signals.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from uuid import UUID

import anyio

log = logging.getLogger("runkit")

#: The channels on which hints travel between processes: "work may be claimable", and "log
#: entries were appended" (no payload: listeners wake every local log stream, which re-read).
WORK_CHANNEL = "runkit_work"
LOGS_CHANNEL = "runkit_logs"
#: Local signals within this window become one notification.
COALESCE_SECONDS = 0.005


class Signal:
    """A broadcast edge: :meth:`fire` wakes everyone waiting now."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    def arm(self) -> None:
        """Catch the next :meth:`fire` even if it comes before :meth:`wait` is called: arm,
        then check the store, then wait, and no wake-up falls between the two."""
        if self._event is None:
            self._event = anyio.Event()

    @property
    def idle(self) -> bool:
        """Nobody is waiting on (or has armed) this signal."""
        return self._event is None

    async def wait(self, timeout: float = math.inf) -> bool:
        """Wait for the next :meth:`fire` (or the one since :meth:`arm`); False if
        ``timeout`` passed first."""
        self.arm()
        event = self._event
        assert event is not None
        with anyio.move_on_after(timeout):
            await event.wait()
            return True
        return False


class Wakeups:
    def __init__(self) -> None:
        self.work = Signal()
        self._logs: dict[UUID, Signal] = {}
        #: Called with ("work", None) or ("logs", run_id) after a local signal fires, so a
        #: backend can tell other processes (PostgreSQL NOTIFY). Set by the engine.
        self.remote: Callable[[str, UUID | None], None] | None = None

    def work_available(self, *, local_only: bool = False) -> None:
        self.work.fire()
        if self.remote is not None and not local_only:
            self.remote("work", None)

    def logs_appended(self, run_id: UUID, *, local_only: bool = False) -> None:
        signal = self._logs.get(run_id)
        if signal is not None:
            signal.fire()
        if self.remote is not None and not local_only:
            self.remote("logs", run_id)

    def logs(self, run_id: UUID) -> Signal:
        signal = self._logs.get(run_id)
        if signal is None:
            signal = self._logs[run_id] = Signal()
        return signal

    def forget_logs(self, run_id: UUID, *, if_idle: bool = False) -> None:
        """Drop the run's signal (all of it, or only while nobody waits on it)."""
        signal = self._logs.get(run_id)
        if signal is not None and (not if_idle or signal.idle):
            del self._logs[run_id]

    async def send_remote(self, notify: Callable[[str, str], Awaitable[None]]) -> None:
        """Tell other processes about local signals, until cancelled: everything signalled
        within a few milliseconds becomes at most one ``notify`` a channel (never one a log
        line). Runkit runs this while open on a store that can notify (PostgreSQL)."""
        pending: set[str] = set()
        wake = anyio.Event()

        def record(what: str, run_id: UUID | None) -> None:
            nonlocal wake
            pending.add(WORK_CHANNEL if what == "work" else LOGS_CHANNEL)
            wake.set()

        self.remote = record
        try:
            while True:
                await wake.wait()
                await anyio.sleep(COALESCE_SECONDS)
                wake = anyio.Event()
                channels = sorted(pending)
                pending.clear()
                for channel in channels:
                    try:
                        await notify(channel, "")
                    except Exception:  # a hint: listeners also poll
                        log.debug("NOTIFY failed; polling covers it", exc_info=True)
        finally:
            if self.remote is record:
                self.remote = None

    async def listen_remote(
        self, wait: Callable[[tuple[str, ...], float], Awaitable[set[str]]], poll: float = 1.0
    ) -> None:
        """Turn other processes' notifications into local signals, until cancelled: "work"
        wakes local workers, "logs" wakes every local log stream (it re-reads its run)."""
        channels = (WORK_CHANNEL, LOGS_CHANNEL)
        while True:
            try:
                fired = await wait(channels, poll)
            except Exception:
                log.debug("LISTEN failed; retrying", exc_info=True)
                await anyio.sleep(poll)
                continue
            if WORK_CHANNEL in fired:
                self.work_available(local_only=True)
            if LOGS_CHANNEL in fired:
                for signal in list(self._logs.values()):
                    signal.fire()
