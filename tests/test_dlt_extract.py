"""dlt_extract as runs: a paginated REST API on loopback, a SQLite file and CSV files under a
temporary data root, into DuckDB; merge, replace and append; the outbound guard at create
time, at every request and at every connection; SQL URLs and paths the host did not allow;
each definition error as a 422 at its field; the missing extra; cancel and pause during a
slow source. Nothing leaves 127.0.0.0/8: an audit hook records every socket this process
opens or resolves while a test runs, and dlt's telemetry setting is checked during runs."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import duckdb
import pytest

from run_support import FAST, SETTINGS
from runkit import Run, Runkit, Status, ValidationError
from runkit.engine import embedded_workers
from runkit.kinds.data import DataPolicy, DataRoot, configure_data
from runkit.kinds.data import dlt_extract as dlt_kind
from runkit.kinds.web import OutboundPolicy, configure_outbound
from web_support import LocalServer, Route, Seen, _Handler, serving

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-api-key-value-42"

# --- nothing leaves loopback ------------------------------------------------------------------
_FOREIGN: list[tuple[str, Any]] = []
_WATCHING = threading.Event()


def _is_local(host: Any) -> bool:
    text = host.decode() if isinstance(host, bytes) else str(host)
    return text in ("", "None", "localhost") or text.startswith("127.") or text == "::1"


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _WATCHING.is_set():
        return
    if event == "socket.getaddrinfo" and not _is_local(args[0]):
        _FOREIGN.append((event, args[0]))
    elif event == "socket.connect" and isinstance(args[1], tuple) and not _is_local(args[1][0]):
        _FOREIGN.append((event, args[1]))


sys.addaudithook(_audit)  # hooks cannot be removed; it records only while a test runs


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data root of its own, loopback allowed by the policy, telemetry off, no DLT_* or
    proxy settings from the shell; afterwards no socket went beyond loopback."""
    for name in ("DENY", "PORTS", "PROXY"):
        monkeypatch.delenv(f"RUNKIT_OUTBOUND_{name}", raising=False)
    monkeypatch.delenv("RUNKIT_DLT_ALLOWED_URLS", raising=False)
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", "127.0.0.1")
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    configure_outbound(None)
    root = tmp_path / "data"
    configure_data(DataPolicy(root=root))
    _FOREIGN.clear()
    _WATCHING.set()
    try:
        yield root
    finally:
        _WATCHING.clear()
        configure_data(None)
        configure_outbound(None)
    assert _FOREIGN == []


@pytest.fixture
def root(_isolated: Path) -> Path:
    return _isolated


@pytest.fixture
async def rk(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[Runkit]:
    """An embedded worker on the memory store, or on SQLite where a test asks for it."""
    url = sqlite_url if getattr(request, "param", "memory") == "sqlite" else "memory://"
    async with (
        Runkit(url, settings=SETTINGS, autoload_plugins=False) as instance,
        embedded_workers(instance, concurrency=2, **FAST),
    ):
        yield instance


# --- a paginated API ----------------------------------------------------------------------------
#: What the API's handler saw of dlt's telemetry setting while a run was extracting.
TELEMETRY: list[dict[str, Any]] = []


def _telemetry_state() -> dict[str, Any]:
    from runkit.kinds.data.dlt_pipeline import telemetry_off

    return {"off": telemetry_off(), "env": os.environ.get("RUNTIME__DLTHUB_TELEMETRY")}


def _items(h: _Handler, seen: Seen) -> None:
    """Three pages of five items, linked by ``next``; ``?v=`` is written into each item."""
    page = int(seen.query.get("page", ["1"])[0])
    version = seen.query.get("v", ["1"])[0]
    TELEMETRY.append(_telemetry_state())
    if seen.query.get("api_key") and seen.query["api_key"] != [TOKEN]:
        h.reply(401, b"bad key")
        return
    host = seen.headers["Host"]  # links name the host the client asked for
    following = f"http://{host}/items?page={page + 1}&v={version}" if page < 3 else None
    data = [{"id": page * 10 + i, "v": version} for i in range(5)]
    h.reply_json(200, {"data": data, "next": following})


def _slow(h: _Handler, seen: Seen) -> None:
    """Endless pages, 0.2 s each; from page 4 on the response is held until released."""
    page = int(seen.query.get("page", ["1"])[0])
    h.server.count("slow")
    if page >= 4:
        h.server.held.set()
        h.server.release.wait(30)
    else:
        time.sleep(0.2)
    following = h.server.url(f"/slow?page={page + 1}")
    with contextlib.suppress(OSError):  # the client hung up (cancelled)
        h.reply_json(200, {"data": [{"id": page}], "next": following})


def _flaky(h: _Handler, seen: Seen) -> None:
    """503 on the first request, then the items."""
    if h.server.count("flaky") == 1:
        h.reply(503, b"busy")
    else:
        _items(h, seen)


def _links_to(h: _Handler, seen: Seen) -> None:
    """One page whose ``next`` link points at ``?to=``."""
    h.reply_json(200, {"data": [{"id": 1}], "next": seen.query["to"][0]})


@pytest.fixture
def api() -> Iterator[LocalServer]:
    routes: dict[str, Route] = {
        "/items": _items,
        "/slow": _slow,
        "/links": _links_to,
        "/flaky": _flaky,
    }
    with serving("127.0.0.1", routes) as s:
        yield s


def rest(base_url: str, path: str = "items", **endpoint: Any) -> dict[str, Any]:
    return {
        "type": "rest_api",
        "config": {
            "client": {
                "base_url": base_url,
                "paginator": {"type": "json_link", "next_url_path": "next"},
            },
            "resources": [
                {"name": "items", "endpoint": {"path": path, "data_selector": "data", **endpoint}}
            ],
        },
    }


def definition(source: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"source": source, "pipelineName": "shop", "datasetName": "raw", **fields}


async def run(rk: Runkit, body: dict[str, Any], within: float = 30.0) -> Run:
    created = await rk.create("dlt_extract", body, execute=True)
    return await rk.wait(created.run.id, timeout=within, poll=0.05)


def query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


async def until(check: Callable[[], Any], within: float) -> None:
    """Wait until ``check()`` (sync or async) is true."""
    with anyio.fail_after(within):
        while True:
            found = check()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return
            await anyio.sleep(0.02)


async def messages(rk: Runkit, run_id: Any) -> list[str]:
    return [entry.message async for entry in rk.iter_logs(run_id)]


async def errors_of(rk: Runkit, body: dict[str, Any]) -> dict[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as info:
        await rk.create("dlt_extract", body)
    return {tuple(d.loc): d.msg for d in info.value.details}


# --- registration -----------------------------------------------------------------------------
async def test_the_kind_is_built_in_with_a_valid_example(rk: Runkit) -> None:
    kind = rk.kinds.require("dlt_extract")
    assert kind.display_name == "dlt extract" and kind.description and kind.cancellable
    assert rk.kinds.owner("dlt_extract") == "runkit.kinds.data"
    assert kind.example is not None and kind.check is not None
    kind.check(kind.validate(kind.example), None)  # type: ignore[arg-type]


# --- REST -------------------------------------------------------------------------------------
async def test_rest_api_pages_merge_on_the_primary_key(
    rk: Runkit, api: LocalServer, root: Path
) -> None:
    body = definition(
        rest(api.url("/")), writeDisposition="merge", primaryKey="id", destination="db/shop.duckdb"
    )
    from dlt.common.runtime import run_context

    anonymous_id = Path(run_context.active().global_dir) / ".anonymous_id"
    had_id = anonymous_id.exists()
    first = await run(rk, body)
    assert first.status == Status.SUCCEEDED, first.error
    result = first.result or {}
    assert result["tables"] == {"items": 15} and result["destination"] == "db/shop.duckdb"
    assert result["pipelineName"] == "shop" and result["datasetName"] == "raw"
    assert len(result["loadIds"]) == 1
    progress = first.progress or {}
    assert progress["stage"] == "done" and progress["requests"] == 3 and progress["rows"] == 15
    lines = await messages(rk, first.id)
    assert "extracted 15 rows into 1 table(s)" in lines
    assert any(line.startswith("loaded 1 package(s) into dataset raw") for line in lines)

    body["source"] = rest(api.url("/"), params={"v": "2"})
    second = await run(rk, body)
    assert second.status == Status.SUCCEEDED, second.error
    rows = query(root / "db/shop.duckdb", "select count(*), min(v), max(v) from raw.items")
    assert rows == [(15, "2", "2")]  # merged on id: updated, not appended
    # dlt's working directory is under the root, and no telemetry ran while it worked.
    assert (root / ".runkit-dlt/pipelines/shop").is_dir()
    assert TELEMETRY and all(s == {"off": True, "env": "false"} for s in TELEMETRY)
    assert anonymous_id.exists() == had_id  # dlt wrote no anonymous id into its global dir


async def test_secrets_stay_out_of_logs_and_errors(rk: Runkit, api: LocalServer) -> None:
    source = rest(api.url("/"))
    source["config"]["client"]["auth"] = {
        "type": "api_key",
        "name": "api_key",
        "api_key": TOKEN,
        "location": "query",
    }
    ok = await run(rk, definition(source))
    assert ok.status == Status.SUCCEEDED, ok.error
    source["config"]["client"]["auth"]["api_key"] = TOKEN + "-wrong"
    denied = await run(rk, definition(source, pipelineName="denied"))
    assert denied.status == Status.FAILED and denied.error is not None
    assert denied.error["type"] == "PipelineFailed" and denied.error["stage"] == "extract"
    assert "401" in denied.error["message"] and denied.attempt == 1  # a 401 is not retried
    # A config dlt refuses when the run starts: its message shows the config, not the key.
    source["config"]["resources"][0]["endpoint"]["pathh"] = "typo"
    refused = await run(rk, definition(source, pipelineName="typo"))
    assert refused.error is not None and refused.error["type"] == "InvalidSource"
    assert "pathh" in refused.error["message"] and refused.attempt == 1
    for done in (ok, denied, refused):
        seen = json.dumps([done.result, done.error, done.progress]) + json.dumps(
            await messages(rk, done.id)
        )
        assert TOKEN not in seen


async def test_a_later_attempt_loads_what_an_earlier_one_extracted(
    api: LocalServer, root: Path
) -> None:
    """The checkpoint after extraction: an attempt stopped there (a pause, a crash, a retry)
    is followed by one that normalizes and loads the same package, extracting nothing."""
    from runkit.kinds.data.dlt_pipeline import run_pipeline
    from runkit.kinds.data.dlt_progress import Tracker

    config = dlt_kind.KIND.validate(definition(rest(api.url("/"))))
    policy, data = OutboundPolicy(allow=("127.0.0.1",)), DataRoot(root)
    saved: list[dict[str, Any]] = []

    class PausedHere(Exception):
        pass

    def pause_at_first(state: dict[str, Any]) -> None:
        saved.append(dict(state))
        raise PausedHere  # where ctx.sync.checkpoint stops a run that is asked to pause

    dlt_kind.quiet_environment()
    with pytest.raises(PausedHere):
        await anyio.to_thread.run_sync(
            lambda: run_pipeline(config, data, policy, Tracker(), None, [], None, pause_at_first)
        )
    assert [list(s) for s in saved] == [["loadIds"]] and len(saved[0]["loadIds"]) == 1
    sent, tracker = len(api.requests), Tracker()
    result = await anyio.to_thread.run_sync(
        lambda: run_pipeline(config, data, policy, tracker, None, [], saved[0], saved.append)
    )
    assert len(api.requests) == sent  # nothing extracted again
    assert result["tables"] == {"items": 15} and result["loadIds"] == saved[0]["loadIds"]
    assert saved[-1] == {"loadIds": saved[0]["loadIds"], "tables": {"items": 15}}
    assert query(root / "shop.duckdb", "select count(*) from raw.items") == [(15,)]
    lines = [message for _, message, _ in tracker.take_logs()]
    assert any("an earlier attempt of this run finished extracting" in m for m in lines)


async def test_a_503_is_retried_and_a_huge_response_refused(
    rk: Runkit, api: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = await run(rk, definition(rest(api.url("/"), "flaky")))
    assert flaky.status == Status.SUCCEEDED, flaky.error
    assert (flaky.result or {})["tables"] == {"items": 15}
    warning = f"GET {api.url('/flaky')}: status 503; retrying in 1 s (attempt 2 of 3)"
    assert warning in await messages(rk, flaky.id)

    from runkit.kinds.data import dlt_http

    monkeypatch.setattr(dlt_http, "MAX_RESPONSE_BYTES", 100)
    huge = await run(rk, definition(rest(api.url("/")), pipelineName="huge"))
    assert huge.error is not None and huge.error["type"] == "ResponseTooLarge"


# --- the outbound guard -----------------------------------------------------------------------
async def test_loopback_is_refused_without_the_allowance(
    rk: Runkit, api: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNKIT_OUTBOUND_ALLOW")
    found = await errors_of(rk, definition(rest(api.url("/"))))
    loc = ("definition", "source", "config", "client", "base_url")
    assert "loopback" in found[loc] and "RUNKIT_OUTBOUND_ALLOW" in found[loc]
    # Allowed when the run was created, withdrawn before it ran: refused at the request.
    monkeypatch.setenv("RUNKIT_OUTBOUND_ALLOW", "127.0.0.1")
    created = await rk.create("dlt_extract", definition(rest(api.url("/"))))
    monkeypatch.delenv("RUNKIT_OUTBOUND_ALLOW")
    await rk.execute(created.run.id)
    done = await rk.wait(created.run.id, timeout=30, poll=0.05)
    assert done.error is not None and done.error["type"] == "BlockedDestination"
    assert done.error["retryable"] is False and api.requests == []


async def test_every_link_and_connection_is_checked(
    rk: Runkit, api: LocalServer, refused: LocalServer
) -> None:
    # A paginator link to an address the policy refuses: refused before it is sent.
    to = refused.url("/items")
    linked = await run(rk, definition(rest(api.url("/"), "links", params={"to": to})))
    assert linked.error is not None and linked.error["type"] == "BlockedDestination"
    assert "127.0.0.2" in linked.error["message"] and refused.connections == 0

    # A name is resolved once per connection and every address checked.
    async def rebound(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "api.test" else []

    configure_outbound(OutboundPolicy(resolver=rebound))
    named = await run(rk, definition(rest(f"http://api.test:{api.port}/"), pipelineName="n1"))
    assert named.error is not None and named.error["type"] == "BlockedDestination"
    assert "api.test resolves to 127.0.0.1, a loopback address" in named.error["message"]
    assert api.requests == [] or all(r.path == "/links" for r in api.requests)
    # Allowed by name: the connection goes to the address the resolver gave.
    configure_outbound(OutboundPolicy(allow=("api.test",), resolver=rebound))
    ok = await run(rk, definition(rest(f"http://api.test:{api.port}/"), pipelineName="n2"))
    assert ok.status == Status.SUCCEEDED, ok.error
    assert (ok.result or {})["tables"] == {"items": 15}
    assert api.requests[-1].headers["Host"] == f"api.test:{api.port}"


# --- SQL and files ----------------------------------------------------------------------------
BOTH_STORES = pytest.mark.parametrize("rk", ["memory", "sqlite"], indirect=True)


@BOTH_STORES
async def test_sql_database_from_a_sqlite_file_under_the_root(rk: Runkit, root: Path) -> None:
    (root / "src").mkdir(parents=True)
    with sqlite3.connect(root / "src/shop.db") as con:
        con.execute("create table users (id integer primary key, name text)")
        con.execute("create table secrets (id integer primary key)")
        con.executemany("insert into users values (?, ?)", [(i, f"u{i}") for i in range(40)])
    source = {"type": "sql_database", "url": "sqlite:///src/shop.db", "tables": ["users"]}
    done = await run(rk, definition(source, writeDisposition="replace"))
    assert done.status == Status.SUCCEEDED, done.error
    assert (done.result or {})["tables"] == {"users": 40}
    again = await run(rk, definition(source, writeDisposition="replace"))
    assert (again.result or {})["tables"] == {"users": 40}
    assert query(root / "shop.duckdb", "select count(*) from raw.users") == [(40,)]  # replaced


async def test_sql_urls_the_host_did_not_allow(rk: Runkit, monkeypatch: pytest.MonkeyPatch) -> None:
    loc = ("definition", "source", "url")
    url = "postgresql://reader@db.internal:5432/analytics"
    found = await errors_of(rk, definition({"type": "sql_database", "url": url}))
    assert "RUNKIT_DLT_ALLOWED_URLS" in found[loc]
    monkeypatch.setenv("RUNKIT_DLT_ALLOWED_URLS", "postgresql://reader@db.internal:5432/")
    await rk.create("dlt_extract", definition({"type": "sql_database", "url": url}))
    for bad in (
        "postgresql://reader@db.internal:5432/analytics?host=10.0.0.5",  # libpq's host override
        "postgresql://reader@db.internal:5432.evil.example/x",
        "postgresql://reader@db.internal:5432/../x",
        "sqlite:////etc/passwd.db",
        "sqlite:///../outside.db",
        "sqlite:///src/shop.db?mode=memory",
    ):
        assert loc in await errors_of(rk, definition({"type": "sql_database", "url": bad})), bad


async def test_csv_files_replace_and_append(rk: Runkit, root: Path) -> None:
    folder = root / "in/orders"
    folder.mkdir(parents=True)
    (folder / "a.csv").write_text("id,amount\n1,10\n2,20\n")
    (folder / "b.csv").write_text("id,amount\n3,30\n")
    (folder / "notes.txt").write_text("not a csv")
    source = {"type": "filesystem", "path": "in/orders"}
    for _ in range(2):
        done = await run(rk, definition(source, writeDisposition="replace"))
        assert done.status == Status.SUCCEEDED, done.error
        assert (done.result or {})["tables"] == {"orders": 3}
    assert query(root / "shop.duckdb", "select sum(amount) from raw.orders") == [(60,)]
    appended = await run(rk, definition(source))
    assert (appended.result or {})["tables"] == {"orders": 3}
    assert query(root / "shop.duckdb", "select count(*) from raw.orders") == [(6,)]


async def test_telemetry_a_host_turned_on_is_turned_off(
    rk: Runkit, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlt.common.runtime import anon_tracker, run_context
    from dlt.common.runtime.telemetry import stop_telemetry

    from runkit.kinds.data.dlt_pipeline import telemetry_off

    # The host used dlt first, with telemetry on: dlt resolved its settings and started
    # its tracker (which sends nothing until a pipeline step ends).
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "true")
    stop_telemetry()
    run_context.active().initialize_runtime()
    assert not telemetry_off() and anon_tracker._ANON_TRACKER_ENDPOINT is not None
    (root / "in").mkdir(parents=True)
    (root / "in" / "a.csv").write_text("id\n1\n")
    done = await run(rk, definition({"type": "filesystem", "path": "in"}))
    assert done.status == Status.SUCCEEDED, done.error
    assert telemetry_off() and os.environ["RUNTIME__DLTHUB_TELEMETRY"] == "false"


async def test_paths_outside_the_root(rk: Runkit, root: Path, tmp_path: Path) -> None:
    found = await errors_of(rk, definition({"type": "filesystem", "path": "../elsewhere"}))
    assert "'..'" in found[("definition", "source", "path")]
    found = await errors_of(
        rk, definition({"type": "filesystem", "path": "in", "glob": "../../*.csv"})
    )
    assert ("definition", "source", "glob") in found
    found = await errors_of(rk, definition({"type": "filesystem", "path": "/etc"}))
    assert "absolute" in found[("definition", "source", "path")]
    # A symlink made after the create leads out: refused when the run reads the files.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.csv").write_text("id\n1\n")
    (root / "in").mkdir(parents=True)
    (root / "in" / "link.csv").symlink_to(outside / "x.csv")
    done = await run(rk, definition({"type": "filesystem", "path": "in"}))
    assert done.error is not None and done.error["type"] == "PathRefused", done.error


# --- definition errors --------------------------------------------------------------------------
def rest_change(client: dict[str, Any] | None = None, resources: Any = ("x",)) -> dict[str, Any]:
    """A change to a definition: a rest_api source, ``client`` merged into a valid one."""
    config = {
        "client": {"base_url": "https://a.example/", **(client or {})},
        "resources": list(resources),
    }
    return {"source": {"type": "rest_api", "config": config}}


def _auth(**auth: Any) -> dict[str, Any]:
    return definition(rest_change({"auth": auth})["source"])


CONFIG = ("definition", "source", "config")
SOURCE = ("definition", "source")
METADATA = "http://169.254.169.254/latest"
BAD = [
    ({"pipelineName": None}, ("definition", "pipelineName")),
    ({"pipelineName": "../up"}, ("definition", "pipelineName")),
    ({"datasetName": "Raw"}, ("definition", "datasetName")),
    ({"datasetName": "shop"}, ("definition", "datasetName")),  # the DuckDB file's stem
    ({"writeDisposition": "upsert"}, ("definition", "writeDisposition")),
    ({"primaryKey": 5}, ("definition", "primaryKey")),
    ({"destination": "out.csv"}, ("definition", "destination")),
    ({"destination": "../out.duckdb"}, ("definition", "destination")),
    ({"bogus": 1}, ("definition", "bogus")),
    ({"source": {"type": "ftp"}}, (*SOURCE, "type")),
    ({"source": {"type": "rest_api"}}, (*SOURCE, "config")),
    ({"source": {"type": "rest_api", "config": [1]}}, (*SOURCE, "config")),
    ({"source": {"type": "rest_api", "config": {}, "url": "x"}}, (*SOURCE, "url")),
    ({"source": {"type": "sql_database", "url": 5}}, (*SOURCE, "url")),
    (
        {"source": {"type": "sql_database", "url": "sqlite:///a.db", "tables": "t"}},
        (*SOURCE, "tables"),
    ),
    ({"source": {"type": "filesystem"}}, (*SOURCE, "path")),
    ({"source": {"type": "filesystem", "path": "in", "table": "a b"}}, (*SOURCE, "table")),
    (
        {"source": {"type": "filesystem", "path": "in"}, "writeDisposition": "merge"},
        ("definition", "primaryKey"),
    ),
    ({"source": {"type": "rest_api", "config": {"resources": ["x"]}}}, (*CONFIG, "client")),
    (rest_change(resources=[]), (*CONFIG, "resources")),
    (rest_change({"base_url": "ftp://a.example/"}), (*CONFIG, "client", "base_url")),
    (rest_change({"session": {}}), (*CONFIG, "client", "session")),
    (
        rest_change(resources=[{"name": "x", "endpoint": {"path": METADATA}}]),
        (*CONFIG, "resources", 0, "endpoint", "path"),
    ),
    (rest_change({"auth": {"type": "bearer"}}), (*CONFIG, "client", "auth", "token")),
    (rest_change({"auth": {"type": "digest"}}), (*CONFIG, "client", "auth", "type")),
]


@pytest.mark.parametrize(("change", "loc"), BAD)
async def test_each_definition_error_is_a_422_at_its_field(
    rk: Runkit, change: dict[str, Any], loc: tuple[Any, ...]
) -> None:
    body = {**definition(rest("https://api.example.com/")), **change}
    body = {k: v for k, v in body.items() if v is not None}
    found = await errors_of(rk, body)
    assert loc in found, found


async def test_auth_given_by_name_only_is_refused(rk: Runkit) -> None:
    source = rest("https://api.example.com/")
    source["config"]["client"]["auth"] = "bearer"
    found = await errors_of(rk, definition(source))
    assert "secrets" in found[(*CONFIG, "client", "auth")]
    found = await errors_of(rk, _auth(type="oauth2_client_credentials", client_id="a"))
    assert {(*CONFIG, "client", "auth", "client_secret")} <= set(found)


async def test_without_the_extra_create_is_a_422_naming_it(
    rk: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dlt_kind, "missing_modules", lambda modules: ["dlt"])
    found = await errors_of(rk, definition(rest("https://api.example.com/")))
    assert "runkit[dlt]" in found[("definition",)] and "dlt" in found[("definition",)]


# --- cancel and pause -------------------------------------------------------------------------
async def _started(rk: Runkit, api: LocalServer, **fields: Any) -> Run:
    created = await rk.create(
        "dlt_extract", definition(rest(api.url("/"), "slow"), **fields), execute=True
    )
    await until(api.held.is_set, 20)  # three pages done, the fourth held by the server
    return created.run


@BOTH_STORES
async def test_cancel_stops_a_slow_source_within_seconds(rk: Runkit, api: LocalServer) -> None:
    first = await _started(rk, api)

    async def shown() -> bool:  # progress is written every half second
        status = await rk.display_status(await rk.get(first.id))
        return status == "Running · extracting · 3 rows, 4 requests"

    await until(shown, 3)
    started = time.monotonic()
    await rk.cancel(first.id)
    done = await rk.wait(first.id, timeout=5, poll=0.05)
    assert done.status == Status.CANCELLED and time.monotonic() - started < 3
    requests = api.counters["slow"]
    await anyio.sleep(0.5)
    assert api.counters["slow"] == requests  # nothing runs behind the stop
    # The aborted extract left nothing behind, and the pipeline's lock was released.
    api.release.set()
    again = await run(rk, definition(rest(api.url("/"))))
    assert again.status == Status.SUCCEEDED, again.error
    lines = await messages(rk, again.id)
    assert not any("left unfinished" in line for line in lines)


async def test_a_second_run_of_a_pipeline_waits_for_the_first(rk: Runkit, api: LocalServer) -> None:
    first = await _started(rk, api)
    second = await rk.create("dlt_extract", definition(rest(api.url("/"))), execute=True)

    async def waiting() -> bool:
        return (await rk.display_status(await rk.get(second.run.id))).endswith(
            "waiting for another run of the same pipeline"
        )

    await until(waiting, 5)
    assert "waiting for another run of pipeline shop to finish" in await messages(rk, second.run.id)
    await rk.cancel(second.run.id)  # a wait for the lock stops like any other step
    assert (await rk.wait(second.run.id, timeout=3, poll=0.05)).status == Status.CANCELLED
    await rk.cancel(first.id)
    assert (await rk.wait(first.id, timeout=3, poll=0.05)).status == Status.CANCELLED


async def test_pause_stops_the_run_and_resume_starts_it_again(rk: Runkit, api: LocalServer) -> None:
    first = await _started(rk, api)
    await rk.pause(first.id)
    started = time.monotonic()

    async def paused() -> bool:
        return (await rk.get(first.id)).status == Status.PAUSED

    await until(paused, 5)
    assert time.monotonic() - started < 3
    api.held.clear()
    await rk.resume(first.id)
    await until(api.held.is_set, 20)  # extracting again, from the first page
    assert (await rk.get(first.id)).attempt == 2
    await rk.cancel(first.id)
    assert (await rk.wait(first.id, timeout=5, poll=0.05)).status == Status.CANCELLED
