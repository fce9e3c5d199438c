"""Dashboard sessions: a key traded for a signed ``vai_token`` cookie that every endpoint
accepts, CSRF on cookie-authenticated changes, sign-out, expiry, revocation, the secret kept
in the key store, people named by keys in the runs list, and sign-in from another site
refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from api_support import BASE, KINDS

import runkit
from runkit import Principal, Runkit
from runkit_contrib import Credentials, asgi_app
from runkit_contrib import _keystore as keystore
from runkit_contrib._keystore import KeyStore, Person, create_key, read_store, revoke_key
from runkit_contrib._serve import load_sessions
from runkit_contrib._sessions import Sessions, SignOuts

pytestmark = pytest.mark.anyio
SESSIONS = "/api/v1/sessions"
CSRF = {"X-Runkit-CSRF": "1"}
ADA = Person("ada", "Ada", "Lovelace", "https://pictures.example/ada.png")


@pytest.fixture(autouse=True)
def reload_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keystore, "RELOAD_SECONDS", 0.0)


class Served:
    def __init__(self, rk: Runkit, store: Path, client: httpx.AsyncClient) -> None:
        self.rk, self.store, self.c = rk, store, client
        self.keys: dict[str, str] = {}

    def make(self, name: str, *roles: str, person: Person = Person(), **kw: Any) -> str:
        _, key = create_key(self.store, name, roles=roles or ("operate",), person=person, **kw)
        self.keys[name] = key
        return key

    async def sign_in(self, name: str, **kw: Any) -> httpx.Response:
        self.c.cookies.clear()
        return await self.c.post(SESSIONS, json={"apiKey": self.keys[name]}, **kw)


def _app(rk: Runkit, store: Path, **kw: Any) -> Any:
    kw.setdefault("sessions", load_sessions(store, {}))
    return asgi_app(rk, auth=KeyStore(store), ui=False, **kw)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    store = tmp_path / "keys"
    create_key(store, "boot", roles=["read"])
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        transport = httpx.ASGITransport(app=_app(rk, store))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield Served(rk, store, c)


def _cookie_attributes(response: httpx.Response) -> dict[str, str]:
    (header,) = response.headers.get_list("set-cookie")
    first, *attributes = (part.strip() for part in header.split(";"))
    found = {"value": first.split("=", 1)[1]}
    for attribute in attributes:
        name, _, value = attribute.partition("=")
        found[name.lower()] = value
    return found


# ------------------------------------------------------------------ signing in ---------
async def test_a_key_becomes_a_signed_httponly_cookie_never_the_key(served: Served) -> None:
    key = served.make("ada-key", "admin", person=ADA)
    r = await served.sign_in("ada-key")
    assert r.status_code == 200, r.text
    cookie = _cookie_attributes(r)
    assert cookie["value"].startswith("rks1.") and key not in cookie["value"]
    assert key[3:20] not in cookie["value"]
    assert "httponly" in cookie and cookie["samesite"].lower() == "lax"
    assert cookie["path"] == "/" and cookie["max-age"] == str(12 * 3600)
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["principal"] == {"id": "ada", "kind": "user", "roles": ["admin"], "tenant": None}
    assert body["user"] == {
        "id": "ada",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "profilePictureUrl": "https://pictures.example/ada.png",
    }
    assert body["expiresAt"].endswith("Z")


async def test_the_cookie_is_secure_over_https_and_scoped_to_the_mount(tmp_path: Path) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    store = tmp_path / "keys"
    _, key = create_key(store, "k", roles=["read"])
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        host = Starlette(routes=[Mount("/runkit", app=_app(rk, store))])
        transport = httpx.ASGITransport(app=host)
        async with httpx.AsyncClient(transport=transport, base_url="https://example.test") as c:
            r = await c.post("/runkit" + SESSIONS, json={"apiKey": key})
            cookie = _cookie_attributes(r)
            assert "secure" in cookie and cookie["path"] == "/runkit/"
            assert (await c.get("/runkit" + BASE)).status_code == 200  # the cookie rides


@pytest.mark.parametrize("header", ["Authorization", "X-API-Key"])
async def test_a_header_signs_in_too(served: Served, header: str) -> None:
    key = served.make("k", "read")
    value = f"Bearer {key}" if header == "Authorization" else key
    r = await served.c.post(SESSIONS, headers={header: value})
    assert r.status_code == 200 and r.json()["principal"]["id"] == "k"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "apiKey"]),
        ({"apiKey": 12}, ["body", "apiKey"]),
        ({"apiKey": ""}, ["body", "apiKey"]),
        ({"apiKey": "x" * 5000}, ["body", "apiKey"]),
        ({"apiKey": "k", "password": "p"}, ["body", "password"]),
        ([1], ["body"]),
    ],
)
async def test_a_malformed_sign_in_is_a_422_at_its_field(
    served: Served, body: Any, loc: list[str]
) -> None:
    r = await served.c.post(SESSIONS, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == loc


async def test_a_wrong_key_is_a_401_and_sets_no_cookie(served: Served) -> None:
    r = await served.c.post(SESSIONS, json={"apiKey": "rk_not_a_key"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    served.make("k", "read")
    key = served.keys["k"]
    # The body names whom to sign in: it wins over a header.
    both = await served.c.post(SESSIONS, json={"apiKey": key}, headers={"X-API-Key": "b"})
    assert both.status_code == 200
    wrong = await served.c.post(SESSIONS, json={"apiKey": "b"}, headers={"X-API-Key": key})
    assert wrong.status_code == 401


async def test_sign_in_from_another_site_is_refused(served: Served) -> None:
    served.make("k", "read")
    key = served.keys["k"]
    evil = await served.c.post(
        SESSIONS, json={"apiKey": key}, headers={"Origin": "https://evil.example"}
    )
    assert evil.status_code == 403 and "set-cookie" not in evil.headers
    cross = await served.c.post(
        SESSIONS, json={"apiKey": key}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert cross.status_code == 403
    # A form can only send text/plain across sites: refused as not JSON.
    form = await served.c.post(
        SESSIONS, content=f'{{"apiKey": "{key}"}}', headers={"Content-Type": "text/plain"}
    )
    assert form.status_code == 415
    own = await served.c.post(
        SESSIONS, json={"apiKey": key}, headers={"Origin": "http://testserver"}
    )
    assert own.status_code == 200


# ------------------------------------------------------------------ using the cookie ---
async def test_the_cookie_authenticates_and_changes_need_the_csrf_proof(served: Served) -> None:
    served.make("ada-key", "admin", person=ADA)
    await served.sign_in("ada-key")
    assert (await served.c.get(BASE)).status_code == 200
    assert (await served.c.post(BASE, json={"kind": "free"})).status_code == 403
    created = await served.c.post(BASE, json={"kind": "free"}, headers=CSRF)
    assert created.status_code == 201, created.text
    run = created.json()
    assert (run["triggerMethod"], run["triggerSourceType"], run["triggerSourceId"]) == (
        "ui",
        "user",
        "ada",
    )
    page = (await served.c.get(BASE)).json()
    assert page["users"] == {
        "ada": {
            "id": "ada",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "profilePictureUrl": "https://pictures.example/ada.png",
        }
    }


async def test_the_session_keeps_the_keys_roles_and_tenant(served: Served) -> None:
    served.make("reader", "read", tenant="acme")
    other = served.make("other", "admin", tenant="globex")
    foreign = await served.c.post(BASE, json={"kind": "free"}, headers={"X-API-Key": other})
    await served.sign_in("reader")
    assert (await served.c.post(BASE, json={"kind": "free"}, headers=CSRF)).status_code == 403
    assert (await served.c.get(f"{BASE}/{foreign.json()['id']}")).status_code == 404
    assert (await served.c.get(BASE)).json()["total"] == 0


async def test_signing_out_ends_the_session_for_good(served: Served) -> None:
    served.make("k", "operate")
    await served.sign_in("k")
    token = served.c.cookies["vai_token"]
    assert (await served.c.delete(SESSIONS)).status_code == 403  # a cookie change: CSRF
    out = await served.c.delete(SESSIONS, headers=CSRF)
    assert out.status_code == 204
    cleared = _cookie_attributes(out)
    assert cleared["value"] in ("", '""') and cleared["max-age"] == "0"
    replay = await served.c.get(BASE, headers={"Cookie": f"vai_token={token}"})
    assert replay.status_code == 401
    # Signing out again, or with no cookie, only clears it.
    assert (await served.c.delete(SESSIONS, headers=CSRF)).status_code == 204


async def test_revoking_the_key_ends_its_sessions(served: Served) -> None:
    served.make("k", "read")
    await served.sign_in("k")
    assert (await served.c.get(BASE)).status_code == 200
    revoke_key(served.store, "k")
    assert (await served.c.get(BASE)).status_code == 401


async def test_a_session_expires(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    _, key = create_key(store, "k", roles=["read"])
    sessions = Sessions(b"s" * 32, lifetime=timedelta(seconds=1))
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        transport = httpx.ASGITransport(app=_app(rk, store, sessions=sessions))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            r = await c.post(SESSIONS, json={"apiKey": key})
            assert _cookie_attributes(r)["max-age"] == "1"
            assert (await c.get(BASE)).status_code == 200
            await anyio.sleep(2.1)  # itsdangerous times tokens in whole seconds
            assert (await c.get(BASE)).status_code == 401


async def test_tampered_or_foreign_tokens_are_refused(served: Served) -> None:
    served.make("k", "admin")
    await served.sign_in("k")
    token = served.c.cookies["vai_token"]
    served.c.cookies.clear()
    payload, _, signature = token.rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other = Sessions(b"o" * 32)
    other.sources = (KeyStore(served.store),)
    forged = await other.sign_in(Credentials(api_key=served.keys["k"]))
    assert forged is not None
    for bad in (payload + "." + flipped, forged.token, "rks1.", "rks1.x.y.z", token + "x"):
        assert (
            await served.c.get(BASE, headers={"Cookie": f"vai_token={bad}"})
        ).status_code == 401, bad


async def test_a_hosts_own_cookie_verifier_still_works(tmp_path: Path) -> None:
    class HostSessions:
        async def authenticate(self, credentials: Credentials) -> Principal | None:
            if credentials.carrier == "cookie" and credentials.secret == "host-session":
                return Principal("alice", kind="user")
            return None

    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        app = asgi_app(rk, auth=HostSessions(), ui=False)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            ok = await c.get(BASE, headers={"Cookie": "vai_token=host-session"})
            assert ok.status_code == 200
        off = asgi_app(rk, auth=HostSessions(), sessions=False, ui=False)
        transport = httpx.ASGITransport(app=off)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            assert (await c.post(SESSIONS, json={"apiKey": "x"})).status_code == 404
            assert (
                await c.get(BASE, headers={"Cookie": "vai_token=host-session"})
            ).status_code == 200
            doc = (await c.get("/openapi.json")).json()
            assert "/api/v1/sessions" not in doc["paths"]


async def test_the_hosts_user_directory_wins(tmp_path: Path) -> None:
    class Directory:
        @runkit.hookimpl
        def runkit_resolve_users(self, user_ids: list[str]) -> dict[str, runkit.UserProfile]:
            return {u: runkit.UserProfile(u, first_name="From", last_name="Host") for u in user_ids}

    store = tmp_path / "keys"
    _, key = create_key(store, "k", roles=["admin"], person=ADA)
    async with Runkit(
        "memory://", kinds=KINDS, autoload_plugins=False, plugins=[Directory()]
    ) as rk:
        transport = httpx.ASGITransport(app=_app(rk, store))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            await c.post(SESSIONS, json={"apiKey": key})
            await c.post(BASE, json={"kind": "free"}, headers=CSRF)
            users = (await c.get(BASE)).json()["users"]
            assert users["ada"]["firstName"] == "From"


# ------------------------------------------------------------------ the secret ---------
async def test_the_secret_lives_in_the_key_store_and_rotating_it_signs_everyone_out(
    tmp_path: Path,
) -> None:
    store = tmp_path / "keys"
    create_key(store, "k", roles=["read"])
    first = load_sessions(store, {})
    secret = read_store(store).session_secret
    assert secret is not None and len(secret) == 32
    assert store.stat().st_mode & 0o777 == 0o600
    # Keys made later keep the secret: a new key signs no one out.
    create_key(store, "k2", roles=["read"])
    revoke_key(store, "k2")
    assert read_store(store).session_secret == secret
    for sessions in (first,):
        sessions.sources = (KeyStore(store),)
    issued = await first.sign_in(Credentials(api_key="nope"))
    assert issued is None
    _, key = create_key(store, "k3", roles=["read"])
    issued = await first.sign_in(Credentials(api_key=key))
    assert issued is not None
    restarted = load_sessions(store, {})
    restarted.sources = (KeyStore(store),)
    cookie = Credentials(cookie=issued.token)
    assert await restarted.authenticate(cookie) is not None  # a restart keeps sessions
    keystore.session_secret(store, rotate=True)
    rotated = load_sessions(store, {})
    rotated.sources = (KeyStore(store),)
    assert await rotated.authenticate(cookie) is None
    from_env = load_sessions(store, {"RUNKIT_SESSION_SECRET": "e" * 40})
    assert from_env is not None
    with pytest.raises(runkit.ConfigurationError, match="at least 32"):
        load_sessions(store, {"RUNKIT_SESSION_SECRET": "short"})


async def test_a_sign_out_reaches_other_processes_through_the_file(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    _, key = create_key(store, "k", roles=["read"])
    one, two = load_sessions(store, {}), load_sessions(store, {})
    one.sources = two.sources = (KeyStore(store),)
    issued = await one.sign_in(Credentials(api_key=key))
    assert issued is not None
    cookie = Credentials(cookie=issued.token)
    assert await two.authenticate(cookie) is not None
    assert one.sign_out(issued.token)
    assert await one.authenticate(cookie) is None  # this process: at once
    signed_out = tmp_path / "keys.signed-out"
    assert signed_out.stat().st_mode & 0o777 == 0o600
    two.sign_outs._checked = -float("inf")  # the other: at its next look (a second)
    assert await two.authenticate(cookie) is None
    # A sign-out past its token's end is forgotten when the file is read.
    signed_out.write_text("old 1000\n")
    fresh = SignOuts(signed_out)
    assert "old" not in fresh


# ------------------------------------------------------------------ keys name people ---
def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runkit_contrib._cli", "keys", *args],
        capture_output=True,
        text=True,
        env={"RUNKIT_KEY_FILE": str(tmp_path / "store"), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_runkit_keys_create_names_the_person(tmp_path: Path) -> None:
    made = _cli(
        tmp_path,
        "create",
        "--name",
        "ada-laptop",
        "--role",
        "operate",
        "--user",
        "ada",
        "--first-name",
        "Ada",
        "--last-name",
        "King Lovelace",
        "--picture-url",
        "https://pictures.example/ada.png",
    )
    assert made.returncode == 0, made.stderr
    assert "for Ada King Lovelace (ada)" in made.stdout
    (stored,) = read_store(tmp_path / "store").keys
    assert stored.person == Person(
        "ada", "Ada", "King Lovelace", "https://pictures.example/ada.png"
    )
    assert stored.user_id == "ada"
    assert "Ada King Lovelace (ada)" in _cli(tmp_path, "list").stdout
    bad = _cli(tmp_path, "create", "--picture-url", "javascript:alert(1)")
    assert bad.returncode == 1 and "picture URL" in bad.stderr
    rotated = _cli(tmp_path, "rotate-session-secret")
    assert rotated.returncode == 0 and read_store(tmp_path / "store").session_secret


def test_a_key_without_a_person_signs_in_as_its_own_id(tmp_path: Path) -> None:
    store = tmp_path / "keys"
    stored, _ = create_key(store, "ci", roles=["read"])
    assert stored.profile() is None and stored.user_id == "ci"
    assert KeyStore(store).users(["ci"]) == {}


async def test_a_session_ends_with_its_key_when_the_host_drops_it() -> None:
    """Static keys (``ApiKeys``) under a secret the host keeps across restarts: a session
    made with a key the host no longer lists is refused."""
    from runkit_contrib import ApiKeys

    secret = b"h" * 32
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        before = asgi_app(rk, auth=ApiKeys({"ci": "k-one", "ops": "k-two"}), session_secret=secret)
        transport = httpx.ASGITransport(app=before)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            signed_in = await c.post(SESSIONS, json={"apiKey": "k-one"})
            token = signed_in.cookies["vai_token"]
        cookie = {"Cookie": f"vai_token={token}"}
        for keys, expected in (({"ci": "k-one"}, 200), ({"ops": "k-two"}, 401)):
            after = asgi_app(rk, auth=ApiKeys(keys), session_secret=secret, ui=False)
            transport = httpx.ASGITransport(app=after)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                assert (await c.get(BASE, headers=cookie)).status_code == expected, keys
