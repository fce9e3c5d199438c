"""``runkit serve``: the API (and optionally workers) under uvicorn, on a database that is
created and migrated on first start.

API keys: ``RUNKIT_API_KEYS`` (comma-separated) when set. Otherwise the key file
``runkit-api-keys`` beside the SQLite database (or in the working directory for other
databases) holds one ``<name> <sha256 hex>`` line a key; when it does not exist, a key is
generated, only its hash is written (mode 0600) and the key itself is printed once.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TextIO

from starlette.applications import Starlette
from starlette.routing import Mount

from runkit import Runkit

from ._app import asgi_app
from ._auth import ApiKeys, hash_key
from ._lifespan import lifespan

DEFAULT_DATABASE = "sqlite:///runkit.db"
KEY_FILE_NAME = "runkit-api-keys"
KEYS_ENV = "RUNKIT_API_KEYS"


def database_url(value: str) -> str:
    """A URL as given; a bare path means a SQLite file."""
    return value if "://" in value else f"sqlite:///{value}"


def key_file_for(url: str) -> Path:
    if url.startswith("sqlite") and ":///" in url:
        path = url.split(":///", 1)[1].split("?", 1)[0]
        if path and path != ":memory:":
            return Path(path).expanduser().resolve().parent / KEY_FILE_NAME
    return Path.cwd() / KEY_FILE_NAME


def load_api_keys(key_file: Path, env: Mapping[str, str], out: TextIO = sys.stdout) -> ApiKeys:
    listed = [k.strip() for k in env.get(KEYS_ENV, "").split(",") if k.strip()]
    if listed:
        return ApiKeys(listed)
    if key_file.exists():
        hashes: dict[str, str] = {}
        for number, line in enumerate(key_file.read_text().splitlines(), 1):
            if line.strip() and not line.startswith("#"):
                name, _, digest = line.strip().partition(" ")
                hashes[name or f"key-{number}"] = digest.strip()
        return ApiKeys.from_hashes(hashes)
    key = "rk_" + secrets.token_urlsafe(32)  # 256 bits
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f"# runkit API key hashes: <name> <sha256 hex>\ndefault {hash_key(key)}\n")
    print(
        f"Generated an API key (shown once; only its hash is kept in {key_file}):\n\n"
        f"    {key}\n\nSend it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'.",
        file=out,
        flush=True,
    )
    return ApiKeys.from_hashes({"default": hash_key(key)})


def build_server_app(runkit: Runkit, keys: ApiKeys, *, workers: int) -> Starlette:
    """The API mounted at the root of an app whose lifespan opens runkit (and workers)."""

    @asynccontextmanager
    async def server_lifespan(_: Starlette) -> AsyncIterator[None]:
        async with lifespan(runkit, workers=workers):
            yield

    return Starlette(routes=[Mount("", app=asgi_app(runkit, auth=keys))], lifespan=server_lifespan)


def serve(
    *, host: str = "127.0.0.1", port: int = 8000, database: str = DEFAULT_DATABASE, workers: int = 0
) -> int:
    import uvicorn

    url = database_url(database)
    keys = load_api_keys(key_file_for(url), os.environ)
    app = build_server_app(Runkit(url), keys, workers=workers)
    uvicorn.run(app, host=host, port=port, log_level="info", ws="none")
    return 0
