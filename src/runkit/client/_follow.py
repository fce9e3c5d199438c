"""The stateful parts of the client, without I/O: following a run's log stream across
reconnects, paging through runs while they change, and the rhythm of ``wait``. The
synchronous and the asynchronous client drive the same objects.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Final
from uuid import UUID

import httpx

import runkit
from runkit import Status

from . import _calls as calls
from . import _decode as decode
from ._errors import ClientError, error_for, transport_error
from ._retry import Retries, Safety
from ._sse import Event

#: What :meth:`Follower.event` returns for the stream's ``end`` event.
END: Final = object()
#: What :meth:`Follower.answer` returns when the answer is the stream to read.
READ: Final = object()
#: ... and when it is a 204: the run had ended and every entry after the cursor was sent.
DONE: Final = object()


class Follower:
    """One ``stream_logs`` iteration: where it is in the log, and what to do after each
    answer, event or drop.

    The cursor is the last entry handed to the caller, so a reconnect (``Last-Event-ID``)
    resumes right after it: an entry cut off mid-frame was never handed over and comes
    again whole; one handed over never comes twice. A connection that brought entries is
    resumed at once; connections that bring none back off as other requests do, and after
    ``retries`` of them in a row the last error is raised.
    """

    def __init__(self, run_id: UUID, after: runkit.Cursor | str | None, retries: Retries) -> None:
        self.run_id = run_id
        self.after = None if after is None or after == "" else str(after)
        self.retries = retries
        self.cursor: str | None = None
        self.seq = -1
        self.failures = 0
        self.progressed = False

    def call(self) -> calls.Call[None]:
        self.progressed = False
        return calls.stream(self.run_id, after=self.after, last_event_id=self.cursor)

    def answer(self, response: httpx.Response, call: calls.Call[None]) -> object | float:
        """READ, DONE, or the seconds to wait before connecting again; raises the error an
        answer stands for (its body must have been read)."""
        status = response.status_code
        if status == 204:
            return DONE
        if status == 200:
            kind = response.headers.get("content-type", "")
            if not kind.startswith("text/event-stream"):
                raise ClientError(
                    f"{call.context.what}: expected an event stream, got {kind or 'nothing'}",
                    status=status,
                )
            return READ
        delay = self.retries.after_answer(Safety.SAFE, response, self.failures + 1)
        if delay is None:
            raise error_for(response, call.context)
        self.failures += 1
        return delay

    def event(self, event: Event) -> runkit.LogEntry | object | None:
        """The entry a ``log`` event carries (None for one already handed over), or END."""
        if event.event not in ("log", "end"):
            return None
        try:
            data = json.loads(event.data)
            if event.event == "end":
                decode.stream_end(data)  # checks it is runkit's end event
                return END
            entry = decode.log_entry(data, self.run_id)
        except Exception as exc:  # not the stream this client speaks
            raise ClientError(
                f"the log stream of run {self.run_id} sent an unexpected {event.event} event: {exc}"
            ) from exc
        if entry.seq <= self.seq:
            return None
        self.seq, self.cursor = entry.seq, entry.cursor
        self.failures = 0
        self.progressed = True
        return entry

    def dropped(self, exc: httpx.TransportError | None, url: str) -> float:
        """The stream broke (``exc``) or closed without its end event (None: the server
        stopped it, e.g. the run was deleted; the reconnect's answer says so). The seconds
        to wait before connecting again; raises when the retries are spent."""
        if self.progressed:
            return 0.0
        self.failures += 1
        if exc is not None:
            delay = self.retries.after_failure(Safety.SAFE, exc, self.failures)
            if delay is None:
                raise transport_error(exc, url) from exc
            return delay
        if self.failures > self.retries.retries:
            raise ClientError(f"the log stream of run {self.run_id} keeps closing early")
        return self.retries.delay(self.failures)


class RunPager:
    """``iter_runs``: offset pages, newest first, while runs come and go.

    It yields the runs that existed when it began, each once, newest first. The list is
    always [runs created since] + [runs yielded] + [runs not yet yielded]: runs created
    meanwhile push the rest down, so the next page starts with runs already yielded,
    skipped by id, and any run before the last of those on a page is new, skipped too. A
    page of none yielded (more runs were created between two pages than a page holds)
    starts with the new runs: those created after the newest run of the first page are
    skipped (a server clock's reading, the only place the boundary shows then). Runs that
    leave the list (deleted, or no longer matching a status filter) pull the rest up, which
    would skip as many: when a page's ``total`` is smaller than the last one's, the page is
    read again that many places earlier. A parent's children are listed oldest first:
    those created meanwhile come last, and are yielded. A run can still be missed if,
    between two pages, runs leave the part already read while as many join the part not yet
    read (older runs coming to match a status filter).
    """

    def __init__(
        self,
        *,
        kind: str | None,
        status: Status | str | None,
        parent: UUID | str | None,
        action_id: str | None,
        page_size: int,
    ) -> None:
        self.kind, self.status, self.parent, self.action_id = kind, status, parent, action_id
        self.page_size = page_size
        self.offset = 0
        self.total: int | None = None
        self.seen: set[UUID] = set()
        #: When the newest run at the start was created (lists newest first only).
        self.newest: datetime | None = None
        self.done = False

    def call(self) -> calls.Call[decode.ListedPage]:
        return calls.list_runs(
            kind=self.kind,
            status=self.status,
            parent=self.parent,
            action_id=self.action_id,
            limit=self.page_size,
            offset=self.offset,
        )

    def take(self, listed: decode.ListedPage) -> list[runkit.Run]:
        """The runs of a page to yield; sets ``done`` after the last page."""
        page = listed.page
        if self.total is not None and page.total < self.total and self.offset > 0:
            self.offset = max(0, self.offset - (self.total - page.total))
            self.total = page.total
            return []
        if self.total is None and page.runs and self.parent is None:
            self.newest = page.runs[0].created_at
        self.total = page.total
        fresh = self._older(list(page.runs))
        self.seen.update(r.id for r in page.runs)
        if listed.has_next and page.runs:
            self.offset += page.limit
        else:
            self.done = True
        return fresh

    def _older(self, runs: list[runkit.Run]) -> list[runkit.Run]:
        """The runs of a page that existed at the start and were not yielded yet."""
        last_seen = max((i for i, r in enumerate(runs) if r.id in self.seen), default=None)
        if last_seen is not None:
            return runs[last_seen + 1 :]
        if self.newest is None:
            return runs
        newer = 0
        while newer < len(runs) and runs[newer].created_at > self.newest:
            newer += 1
        return runs[newer:]


#: The first re-read of a run in ``wait``: short, so a run that ends at once is seen soon.
FIRST_POLL = 0.05


def poll_intervals(poll: float) -> Iterator[float]:
    """``wait``'s pauses between reads of the run: doubling from :data:`FIRST_POLL` up to
    ``poll``. Polling, not the log stream: a stream starts by sending the whole log, and
    ``wait`` needs only the status (one small GET)."""
    interval = min(FIRST_POLL, poll)
    while True:
        yield interval
        interval = min(poll, interval * 2)
