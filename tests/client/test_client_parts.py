"""The client's parts without a server: the SSE decoder (fed bytes split anywhere), paging
through runs that come and go, ``wait``'s rhythm, and the two clients' surfaces (the same
methods as each other and, argument for argument, as the in-process API)."""

from __future__ import annotations

import inspect
import itertools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

import runkit
from runkit import Status
from runkit.client import AsyncClient, Client
from runkit.client._decode import ListedPage
from runkit.client._follow import RunPager, poll_intervals
from runkit.client._sse import Event, EventDecoder

STREAM = (
    "\ufeffretry: 3000\r\n"
    "\r\n"
    ": ping\n"
    "\n"
    "id: a-1\n"
    "event: log\n"
    'data: {"m": "caf\u00e9 \u2603 \U0001f680"}\n'
    "\n"
    "event: log\r"
    "data: first line\r"
    "data:second line\r"
    "data\r"
    "unknown: field\r"
    "\r"
    "id: b\0-2\n"  # an id with NUL is ignored: the last id stays a-1
    "event: nothing\n"
    "\n"  # no data: nothing is dispatched
    "id: a-3\r\n"
    "data: plain\r\n"
    "\r\n"
    "event: end\n"
    'data: {"status": "succeeded"}\n'
)  # the last event has no blank line: a stream cut there never delivers it

EXPECTED = [
    Event("log", '{"m": "caf\u00e9 \u2603 \U0001f680"}', "a-1"),
    Event("log", "first line\nsecond line\n", "a-1"),
    Event("message", "plain", "a-3"),
]


def decode(chunks: list[bytes]) -> tuple[list[Event], EventDecoder]:
    decoder = EventDecoder()
    events = [e for chunk in chunks for e in decoder.feed(chunk)]
    return events + decoder.close(), decoder


def test_the_decoder_reads_the_standard_s_fields() -> None:
    events, decoder = decode([STREAM.encode()])
    assert events == EXPECTED and decoder.retry == 3000


def test_the_decoder_does_not_care_where_the_bytes_were_split() -> None:
    raw = STREAM.encode()
    for cut in range(len(raw) + 1):
        assert decode([raw[:cut], raw[cut:]])[0] == EXPECTED, cut
    assert decode([bytes([b]) for b in raw])[0] == EXPECTED
    for a, b in itertools.combinations(range(0, len(raw), 7), 2):
        assert decode([raw[:a], raw[a:b], raw[b:]])[0] == EXPECTED, (a, b)


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    events, _ = decode([b"data: x\r", b"\n", b"\r", b"\ndata: y\n\n"])
    assert events == [Event("message", "x", None), Event("message", "y", None)]


def test_a_final_event_without_its_blank_line_is_dropped() -> None:
    assert decode([b"data: whole\n\ndata: cut"])[0] == [Event("message", "whole", None)]
    assert decode([b"data: whole\n\ndata: cut\n"])[0] == [Event("message", "whole", None)]


# ------------------------------------------------------------------ paging -------------
CLOCK = itertools.count()


def make_run() -> runkit.Run:
    """A run created after every run made before it."""
    now = datetime(2026, 1, 2, tzinfo=UTC) + timedelta(seconds=next(CLOCK))
    return runkit.Run(
        id=uuid.uuid4(), kind="noop", status=Status.PENDING, created_at=now, updated_at=now
    )


def newest_first(count: int) -> list[runkit.Run]:
    return [make_run() for _ in range(count)][::-1]


def page_of(runs: list[runkit.Run], offset: int, limit: int) -> ListedPage:
    shown = tuple(runs[offset : offset + limit])
    page = runkit.RunPage(shown, len(runs), limit, offset)
    return ListedPage(page, offset + len(shown) < len(runs))


Between = Callable[[list[runkit.Run]], None]


def drain(
    pager: RunPager, listing: list[runkit.Run], between: dict[int, Between]
) -> list[runkit.Run]:
    """Page through ``listing`` (newest first); after the n-th page, ``between[n]`` is
    given what was yielded so far and may change ``listing``."""
    out: list[runkit.Run] = []
    pages = 0
    while not pager.done:
        call = pager.call()
        listed = page_of(listing, int(call.params["offset"]), int(call.params["limit"]))
        out.extend(pager.take(listed))
        pages += 1
        if pages in between:
            between[pages](out)
    return out


def pager(size: int = 3) -> RunPager:
    return RunPager(kind=None, status=None, parent=None, action_id=None, page_size=size)


def test_paging_while_runs_are_created_yields_each_old_run_once() -> None:
    listing = newest_first(10)
    original = list(listing)

    def create(count: int) -> Between:
        def act(_: list[runkit.Run]) -> None:
            listing[0:0] = newest_first(count)

        return act

    assert drain(pager(), listing, {1: create(2), 2: create(5), 3: create(1)}) == original


def test_paging_while_runs_are_deleted_skips_none() -> None:
    listing = newest_first(12)
    original = list(listing)

    def delete_read(count: int) -> Between:
        """Delete runs already yielded (what a clean-up loop does)."""

        def act(yielded: list[runkit.Run]) -> None:
            for run in [r for r in yielded if r in listing][:count]:
                listing.remove(run)

        return act

    got = drain(pager(), listing, {1: delete_read(3), 2: delete_read(2), 3: delete_read(4)})
    assert got == original


def test_paging_while_runs_come_and_go_together() -> None:
    listing = newest_first(12)
    original = list(listing)

    def churn(yielded: list[runkit.Run]) -> None:
        listing.remove(next(r for r in yielded if r in listing))
        listing[0:0] = newest_first(2)

    assert drain(pager(), listing, {n: churn for n in range(1, 6)}) == original


def test_a_page_cut_short_pages_on_from_its_own_limit() -> None:
    listing = newest_first(5)
    p = pager(size=4)
    first = page_of(listing, 0, 4)
    # The server held two runs only (the page's bytes), saying limit=2 and more to come.
    short = ListedPage(runkit.RunPage(first.page.runs[:2], 5, 2, 0), True)
    assert p.take(short) == listing[:2] and p.offset == 2
    assert p.take(page_of(listing, 2, 4)) == listing[2:5] and p.done


def test_wait_polls_soon_then_less_often() -> None:
    assert list(itertools.islice(poll_intervals(1.0), 7)) == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert list(itertools.islice(poll_intervals(0.01), 2)) == [0.01, 0.01]


# ------------------------------------------------------------------ the surfaces --------
def public(cls: type) -> dict[str, object]:
    return {n: m for n, m in vars(cls).items() if not n.startswith("_") and callable(m)}


def test_the_two_clients_have_the_same_methods() -> None:
    sync, asynchronous = public(Client), public(AsyncClient)
    assert set(sync) - {"close"} == set(asynchronous) - {"aclose"}
    for name, method in sync.items():
        if name in ("close", "from_env"):
            continue
        twin = asynchronous[name]
        assert inspect.signature(method).parameters == inspect.signature(twin).parameters, name
        expected = (
            inspect.isasyncgenfunction
            if name.startswith(("iter_", "stream_"))
            else (inspect.iscoroutinefunction)
        )
        assert expected(twin), name


#: In-process arguments the HTTP API has no use for: the server decides them (the
#: credential is the principal, and its tenant; concurrency limits are the server's; a
#: cancel over HTTP is the user's, its ``status_reason`` always ``user``).
SERVER_DECIDES = {"principal", "tenant", "concurrency_limit"}
SERVER_DECIDES_FOR = {"cancel": {"reason"}}


@pytest.mark.parametrize(
    "name",
    [
        *("create", "create_many", "get", "list", "logs", "iter_logs", "wait", "workers"),
        "delete",
        *("execute", "pause", "resume", "cancel", "retry", "approve", "reject"),
    ],
)
def test_in_process_calls_work_on_a_client(name: str) -> None:
    """Every argument of ``runkit.Runkit``'s method (but those the server decides) is the
    client's, of the same kind and default: moving code to a client is one line."""
    local = inspect.signature(getattr(runkit.Runkit, name)).parameters
    remote = inspect.signature(getattr(AsyncClient, name)).parameters
    for param in local.values():
        if param.name in SERVER_DECIDES | SERVER_DECIDES_FOR.get(name, set()):
            continue
        assert param.name in remote, f"{name}({param.name}=...)"
        theirs = remote[param.name]
        assert (theirs.kind, theirs.default) == (param.kind, param.default), (name, param.name)
