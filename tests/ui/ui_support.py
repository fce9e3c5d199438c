"""Shared pieces of the dashboard's page tests: keys of each role and tenant, a directory
of people, kinds whose definitions exercise the form generator, the app, and the fixtures
(``runkit_fixture``, ``app_fixture``, ``client_fixture``: the fixtures ``runkit``,
``app`` and ``client``) a test module imports.

A plain module, not a package (see tests/run_support.py): the browser tests beside it
import ``browser_support`` the same way."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Iterable
from typing import Any, Literal

import attrs
import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from starlette.applications import Starlette

from runkit import ApprovalPolicy, Kind, Lease, Principal, Run, Runkit, UserProfile
from runkit_contrib import ApiKeys, asgi_app
from runkit_contrib._auth import Credentials
from runkit_contrib._routes import Authorize

KEYS = {
    "admin": "rk_ui_admin_0123456789",
    "operate": "rk_ui_operate_0123456789",
    "approve": "rk_ui_approve_0123456789",
    "read": "rk_ui_read_0123456789",
    "acme": "rk_ui_acme_0123456789",
    "globex": "rk_ui_globex_0123456789",
    "ada": "rk_ui_person_ada_0123456789",
}


def key(name: str) -> dict[str, str]:
    """The headers that authenticate as ``name`` (a role, a tenant, or a person)."""
    return {"X-API-Key": KEYS[name]}


class People:
    """A host's directory: one person, Ada, signed in by her key (a user principal, like a
    cookie session's), whose name a key store would know."""

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.secret == KEYS["ada"]:
            return Principal("ada", kind="user", roles={"admin"})
        return None

    def users(self, ids: Iterable[str]) -> dict[str, UserProfile]:
        known = {"ada": UserProfile("ada", first_name="Ada", last_name="Lovelace")}
        return {i: known[i] for i in ids if i in known}


AUTH = [
    ApiKeys({"admin-key": KEYS["admin"]}, roles={"admin"}),
    ApiKeys({"operate-key": KEYS["operate"]}, roles={"operate"}),
    ApiKeys({"approve-key": KEYS["approve"]}, roles={"approve"}),
    ApiKeys({"read-key": KEYS["read"]}, roles={"read"}),
    ApiKeys({"acme-key": KEYS["acme"]}, roles={"admin"}, tenant="acme"),
    ApiKeys({"globex-key": KEYS["globex"]}, roles={"admin"}, tenant="globex"),
    People(),
]


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@attrs.frozen
class Target:
    host: str
    port: int = 443


@attrs.frozen
class DeployConfig:
    """Deploys a service somewhere."""

    service: str = attrs.field(validator=attrs.validators.min_len(1))
    replicas: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    ratio: float = 0.5
    dry_run: bool = False
    mode: Literal["fast", "safe"] = "safe"
    color: Color | None = None
    target: Target | None = None
    tags: list[str] = attrs.field(factory=list)
    note: str | None = None


async def _executor(ctx: Any) -> dict[str, Any]:
    return {}


@attrs.frozen
class GateConfig:
    approvers: list[str] = attrs.field(factory=list)
    groups: list[str] = attrs.field(factory=list)


KINDS = [
    Kind(
        "deploy",
        _executor,
        DeployConfig,
        description="Deploys a service.",
        example={"service": "billing", "replicas": 3, "target": {"host": "eu-1", "port": 8443}},
    ),
    Kind("free", _executor),  # any JSON object as definition
    Kind(
        "gate",
        _executor,
        GateConfig,
        approval=lambda cfg: ApprovalPolicy(
            approvers=frozenset(cfg.approvers), groups=frozenset(cfg.groups)
        ),
    ),
]


def build_app(
    runkit: Runkit, *, authorize: Authorize | None = None, allow_anonymous: bool = False
) -> Starlette:
    """The API, its sessions and the dashboard over ``runkit``, as ``runkit serve`` has them."""
    return asgi_app(runkit, auth=AUTH, authorize=authorize, allow_anonymous=allow_anonymous)


@pytest.fixture(name="runkit")
async def runkit_fixture(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Runkit]:
    """A memory Runkit with the test kinds (noop, sleep, emit_logs...), approval_gate and
    the kinds above."""
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        yield rk


@pytest.fixture(name="app")
def app_fixture(runkit: Runkit) -> Starlette:
    return build_app(runkit)


@pytest.fixture(name="client")
async def client_fixture(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


def page(response: httpx.Response) -> HTMLParser:
    """The HTML of a 200 answer, parsed (CSS selectors: ``.css``, ``.css_first``)."""
    assert response.status_code == 200, (response.status_code, response.text[:2000])
    assert response.headers["content-type"].startswith("text/html")
    return HTMLParser(response.text)


async def claim(runkit: Runkit, run: Run) -> Lease:
    """Execute ``run`` (if it is pending) and claim it as a fake worker: running."""
    current = await runkit.get(run.id)
    if current.status.value == "pending":
        await runkit.execute(run.id)
    claimed = await runkit.ops.claim("test-worker", 1, kinds=[run.kind])
    assert [c.id for c in claimed] == [run.id]
    return Lease(run.id, claimed[0].attempt, claimed[0].lease_token or "")


async def make(
    runkit: Runkit, kind: str, definition: dict[str, Any] | None = None, **kw: Any
) -> Run:
    return (await runkit.create(kind, definition or {}, **kw)).run
