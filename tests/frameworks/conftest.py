"""Fixtures of the shared framework suite: a Runkit whose store records whether the host's
lifespan opened it, the runkit app over it (API keys and a cookie verifier), and one host
per framework. ``host`` is parametrized over :data:`.clients.CLIENTS` and ``store`` over
memory and a SQLite file, so every test of the suite runs on every framework and both."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from starlette.applications import Starlette

from runkit import ApprovalPolicy, Kind, Principal, RetryPolicy, Runkit
from runkit.storage.base import Store
from runkit.storage.memory import MemoryStore
from runkit.storage.sql.store import SqlStore
from runkit_contrib import ApiKeys, Credentials, asgi_app

from .clients import CLIENTS, FrameworkClient

API_KEY = "rk_frameworks_key_0123456789"
SESSION = "session-cookie-0123456789"
#: Small, so a 413 needs no megabyte of test data.
MAX_BODY = 4096


@attrs.frozen
class GateConfig:
    approvers: list[str] = attrs.field(factory=list)


@attrs.frozen
class EchoConfig:
    seconds: int = attrs.field(validator=attrs.validators.ge(0))


async def _noop(ctx: Any) -> dict[str, Any]:
    return {}


KINDS = [
    Kind("t_noop", _noop),
    Kind(
        "t_echo",
        _noop,
        EchoConfig,
        display_name="Echo",
        description="Waits `seconds`.",
        pausable=True,
        retry=RetryPolicy(max_attempts=3, backoff_base=0.5, backoff_max=10.0, jitter=0.1),
        example={"seconds": 2},
    ),
    Kind(
        "t_gate",
        _noop,
        GateConfig,
        approval=lambda cfg: ApprovalPolicy(approvers=frozenset(cfg.approvers)),
    ),
]


class CookieSessions:
    """A host's session verifier: the ``vai_token`` cookie names a logged-in user."""

    def __init__(self, sessions: dict[str, str]) -> None:
        self.sessions = sessions

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.carrier != "cookie":
            return None
        user = self.sessions.get(credentials.secret)
        return Principal(user, kind="user") if user is not None else None


class TrackingStore(Store):
    """Counts opens and closes: proof that the host's lifespan, not luck, opened runkit.
    Mixed in before a real store, which still does the opening and closing."""

    opened = 0
    closed = 0

    async def open(self) -> None:
        self.opened += 1
        await super().open()

    async def close(self) -> None:
        self.closed += 1
        await super().close()


class TrackingMemoryStore(TrackingStore, MemoryStore):
    pass


class TrackingSqlStore(TrackingStore, SqlStore):
    pass


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once: each test's store is a copy of it (migrating a fresh
    file costs some 40 ms, copying one 4, and the suite opens one per test)."""
    path = tmp_path_factory.mktemp("template") / "runkit.db"
    store = SqlStore(f"sqlite:///{path}", create_schema=True)

    async def migrate() -> None:
        await store.open()
        await store.close()

    anyio.run(migrate)
    return path


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> TrackingStore:
    if request.param == "memory":
        return TrackingMemoryStore()
    path = tmp_path / "runkit.db"
    shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
    return TrackingSqlStore(f"sqlite:///{path}")


@pytest.fixture
def runkit(store: TrackingStore) -> Runkit:
    return Runkit(store, kinds=KINDS, autoload_plugins=False)


@pytest.fixture
def runkit_app(runkit: Runkit) -> Starlette:
    return asgi_app(
        runkit,
        auth=[ApiKeys({"tester": API_KEY}), CookieSessions({SESSION: "cookie-user"})],
        max_body_bytes=MAX_BODY,
    )


@pytest.fixture
def docless_app(runkit: Runkit) -> Starlette:
    return asgi_app(runkit, auth=ApiKeys({"tester": API_KEY}), docs=False, ui=False)


@pytest.fixture(params=CLIENTS, ids=[c.name for c in CLIENTS])
def framework(request: pytest.FixtureRequest) -> type[FrameworkClient]:
    cls: type[FrameworkClient] = request.param
    return cls


@pytest.fixture
async def host(
    framework: type[FrameworkClient], runkit: Runkit, runkit_app: Starlette
) -> AsyncIterator[FrameworkClient]:
    async with framework(runkit, runkit_app).running() as client:
        yield client
