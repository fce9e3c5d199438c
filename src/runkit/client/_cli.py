"""``runkit runs …``, ``runkit kinds`` and ``runkit workers``: a runkit server from the
terminal, through :class:`runkit.client.Client`.

::

    runkit runs list [--kind K] [--status S] [--parent ID] [--limit N] [--offset N] [--json]
    runkit runs get ID [--json]
    runkit runs create KIND [--definition JSON|@file|@-] [--idempotency-key K]
                            [--concurrency-key K] [--execute] [--wait [--timeout S]] [--json]
    runkit runs create-many --file FILE|@- [--execute] [--json]
    runkit runs execute|pause|resume|cancel|retry ID [--json]
    runkit runs approve|reject ID [--reason R] [--json]
    runkit runs delete ID
    runkit runs logs ID [--follow] [--after CURSOR] [--json]
    runkit runs wait ID [--timeout S] [--json]
    runkit kinds [--json]
    runkit workers [--json]

Each takes ``--url`` (default ``$RUNKIT_URL``, else ``http://127.0.0.1:8000``) and
``--api-key`` (default ``$RUNKIT_API_KEY``). Tables for people, ``--json`` for scripts (the
HTTP API's JSON). Exit codes: :mod:`._cli_errors`. ``runkit.__main__`` adds these commands
with :func:`add_client_commands` when the client is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import runkit
from runkit import Status

from . import Client
from ._cli_batch import add_create_many
from ._cli_errors import NOT_SUCCEEDED, OK, UsageError, guarded
from ._cli_render import (
    Output,
    display_of,
    kinds_json,
    kinds_table,
    page_json,
    run_json,
    run_view,
    runs_table,
    wire_kinds,
    workers_json,
    workers_table,
)
from ._cli_wait import follow_logs, print_logs, wait_for

URL_ENV, KEY_ENV = "RUNKIT_URL", "RUNKIT_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
#: The page size the server allows at most.
MAX_LIMIT = 100
#: The actions that move a run and answer it, with their help.
MOVES = {
    "execute": "queue a pending run for a worker",
    "pause": "pause a running run at its next checkpoint (pausable kinds)",
    "resume": "queue a paused run again",
    "cancel": "cancel a run (a running one stops at its next checkpoint)",
    "retry": "run a failed, cancelled or rejected run again",
}


def add_client_commands(subparsers: Any) -> None:
    """Add ``runs``, ``kinds`` and ``workers`` to the ``runkit`` command's sub-command set
    (an argparse ``add_subparsers()`` result); dispatch with ``args.handler(args)``."""
    server = _server_options()
    as_json = _json_option()

    runs: argparse.ArgumentParser = subparsers.add_parser(
        "runs",
        help="list, create, follow and act on the runs of a runkit server",
        description="The runs of a runkit server (`runkit serve`), over its HTTP API. "
        f"--url defaults to ${URL_ENV}, else {DEFAULT_URL}; --api-key to ${KEY_ENV}. "
        "Exit codes: 0 ok (a waited-for run succeeded), 1 a waited-for run failed, was "
        "cancelled or rejected, or the wait timed out, 2 usage or server errors.",
    )
    actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")

    def action(name: str, help: str, *parents: argparse.ArgumentParser) -> Any:
        parser = actions.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", parents=[*parents]
        )
        parser.set_defaults(command_name=f"runkit runs {name}")
        return parser

    listing = action("list", "list runs, newest first", server, as_json)
    listing.add_argument("--kind", default=None, help="only runs of this kind")
    listing.add_argument(
        "--status", default=None, choices=[s.value for s in Status], help="only runs in it"
    )
    listing.add_argument("--parent", type=run_id, default=None, help="only this run's children")
    listing.add_argument(
        "--limit", type=_limit, default=20, help=f"runs shown, 1 to {MAX_LIMIT} (default 20)"
    )
    listing.add_argument("--offset", type=_offset, default=0, help="runs skipped (default 0)")
    listing.set_defaults(handler=guarded(list_runs))

    get = action("get", "show a run", server, as_json)
    _id(get)
    get.set_defaults(handler=guarded(get_run))

    create = action("create", "create a run", server, as_json)
    create.add_argument("kind", metavar="KIND", help="its kind (see `runkit kinds`)")
    create.add_argument(
        "--definition",
        default=None,
        metavar="JSON|@FILE",
        help="the kind's configuration: a JSON object, @file to read it from a file, @- "
        "from stdin (default {})",
    )
    create.add_argument(
        "--idempotency-key", default=None, metavar="KEY", help="repeating with it returns the run"
    )
    create.add_argument(
        "--concurrency-key", default=None, metavar="KEY", help="runs sharing it run one at a time"
    )
    create.add_argument("--execute", action="store_true", help="queue it for a worker at once")
    create.add_argument(
        "--wait",
        action="store_true",
        help="with --execute: wait until it ends; exit 0 if it succeeded, 1 if not",
    )
    _timeout(create)
    create.set_defaults(handler=guarded(create_run))
    add_create_many(action, server, as_json, client)

    for name, help in MOVES.items():
        move = action(name, help, server, as_json)
        _id(move)
        move.set_defaults(handler=guarded(move_run), move=name)
    for name, help in (
        ("approve", "approve a run awaiting approval"),
        ("reject", "reject a run awaiting approval"),
    ):
        decide = action(name, help, server, as_json)
        _id(decide)
        decide.add_argument("--reason", default=None, help="why; kept on the run")
        decide.set_defaults(handler=guarded(decide_run), move=name)

    delete = action("delete", "delete an ended run and its log", server)
    _id(delete)
    delete.set_defaults(handler=guarded(delete_run))

    logs = action("logs", "print a run's log: time, level, message", server)
    _id(logs)
    logs.add_argument(
        "-f", "--follow", action="store_true", help="stream new entries until the run ends"
    )
    logs.add_argument(
        "--after", default=None, metavar="CURSOR", help="start after this entry (its JSON `id`)"
    )
    logs.add_argument("--json", action="store_true", help="JSON lines, one entry each")
    logs.set_defaults(handler=guarded(show_logs))

    wait = action(
        "wait", "wait until a run ends; exit 0 if it succeeded, 1 if not", server, as_json
    )
    _id(wait)
    _timeout(wait)
    wait.set_defaults(handler=guarded(wait_run))

    kinds = subparsers.add_parser(
        "kinds",
        help="list the kinds of run a runkit server can create",
        description="The kinds of run a runkit server can create.",
        parents=[server, as_json],
    )
    kinds.set_defaults(handler=guarded(list_kinds), command_name="runkit kinds")
    workers = subparsers.add_parser(
        "workers",
        help="list the live workers of a runkit server",
        description="The live workers of a runkit server: heard from within one lease.",
        parents=[server, as_json],
    )
    workers.set_defaults(handler=guarded(list_workers), command_name="runkit workers")


# ------------------------------------------------------------------ options ---------------
def _server_options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    group = parser.add_argument_group("server")
    group.add_argument(
        "--url", default=None, help=f"the server (default: ${URL_ENV}, else {DEFAULT_URL})"
    )
    group.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help=f"an API key (default: ${KEY_ENV}; prefer it: a flag shows in `ps`)",
    )
    return parser


def _json_option() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--json", action="store_true", help="print the API's JSON instead of text")
    return parser


def _id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", type=run_id, metavar="ID", help="the run's id")


def _timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="give up waiting after this (exit 1; the run goes on)",
    )


def run_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a run id: {text!r}") from None


def _limit(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_LIMIT}: {text!r}")
    return value


def _offset(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text!r}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
    return value


def client(args: argparse.Namespace) -> Client:
    args.url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    args.api_key = args.api_key or os.environ.get(KEY_ENV) or None
    return Client(args.url, api_key=args.api_key)


def definition(text: str | None) -> dict[str, Any] | None:
    """``--definition``: a JSON object, ``@file`` or ``@-`` (stdin)."""
    if text is None:
        return None
    source = "--definition"
    if text.startswith("@"):
        name = text[1:]
        source = "stdin" if name == "-" else name
        try:
            text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --definition {name}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source} must be a JSON object, not {type(value).__name__}")
    return value


# ------------------------------------------------------------------ commands --------------
def outcome(run: runkit.Run) -> int:
    return OK if run.status is Status.SUCCEEDED else NOT_SUCCEEDED


def show_run(run: runkit.Run, args: argparse.Namespace, out: Output) -> None:
    if args.json:
        out.json(run_json(run))
    else:
        out.show(run_view(run))


def list_runs(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        page = c.list(
            kind=args.kind,
            status=args.status and Status(args.status),
            parent=args.parent,
            limit=args.limit,
            offset=args.offset,
        )
    if args.json:
        out.json(page_json(page))
    elif not page.runs:
        print("No runs." if page.total == 0 else "No runs on this page.", file=sys.stderr)
    else:
        out.show(runs_table(page.runs))
        if page.has_next:
            shown = f"{page.offset + 1}-{page.offset + len(page.runs)}"
            out.note(f"Runs {shown} of {page.total}: --limit and --offset show others.")
    return OK


def get_run(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        run = c.get(args.id)
    show_run(run, args, out)
    return OK


def create_run(args: argparse.Namespace) -> int:
    if args.wait and not args.execute:
        raise UsageError("--wait needs --execute: a created run waits to be executed")
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    config = definition(args.definition)
    out = Output()
    with client(args) as c:
        created = c.create(
            args.kind,
            config,
            idempotency_key=args.idempotency_key,
            concurrency_key=args.concurrency_key,
            execute=args.execute,
        )
        run = created.run
        if not created.created:
            out.note(f"Run {run.id} already had idempotency key {args.idempotency_key!r}.")
        if args.wait:
            run = wait_for(c, run.id, out, timeout=args.timeout)
            show_run(run, args, out)
            return outcome(run)
    if args.json:
        out.json(run_json(run))
    else:
        out.line(f"Created run {run.id} ({run.kind}): {display_of(run)}")
        if run.status is Status.PENDING:
            out.note(f"It waits to be executed: runkit runs execute {run.id}")
    return OK


def move_run(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        run = getattr(c, args.move)(args.id)
    _moved(run, args, out)
    return OK


def decide_run(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        run = getattr(c, args.move)(args.id, reason=args.reason)
    _moved(run, args, out)
    return OK


def _moved(run: runkit.Run, args: argparse.Namespace, out: Output) -> None:
    if args.json:
        out.json(run_json(run))
    else:
        out.line(f"Run {run.id}: {display_of(run)}")


def delete_run(args: argparse.Namespace) -> int:
    with client(args) as c:
        c.delete(args.id)
    Output().line(f"Deleted run {args.id}.")
    return OK


def show_logs(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        if args.follow:
            follow_logs(c, args.id, out, after=args.after, as_json=args.json)
        else:
            print_logs(c, args.id, out, after=args.after, as_json=args.json)
    return OK


def wait_run(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        run = wait_for(c, args.id, out, timeout=args.timeout)
    show_run(run, args, out)
    return outcome(run)


def list_kinds(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        kinds = c.kinds()
    if args.json:
        out.json(kinds_json(kinds))
    else:
        out.show(kinds_table(wire_kinds(kinds)))
    return OK


def list_workers(args: argparse.Namespace) -> int:
    out = Output()
    with client(args) as c:
        workers = c.workers()
    if args.json:
        out.json(workers_json(workers))
    elif not workers:
        print("No live workers.", file=sys.stderr)
    else:
        out.show(workers_table(workers))
    return OK
