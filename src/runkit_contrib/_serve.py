"""``runkit serve``: the API (and optionally workers) under uvicorn, on a database that is
created and migrated on first start, and the key store its API keys live in.

API keys: ``RUNKIT_API_KEYS`` (comma-separated) when set. Otherwise the key store, one
``<name> <sha256 hex>`` line a key, lives beside the database it guards:

* a SQLite file ``<dir>/<file>`` has ``<dir>/<file>.api-keys`` (``runkit.db.api-keys``);
* any other database (PostgreSQL, ``memory://``, a SQLite in memory) has a file in
  ``$XDG_CONFIG_HOME/runkit/`` (default ``~/.config/runkit/``) named after the URL's
  scheme, host, port and database, e.g. ``postgresql-db.internal-5432-runkit.api-keys``
  (never its user or password);
* ``RUNKIT_KEY_FILE`` names the file instead.

When the store holds no key, a key is generated on start, only its hash is written (mode
0600) and the key itself is printed once. ``runkit keys create`` adds more.
"""

from __future__ import annotations

import os
import re
import secrets
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
from ._auth import ApiKeys, hash_key
from ._lifespan import lifespan

DEFAULT_DATABASE = "sqlite:///runkit.db"
KEYS_ENV = "RUNKIT_API_KEYS"
KEY_FILE_ENV = "RUNKIT_KEY_FILE"
KEY_FILE_SUFFIX = ".api-keys"
_HEADER = "# runkit API key hashes, one a line: <name> <sha256 hex>\n"
_KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}")
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


def read_key_file(path: Path) -> dict[str, str]:
    """``{name: sha256 hex}`` of a key store; a malformed line is an error naming it."""
    hashes: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, _, digest = text.partition(" ")
        digest = digest.strip().lower()
        if not digest or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ConfigurationError(f"{path}:{number}: expected '<name> <sha256 hex>'")
        if name in hashes:
            raise ConfigurationError(f"{path}:{number}: key name {name!r} appears twice")
        hashes[name] = digest
    return hashes


def create_key(path: Path, name: str | None = None) -> tuple[str, str]:
    """A new key: its hash appended to the store at ``path`` (created with mode 0600, its
    directory 0700, if missing). Returns ``(name, key)``; the key exists nowhere else."""
    key = "rk_" + secrets.token_urlsafe(32)  # 256 bits
    digest = hash_key(key)
    name = name or f"key-{digest[:12]}"
    if not _KEY_NAME.fullmatch(name):
        raise ConfigurationError(
            f"invalid key name {name!r}: letters, digits and ._@:+- (no spaces), up to 128"
        )
    if path.exists() and name in read_key_file(path):
        raise ConfigurationError(f"a key named {name!r} is already in {path}")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        if os.fstat(f.fileno()).st_size == 0:
            f.write(_HEADER)
        f.write(f"{name} {digest}\n")
    return name, key


@attrs.frozen
class KeySetup:
    """The keys a server accepts, where they came from, and the key generated on this
    start (shown once), if any."""

    keys: ApiKeys
    store: Path
    from_env: bool = False
    generated: str | None = None


def load_api_keys(key_file: Path, env: Mapping[str, str]) -> KeySetup:
    listed = [k.strip() for k in env.get(KEYS_ENV, "").split(",") if k.strip()]
    if listed:
        return KeySetup(ApiKeys(listed), key_file, from_env=True)
    hashes = read_key_file(key_file) if key_file.exists() else {}
    generated = None
    if not hashes:  # a server nobody can call is of no use: make the first key
        name, generated = create_key(key_file, "default")
        hashes = {name: hash_key(generated)}
    return KeySetup(ApiKeys.from_hashes(hashes), key_file, generated=generated)


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


def banner(*, host: str, port: int, database: str, setup: KeySetup) -> str:
    base = f"http://{_display_host(host)}:{port}"
    lines = [
        "runkit serve",
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
    elif setup.generated is None:
        count = len(setup.keys)
        lines += [
            f"  API keys:   {count} in the key store (only hashes: a key is shown once, when made)",
            "              Another: runkit keys create --name NAME (same --database), then restart",
        ]
    else:
        lines += [
            "",
            "Generated an API key (shown once; only its hash is kept in the key store):",
            "",
            f"    {setup.generated}",
            "",
            "Send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
        ]
    return "\n".join(lines) + "\n"


def build_server_app(runkit: Runkit, keys: ApiKeys, *, workers: int) -> Starlette:
    """The API mounted at the root of an app whose lifespan opens runkit (and workers)."""

    @asynccontextmanager
    async def server_lifespan(_: Starlette) -> AsyncIterator[None]:
        async with lifespan(runkit, workers=workers):
            yield

    return Starlette(routes=[Mount("", app=asgi_app(runkit, auth=keys))], lifespan=server_lifespan)


def http_protocol() -> type[Any]:
    """uvicorn's h11 protocol, refusing ambiguous message framing.

    A request with both ``Content-Length`` and ``Transfer-Encoding`` (or ``Transfer-Encoding``
    on HTTP/1.0) is how requests are smuggled past a proxy that frames them the other way.
    RFC 9112 (6.1, 6.3) lets a server refuse it and requires it to close the connection;
    h11 alone obeys ``Transfer-Encoding`` and keeps the connection open, and the app only
    sees the request once it is framed. This answers uvicorn's own 400 and closes. The
    choice is fixed (never ``httptools``, even when installed) so the check always runs."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class StrictConnection(h11.Connection):
        def next_event(self) -> Any:
            event = super().next_event()
            if isinstance(event, h11.Request):
                names = {name.lower() for name, _ in event.headers}
                chunked = b"transfer-encoding" in names
                if chunked and (b"content-length" in names or event.http_version == b"1.0"):
                    raise h11.RemoteProtocolError("ambiguous message framing")
            return event

    class StrictH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            size = self.config.h11_max_incomplete_event_size
            conn = (
                StrictConnection(h11.SERVER) if size is None else StrictConnection(h11.SERVER, size)
            )
            self.conn = conn

    return StrictH11Protocol


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    database: str = DEFAULT_DATABASE,
    workers: int = 0,
    out: TextIO | None = None,
    settings: Settings | None = None,
) -> int:
    import uvicorn

    url = database_url(database)
    # First: a URL no backend takes fails before a key is made for it.
    runkit = Runkit(url, settings=settings)
    setup = load_api_keys(key_file_for(url), os.environ)
    print(
        banner(host=host, port=port, database=url, setup=setup),
        file=out or sys.stdout,
        flush=True,
    )
    app = build_server_app(runkit, setup.keys, workers=workers)
    uvicorn.run(app, host=host, port=port, log_level="info", ws="none", http=http_protocol())
    return 0
