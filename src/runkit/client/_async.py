""":class:`AsyncClient`: the HTTP API from async code, shaped like :class:`runkit.Runkit` (the
same coroutines, arguments and models), on ``httpx.AsyncClient``; anyio, so asyncio and trio
alike."""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import anyio
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


class AsyncClient:
    """``async with AsyncClient("http://127.0.0.1:8000", api_key="rk_...") as rk:
    await rk.get(run_id)``.

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
        transport: httpx.AsyncBaseTransport | None = None,
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
        self._http = httpx.AsyncClient(
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
        return f"AsyncClient({self.url!r})"  # never the credential

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ------------------------------------------------------------------ sending ------------
    async def _send(self, call: calls.Call[T]) -> T:
        options: dict[str, Any] = {"params": call.params, "headers": call.headers}
        if call.body is not calls.NO_BODY:
            options["json"] = call.body
        retry, uncertain = 0, False
        while True:
            try:
                response = await self._http.request(call.method, call.path, **options)
            except httpx.TransportError as exc:
                retry += 1
                delay = self._retries.after_failure(call.safety, exc, retry)
                if delay is None:
                    raise transport_error(exc, self.url) from exc
                uncertain = uncertain or not never_sent(exc)
                await anyio.sleep(delay)
                continue
            delay = self._retries.after_answer(call.safety, response, retry + 1)
            if delay is None:
                return call.finish(response, uncertain)
            retry += 1
            uncertain = uncertain or response.status_code != 429
            await anyio.sleep(delay)

    # ------------------------------------------------------------------ runs ---------------
    async def list(
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
        return (await self._send(call)).page

    async def iter_runs(
        self,
        *,
        kind: str | None = None,
        status: Status | str | None = None,
        parent: UUID | str | None = None,
        action_id: str | None = None,
        page_size: int = 100,
        parent_action_run_id: UUID | str | None = None,
    ) -> AsyncIterator[runkit.Run]:
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
            for run in pager.take(await self._send(pager.call())):
                yield run

    async def create(
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
        return await self._send(call)

    async def create_many(
        self, items: Sequence[runkit.NewRun]
    ) -> builtins.list[runkit.Created | runkit.IdempotencyConflict]:
        """Up to 1,000 runs in one request, written in one transaction: one answer an
        item, in order: :class:`runkit.Created` (``created`` False: an idempotent replay)
        or the item's :class:`runkit.IdempotencyConflict` (returned, not raised; the other
        items are written). An invalid item raises one ValidationError for the batch
        (``loc`` ``("body", "items", i, ...)``) and nothing is written. Every item's
        ``execute`` must be the same (the request's ``?execute``)."""
        return await self._send(calls.create_many(items))

    async def get(self, run_id: UUID | str) -> runkit.Run:
        return await self._send(calls.get(run_id))

    async def delete(self, run_id: UUID | str) -> None:
        await self._send(calls.delete(run_id))

    async def execute(self, run_id: UUID | str) -> runkit.Run:
        return await self._send(calls.act(Action.EXECUTE, run_id))

    async def pause(self, run_id: UUID | str) -> runkit.Run:
        return await self._send(calls.act(Action.PAUSE, run_id))

    async def resume(self, run_id: UUID | str) -> runkit.Run:
        return await self._send(calls.act(Action.RESUME, run_id))

    async def cancel(self, run_id: UUID | str) -> runkit.Run:
        return await self._send(calls.act(Action.CANCEL, run_id))

    async def retry(self, run_id: UUID | str) -> runkit.Run:
        return await self._send(calls.act(Action.RETRY, run_id))

    async def approve(self, run_id: UUID | str, *, reason: str | None = None) -> runkit.Run:
        return await self._send(calls.act(Action.APPROVE, run_id, reason))

    async def reject(self, run_id: UUID | str, *, reason: str | None = None) -> runkit.Run:
        return await self._send(calls.act(Action.REJECT, run_id, reason))

    async def wait(
        self, run_id: UUID | str, *, timeout: float | None = None, poll: float = 1.0
    ) -> runkit.Run:
        """The run once terminal; :class:`TimeoutError` after ``timeout`` seconds. Reads
        the run again after 0.05 s, then twice as long each time up to ``poll``."""
        call = calls.get(run_id)
        try:
            with anyio.fail_after(timeout):
                for interval in poll_intervals(poll):
                    run = await self._send(call)
                    if run.status.terminal:
                        return run
                    await anyio.sleep(interval)
        except TimeoutError:
            raise TimeoutError(f"run {run_id} has not ended within {timeout} s") from None
        raise AssertionError("unreachable")  # poll_intervals never ends

    # ------------------------------------------------------------------ logs ---------------
    async def logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None, limit: int = 100
    ) -> runkit.LogPage:
        return await self._send(calls.logs(run_id, after=after, limit=limit))

    async def iter_logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None, page_size: int = 500
    ) -> AsyncIterator[runkit.LogEntry]:
        """Every entry after ``after`` that exists now, page by page."""
        while True:
            page = await self.logs(run_id, after=after, limit=page_size)
            for entry in page.entries:
                yield entry
            if not page.has_more:
                return
            after = page.next_cursor

    async def stream_logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None
    ) -> AsyncIterator[runkit.LogEntry]:
        """Every entry after ``after``, then each new one as it is written, until the run
        has ended and all were sent. Reconnects after a dropped connection and resumes
        after the last entry yielded (``Last-Event-ID``): no entry missed, none twice."""
        follower = Follower(calls.run_uuid(run_id), after, self._retries)
        timeout = stream_timeouts(self._settings.timeout)
        while True:
            call = follower.call()
            try:
                async with self._http.stream(
                    call.method,
                    call.path,
                    params=call.params,
                    headers=call.headers,
                    timeout=timeout,
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                    verdict = follower.answer(response, call)
                    if verdict is DONE:
                        return
                    if verdict is READ:
                        decoder = EventDecoder()
                        chunks = response.aiter_bytes()
                        try:
                            async for chunk in chunks:
                                for event in decoder.feed(chunk):
                                    item = follower.event(event)
                                    if item is END:
                                        return
                                    if isinstance(item, runkit.LogEntry):
                                        yield item
                        finally:
                            await _unwind(response, chunks)
                        verdict = follower.dropped(None, self.url)
            except httpx.TransportError as exc:
                verdict = follower.dropped(exc, self.url)
            assert isinstance(verdict, float)
            await anyio.sleep(verdict)

    # ------------------------------------------------------------------ the server ---------
    async def kinds(self) -> builtins.list[KindInfo]:
        """The kinds the server can create runs of, by name."""
        return await self._send(calls.kinds())

    async def workers(self) -> builtins.list[runkit.WorkerInfo]:
        """The live workers: registered, and heard from within one lease."""
        return await self._send(calls.workers())


async def _unwind(response: httpx.Response, chunks: AsyncIterator[bytes]) -> None:
    """Close a stream left before its end, and finish the async generators reading it.

    httpcore reads a body through nested async generators that closing the response does
    not finish; left to the garbage collector, trio warns about each (``ResourceWarning``).
    One more read on the closed connection fails at once and unwinds them all."""
    await response.aclose()
    with contextlib.suppress(Exception):
        await anext(chunks)
