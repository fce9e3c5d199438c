"""In-process wake-ups: workers sleep until work may be claimable, log tails until entries
may have been appended. A wake-up is a hint, never a promise: sleepers always re-check the
store and also wake on a timeout (the polling fallback), so a lost wake-up costs latency,
never correctness. Cross-process wake-ups (PostgreSQL LISTEN/NOTIFY) feed the same signals:
a notification on the log channel names the runs whose log grew (several ids a payload),
so only their sleepers wake; one that names none (SQLite's commit watch, an overflow) means
"any run", and wakes every log sleeper and the observers that look for themselves.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterable
from uuid import UUID

import anyio

log = logging.getLogger("runkit")

#: The channels on which hints travel between processes: "work may be claimable", and "log
#: entries were appended" (payload: the runs' ids, comma-separated; empty: any run).
WORK_CHANNEL = "runkit_work"
LOGS_CHANNEL = "runkit_logs"
#: A process notifies at most once per this interval (one NOTIFY a channel): the first local
#: signal after a quiet interval is sent at once, those that follow within it wait for its
#: end and go together. Every process on the database wakes for every notification (its
#: LISTEN backend and its listener thread), so under load the rate matters more than the
#: few milliseconds: 200 notifications a second cost each listening process about 4 % of a
#: core, before it did any work. 10 ms keeps a lone run's wake-up prompt (sent at once)
#: and halves the rate under load.
SEND_INTERVAL = 0.01
#: Run ids a payload names: 200 * 37 bytes stays under PostgreSQL's 8,000-byte payload limit.
IDS_PER_PAYLOAD = 200
#: More payloads than this for one window are sent as one empty payload ("any run").
MAX_PAYLOADS = 5
#: Watches the log wake-ups: called with the run's id, or None for "any run" (see above).
LogObserver = Callable[[UUID | None], None]


def encode_run_ids(run_ids: Iterable[UUID]) -> list[str]:
    """The log channel's payloads naming ``run_ids``: ``[""]`` ("any run") if too many."""
    ids = sorted(str(r) for r in run_ids)
    payloads = [",".join(ids[i : i + IDS_PER_PAYLOAD]) for i in range(0, len(ids), IDS_PER_PAYLOAD)]
    return payloads if 0 < len(payloads) <= MAX_PAYLOADS else [""]


def decode_run_ids(payloads: Iterable[str]) -> set[UUID] | None:
    """The runs named by the log channel's ``payloads``; None for "any run" (an empty or
    malformed payload among them)."""
    out: set[UUID] = set()
    for payload in payloads:
        try:
            out.update(UUID(part) for part in payload.split(","))
        except ValueError:
            return None
    return out


class Signal:
    """A broadcast edge: :meth:`fire` wakes everyone waiting now."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None

    def fire(self) -> None:
        if self._event is not None:
            self._event.set()
            self._event = None

    def arm(self) -> anyio.Event:
        """Catch the next :meth:`fire` even if it comes before :meth:`wait` is called: arm,
        then check the store, then ``wait(armed=...)`` with what this returned, and no
        wake-up falls between the two. (A fire clears the signal, so a plain :meth:`wait`
        after it would arm anew and miss that fire.)"""
        if self._event is None:
            self._event = anyio.Event()
        return self._event

    @property
    def idle(self) -> bool:
        """Nobody is waiting on (or has armed) this signal."""
        return self._event is None

    async def wait(self, timeout: float = math.inf, *, armed: anyio.Event | None = None) -> bool:
        """Wait for the next :meth:`fire`, or the first one since ``armed`` (what
        :meth:`arm` returned) if given; False if ``timeout`` passed first."""
        event = armed if armed is not None else self.arm()
        with anyio.move_on_after(timeout):
            await event.wait()
            return True
        return False


class Wakeups:
    def __init__(self) -> None:
        self.work = Signal()
        #: How many times another process said work may be claimable (a notification with
        #: payloads: PostgreSQL's, which leave out this process's own): a worker whose
        #: claim found nothing after one knows another worker took the runs (engine._pacing).
        self.remote_work = 0
        self._logs: dict[UUID, Signal] = {}
        self._observers: list[LogObserver] = []
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
        for observer in self._observers:
            observer(run_id)
        if self.remote is not None and not local_only:
            self.remote("logs", run_id)

    def logs_appended_anywhere(self) -> None:
        """Entries may have been appended to any run (another process said so without
        saying which): wake every log sleeper, and tell the observers ``None``."""
        for signal in list(self._logs.values()):
            signal.fire()
        for observer in self._observers:
            observer(None)

    def observe_logs(self, observer: LogObserver) -> None:
        """Call ``observer`` (synchronously, so it must only fire signals) on every log
        wake-up: with the run's id, or None for "any run". An observer that follows many
        runs this way needs no signal of each in :meth:`logs`, and is not woken for all of
        them on "any run" (a log stream hub checks the store once for all instead)."""
        self._observers.append(observer)

    def unobserve_logs(self, observer: LogObserver) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

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
        """Tell other processes about local signals, until cancelled: what was signalled
        since the last send becomes one ``notify`` on the work channel and a few on the log
        channel, naming the runs (:func:`encode_run_ids`; never one a log line), at once
        after a quiet :data:`SEND_INTERVAL`, else at its end. Runkit runs this while open on
        a store that can notify (PostgreSQL)."""
        work = False
        runs: set[UUID | None] = set()  # None: any run
        wake = anyio.Event()

        def record(what: str, run_id: UUID | None) -> None:
            nonlocal wake, work
            if what == "work":
                work = True
            else:
                runs.add(run_id)
            wake.set()

        self.remote = record
        sent_at = -math.inf
        try:
            while True:
                await wake.wait()
                await anyio.sleep(max(0.0, sent_at + SEND_INTERVAL - anyio.current_time()))
                sent_at = anyio.current_time()
                wake = anyio.Event()
                sends = [(WORK_CHANNEL, "")] if work else []
                if runs:
                    named = [] if None in runs else [r for r in runs if r is not None]
                    sends += [(LOGS_CHANNEL, p) for p in encode_run_ids(named)]
                work = False
                runs.clear()
                for channel, payload in sends:
                    try:
                        await notify(channel, payload)
                    except Exception:  # a hint: listeners also poll
                        log.debug("NOTIFY failed; polling covers it", exc_info=True)
        finally:
            if self.remote is record:
                self.remote = None

    async def listen_remote(
        self, wait: Callable[[tuple[str, ...], float], Awaitable[set[str]]], poll: float = 1.0
    ) -> None:
        """Turn other processes' notifications into local signals, until cancelled: "work"
        wakes local workers, "logs" the named runs' sleepers, or all of them when the
        notification names none. ``wait`` returns the channels that fired; a set with a
        ``payloads`` mapping (``runkit.storage.protocols.Notifications``) also says what each
        channel's notifications carried, a plain set counts as an empty payload."""
        channels = (WORK_CHANNEL, LOGS_CHANNEL)
        while True:
            try:
                fired = await wait(channels, poll)
            except Exception:
                log.debug("LISTEN failed; retrying", exc_info=True)
                await anyio.sleep(poll)
                continue
            heard: dict[str, set[str]] | None = getattr(fired, "payloads", None)
            if WORK_CHANNEL in fired:
                # Only a notification another process sent is news of its work: SQLite's
                # commit watch (a plain set, no payloads) fires on this process's own commits.
                if heard is not None:
                    self.remote_work += 1
                self.work_available(local_only=True)
            if LOGS_CHANNEL in fired:
                run_ids = decode_run_ids((heard or {}).get(LOGS_CHANNEL) or ("",))
                if run_ids is None:
                    self.logs_appended_anywhere()
                else:
                    for run_id in run_ids:
                        self.logs_appended(run_id, local_only=True)
