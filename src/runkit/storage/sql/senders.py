"""Which notifications a store sent itself: the backend pids of its own connections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Own backend pids remembered at most (:class:`OwnSenders`).
MAX_OWN = 1_000


class OwnSenders:
    """The backend pids of the store's own connections: a NOTIFY one of them sent is this
    process's own, and its wake-up was already given in-process (``Wakeups`` fires local
    signals before it notifies), so hearing it again would only cost a thread hand-off and
    a redundant claim. Two Runkits sharing one store object in one process therefore wake
    each other at their poll interval, not at once.

    Bounded: past :data:`MAX_OWN` pids (a reconnect storm) it forgets them all, which costs
    redundant wake-ups, never a lost one. A pid PostgreSQL reuses for another client's
    session after ours closed is forgotten the same way, and meanwhile polling covers it."""

    def __init__(self) -> None:
        self._pids: set[int] = set()

    def add(self, pid: int) -> None:
        if len(self._pids) >= MAX_OWN:
            self._pids.clear()
        if pid:
            self._pids.add(pid)

    def add_connection(self, connection: Any) -> None:
        """Remember a psycopg connection's session (the driver path's pool calls this)."""
        self.add(connection.info.backend_pid)

    def __contains__(self, pid: object) -> bool:
        return pid in self._pids

    def __len__(self) -> int:
        return len(self._pids)


def remember_sender(senders: OwnSenders) -> Callable[[Any, Any], None]:
    """A SQLAlchemy ``connect`` listener adding each new DBAPI connection's backend pid
    (psycopg's ``info.backend_pid``; other drivers say nothing and are not filtered).
    It holds ``senders`` only, not the store, so a host's engine does not keep the store."""

    def remember(dbapi_connection: Any, _record: Any) -> None:
        info = getattr(dbapi_connection, "info", None)
        senders.add(getattr(info, "backend_pid", 0) or 0)

    return remember
