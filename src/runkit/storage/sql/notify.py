"""PostgreSQL LISTEN on a dedicated connection, for cross-process wake-ups.

The connection is not a pooled one: a pooled connection goes back to the pool (and, behind
PgBouncer in transaction mode, to another client) and its LISTEN with it. A wake-up is only a
hint: callers re-check the store after a notification *and* after a timeout, so a
notification lost while reconnecting costs latency, never correctness.

Payloads are kept (:meth:`PgListener.wait_payloads`), each distinct one once: notifications
say *which* runs changed, so a process wakes only their log streams.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import psycopg
from psycopg import sql

from .senders import OwnSenders

#: Distinct payloads kept for one channel between two waits; beyond it they collapse to one
#: empty payload ("something happened"), which bounds memory whatever the senders do.
MAX_PAYLOADS = 10_000


class Inbox:
    """Notifications received and not yet handed to a waiter, by channel (each distinct
    payload once); those the store's own sessions sent are dropped on arrival."""

    def __init__(self, senders: OwnSenders | None = None) -> None:
        #: Notifications these sessions sent are not wake-ups (see :class:`OwnSenders`).
        self._own = senders if senders is not None else OwnSenders()
        self._pending: dict[str, set[str]] = {}

    def put(self, note: Any, fired: dict[str, set[str]] | None = None) -> None:
        """Keep ``note``: in ``fired`` if it is for one of its channels (it joins the
        wake-up being handed out), otherwise for a later wait."""
        if note.pid in self._own:
            return
        payloads = fired.get(note.channel) if fired is not None else None
        if payloads is None:
            payloads = self._pending.setdefault(note.channel, set())
        _add(payloads, note.payload)

    def take(self, channels: Collection[str]) -> dict[str, set[str]]:
        """What arrived for ``channels``, removed from the inbox."""
        return {c: self._pending.pop(c) for c in channels if c in self._pending}

    def clear(self) -> None:
        self._pending.clear()


class PgListener:
    """One LISTEN connection, opened on first use and reopened after a failure.

    Meant for one waiter at a time (a worker's wake-up loop); concurrent waiters take turns,
    each within its own timeout.
    """

    def __init__(self, connect: Callable[[], Any], senders: OwnSenders | None = None) -> None:
        self._connect = connect
        self._conn: Any = None
        self._channels: set[str] = set()
        #: Notifications that arrived for a channel while waiting on another one.
        self._inbox = Inbox(senders)
        self._lock = threading.Lock()
        self._closed = False

    def wait(self, channel: str, timeout: float) -> bool:
        """Block until a notification on ``channel`` arrives (True) or ``timeout`` passes."""
        return bool(self.wait_any((channel,), timeout))

    def wait_any(self, channels: Collection[str], timeout: float) -> set[str]:
        """Block until a notification on any of ``channels`` arrives, or ``timeout`` passes;
        the channels that had notifications (empty at timeout)."""
        return set(self.wait_payloads(channels, timeout))

    def wait_payloads(self, channels: Collection[str], timeout: float) -> dict[str, set[str]]:
        """:meth:`wait_any`, with the distinct payloads each channel's notifications carried
        (``""`` for a notification without one; at most :data:`MAX_PAYLOADS`, beyond which
        they collapse to ``{""}``)."""
        deadline = time.monotonic() + timeout
        if not self._lock.acquire(timeout=max(0.0, timeout)):
            return {}
        try:
            if self._closed:
                return {}
            for channel in channels:
                conn = self._listening(channel)
            while True:
                fired = self._inbox.take(channels)
                if fired:
                    self._drain(conn, fired)
                    return fired
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return {}
                # Consume the generator to its end: it holds the connection's lock while
                # suspended, so leaving it early and draining would deadlock.
                for note in conn.notifies(timeout=remaining, stop_after=1):
                    self._inbox.put(note)
        except psycopg.Error:
            self._reset()
            raise
        finally:
            if self._closed:
                self._reset()
            self._lock.release()

    def close(self) -> None:
        """Close now if no one is waiting; otherwise the waiter closes when it returns
        (closing a connection another thread is reading would pull its socket away)."""
        self._closed = True
        if self._lock.acquire(blocking=False):
            try:
                self._reset()
            finally:
                self._lock.release()

    def _listening(self, channel: str) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
            self._conn.autocommit = True
            self._channels.clear()
            self._inbox.clear()
        if channel not in self._channels:
            self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._channels.add(channel)
        return self._conn

    def _drain(self, conn: Any, fired: dict[str, set[str]]) -> None:
        """Coalesce: notifications already received join this wake-up (those of the
        ``fired`` channels) or wait for the next one (the others)."""
        for note in conn.notifies(timeout=0.0):
            self._inbox.put(note, fired)

    def _reset(self) -> None:
        conn, self._conn = self._conn, None
        self._channels.clear()
        if conn is not None:
            with contextlib.suppress(psycopg.Error):  # already broken: nothing to release
                conn.close()


def _add(payloads: set[str], payload: str) -> None:
    if len(payloads) < MAX_PAYLOADS:
        payloads.add(payload)
    elif payloads != {""}:
        payloads.clear()
        payloads.add("")
