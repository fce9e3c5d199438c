"""Cross-process wake-ups on SQLite: ``PRAGMA data_version`` polled on a dedicated connection.

SQLite has no LISTEN/NOTIFY. ``PRAGMA data_version`` on a connection changes whenever
*another* connection (of this process or any other) has committed to the database since the
last time it was read. Reading it takes no lock and costs a few microseconds, so a waiter
polls it every :data:`POLL_INTERVAL` and wakes as soon as it moves. Any commit wakes every
channel: the wake-up is a hint to re-read the store, never a promise of work.

The pragma is read on the event loop's thread (no thread hop per poll); the connection has
no busy timeout, so a read can never block the loop, and a failed read counts as "changed"
(the caller re-reads the store, which reports any real problem).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import anyio

#: Seconds between two reads of ``data_version``: the added latency of a wake-up.
POLL_INTERVAL = 0.02


class DataVersionWatcher:
    """Waits for commits of other connections to one SQLite database file."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        #: The version each channel's last wait returned at: a commit between two waits of
        #: a channel wakes the next wait at once.
        self._seen: dict[str, int] = {}

    def _version(self) -> int | None:
        try:
            if self._conn is None:
                self._conn = self._connect()
                self._conn.execute("PRAGMA busy_timeout = 0")
            row = self._conn.execute("PRAGMA data_version").fetchone()
            return int(row[0])
        except sqlite3.Error:
            self.close()  # reopened at the next read
            return None

    async def wait(self, channel: str, timeout: float) -> bool:
        """True as soon as another connection has committed since this channel's previous
        wait returned (or since this call, on the channel's first wait); False at
        ``timeout``."""
        with anyio.move_on_after(timeout):
            base = self._seen.get(channel)
            if base is None:
                base = self._version()
                if base is None:
                    return True
                self._seen[channel] = base
            while True:
                current = self._version()
                if current != base:
                    if current is not None:
                        self._seen[channel] = current
                    return True
                await anyio.sleep(POLL_INTERVAL)
        return False

    def close(self) -> None:
        conn, self._conn = self._conn, None
        self._seen.clear()  # a new connection counts from its own start
        if conn is not None:
            conn.close()
