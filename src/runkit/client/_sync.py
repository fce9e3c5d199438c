""":class:`Client`: the HTTP API from synchronous code, shaped like :class:`runkit.SyncRunkit`
(the same methods, arguments and models), on ``httpx.Client``."""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import httpx

import runkit
from runkit import Action, Cursor, Status

from . import _calls as calls
from ._config import DEFAULT_URL, Settings, from_env, stream_timeouts
from ._decode import KindInfo
from ._errors import transport_error
from ._follow import DONE, END, READ, Follower, RunPager, poll_intervals
from ._retry import Retries, never_sent
from ._sse import EventDecoder

T = TypeVar("T")


class Client:
    """``with Client("http://127.0.0.1:8000", api_key="rk_...") as rk: rk.get(run_id)``.

    ``url`` is where ``runkit serve`` (or a host mounting ``runkit_contrib.asgi_app``)
    answers: its root, or its ``/api/v1``. One credential at most: ``api_key``
    (``X-API-Key``), ``bearer`` (``Authorization: Bearer``) or ``session`` (the
    ``vai_token`` cookie of a dashboard sign-in). ``timeout`` applies to each request
    (seconds, or an ``httpx.Timeout``); ``retries`` and ``backoff`` govern repeats
    (``runkit.client._retry`` says which requests are repeated and when). ``transport``
    replaces httpx's own (tests, proxies, ``httpx.MockTransport``).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        bearer: str | None = None,
        session: str | None = None,
        timeout: float | httpx.Timeout | None = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._settings = Settings.of(
            url,
            api_key=api_key,
            bearer=bearer,
            session=session,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            headers=headers,
        )
        self._retries = Retries(retries, backoff)
        self._http = httpx.Client(
            base_url=self._settings.url,
            headers=self._settings.headers,
            timeout=self._settings.timeout,
            transport=transport,
        )

    @classmethod
    def from_env(cls, **options: Any) -> Self:
        """A client of ``$RUNKIT_URL`` (else http://127.0.0.1:8000) with ``$RUNKIT_API_KEY``;
        ``options`` are the constructor's and win."""
        return cls(**from_env(None, **options))

    @property
    def url(self) -> str:
        return self._settings.url

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the credential

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ sending ------------
    def _send(self, call: calls.Call[T], deadline: float | None = None) -> T:
        """``call``'s result, sending it again as ``_retry`` allows. With a ``deadline``
        (``time.monotonic()``), neither a request nor a wait outlives it: TimeoutError."""
        options: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.body is not calls.NO_BODY:
            options["json"] = call.body
        retry, uncertain = 0, False
        while True:
            if deadline is not None:
                options["timeout"] = _capped(self._settings.timeout, deadline)
            try:
                response = self._http.request(call.method, call.path, **options)
            except httpx.TransportError as exc:
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"{call.context.what}: no answer in time") from exc
                retry += 1
                delay = self._retries.after_failure(call.safety, exc, retry)
                if delay is None:
                    raise transport_error(exc, self.url) from exc
                uncertain = uncertain or not never_sent(exc)
                _sleep(delay, deadline)
                continue
            delay = self._retries.after_answer(call.safety, response, retry + 1)
            if delay is None:
                return call.finish(response, uncertain)
            retry += 1
            uncertain = uncertain or response.status_code != 429
            _sleep(delay, deadline)

    # ------------------------------------------------------------------ runs ---------------
    def list(
        self,
        *,
        kind: str | None = None,
        status: Status | str | None = None,
        parent: UUID | str | None = None,
        action_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
        parent_action_run_id: UUID | str | None = None,
    ) -> runkit.RunPage:
        """One page of runs matching every filter given, newest first (a parent's children
        oldest first)."""
        call = calls.list_runs(
            kind=kind,
            status=status,
            parent=calls.parent_of(parent, parent_action_run_id),
            action_id=action_id,
            limit=limit,
            offset=offset,
        )
        return self._send(call).page

    def iter_runs(
        self,
        *,
        kind: str | None = None,
        status: Status | str | None = None,
        parent: UUID | str | None = None,
        action_id: str | None = None,
        page_size: int = 100,
        parent_action_run_id: UUID | str | None = None,
    ) -> Iterator[runkit.Run]:
        """Every run matching the filters, page by page, each once (``RunPager`` says what
        happens to runs created or deleted meanwhile)."""
        pager = RunPager(
            kind=kind,
            status=status,
            parent=calls.parent_of(parent, parent_action_run_id),
            action_id=action_id,
            page_size=page_size,
        )
        while not pager.done:
            yield from pager.take(self._send(pager.call()))

    def create(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        parent: UUID | str | None = None,
        action_id: str | None = None,
        execute: bool = False,
        parent_action_run_id: UUID | str | None = None,
    ) -> runkit.Created:
        """A new run (``created`` True), or with an idempotency key already used for the
        same request, the run it made (``created`` False)."""
        call = calls.create(
            kind,
            definition,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            parent=calls.parent_of(parent, parent_action_run_id),
            action_id=action_id,
            execute=execute,
        )
        return self._send(call)

    def create_many(
        self, items: Sequence[runkit.NewRun]
    ) -> builtins.list[runkit.Created | runkit.IdempotencyConflict]:
        """Up to 1,000 runs in one request, written in one transaction: one answer an
        item, in order: :class:`runkit.Created` (``created`` False: an idempotent replay)
        or the item's :class:`runkit.IdempotencyConflict` (returned, not raised; the other
        items are written). An invalid item raises one ValidationError for the batch
        (``loc`` ``("body", "items", i, ...)``) and nothing is written. Every item's
        ``execute`` must be the same (the request's ``?execute``)."""
        return self._send(calls.create_many(items))

    def get(self, run_id: UUID | str) -> runkit.Run:
        return self._send(calls.get(run_id))

    def delete(self, run_id: UUID | str) -> None:
        self._send(calls.delete(run_id))

    def execute(self, run_id: UUID | str) -> runkit.Run:
        return self._send(calls.act(Action.EXECUTE, run_id))

    def pause(self, run_id: UUID | str) -> runkit.Run:
        return self._send(calls.act(Action.PAUSE, run_id))

    def resume(self, run_id: UUID | str) -> runkit.Run:
        return self._send(calls.act(Action.RESUME, run_id))

    def cancel(self, run_id: UUID | str) -> runkit.Run:
        return self._send(calls.act(Action.CANCEL, run_id))

    def retry(self, run_id: UUID | str) -> runkit.Run:
        return self._send(calls.act(Action.RETRY, run_id))

    def approve(self, run_id: UUID | str, *, reason: str | None = None) -> runkit.Run:
        return self._send(calls.act(Action.APPROVE, run_id, reason))

    def reject(self, run_id: UUID | str, *, reason: str | None = None) -> runkit.Run:
        return self._send(calls.act(Action.REJECT, run_id, reason))

    def wait(
        self, run_id: UUID | str, *, timeout: float | None = None, poll: float = 1.0
    ) -> runkit.Run:
        """The run once terminal; :class:`TimeoutError` after ``timeout`` seconds. Reads
        the run again after 0.05 s, then twice as long each time up to ``poll``."""
        call = calls.get(run_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for interval in poll_intervals(poll):
                run = self._send(call, deadline)
                if run.status.terminal:
                    return run
                _sleep(interval, deadline)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} has not ended within {timeout} s") from None
        raise AssertionError("unreachable")  # poll_intervals never ends

    # ------------------------------------------------------------------ logs ---------------
    def logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None, limit: int = 100
    ) -> runkit.LogPage:
        return self._send(calls.logs(run_id, after=after, limit=limit))

    def iter_logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None, page_size: int = 500
    ) -> Iterator[runkit.LogEntry]:
        """Every entry after ``after`` that exists now, page by page."""
        while True:
            page = self.logs(run_id, after=after, limit=page_size)
            yield from page.entries
            if not page.has_more:
                return
            after = page.next_cursor

    def stream_logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None
    ) -> Iterator[runkit.LogEntry]:
        """Every entry after ``after``, then each new one as it is written, until the run
        has ended and all were sent. Reconnects after a dropped connection and resumes
        after the last entry yielded (``Last-Event-ID``): no entry missed, none twice."""
        follower = Follower(calls.run_uuid(run_id), after, self._retries)
        timeout = stream_timeouts(self._settings.timeout)
        while True:
            call = follower.call()
            try:
                with self._http.stream(
                    call.method,
                    call.path,
                    params=call.params,
                    headers=call.headers,
                    timeout=timeout,
                ) as response:
                    if response.status_code != 200:
                        response.read()
                    verdict = follower.answer(response, call)
                    if verdict is DONE:
                        return
                    if verdict is READ:
                        decoder = EventDecoder()
                        for chunk in response.iter_bytes():
                            for event in decoder.feed(chunk):
                                item = follower.event(event)
                                if item is END:
                                    return
                                if isinstance(item, runkit.LogEntry):
                                    yield item
                        verdict = follower.dropped(None, self.url)
            except httpx.TransportError as exc:
                verdict = follower.dropped(exc, self.url)
            assert isinstance(verdict, float)
            time.sleep(verdict)

    # ------------------------------------------------------------------ the server ---------
    def kinds(self) -> builtins.list[KindInfo]:
        """The kinds the server can create runs of, by name."""
        return self._send(calls.kinds())

    def workers(self) -> builtins.list[runkit.WorkerInfo]:
        """The live workers: registered, and heard from within one lease."""
        return self._send(calls.workers())


def _sleep(seconds: float, deadline: float | None) -> None:
    """``time.sleep``, but TimeoutError rather than sleeping past ``deadline``."""
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= seconds:
            time.sleep(max(left, 0.0))
            raise TimeoutError("timed out")
    time.sleep(seconds)


def _capped(timeout: httpx.Timeout, deadline: float) -> httpx.Timeout:
    """``timeout`` with no part longer than what is left until ``deadline``."""
    left = max(deadline - time.monotonic(), 0.001)

    def cap(value: float | None) -> float:
        return left if value is None else min(value, left)

    return httpx.Timeout(
        connect=cap(timeout.connect),
        read=cap(timeout.read),
        write=cap(timeout.write),
        pool=cap(timeout.pool),
    )
