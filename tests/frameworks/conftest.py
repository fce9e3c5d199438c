"""Fixtures of the shared framework suite: a memory Runkit whose store records whether the
host's lifespan opened it, the runkit app over it (API keys and a cookie verifier), and
one host per framework (``host`` is parametrized over :data:`.clients.CLIENTS`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from starlette.applications import Starlette

from runkit import ApprovalPolicy, Kind, Principal, RetryPolicy, Runkit
from runkit.storage.memory import MemoryStore
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


class TrackingStore(MemoryStore):
    """Counts opens and closes: proof that the host's lifespan, not luck, opened runkit."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0
        self.closed = 0

    async def open(self) -> None:
        self.opened += 1

    async def close(self) -> None:
        self.closed += 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store() -> TrackingStore:
    return TrackingStore()


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
    return asgi_app(runkit, auth=ApiKeys({"tester": API_KEY}), docs=False)


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
