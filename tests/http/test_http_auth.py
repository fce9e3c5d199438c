"""Credentials by each carrier, anonymous refusal, CSRF on cookies, the authorize hook."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from api_support import API_KEY, BASE

from runkit import Principal, Run, Runkit
from runkit_contrib import ApiKeys, Credentials, asgi_app

pytestmark = pytest.mark.anyio


class Sessions:
    """A cookie-session verifier, as a host would write one."""

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.carrier == "cookie" and credentials.secret == "session-alice":
            return Principal("alice", kind="user")
        return None


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_no_verifier_refuses_everything(runkit: Runkit) -> None:
    async with client_for(asgi_app(runkit)) as c:
        r = await c.get(BASE)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await c.get(BASE, headers={"X-API-Key": "anything"})).status_code == 401
        assert (await c.get("/openapi.json")).status_code == 200  # the contract is public


async def test_anonymous_when_allowed(runkit: Runkit) -> None:
    async with client_for(asgi_app(runkit, allow_anonymous=True)) as c:
        r = await c.post(BASE, json={"kind": "free"})
        assert r.status_code == 201 and r.json()["triggerSourceId"] is None


@pytest.mark.parametrize(
    "headers",
    [{"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}],
)
async def test_api_key_carriers(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.post(BASE, json={"kind": "free"}, headers=headers)
    assert r.status_code == 201
    assert (r.json()["triggerMethod"], r.json()["triggerSourceType"]) == ("api", "api_key")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
        {"X-API-Key": "wrong"},
        {"Cookie": f"vai_token={API_KEY}"},  # API keys do not ride in cookies
        # The first carrier present decides: a bad bearer is not rescued by a good key.
        {"Authorization": "Bearer wrong", "X-API-Key": API_KEY},
    ],
)
async def test_bad_credentials(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    r = await client.get(BASE, headers=headers)
    assert r.status_code == 401 and r.json()["detail"]
    assert "WWW-Authenticate" in r.headers


async def test_auth_comes_before_validation(client: httpx.AsyncClient) -> None:
    assert (await client.get(BASE + "/not-a-uuid")).status_code == 401


@pytest.fixture
def cookie_app(runkit: Runkit) -> Any:
    return asgi_app(
        runkit,
        auth=[ApiKeys({"bot": API_KEY}), Sessions()],
        csrf_trusted_origins=["https://app.example.com"],
    )


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Origin": "null"}, 403),
        ({"X-Runkit-CSRF": "1"}, 201),
        ({"Sec-Fetch-Site": "same-origin"}, 201),
        ({"Origin": "https://app.example.com"}, 201),
        ({"Origin": "http://testserver"}, 201),  # same host
    ],
)
async def test_cookie_csrf(cookie_app: Any, headers: dict[str, str], status: int) -> None:
    async with client_for(cookie_app) as c:
        c.cookies.set("vai_token", "session-alice")
        r = await c.post(BASE, json={"kind": "free"}, headers=headers)
        assert r.status_code == status, r.text
        if status == 201:
            run = r.json()
            assert (run["triggerMethod"], run["triggerSourceType"]) == ("ui", "user")
            assert run["triggerSourceId"] == "alice"
        else:
            assert "CSRF" in r.json()["detail"]
        # Safe methods need no proof.
        assert (await c.get(BASE)).status_code == 200


async def test_authorize_hook(runkit: Runkit) -> None:
    mine = (await runkit.create("free", {}, action_id="mine")).run
    theirs = (await runkit.create("free", {}, action_id="theirs")).run
    calls: list[tuple[str, str | None]] = []

    async def authorize(principal: Principal | None, action: str, run: Run | None) -> bool:
        calls.append((action, run.action_id if run else None))
        if run is None:
            return action == "list"
        if run.action_id == "theirs":
            return False
        return action != "cancel"

    app = asgi_app(runkit, auth=ApiKeys({"bot": API_KEY}), authorize=authorize)
    async with client_for(app) as c:
        h = {"X-API-Key": API_KEY}
        page = (await c.get(BASE, headers=h)).json()
        assert [r["id"] for r in page["runs"]] == [str(mine.id)]
        assert page["total"] == 2  # documented: total counts before filtering
        assert (await c.get(f"{BASE}/{theirs.id}", headers=h)).status_code == 404
        assert (await c.post(f"{BASE}/{theirs.id}/cancel", headers=h)).status_code == 404
        assert (await c.post(f"{BASE}/{mine.id}/cancel", headers=h)).status_code == 403
        assert (await c.post(f"{BASE}/{mine.id}/execute", headers=h)).status_code == 200
        assert (await c.post(BASE, json={"kind": "free"}, headers=h)).status_code == 403


async def test_api_keys_store_hashes_only() -> None:
    keys = ApiKeys(["k1"])
    assert "k1" not in repr(vars(keys))
    principal = await keys.authenticate(Credentials(api_key="k1"))
    assert principal is not None and principal.kind == "api_key"
    assert await keys.authenticate(Credentials(bearer="k2")) is None
    # The principal id is the key's position, never derived from the key itself.
    assert principal.id == "key-1" and principal.roles is None and principal.tenant is None
    # Salted per process: two verifiers of one key keep different digests.
    assert ApiKeys(["k1"])._hashes != keys._hashes
    same = ApiKeys.from_hashes({"key-1": hashlib.sha256(b"k1").hexdigest()})
    assert await same.authenticate(Credentials(bearer="k1")) == principal
    scoped = ApiKeys({"bot": "k1"}, roles={"read"}, tenant="acme")
    bot = await scoped.authenticate(Credentials(bearer="k1"))
    assert bot == Principal("bot", kind="api_key", roles=frozenset({"read"}), tenant="acme")
    assert "k1" not in repr(Credentials(bearer="k1"))
    with pytest.raises(ValueError):
        ApiKeys.from_hashes({"x": "not-a-hash"})


async def test_authorize_hook_for_listings_and_create_with_execute(runkit: Runkit) -> None:
    allowed: set[str] = {"create"}
    calls: list[tuple[str, Run | None]] = []

    def authorize(principal: Principal | None, action: str, run: Run | None) -> bool:
        calls.append((action, run))
        return action in allowed

    app = asgi_app(runkit, auth=ApiKeys({"bot": API_KEY}), authorize=authorize)
    async with client_for(app) as c:
        h = {"X-API-Key": API_KEY}
        for path, action in [("/api/v1/kinds", "kinds"), ("/api/v1/workers", "workers")]:
            r = await c.get(path, headers=h)
            assert r.status_code == 403 and r.json() == {"detail": f"not allowed to list {action}"}
            assert calls[-1] == (action, None)
            allowed.add(action)
            assert (await c.get(path, headers=h)).status_code == 200
        # Allowed to create but not to execute: no way around it through ?execute=true.
        r = await c.post(f"{BASE}?execute=true", json={"kind": "free"}, headers=h)
        assert r.status_code == 403 and calls[-2:] == [("create", None), ("execute", None)]
        assert (await runkit.list()).total == 0
        allowed.add("execute")
        r = await c.post(f"{BASE}?execute=true", json={"kind": "free"}, headers=h)
        assert r.status_code == 201 and r.json()["status"] == "queued"
