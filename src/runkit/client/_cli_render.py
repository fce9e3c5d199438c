"""What ``runkit runs`` prints: rich tables and views for people, the API's JSON for scripts.

Tables go to stdout through a rich Console: colour only on a terminal (and never with
``NO_COLOR``), plain text otherwise. Off a terminal the lines are as wide as their content
(like ``kubectl``: a pipe never wraps a row) unless ``COLUMNS`` says otherwise, and carry
no trailing blanks. ``--json`` prints one JSON document in the HTTP API's camelCase shape,
written by ``runkit_contrib._wire`` (the one wire format), never re-implemented here.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

import attrs
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

import runkit
from runkit import Status
from runkit_contrib import _wire

#: How wide a console off a terminal is, when ``COLUMNS`` does not say: wide enough that
#: no row wraps.
UNWRAPPED = 4096

_STATUS_STYLE = {
    Status.SUCCEEDED: "green",
    Status.FAILED: "red",
    Status.REJECTED: "red",
    Status.CANCELLED: "yellow",
    Status.CANCELLING: "yellow",
    Status.RUNNING: "cyan",
    Status.PAUSING: "cyan",
    Status.AWAITING_APPROVAL: "magenta",
}
_LEVEL_STYLE = {"error": "red", "warning": "yellow", "debug": "dim"}


def console(file: TextIO) -> Console:
    """A console on ``file``: rich's own terminal detection and NO_COLOR handling, and no
    wrapping off a terminal."""
    width = None
    if not file.isatty() and not (os.environ.get("COLUMNS") or "").isdigit():
        width = UNWRAPPED
    return Console(file=file, width=width, highlight=False, soft_wrap=False)


class Output:
    """stdout for results, stderr for messages and progress."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.out = console(out or sys.stdout)
        self.err = console(err or sys.stderr)

    def show(self, renderable: RenderableType) -> None:
        """Print ``renderable`` with its lines' trailing blanks cut (rich pads cells)."""
        with self.out.capture() as captured:
            self.out.print(renderable)
        text = "\n".join(line.rstrip() for line in captured.get().splitlines())
        self.out.file.write(text + "\n")
        self.out.file.flush()

    def line(self, text: str | Text) -> None:
        self.show(text if isinstance(text, Text) else Text(text))

    def json(self, document: Any) -> None:
        """One JSON document (``--json``)."""
        self.out.file.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        self.out.file.flush()

    def json_line(self, document: Any) -> None:
        """One compact JSON document on a line (``logs --json``: JSON lines)."""
        self.out.file.write(json.dumps(document, ensure_ascii=False) + "\n")
        self.out.file.flush()

    def note(self, text: str) -> None:
        """A hint for people on stderr: only on a terminal, never in a script's way."""
        if self.err.is_terminal:
            self.err.print(Text(text, style="dim"))


# ------------------------------------------------------------------ values ----------------
def when(moment: datetime | None, *, precise: bool = False) -> str:
    """An RFC 3339 UTC time as the API writes it (``precise``: with milliseconds)."""
    if moment is None:
        return "-"
    utc = moment.astimezone(UTC)
    if precise:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def counts(progress: Mapping[str, Any]) -> tuple[float, float] | None:
    """``(done, total)`` when the run reports both as numbers."""
    done, total = progress.get("done"), progress.get("total")
    numbers = (int, float)
    ok = isinstance(done, numbers) and isinstance(total, numbers)
    if not ok or isinstance(done, bool) or isinstance(total, bool):
        return None
    return float(done), float(total)  # type: ignore[arg-type]


def progress_text(progress: Mapping[str, Any]) -> str:
    found = counts(progress)
    if found is None:
        return ""
    done, total = found
    shown = f"{done:g}/{total:g}"
    return f"{shown} ({done / total:.0%})" if total > 0 else shown


def status_text(status: Status) -> Text:
    return Text(status.value, style=_STATUS_STYLE.get(status, ""))


def display_of(run: runkit.Run) -> str:
    """The run's ``displayStatus`` as the server wrote it (the client's runs carry it),
    else its status."""
    shown = getattr(run, "display_status", None)
    return shown if isinstance(shown, str) and shown else run.status.value


# ------------------------------------------------------------------ JSON ------------------
def run_json(run: runkit.Run) -> dict[str, Any]:
    return _wire.run_to_wire(run, display_of(run), run.definition)


def page_json(page: runkit.RunPage) -> dict[str, Any]:
    return _wire.run_page_to_wire(
        page, [display_of(r) for r in page.runs], [r.definition for r in page.runs]
    )


def log_json(entry: runkit.LogEntry) -> dict[str, Any]:
    return _wire.log_to_wire(entry)


def workers_json(workers: Sequence[runkit.WorkerInfo]) -> dict[str, Any]:
    return _wire.workers_to_wire(workers)


def kinds_json(kinds: Sequence[Any]) -> dict[str, Any]:
    """``{"kinds": [...]}``: wire Kind objects as they are; anything else with the same
    attribute names is projected onto them."""
    wired = [k if isinstance(k, _wire.Kind) else _wire_kind(k) for k in kinds]
    return _wire.to_json(_wire.KindList(kinds=wired))


def _wire_kind(kind: Any) -> _wire.Kind:
    if attrs.has(type(kind)):
        data = _wire.converter.unstructure(kind)
        return _wire.converter.structure(data, _wire.Kind)
    raise TypeError(f"cannot show a kind of type {type(kind).__name__}")


# ------------------------------------------------------------------ tables ----------------
def table(*headers: str) -> Table:
    """A kubectl-like table: no borders, bold headers, two blanks between columns."""
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        grid.add_column(header, no_wrap=header in {"ID", "CREATED"})
    return grid


def runs_table(runs: Iterable[runkit.Run]) -> Table:
    grid = table("ID", "KIND", "STATUS", "PROGRESS", "CREATED")
    for run in runs:
        grid.add_row(
            str(run.id),
            run.kind,
            status_text(run.status),
            progress_text(run.progress),
            when(run.created_at),
        )
    return grid


def _by(run: runkit.Run) -> str:
    who = " ".join(p for p in (run.trigger_source_type, run.trigger_source_id) if p)
    how = f" via {run.trigger_method}" if run.trigger_method else ""
    return f"{who}{how}" if who else run.trigger_method or "-"


def run_view(run: runkit.Run) -> Table:
    """``runs get``: one field a line, the empty optional ones left out."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    display = display_of(run)
    status = status_text(run.status)
    if display.lower() != run.status.value.replace("_", " "):
        status.append(f"  {display}", style="dim")
    rows: list[tuple[str, str | Text | None]] = [
        ("ID", str(run.id)),
        ("Kind", run.kind),
        ("Status", status),
        ("Progress", (progress_text(run.progress) or compact(run.progress)) or None),
        ("Definition", compact(run.definition)),
        ("Result", None if run.result is None else compact(run.result)),
        ("Error", None if run.error is None else compact(run.error)),
        ("Attempt", f"{run.attempt} (retries {run.retry_count}, interrupts {run.interrupt_count})"),
        ("Created", f"{when(run.created_at)} by {_by(run)}"),
        ("Started", when(run.started_at) if run.started_at else None),
        ("Completed", when(run.completed_at) if run.completed_at else None),
        ("Duration", seconds(run.duration_seconds) if run.started_at else None),
        ("Parent", str(run.parent_action_run_id) if run.parent_action_run_id else None),
        ("Action id", run.action_id),
        ("Idempotency key", run.idempotency_key),
        ("Concurrency key", run.concurrency_key),
    ]
    if run.progress == {}:
        rows = [r for r in rows if r[0] != "Progress"]
    for name, value in rows:
        if value is not None:
            grid.add_row(name, value)
    for i, decision in enumerate(run.approvals):
        reason = decision.get("reason")
        text = f"{decision.get('decision')} by {decision.get('by')} at {decision.get('at')}"
        grid.add_row("Approvals" if i == 0 else "", text + (f": {reason}" if reason else ""))
    return grid


def log_line(entry: runkit.LogEntry) -> Text:
    """``time level message``."""
    text = Text(f"{when(entry.occurred_at, precise=True)} ")
    text.append(f"{entry.level:<7}", style=_LEVEL_STYLE.get(entry.level, ""))
    text.append(f" {entry.message}")
    return text


def workers_table(workers: Iterable[runkit.WorkerInfo]) -> Table:
    grid = table("ID", "HOST", "PID", "CONCURRENCY", "STARTED", "LAST SEEN", "KINDS")
    for w in workers:
        grid.add_row(
            w.id,
            w.host,
            str(w.pid),
            str(w.concurrency),
            when(w.started_at),
            when(w.last_seen_at),
            ", ".join(w.kinds),
        )
    return grid


def kinds_table(kinds: Iterable[_wire.Kind]) -> Table:
    grid = table("NAME", "DISPLAY NAME", "PAUSABLE", "ATTEMPTS", "DESCRIPTION")
    for k in kinds:
        grid.add_row(
            k.name,
            k.display_name,
            "yes" if k.capabilities.pausable else "no",
            str(k.capabilities.retry.max_attempts),
            k.description,
        )
    return grid


def wire_kinds(kinds: Sequence[Any]) -> list[_wire.Kind]:
    return [k if isinstance(k, _wire.Kind) else _wire_kind(k) for k in kinds]
