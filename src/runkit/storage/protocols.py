"""Optional store capabilities, declared as protocols.

The :class:`~runkit.storage.base.Store` contract is what every backend must do. A backend may
also offer these; the facade checks for them with ``isinstance`` (they are runtime
checkable) and works without them, only less promptly or with fewer features:

* :class:`Notifier`: tell other processes that work or log entries may be waiting (PostgreSQL
  NOTIFY). Without it, workers and log streams elsewhere find them at their next poll.
* :class:`NotificationListener`: wait until another process signals, or any commit happened
  (SQLite's ``data_version``). Without it, this process polls. A listener that also hears
  what each notification said returns :class:`Notifications` (PostgreSQL: the ids of the
  runs whose log grew, so only their log streams wake).
* :class:`TransactionalInsert`: create a run inside the host's own database transaction
  (``Runkit.create_in``, the outbox pattern).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..domain.models import NewLogEntry, Run


@runtime_checkable
class Notifier(Protocol):
    @property
    def notifies_other_processes(self) -> bool:
        """Whether :meth:`notify` reaches other processes on this database (False: a no-op)."""
        ...

    async def notify(self, channel: str, payload: str = "") -> None:
        """Signal ``channel`` to every listener on the database. A hint: may be lost."""
        ...


class Notifications(set[str]):
    """The channels that fired (this set, as before) and what their notifications said:
    ``payloads[channel]`` holds the distinct payloads received, ``""`` for a notification
    without one. A plain ``set`` from a listener means the payloads are unknown, which
    counts as one empty payload a channel ("something happened; look everywhere")."""

    def __init__(self, payloads: Mapping[str, Collection[str]] | None = None) -> None:
        payloads = payloads or {}
        super().__init__(payloads)
        self.payloads: dict[str, frozenset[str]] = {c: frozenset(p) for c, p in payloads.items()}


@runtime_checkable
class NotificationListener(Protocol):
    async def wait_for_notifications(self, channels: Collection[str], timeout: float) -> set[str]:
        """Wait up to ``timeout`` seconds for a signal on any of ``channels``; return those
        that fired (a store that cannot tell them apart returns them all), as
        :class:`Notifications` if the listener hears payloads. A hint: callers re-read the
        store either way."""
        ...


@runtime_checkable
class TransactionalInsert(Protocol):
    def insert_in(
        self, connection: Any, run: Run, entries: Sequence[NewLogEntry] = ()
    ) -> tuple[Run, bool]:
        """:meth:`Store.insert` inside the caller's transaction on ``connection``."""
        ...
