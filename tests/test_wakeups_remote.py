"""Which moves tell other processes there is work (``Wakeups.remote``: PostgreSQL NOTIFY)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from run_support import scripted_wait, wait_status
from runkit import Kind, Runkit, Status
from runkit.engine import _wakeups, embedded_workers
from runkit.engine._wakeups import Wakeups
from runkit.storage.protocols import Notifications

pytestmark = pytest.mark.anyio


async def _noop(ctx: Any) -> dict[str, Any]:
    return {}


@pytest.mark.parametrize(
    ("key", "expected"),
    [(None, ["created"]), ("k", ["created", "freed"])],
    ids=["unkeyed", "keyed"],
)
async def test_a_run_that_ends_notifies_only_when_it_frees_a_key(
    key: str | None, expected: list[str]
) -> None:
    """A new queued run is news to every worker process; the end of an unkeyed run frees only
    its worker's own slot (woken in-process), so it must not wake every other process; the
    end of a keyed run frees a slot of its key, which a worker elsewhere may be waiting for."""
    async with Runkit(
        "memory://", kinds=[Kind("noop", executor=_noop)], autoload_plugins=False
    ) as rk:
        sent: list[str] = []
        phase = ["created"]
        rk.wakeups.remote = lambda what, run_id: sent.append(phase[0]) if what == "work" else None
        run = (await rk.create("noop", concurrency_key=key, execute=True)).run
        phase[0] = "freed"
        async with embedded_workers(rk, concurrency=1, poll_interval=0.05):
            await wait_status(rk, run.id, {Status.SUCCEEDED})
        assert sorted(set(sent)) == expected


async def _sending(wakeups: Wakeups, sent: list[tuple[float, str]]) -> None:
    async def notify(channel: str, payload: str) -> None:
        sent.append((anyio.current_time(), channel))

    await wakeups.send_remote(notify)


async def test_a_lone_signal_is_sent_at_once_and_a_stream_of_them_at_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first signal after a quiet interval does not wait for it (a lone run's wake-up
    is not delayed), and signals that keep coming are sent once per interval: every
    process hears every notification, so their rate is what load costs the others."""
    monkeypatch.setattr(_wakeups, "SEND_INTERVAL", 5.0)  # far beyond how long the test takes
    wakeups, sent = Wakeups(), []
    async with anyio.create_task_group() as tg:
        tg.start_soon(_sending, wakeups, sent)
        with anyio.fail_after(10):
            while wakeups.remote is None:  # noqa: ASYNC110 - set when the sender starts
                await anyio.sleep(0.01)
        start = anyio.current_time()
        wakeups.work_available()
        with anyio.fail_after(2):  # sent at once: long before the 5 s interval
            while not sent:  # noqa: ASYNC110 - the sender runs in its own task
                await anyio.sleep(0.01)
        for _ in range(50):  # within the interval: held back, then sent together
            wakeups.work_available()
            await anyio.sleep(0.001)
        tg.cancel_scope.cancel()
    assert [channel for _, channel in sent] == [_wakeups.WORK_CHANNEL]
    assert sent[0][0] - start < 2


async def test_the_work_another_process_announced_is_counted_for_the_workers() -> None:
    """PostgreSQL's notifications (with payloads; the process's own are left out) count;
    SQLite's commit watch (a plain set) does not: it fires on this process's own commits,
    and a worker that took those for another process's would stand back from itself."""
    wakeups = Wakeups()
    work = _wakeups.WORK_CHANNEL
    answers: list[set[str]] = [
        Notifications({work: {""}}),
        Notifications({_wakeups.LOGS_CHANNEL: {""}}),
        {work},  # SQLite: a commit, maybe our own
        Notifications({work: {""}}),
    ]

    async with anyio.create_task_group() as tg:
        tg.start_soon(wakeups.listen_remote, scripted_wait(answers))
        with anyio.fail_after(10):
            while answers:  # noqa: ASYNC110 - the listener runs in its own task
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    wakeups.work_available()  # a local signal is not another process's
    assert wakeups.remote_work == 2
