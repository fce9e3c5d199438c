"""Waiting for a run (``runs wait``, ``create --wait``) and following its log.

On a terminal the wait shows a spinner on stderr with the run's display status, and a bar
once the run reports ``done``/``total`` in its progress; it polls the run for them. Off a
terminal nothing is drawn and the client's own ``wait`` does the waiting.
"""

from __future__ import annotations

import time
from uuid import UUID

from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

import runkit

from . import Client, ClientError
from ._cli_errors import WaitTimedOut
from ._cli_render import Output, counts, display_of, log_json, log_line

#: Seconds between two reads of a run while a progress display is shown.
POLL_INTERVAL = 0.5


def wait_for(client: Client, run_id: UUID, out: Output, *, timeout: float | None) -> runkit.Run:
    """The run once it has ended; :class:`WaitTimedOut` after ``timeout`` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        if not out.err.is_terminal:
            return client.wait(run_id, timeout=timeout)
        return _wait_showing(client, run_id, out, timeout)
    except ClientError as exc:
        # A read cut short by the deadline is the wait's timeout, not a dead server.
        if exc.status is None and deadline is not None and time.monotonic() >= deadline:
            raise _timed_out(run_id, timeout) from None
        raise
    except KeyboardInterrupt:
        out.err.print(f"Stopped waiting; run {run_id} goes on.", highlight=False)
        raise
    except TimeoutError:
        raise _timed_out(run_id, timeout) from None


def _timed_out(run_id: UUID, timeout: float | None) -> WaitTimedOut:
    return WaitTimedOut(
        f"timed out after {timeout:g} s: run {run_id} has not ended "
        f"(`runkit runs wait {run_id}` waits again)"
    )


def _wait_showing(client: Client, run_id: UUID, out: Output, timeout: float | None) -> runkit.Run:
    deadline = None if timeout is None else time.monotonic() + timeout
    with Progress(*columns(), console=out.err, transient=True) as bar:
        task = bar.add_task(f"run {str(run_id)[:8]}", total=None, count="")
        while True:
            run = client.get(run_id)
            show(bar, task, run)
            if run.status.terminal:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError
            pause = POLL_INTERVAL
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            time.sleep(pause)


def columns() -> tuple[ProgressColumn, ...]:
    """Spinner, what the run is doing, the bar, percent and count, time waited."""
    return (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
    )


def show(bar: Progress, task: TaskID, run: runkit.Run) -> None:
    """The run as the display line says it: its kind, id and display status, and its
    ``done``/``total`` as the bar once it reports them."""
    description = escape(f"{run.kind} {str(run.id)[:8]} · {display_of(run)}")
    found = counts(run.progress)
    if found is None:
        bar.update(task, description=description)
        return
    done, total = found
    bar.update(
        task,
        description=description,
        completed=done,
        total=max(total, 0.0) or None,
        count=f"{done:g}/{total:g}",
    )


def follow_logs(
    client: Client, run_id: UUID, out: Output, *, after: str | None, as_json: bool
) -> None:
    """Each entry of the run's log once, in order, as it is written, until the run ends."""
    for entry in client.stream_logs(run_id, after=after):
        print_entry(entry, out, as_json=as_json)


def print_logs(
    client: Client, run_id: UUID, out: Output, *, after: str | None, as_json: bool
) -> None:
    """The run's log as it is now, from after ``after``."""
    for entry in client.iter_logs(run_id, after=after):
        print_entry(entry, out, as_json=as_json)


def print_entry(entry: runkit.LogEntry, out: Output, *, as_json: bool) -> None:
    if as_json:
        out.json_line(log_json(entry))
    else:
        out.show(log_line(entry))
