"""``runkit runs …``, ``runkit kinds`` and ``runkit workers`` as people and scripts run them:
each command a subprocess against a live ``runkit serve`` (cli_support), its output and exit
code checked. ``test_docs_transcripts`` writes docs/cli.md's transcripts from real runs
(``RUNKIT_WRITE_DOCS=1``) or checks the doc still shows what the commands print."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cli_support import Done, Server, Transcripts, cli_command, free_port, serving
from rich.console import Console
from rich.progress import Progress

import runkit
from runkit.client import RemoteRun
from runkit.client._cli_wait import columns, show

pytestmark = pytest.mark.timeout(180)
UUID_RE = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
#: Escape sequences that set a colour (SGR 30-37, 90-97, 38;...).
COLOUR = re.compile(r"\x1b\[[0-9;]*(?:3[0-8]|9[0-7])[0-9;]*m")


@pytest.fixture(name="server", scope="module")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(tmp_path_factory.mktemp("cli")) as server:
        yield server


def ok(done: Done) -> Done:
    assert done.code == 0, done
    return done


def as_json(done: Done) -> Any:
    assert done.code == 0, done
    return json.loads(done.out)


def create(server: Server, kind: str, definition: dict[str, Any], *flags: str) -> dict[str, Any]:
    run: dict[str, Any] = as_json(
        server.run("runs", "create", kind, "--definition", json.dumps(definition), *flags, "--json")
    )
    return run


def until(server: Server, run_id: str, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        with server.http() as http:
            run: dict[str, Any] = http.get(f"/api/v1/action-runs/{run_id}").json()
        if check(run):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def one_line_error(done: Done, code: int = 2) -> str:
    assert done.code == code, done
    assert done.out == "", done
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done
    return lines[0]


# ------------------------------------------------------------------ list and get ----------
def test_list_and_get_as_tables_and_json(server: Server) -> None:
    first = create(server, "noop", {}, "--execute", "--wait")
    second = create(server, "noop", {})
    table = ok(server.run("runs", "list", "--kind", "noop"))
    lines = table.out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "STATUS", "PROGRESS", "CREATED"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows[second["id"]][:2] == ["noop", "pending"]
    assert rows[first["id"]][:2] == ["noop", "succeeded"]
    assert list(rows)[:2] == [second["id"], first["id"]]  # newest first
    assert table.err == "" and not any(line != line.rstrip() for line in lines)

    page = as_json(server.run("runs", "list", "--kind", "noop", "--status", "pending", "--json"))
    with server.http() as http:
        same = http.get("/api/v1/action-runs", params={"kind": "noop", "status": "pending"})
    assert set(page) == {"hasNext", "limit", "offset", "runs", "total", "users"}
    assert [r["id"] for r in page["runs"]] == [r["id"] for r in same.json()["runs"]]
    assert page["runs"][0]["displayStatus"] == "Pending · not yet executed"
    assert as_json(server.run("runs", "list", "--kind", "noop", "--limit", "1", "--json"))[
        "hasNext"
    ]

    got = as_json(server.run("runs", "get", first["id"], "--json"))
    with server.http() as http:
        assert got == http.get(f"/api/v1/action-runs/{first['id']}").json()
    view = ok(server.run("runs", "get", first["id"])).out
    assert re.search(rf"^ID +{first['id']}$", view, re.M), view
    assert re.search(r"^Status +succeeded$", view, re.M), view
    assert re.search(r"^Created +\S+Z by api_key admin via api$", view, re.M), view
    assert re.search(r"^Duration +\d+\.\d\d s$", view, re.M), view

    children = ok(server.run("runs", "list", "--parent", first["id"]))
    assert children.out == "" and children.err == "No runs.\n"


def test_list_refuses_bad_options(server: Server) -> None:
    for argv in (["--limit", "0"], ["--limit", "101"], ["--status", "done"], ["--parent", "x"]):
        done = server.run("runs", "list", *argv)
        assert done.code == 2 and "usage: runkit runs list" in done.err, done


# ------------------------------------------------------------------ create ----------------
def test_create_with_definition_inline_from_a_file_and_stdin(
    server: Server, tmp_path: Path
) -> None:
    inline = create(server, "sleep", {"seconds": 0.1})
    assert inline["definition"] == {"seconds": 0.1} and inline["status"] == "pending"
    path = tmp_path / "definition.json"
    path.write_text('{"seconds": 0.2}')
    from_file = as_json(server.run("runs", "create", "sleep", "--definition", f"@{path}", "--json"))
    assert from_file["definition"] == {"seconds": 0.2}
    piped = server.run(
        "runs", "create", "sleep", "--definition", "@-", "--json", stdin='{"seconds": 0.3}'
    )
    assert as_json(piped)["definition"] == {"seconds": 0.3}

    text = ok(server.run("runs", "create", "noop", "--concurrency-key", "k"))
    assert re.fullmatch(rf"Created run {UUID_RE} \(noop\): Pending · not yet executed\n", text.out)
    assert text.err == ""  # the hint to execute it is for terminals only

    first = create(server, "noop", {}, "--idempotency-key", "cli-once")
    again = create(server, "noop", {}, "--idempotency-key", "cli-once")
    assert again["id"] == first["id"] and again["idempotencyKey"] == "cli-once"


def test_create_refuses_bad_definitions_before_asking(server: Server, tmp_path: Path) -> None:
    cases = {
        ("--definition", "{"): "runkit runs create: --definition is not JSON: ",
        ("--definition", "[1]"): "runkit runs create: --definition must be a JSON object, not list",
        ("--definition", f"@{tmp_path / 'none.json'}"): "runkit runs create: cannot read "
        f"--definition {tmp_path / 'none.json'}: No such file or directory",
        ("--wait",): "runkit runs create: --wait needs --execute",
    }
    for argv, message in cases.items():
        line = one_line_error(server.run("runs", "create", "noop", *argv))
        assert line.startswith(message), line


def test_create_many_prints_a_line_an_item(server: Server, tmp_path: Path) -> None:
    key = f"cli-many-{uuid.uuid4()}"
    items = [
        {"kind": "sleep", "definition": {"seconds": 0.1}, "idempotencyKey": key},
        {"kind": "noop", "actionId": "cli-many"},
    ]
    path = tmp_path / "runs.json"
    path.write_text(json.dumps(items))
    first = ok(server.run("runs", "create-many", "--file", str(path)))
    lines = first.out.splitlines()
    assert len(lines) == 2 and first.err == "", first
    assert re.fullmatch(rf"Created run {UUID_RE} \(sleep\): Pending · not yet executed", lines[0])
    assert re.fullmatch(rf"Created run {UUID_RE} \(noop\): Pending · not yet executed", lines[1])
    sleep_id = re.search(UUID_RE, lines[0])[0]  # type: ignore[index]

    # The batch body itself, from stdin, as JSON: the API's answer, the key's run again.
    again = as_json(
        server.run(
            "runs", "create-many", "--file", "@-", "--json", stdin=json.dumps({"items": items})
        )
    )
    assert [a["status"] for a in again["items"]] == [200, 201]
    assert again["items"][0]["actionRun"]["id"] == sleep_id
    assert set(again["items"][1]) == {"status", "actionRun", "error"}
    with server.http() as http:
        stored = http.get(f"/api/v1/action-runs/{sleep_id}").json()
    assert again["items"][0]["actionRun"] == stored
    replayed = ok(server.run("runs", "create-many", "--file", str(path)))
    assert replayed.out.splitlines()[0] == (
        f"Run {sleep_id} (sleep) already had idempotency key {key!r}: Pending · not yet executed"
    )

    # Another request under the key: that item makes no run, the others do; exit 2.
    items[0]["definition"] = {"seconds": 0.2}
    path.write_text(json.dumps(items))
    conflict = server.run("runs", "create-many", "--file", str(path), "--execute")
    assert conflict.code == 2, conflict
    refused, made = conflict.out.splitlines()
    assert refused == (
        f"Item 0: not created: idempotency key {key!r} was already used by run {sleep_id} "
        "with a different request"
    )
    assert re.fullmatch(rf"Created run {UUID_RE} \(noop\): Queued · waiting for a worker", made)
    as_api = json.loads(server.run("runs", "create-many", "--file", str(path), "--json").out)
    assert as_api["items"][0]["status"] == 422 and as_api["items"][0]["actionRun"] is None
    (problem,) = as_api["items"][0]["error"]["detail"]
    assert problem["loc"] == ["body", "items", 0, "idempotencyKey"]


def test_create_many_refuses_bad_items(server: Server, tmp_path: Path) -> None:
    def refused(content: str) -> str:
        return one_line_error(server.run("runs", "create-many", "--file", "@-", stdin=content))

    assert refused("[").startswith("runkit runs create-many: stdin is not JSON: ")
    assert refused('{"kind": "noop"}') == (
        "runkit runs create-many: stdin must hold a JSON list of create bodies"
    )
    assert refused('[{"kind": "noop"}, 5]') == (
        "runkit runs create-many: stdin: item 1 must be a create body (a JSON object)"
    )
    assert refused('[{"kind": "noop", "execute": true}]') == (
        "runkit runs create-many: stdin: item 0: unknown field 'execute'"
    )
    assert refused('[{"definition": {}}]') == "runkit runs create-many: stdin: item 0 has no kind"
    missing = tmp_path / "none.json"
    line = one_line_error(server.run("runs", "create-many", "--file", str(missing)))
    assert line == (
        f"runkit runs create-many: cannot read --file {missing}: No such file or directory"
    )
    action = f"cli-bad-{uuid.uuid4()}"
    items = [{"kind": "noop", "actionId": action}, {"kind": "no_such_kind", "actionId": action}]
    line = refused(json.dumps(items))
    assert line.startswith(
        "runkit runs create-many: invalid request (422): body.items.1.kind: unknown kind"
    ), line
    with server.http() as http:
        assert http.get("/api/v1/action-runs", params={"action_id": action}).json()["total"] == 0


def test_execute_and_wait_exits_0_when_the_run_succeeds_1_when_it_fails(server: Server) -> None:
    done = server.run("runs", "create", "noop", "--execute", "--wait")
    assert done.code == 0 and done.err == "", done  # nothing drawn off a terminal
    assert re.search(r"^Status +succeeded$", done.out, re.M), done

    failing = json.dumps({"times": 1, "maxAttempts": 1})
    done = server.run(
        "runs", "create", "fail_n_times", "--definition", failing, "--execute", "--wait"
    )
    assert done.code == 1 and done.err == "", done
    gave_up = "gave up after 1 attempt: failure 1 of 1"
    assert re.search(rf"^Status +failed  Failed: {gave_up}$", done.out, re.M), done
    error = rf'^Error +\{{"type": "RetriesExhausted", "message": "{gave_up}", '
    assert re.search(error, done.out, re.M), done

    data = json.loads(
        server.run(
            "runs",
            "create",
            "fail_n_times",
            "--definition",
            failing,
            "--execute",
            "--wait",
            "--json",
        ).out
    )
    assert data["status"] == "failed" and data["displayStatus"] == f"Failed: {gave_up}"


def test_execute_then_wait(server: Server) -> None:
    run = create(server, "sleep", {"seconds": 0.3})
    moved = ok(server.run("runs", "execute", run["id"]))
    assert moved.out == f"Run {run['id']}: Queued · waiting for a worker\n"
    done = server.run("runs", "wait", run["id"], "--json")
    assert as_json(done)["status"] == "succeeded" and done.err == ""


def test_wait_times_out_with_1_and_the_run_goes_on(server: Server) -> None:
    run = create(server, "sleep", {"seconds": 30}, "--execute")
    started = time.monotonic()
    line = one_line_error(server.run("runs", "wait", run["id"], "--timeout", "0.5"), code=1)
    assert time.monotonic() - started < 20
    assert line == (
        f"runkit runs wait: timed out after 0.5 s: run {run['id']} has not ended "
        f"(`runkit runs wait {run['id']}` waits again)"
    )
    assert as_json(server.run("runs", "get", run["id"], "--json"))["status"] in {
        "queued",
        "running",
    }
    ok(server.run("runs", "cancel", run["id"]))


# ------------------------------------------------------------------ moves -----------------
def test_approve_and_reject_with_a_reason(server: Server) -> None:
    gate = {"title": "Deploy"}
    approved = create(server, "approval_gate", gate, "--execute")
    until(server, approved["id"], lambda r: r["status"] == "awaiting_approval")
    done = ok(server.run("runs", "approve", approved["id"], "--reason", "looks good"))
    assert done.out == f"Run {approved['id']}: Succeeded\n"
    assert ok(server.run("runs", "wait", approved["id"])).out.count("succeeded") == 1
    view = ok(server.run("runs", "get", approved["id"])).out
    assert re.search(r"^Approvals +approve by admin at \S+Z: looks good$", view, re.M), view

    rejected = create(server, "approval_gate", gate, "--execute")
    until(server, rejected["id"], lambda r: r["status"] == "awaiting_approval")
    data = as_json(server.run("runs", "reject", rejected["id"], "--reason", "not today", "--json"))
    assert data["status"] == "rejected" and data["displayStatus"] == "Rejected: not today"
    assert [(a["decision"], a["reason"]) for a in data["approvals"]] == [("reject", "not today")]
    done = server.run("runs", "wait", rejected["id"])
    assert done.code == 1 and re.search(r"^Status +rejected  Rejected: not today$", done.out, re.M)


def test_cancel_a_sleep(server: Server) -> None:
    run = create(server, "sleep", {"seconds": 30}, "--execute")
    until(server, run["id"], lambda r: r["status"] == "running")
    done = ok(server.run("runs", "cancel", run["id"]))
    assert done.out == f"Run {run['id']}: Cancelling · waiting for the action to stop\n"
    waited = server.run("runs", "wait", run["id"], "--json")
    assert waited.code == 1 and json.loads(waited.out)["status"] == "cancelled", waited


def test_delete(server: Server) -> None:
    run = create(server, "noop", {})
    assert ok(server.run("runs", "delete", run["id"])).out == f"Deleted run {run['id']}.\n"
    assert one_line_error(server.run("runs", "get", run["id"])).endswith(
        f"no run {run['id']} (404)"
    )


# ------------------------------------------------------------------ logs ------------------
def _entries(lines: list[str]) -> list[str]:
    return [line.split(None, 2)[2] for line in lines if re.search(r" info +entry \d+$", line)]


def test_logs_and_follow_show_every_entry_once_in_order(server: Server) -> None:
    count = 40
    run = create(server, "emit_logs", {"count": count, "intervalSeconds": 0.05}, "--execute")
    follower = server.popen("runs", "logs", run["id"], "--follow")
    json_follower = server.popen("runs", "logs", run["id"], "-f", "--json")
    out, err = follower.communicate(timeout=60)
    json_out, json_err = json_follower.communicate(timeout=60)
    assert follower.returncode == 0 and err == "", err
    assert json_follower.returncode == 0 and json_err == "", json_err

    wanted = [f"entry {i}" for i in range(count)]
    lines = out.splitlines()
    assert _entries(lines) == wanted
    time_level = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warning|error) *"
    assert all(re.match(time_level, line) for line in lines), lines
    entries = [json.loads(line) for line in json_out.splitlines()]
    assert [e["message"] for e in entries if e["message"].startswith("entry ")] == wanted
    ids = [e["id"] for e in entries]
    assert len(set(ids)) == len(ids)
    assert [int(i.rsplit("-", 1)[1]) for i in ids] == sorted(int(i.rsplit("-", 1)[1]) for i in ids)
    assert set(entries[0]) == {
        "id",
        "attempt",
        "level",
        "event",
        "message",
        "data",
        "occurredAt",
        "workerId",
    }

    # The run has ended: the log as it is, the same entries; --after resumes after a cursor.
    again = ok(server.run("runs", "logs", run["id"])).out.splitlines()
    assert _entries(again) == wanted and len(again) == len(lines)
    tenth = next(e["id"] for e in entries if e["message"] == "entry 9")
    rest = ok(server.run("runs", "logs", run["id"], "--after", tenth, "--json")).out
    assert [json.loads(line)["message"] for line in rest.splitlines()][:3] == [
        "entry 10",
        "entry 11",
        "entry 12",
    ]
    followed = ok(server.run("runs", "logs", run["id"], "--follow", "--after", tenth)).out
    assert _entries(followed.splitlines()) == wanted[10:]


def test_logs_of_an_unknown_run_and_a_bad_cursor(server: Server) -> None:
    missing = str(uuid.uuid4())
    for follow in ([], ["--follow"]):
        line = one_line_error(server.run("runs", "logs", missing, *follow))
        assert line == f"runkit runs logs: no run {missing} (404)"
    run = create(server, "noop", {})
    line = one_line_error(server.run("runs", "logs", run["id"], "--after", "nope"))
    assert "invalid request (422): query.after: " in line, line


# ------------------------------------------------------------------ kinds and workers -----
def test_kinds(server: Server) -> None:
    table = ok(server.run("kinds")).out.splitlines()
    assert table[0].split() == ["NAME", "DISPLAY", "NAME", "PAUSABLE", "ATTEMPTS", "DESCRIPTION"]
    assert any(re.match(r"sleep +Sleep +yes +1 +Sleeps; pausable", line) for line in table)
    assert any(line.startswith("approval_gate ") for line in table)
    with server.http() as http:
        assert as_json(server.run("kinds", "--json")) == http.get("/api/v1/kinds").json()


def test_workers(server: Server) -> None:
    table = ok(server.run("workers")).out.splitlines()
    assert table[0].split() == [
        "ID",
        "HOST",
        "PID",
        "CONCURRENCY",
        "STARTED",
        "LAST",
        "SEEN",
        "KINDS",
    ]
    assert len(table) == 2 and str(server.proc.pid) in table[1].split(), table
    listed = as_json(server.run("workers", "--json"))["workers"]
    assert [w["pid"] for w in listed] == [server.proc.pid] and "noop" in listed[0]["kinds"]
    assert set(listed[0]) == {
        "id",
        "host",
        "pid",
        "kinds",
        "concurrency",
        "startedAt",
        "lastSeenAt",
    }


# ------------------------------------------------------------------ errors ----------------
def test_connection_refused(server: Server) -> None:
    port = free_port()  # nothing listens on it
    url = f"http://127.0.0.1:{port}"
    line = one_line_error(server.run("runs", "list", "--url", url))
    assert line.startswith(f"runkit runs list: cannot connect to {url}"), line
    assert "refused" in line and "is `runkit serve` running there?" in line


def test_no_key_and_a_wrong_key(server: Server) -> None:
    env = server.env()
    del env["RUNKIT_API_KEY"]
    line = one_line_error(server.run("workers", env=env))
    assert line == "runkit workers: not signed in: set RUNKIT_API_KEY or --api-key"
    line = one_line_error(server.run("runs", "list", "--api-key", "rk_wrong_wrong_wrong_wrong"))
    assert line == (
        f"runkit runs list: not signed in: {server.url} refused the API key (401); "
        "check RUNKIT_API_KEY or --api-key"
    )


def test_unknown_run(server: Server) -> None:
    missing = str(uuid.uuid4())
    for action in ("get", "cancel", "wait", "delete"):
        line = one_line_error(server.run("runs", action, missing))
        assert line == f"runkit runs {action}: no run {missing} (404)"
    done = server.run("runs", "get", "not-a-run")
    assert done.code == 2 and "argument ID: not a run id: 'not-a-run'" in done.err


def test_illegal_transition(server: Server) -> None:
    run = create(server, "noop", {}, "--execute", "--wait")
    line = one_line_error(server.run("runs", "pause", run["id"]))
    assert line.startswith(f"runkit runs pause: cannot pause run {run['id']}: it is succeeded")
    assert line.endswith("; you can delete (409)"), line


def test_invalid_definition(server: Server) -> None:
    line = one_line_error(server.run("runs", "create", "sleep", "--definition", '{"seconds": -1}'))
    assert line.startswith("runkit runs create: invalid request (422): body.definition.seconds: ")
    line = one_line_error(server.run("runs", "create", "sleep"))
    assert line.startswith("runkit runs create: invalid request (422): body.definition.seconds: ")
    line = one_line_error(server.run("runs", "create", "no_such_kind"))
    assert line.startswith("runkit runs create: invalid request (422): body.kind: "), line


# ------------------------------------------------------------------ terminals -------------
def _on_terminal(
    argv: list[str], env: dict[str, str], *, stdout_tty: bool = False
) -> tuple[int, str, str]:
    """Run ``runkit argv`` with stderr (and, if asked, stdout) on a pseudo-terminal; its
    exit code, stdout and stderr."""
    err_master, err_slave = pty.openpty()
    if stdout_tty:
        out_master, out_slave = pty.openpty()
    else:
        out_master, out_slave = os.pipe()
    proc = subprocess.Popen(
        [*cli_command(), *argv],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stdout=out_slave,
        stderr=err_slave,
    )
    os.close(err_slave)
    os.close(out_slave)
    chunks = {out_master: bytearray(), err_master: bytearray()}
    reading = set(chunks)
    deadline = time.monotonic() + 60
    while reading and time.monotonic() < deadline:
        ready, _, _ = select.select(list(reading), [], [], 0.5)
        for fd in ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # a pty whose other end has closed
                data = b""
            if data:
                chunks[fd] += data
            else:
                reading.discard(fd)
    code = proc.wait(30)
    os.close(out_master)
    os.close(err_master)
    text = {fd: data.decode(errors="replace").replace("\r\n", "\n") for fd, data in chunks.items()}
    return code, text[out_master], text[err_master]


def test_a_spinner_on_a_terminal_while_waiting(server: Server) -> None:
    run = create(server, "sleep", {"seconds": 3}, "--execute")
    code, out, err = _on_terminal(["runs", "wait", run["id"]], server.env())
    assert code == 0, (out, err)
    assert f"sleep {run['id'][:8]} · Running" in err, err  # the spinner's line, on stderr
    assert re.search(r"^Status +succeeded$", out, re.M), out  # the result, on stdout


def test_colour_on_a_terminal_unless_no_color(server: Server) -> None:
    run = create(server, "noop", {}, "--execute", "--wait")
    code, out, _ = _on_terminal(["runs", "get", run["id"]], server.env(), stdout_tty=True)
    assert code == 0 and COLOUR.search(out), repr(out)
    code, out, _ = _on_terminal(
        ["runs", "get", run["id"]], server.env(NO_COLOR="1"), stdout_tty=True
    )
    assert code == 0 and not COLOUR.search(out) and "succeeded" in out, repr(out)
    plain = ok(server.run("runs", "get", run["id"])).out
    assert "\x1b" not in plain


# ------------------------------------------------------------------ docs/cli.md ------------
def test_docs_transcripts(tmp_path: Path) -> None:
    """The transcripts of docs/cli.md, from a server of their own (so the list is theirs)."""
    docs = Transcripts(hosts=[socket.gethostname()])
    with serving(tmp_path, workers=1) as server:
        _tour(server, docs, tmp_path)
    docs.check_or_write()


def _tour(server: Server, docs: Transcripts, tmp_path: Path) -> None:
    docs.add("kinds", ok(server.run("kinds")))
    waited = ok(server.run("runs", "create", "noop", "--execute", "--wait"))
    docs.add("create-wait", waited)
    noop_id = re.search(rf"^ID +({UUID_RE})$", waited.out, re.M)[1]  # type: ignore[index]

    created = ok(server.run("runs", "create", "sleep", "--definition", '{"seconds": 0.5}'))
    docs.add("create", created)
    sleep_id = re.search(UUID_RE, created.out)[0]  # type: ignore[index]
    docs.add("execute", ok(server.run("runs", "execute", sleep_id)))
    docs.add("execute", ok(server.run("runs", "wait", sleep_id)))

    logs = ok(
        server.run(
            "runs",
            "create",
            "emit_logs",
            "--definition",
            '{"count": 3}',
            "--execute",
            "--wait",
            "--json",
        )
    )
    logs_id = json.loads(logs.out)["id"]
    docs.add("logs", ok(server.run("runs", "logs", logs_id)))
    entries = [
        json.loads(line)
        for line in ok(server.run("runs", "logs", logs_id, "--json")).out.splitlines()
    ]
    second = next(e["id"] for e in entries if e["message"] == "entry 1")
    docs.add("logs-json", ok(server.run("runs", "logs", logs_id, "--json", "--after", second)))

    gate = ok(
        server.run(
            "runs",
            "create",
            "approval_gate",
            "--definition",
            '{"title": "Deploy 2.4.1"}',
            "--execute",
        )
    )
    docs.add("approve", gate)
    gate_id = re.search(UUID_RE, gate.out)[0]  # type: ignore[index]
    until(server, gate_id, lambda r: r["status"] == "awaiting_approval")
    docs.add(
        "approve", ok(server.run("runs", "approve", gate_id, "--reason", "checked the changelog"))
    )
    docs.add("approve", ok(server.run("runs", "get", gate_id)))

    docs.add("list", ok(server.run("runs", "list")))
    docs.add("list", ok(server.run("runs", "list", "--kind", "sleep", "--status", "succeeded")))
    docs.add("get-json", ok(server.run("runs", "get", noop_id, "--json")))
    docs.add("workers", ok(server.run("workers")))

    missing = "0b9e5d2c-7f1a-4c3e-9d8b-6a5f4e3d2c1b"
    docs.add("errors", server.run("runs", "get", missing))
    docs.add("errors", server.run("runs", "pause", noop_id))
    docs.add("errors", server.run("runs", "create", "sleep", "--definition", '{"seconds": -1}'))
    wrong = "RUNKIT_API_KEY=rk_not_a_key_of_this_server"
    env = server.env(RUNKIT_API_KEY=wrong.split("=")[1])
    docs.add("errors", server.run("runs", "list", env=env), env=wrong)
    refused = f"RUNKIT_URL=http://127.0.0.1:{free_port()}"
    env = server.env(RUNKIT_URL=refused.split("=")[1])
    docs.add("errors", server.run("runs", "list", env=env), env=refused)

    # Last, so that the runs it makes appear in no listing above. The file is shown as
    # docs/cli.md names it (the command ran with its full path).
    batch = tmp_path / "runs.json"
    batch.write_text(json.dumps(CREATE_MANY_DOC))
    for _ in range(2):
        done = ok(server.run("runs", "create-many", "--file", str(batch)))
        docs.add(
            "create-many", Done(["runs", "create-many", "--file", "runs.json"], 0, done.out, "")
        )


#: The runs.json of docs/cli.md's create-many transcript (the page shows it too).
CREATE_MANY_DOC = [
    {"kind": "sleep", "definition": {"seconds": 1}, "idempotencyKey": "import-2026-01-02-a"},
    {"kind": "sleep", "definition": {"seconds": 2}, "idempotencyKey": "import-2026-01-02-b"},
    {"kind": "noop"},
]


def test_the_wait_draws_a_bar_when_the_run_counts_its_progress() -> None:
    """The display itself (a run of no test kind reports ``done``/``total``)."""
    screen = io.StringIO()
    now = datetime.now(UTC)
    run = RemoteRun(
        uuid.uuid4(),
        "ingest",
        runkit.Status.RUNNING,
        now,
        now,
        progress={"done": 3, "total": 10},
        display_status="Running",  # the server's text, which the client's runs carry
    )
    console = Console(file=screen, force_terminal=True, width=120, color_system=None)
    with Progress(*columns(), console=console, auto_refresh=False) as bar:
        task = bar.add_task("", total=None, count="")
        show(bar, task, run)
        bar.refresh()
    drawn = screen.getvalue()
    assert f"ingest {str(run.id)[:8]} · Running" in drawn and "30%" in drawn and "3/10" in drawn
