"""``runkit serve``: the API (and optionally workers) under uvicorn, on a database that is
created and migrated on first start, and the key store its API keys live in.

API keys: ``RUNKIT_API_KEYS`` (comma-separated, each an ``admin``) when set. Otherwise the
key store (:mod:`._keystore`: salted hashes, roles, tenants) lives beside the database it
guards:

* a SQLite file ``<dir>/<file>`` has ``<dir>/<file>.api-keys`` (``runkit.db.api-keys``);
* any other database (PostgreSQL, ``memory://``, a SQLite in memory) has a file in
  ``$XDG_CONFIG_HOME/runkit/`` (default ``~/.config/runkit/``) named after the URL's
  scheme, host, port and database, e.g. ``postgresql-db.internal-5432-runkit.api-keys``
  (never its user or password);
* ``RUNKIT_KEY_FILE`` names the file instead.

When the store holds no active key, an ``admin`` key is generated on start, only its hash
is kept (mode 0600) and the key itself is shown once (see :func:`load_api_keys`). ``runkit
keys create|list|revoke`` manage the rest; a running server sees changes within a second.

The dashboard's sessions are signed with ``RUNKIT_SESSION_SECRET`` when set (at least 32
characters), else with a secret made on first start and kept in the key store (``runkit
keys rotate-session-secret`` replaces it, signing everyone out). Sign-outs are kept in
``<key store>.signed-out`` until the sessions they ended would have expired.
"""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import attrs
from starlette.applications import Starlette
from starlette.routing import Mount

from runkit import ConfigurationError, Runkit, Settings

from ._app import asgi_app
from ._auth import ApiKeys, Authenticator
from ._keystore import KeyStore, create_key, read_keys, session_secret
from ._lifespan import lifespan
from ._limits import (
    REQUEST_TIMEOUT,
    ConnectionGate,
    HeadHook,
    ServeLimits,
    limit_log_volume,
    log_limits,
    open_file_limit,
    raise_open_file_limit,
    uvicorn_options,
)
from ._sessions import Sessions, SignOuts

DEFAULT_DATABASE = "sqlite:///runkit.db"
KEYS_ENV = "RUNKIT_API_KEYS"
KEY_FILE_ENV = "RUNKIT_KEY_FILE"
SESSION_SECRET_ENV = "RUNKIT_SESSION_SECRET"
SIGNED_OUT_SUFFIX = ".signed-out"
KEY_FILE_SUFFIX = ".api-keys"
FIRST_KEY_SUFFIX = ".first-key"
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432}


def database_url(value: str) -> str:
    """A URL as given; a bare path means a SQLite file."""
    return value if "://" in value else f"sqlite:///{value}"


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names (absolute), or None: not SQLite, or in memory."""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    path = url.split(":///", 1)[1].split("?", 1)[0]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        return None
    return Path(path).expanduser().resolve()


def _store_name(url: str) -> str:
    """A file name for a database that is not a SQLite file: scheme, host, port, database
    (``parts.hostname`` never includes the user or password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0] or "database"
    if scheme == "sqlite":
        return "sqlite-memory"
    query = parse_qs(parts.query)
    host = parts.hostname or (query.get("host") or [""])[0]
    try:
        port = parts.port
    except ValueError:
        port = None
    if host and port is None:
        port = _DEFAULT_PORTS.get(scheme)
    database = parts.path.strip("/") or (query.get("dbname") or [""])[0]
    pieces = [scheme, host, str(port) if port else "", database]
    name = "-".join(p for p in pieces if p)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "database"


def key_file_for(url: str, env: Mapping[str, str] | None = None) -> Path:
    """Where the key store of the database at ``url`` lives (see the module docstring)."""
    env = os.environ if env is None else env
    override = env.get(KEY_FILE_ENV, "").strip()
    if override:
        return Path(override).expanduser().absolute()
    database = sqlite_file(url)
    if database is not None:
        return database.with_name(database.name + KEY_FILE_SUFFIX)
    config = env.get("XDG_CONFIG_HOME", "").strip()
    # The XDG spec: a relative path in the variable is invalid and must be ignored.
    if not config or not Path(config).is_absolute():
        home = env.get("HOME", "").strip()
        config = str((Path(home) if home else Path.home()) / ".config")
    return Path(config) / "runkit" / (_store_name(url) + KEY_FILE_SUFFIX)


@attrs.frozen
class KeySetup:
    """The keys a server accepts, where they came from, and the key generated on this
    start, if any: ``generated`` when it is to be printed (a terminal), else
    ``generated_file``, the 0600 file it was written to instead of a log."""

    keys: KeyStore | ApiKeys
    store: Path
    from_env: bool = False
    generated: str | None = None
    generated_file: Path | None = None


def first_key_file(store: Path) -> Path:
    return store.with_name(store.name + FIRST_KEY_SUFFIX)


def load_api_keys(
    key_file: Path, env: Mapping[str, str], *, interactive: bool | None = None
) -> KeySetup:
    """The keys of ``RUNKIT_API_KEYS`` (each an ``admin``), else the key store; an empty
    store gets a first ``admin`` key. The key is shown once: on a terminal it is printed;
    otherwise (output kept by systemd, docker or a file) it is written to a file beside the
    store, mode 0600, for the operator to read and delete, and never to the output."""
    listed = [k.strip() for k in env.get(KEYS_ENV, "").split(",") if k.strip()]
    if listed:
        return KeySetup(ApiKeys(listed, roles={"admin"}), key_file, from_env=True)
    stored = read_keys(key_file)
    if not any(k.revoked is None for k in stored):
        _, key = create_key(key_file, _first_name({k.id for k in stored}), roles={"admin"})
        if interactive is None:
            interactive = sys.stdout.isatty()
        if interactive:
            return KeySetup(KeyStore(key_file), key_file, generated=key)
        path = first_key_file(key_file)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
        return KeySetup(KeyStore(key_file), key_file, generated_file=path)
    return KeySetup(KeyStore(key_file), key_file)


def load_sessions(store: Path, env: Mapping[str, str]) -> Sessions:
    """The dashboard's sessions: signed with ``RUNKIT_SESSION_SECRET``, else the key store's
    secret (made on first use); sign-outs kept beside the key store."""
    sign_outs = SignOuts(store.with_name(store.name + SIGNED_OUT_SUFFIX))
    given = env.get(SESSION_SECRET_ENV, "").strip()
    if given:
        if len(given) < 32:
            raise ConfigurationError(f"{SESSION_SECRET_ENV} must be at least 32 characters")
        return Sessions(given, sign_outs=sign_outs)
    return Sessions(session_secret(store), sign_outs=sign_outs)


def _first_name(taken: set[str]) -> str:
    """``default``, or ``default-2``... when earlier defaults were revoked."""
    names = ("default", *(f"default-{i}" for i in range(2, len(taken) + 3)))
    return next(n for n in names if n not in taken)


def _display_host(host: str) -> str:
    """A host a browser on this machine can open: a wildcard bind is reachable locally."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def safe_url(url: str) -> str:
    """``url`` with its password (if any) masked, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()


def banner(*, host: str, port: int, database: str, setup: KeySetup, ui: bool = False) -> str:
    base = f"http://{_display_host(host)}:{port}"
    lines = [
        "runkit serve",
        *([f"  Dashboard:  {base}/ui/"] if ui else []),
        f"  API:        {base}/api/v1",
        f"  Docs:       {base}/docs",
        f"  Database:   {safe_url(database)}",
        f"  Key store:  {setup.store}",
    ]
    if setup.from_env:
        lines.append(
            f"  API keys:   {len(setup.keys)} from {KEYS_ENV} (the key store is not read "
            "while it is set)"
        )
    elif setup.generated_file is not None:
        lines += [
            "",
            "Generated an 'admin' API key. It is not printed, as this output may be kept: read",
            f"it from {setup.generated_file} (mode 0600), then delete that file.",
        ]
    elif setup.generated is None:
        count = len(setup.keys)
        lines += [
            f"  API keys:   {count} in the key store (only hashes: a key is shown once, when made)",
            "              More: runkit keys create --role ROLE [--tenant T] (same --database)",
        ]
    else:
        lines += [
            "",
            "Generated an 'admin' API key (shown once; only its hash is kept in the key store):",
            "",
            f"    {setup.generated}",
            "",
            "Send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'"
            + (", or sign in to the dashboard with it." if ui else "."),
        ]
    return "\n".join(lines) + "\n"


def build_server_app(
    runkit: Runkit,
    keys: Authenticator,
    *,
    workers: int,
    sessions: Sessions | None = None,
    ui: bool = True,
    freeze_heap: bool = False,
) -> Starlette:
    """The API (and the dashboard) mounted at the root of an app whose lifespan opens
    runkit (and workers). ``freeze_heap``: once started, this process's objects go to the
    garbage collector's permanent generation (for a process of its own, as ``serve``)."""

    @asynccontextmanager
    async def server_lifespan(_: Starlette) -> AsyncIterator[None]:
        async with lifespan(runkit, workers=workers):
            if freeze_heap:
                # What start-up made (modules, kinds, statements, caches) lives as long as
                # the process: the cyclic collector need not walk it on every full pass.
                # Measured: a third less time in the collector under POST load.
                gc.collect()
                gc.freeze()
            yield

    app = asgi_app(runkit, auth=keys, sessions=sessions, ui=ui)
    return Starlette(routes=[Mount("", app=app)], lifespan=server_lifespan)


def http_protocol(limits: ServeLimits | None = None) -> type[Any]:
    """uvicorn's h11 protocol, refusing ambiguous message framing, holding at most
    ``limits.max_connections`` connections and closing those whose request head is late.

    A request with both ``Content-Length`` and ``Transfer-Encoding`` (or ``Transfer-Encoding``
    on HTTP/1.0) is how requests are smuggled past a proxy that frames them the other way.
    RFC 9112 (6.1, 6.3) lets a server refuse it and requires it to close the connection;
    h11 alone obeys ``Transfer-Encoding`` and keeps the connection open, and the app only
    sees the request once it is framed. This answers uvicorn's own 400 and closes. The
    choice is fixed (never ``httptools``, even when installed) so the checks always run.

    ``limits`` (None: the defaults for this process's open-file limit; see ``_limits``): at
    the cap, a new connection makes room by closing the one that has waited longest for a
    request head, or is closed at once when every connection is busy with a request, so
    ``accept()`` never runs the process out of descriptors. A request head must be complete
    within ``header_timeout`` of the connection's opening or of the previous response's end
    (uvicorn only times idle keep-alive connections, so a client sending nothing, or a head
    a byte at a time, would hold its connection for ever); a late one is answered 408 if
    part of a head came, and closed."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    if limits is None or limits.max_connections is None:
        limits = (limits or ServeLimits()).resolve(open_file_limit(), workers=0)
    gate = ConnectionGate(limits)
    keep_alive = limits.keep_alive_timeout

    class StrictConnection(h11.Connection):
        on_request: HeadHook | None = None

        def next_event(self) -> Any:
            event = super().next_event()
            if isinstance(event, h11.Request):
                names = {name.lower() for name, _ in event.headers}
                chunked = b"transfer-encoding" in names
                if chunked and (b"content-length" in names or event.http_version == b"1.0"):
                    raise h11.RemoteProtocolError("ambiguous message framing")
                if self.on_request is not None:
                    self.on_request()
            return event

    class StrictH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            size = self.config.h11_max_incomplete_event_size
            conn = (
                StrictConnection(h11.SERVER) if size is None else StrictConnection(h11.SERVER, size)
            )
            conn.on_request = self._head_received
            self.conn = conn
            self.timeout_keep_alive = keep_alive  # type: ignore[assignment] # uvicorn: int

        def connection_made(self, transport: Any) -> None:
            if not gate.admit(self, len(self.connections)):
                self.transport = transport  # connection_lost closes it
                transport.close()
                return
            super().connection_made(transport)
            gate.await_head(self, self.loop)

        def connection_lost(self, exc: Exception | None) -> None:
            gate.head_received(self)
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            # Before uvicorn's: it reads a pipelined request head at once, if one came.
            if not self.transport.is_closing():
                gate.await_head(self, self.loop)
            super().on_response_complete()

        def _head_received(self) -> None:
            gate.head_received(self)

        def evict(self) -> None:
            self.connections.discard(self)  # at once: the newcomer takes its place
            self.transport.close()

        def head_timed_out(self) -> None:
            gate.head_received(self)
            if self.transport.is_closing():
                return
            if self.conn.trailing_data[0]:  # part of a head came: say why it is closed
                self.transport.write(REQUEST_TIMEOUT)
            self.transport.close()

    return StrictH11Protocol


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    database: str = DEFAULT_DATABASE,
    workers: int = 0,
    out: TextIO | None = None,
    settings: Settings | None = None,
    limits: ServeLimits | None = None,
    ui: bool = True,
) -> int:
    """Serve until stopped; the exit code. ``limits``: the edge limits (docs/deploy.md),
    their connection cap by default computed from the open-file limit, which is raised to
    its hard limit first."""
    import uvicorn

    url = database_url(database)
    # First: a URL no backend takes fails before a key is made for it.
    runkit = Runkit(url, settings=settings)
    # So do limits the open-file limit cannot hold.
    descriptors = raise_open_file_limit()
    edge = (limits or ServeLimits()).resolve(descriptors, workers=workers)
    setup = load_api_keys(key_file_for(url), os.environ)
    sessions = load_sessions(setup.store, os.environ)
    print(
        banner(host=host, port=port, database=url, setup=setup, ui=ui),
        file=out or sys.stdout,
        flush=True,
    )
    app = build_server_app(
        runkit, setup.keys, workers=workers, sessions=sessions, ui=ui, freeze_heap=True
    )
    options = uvicorn_options(edge)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="info", ws="none", http=http_protocol(edge), **options
    )
    limit_log_volume()  # after uvicorn's Config, which sets up its log handlers
    log_limits(edge, descriptors)
    server = uvicorn.Server(config)
    try:  # noqa: SIM105
        server.run()
    except KeyboardInterrupt:  # uvicorn raises the SIGINT it handled again, once stopped
        pass
    return 0 if server.started else 3  # uvicorn's STARTUP_FAILURE
