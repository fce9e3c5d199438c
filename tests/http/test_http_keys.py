"""Keys with roles and tenants: what each role may do, a tenant's keys seeing and touching
only its runs (a foreign run is "not found"), revocation without a restart, the host's hook
narrowing further, ``runkit keys`` in the terminal, and list pages bounded in bytes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_support import BASE, KINDS

from runkit import IdempotencyPolicy, Lease, Principal, Run, Runkit
from runkit_contrib import _keystore as keystore
from runkit_contrib import asgi_app
from runkit_contrib._keystore import KeyStore, create_key, read_keys, revoke_key

pytestmark = pytest.mark.anyio


class Keys:
    """A key store in a temp file, and the keys made in it by role/tenant."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.secrets: dict[str, str] = {}

    def make(self, name: str, *roles: str, tenant: str | None = None) -> dict[str, str]:
        _, key = create_key(self.path, name, roles=roles, tenant=tenant)
        self.secrets[name] = key
        return self.header(name)

    def header(self, name: str) -> dict[str, str]:
        return {"X-API-Key": self.secrets[name]}


@pytest.fixture
async def served(
    store_url: str, tmp_path: Path
) -> AsyncIterator[tuple[Runkit, Keys, httpx.AsyncClient]]:
    keys = Keys(tmp_path / "keys")
    keys.make("boot", "read")  # the store must exist before the app reads it
    async with Runkit(store_url, kinds=KINDS, autoload_plugins=False) as rk:
        app = asgi_app(rk, auth=KeyStore(keys.path))
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield rk, keys, c


@pytest.fixture(autouse=True)
def reload_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Keys made after the app started count at the next request, not a second later.
    monkeypatch.setattr(keystore, "RELOAD_SECONDS", 0.0)


async def _park_gate(rk: Runkit, run_id: str) -> Run:
    """The gate run, executed and parked for approval by a fake worker."""
    await rk.execute(run_id)
    (run,) = await rk.ops.claim("test-worker", 1)
    return await rk.ops.park(Lease(run.id, run.attempt, run.lease_token or ""), timeout=None)


# ------------------------------------------------------------------ roles ------------------
async def test_each_role_does_what_it_says_and_no_more(
    served: tuple[Runkit, Keys, httpx.AsyncClient],
) -> None:
    rk, keys, c = served
    reader = keys.make("reader", "read")
    operator = keys.make("operator", "operate")
    approver = keys.make("approver", "approve")
    admin = keys.make("admin", "admin")

    # read: everything that looks, nothing that changes (403: it may see the run).
    assert (await c.post(BASE, json={"kind": "free"}, headers=reader)).status_code == 403
    created = await c.post(BASE, json={"kind": "free"}, headers=operator)
    assert created.status_code == 201
    run = created.json()
    assert run["triggerSourceId"] == "operator" and run["triggerSourceType"] == "api_key"
    one = f"{BASE}/{run['id']}"
    for path in (BASE, one, one + "/logs", "/api/v1/kinds", "/api/v1/workers"):
        assert (await c.get(path, headers=reader)).status_code == 200, path
    for action in ("execute", "cancel", "retry", "pause", "resume", "approve", "reject"):
        refused = await c.post(f"{one}/{action}", headers=reader)
        assert refused.status_code == 403, (action, refused.text)
    assert (await c.delete(one, headers=reader)).status_code == 403

    # operate: runs its runs' life, but neither decides approvals nor deletes.
    assert (await c.post(f"{one}/execute", headers=operator)).status_code == 200
    assert (await c.post(f"{one}/cancel", headers=operator)).status_code == 200
    assert (await c.post(f"{one}/retry", headers=operator)).status_code == 200
    assert (await c.post(f"{one}/cancel", headers=operator)).status_code == 200
    assert (await c.delete(one, headers=operator)).status_code == 403
    gate = (await c.post(BASE, json={"kind": "gate"}, headers=operator)).json()
    await _park_gate(rk, gate["id"])
    assert (await c.post(f"{BASE}/{gate['id']}/approve", headers=operator)).status_code == 403

    # approve: decides, but cannot start anything.
    assert (await c.post(BASE, json={"kind": "free"}, headers=approver)).status_code == 403
    decided = await c.post(f"{BASE}/{gate['id']}/approve", headers=approver)
    assert decided.status_code == 200, decided.text
    assert decided.json()["approvals"][0]["by"] == "approver"

    # admin: everything, delete included.
    assert (await c.delete(one, headers=admin)).status_code == 204
    assert (await c.get(one, headers=admin)).status_code == 404


async def test_several_roles_add_up(served: tuple[Runkit, Keys, httpx.AsyncClient]) -> None:
    _, keys, c = served
    both = keys.make("ops-and-approvals", "operate,approve")
    assert (await c.post(BASE, json={"kind": "free"}, headers=both)).status_code == 201
    [stored] = [k for k in read_keys(keys.path) if k.id == "ops-and-approvals"]
    assert stored.roles == {"operate", "approve"}


# ------------------------------------------------------------------ tenants ----------------
async def test_a_tenants_keys_see_and_touch_only_its_runs(
    served: tuple[Runkit, Keys, httpx.AsyncClient],
) -> None:
    rk, keys, c = served
    acme = keys.make("acme-ops", "operate", tenant="acme")
    acme_admin = keys.make("acme-admin", "admin", tenant="acme")
    globex = keys.make("globex-ops", "operate", tenant="globex")
    globex_admin = keys.make("globex-admin", "admin", tenant="globex")
    everyone = keys.make("root", "admin")

    mine = (await c.post(BASE, json={"kind": "free"}, headers=acme)).json()
    theirs = (await c.post(BASE, json={"kind": "free"}, headers=globex)).json()
    untenanted = (await c.post(BASE, json={"kind": "free"}, headers=everyone)).json()
    assert (await rk.get(mine["id"])).tenant == "acme"
    assert (await rk.get(untenanted["id"])).tenant is None

    listed = (await c.get(BASE, headers=acme)).json()
    assert [r["id"] for r in listed["runs"]] == [mine["id"]] and listed["total"] == 1
    assert (await c.get(BASE, headers=everyone)).json()["total"] == 3

    # A foreign run is "not found" for every route, as a run that does not exist.
    other = f"{BASE}/{theirs['id']}"
    for method, path in [
        ("GET", other),
        ("GET", other + "/logs"),
        ("GET", other + "/logs/stream"),
        *[("POST", f"{other}/{a}") for a in ("execute", "pause", "resume", "cancel", "retry")],
        ("POST", other + "/approve"),
        ("POST", other + "/reject"),
        ("DELETE", other),
    ]:
        for headers in (acme, acme_admin):
            answer = await c.request(method, path, headers=headers)
            assert answer.status_code == 404, (method, path, answer.text)
            assert theirs["id"] in answer.json()["detail"]
    assert (await c.get(f"{BASE}/{untenanted['id']}", headers=acme)).status_code == 404
    # ... and still there for its own tenant and for keys of no tenant.
    assert (await c.get(other, headers=globex_admin)).status_code == 200
    assert (await c.get(other, headers=everyone)).status_code == 200

    # A foreign parent is refused exactly like a missing one.
    child = await c.post(
        BASE, json={"kind": "free", "parentActionRunId": theirs["id"]}, headers=acme
    )
    assert child.status_code == 422
    assert child.json()["detail"][0]["loc"] == ["body", "parentActionRunId"]
    # A run of no tenant may start runs under a tenant's run: they join that tenant.
    nested = await rk.create(
        "free", parent_action_run_id=mine["id"], principal=Principal("runkit", kind="system")
    )
    assert nested.run.tenant == "acme"
    assert (await c.get(f"{BASE}/{nested.run.id}", headers=acme)).status_code == 200


async def test_idempotency_keys_of_two_tenants_never_meet(store_url: str) -> None:
    async with Runkit(
        store_url,
        kinds=KINDS,
        autoload_plugins=False,
        idempotency=IdempotencyPolicy(scope="global"),
    ) as rk:
        a = Principal("a", kind="api_key", tenant="acme")
        b = Principal("b", kind="api_key", tenant="globex")
        first = await rk.create("free", {"x": 1}, idempotency_key="order-1", principal=a)
        second = await rk.create("free", {"x": 1}, idempotency_key="order-1", principal=b)
        assert first.created and second.created and first.run.id != second.run.id
        again = await rk.create("free", {"x": 1}, idempotency_key="order-1", principal=a)
        assert not again.created and again.run.id == first.run.id


async def test_the_hosts_hook_narrows_what_roles_allow(store_url: str, tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys")
    reader = keys.make("reader", "read")
    admin = keys.make("admin", "admin")
    asked: list[str] = []

    def authorize(principal: Principal | None, action: str, run: Run | None) -> bool:
        asked.append(action)
        return action != "delete"  # this host never deletes over HTTP

    async with Runkit(store_url, kinds=KINDS, autoload_plugins=False) as rk:
        app = asgi_app(rk, auth=KeyStore(keys.path), authorize=authorize)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            # The hook allows create, but the role does not: refused before the hook.
            assert (await c.post(BASE, json={"kind": "free"}, headers=reader)).status_code == 403
            assert "create" not in asked
            run = (await c.post(BASE, json={"kind": "free"}, headers=admin)).json()
            assert (await c.delete(f"{BASE}/{run['id']}", headers=admin)).status_code == 403
            assert "delete" in asked


# ------------------------------------------------------------------ the store live ---------
async def test_keys_made_and_revoked_count_without_a_restart(
    served: tuple[Runkit, Keys, httpx.AsyncClient],
) -> None:
    _, keys, c = served
    late = keys.make("late", "read")
    assert (await c.get(BASE, headers=late)).status_code == 200
    revoke_key(keys.path, "late")
    assert (await c.get(BASE, headers=late)).status_code == 401
    [stored] = [k for k in read_keys(keys.path) if k.id == "late"]
    assert stored.revoked is not None  # kept, for who had access until when


async def test_a_broken_store_keeps_the_keys_read_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    _, key = create_key(path, "a", roles=["read"])
    store = KeyStore(path)
    from runkit_contrib import Credentials

    assert await store.authenticate(Credentials(api_key=key)) is not None
    path.write_text(path.read_text() + "garbage line\n")
    assert await store.authenticate(Credentials(api_key=key)) is not None
    assert "not reloaded" in caplog.text and key not in caplog.text


async def test_legacy_lines_still_authenticate_as_admin(tmp_path: Path) -> None:
    import hashlib

    from runkit_contrib import Credentials

    path = tmp_path / "keys"
    path.write_text(f"old {hashlib.sha256(b'rk_old').hexdigest()}\n")
    principal = await KeyStore(path).authenticate(Credentials(bearer="rk_old"))
    assert principal is not None and principal.id == "old" and principal.roles == {"admin"}
    [stored] = read_keys(path)
    assert stored.legacy


# ------------------------------------------------------------------ the terminal -----------
def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNKIT_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return subprocess.run(
        [sys.executable, "-m", "runkit_contrib._cli", "keys", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_runkit_keys_create_list_revoke(tmp_path: Path) -> None:
    made = _cli(tmp_path, "create", "--name", "ci", "--role", "read", "--tenant", "acme")
    assert made.returncode == 0, made.stderr
    [key] = [line.strip() for line in made.stdout.splitlines() if line.strip().startswith("rk_")]
    assert "role read" in made.stdout and "'acme'" in made.stdout
    store = tmp_path / "runkit.db.api-keys"
    assert read_keys(store)[0].matches(key)

    listed = _cli(tmp_path, "list")
    assert listed.returncode == 0 and key not in listed.stdout
    [row] = [line for line in listed.stdout.splitlines() if line.startswith("ci ")]
    assert row.split()[:3] == ["ci", "read", "acme"] and row.rstrip().endswith("active")

    revoked = _cli(tmp_path, "revoke", "ci")
    assert revoked.returncode == 0 and "Revoked" in revoked.stdout
    assert "revoked" in _cli(tmp_path, "list").stdout

    bad = _cli(tmp_path, "create", "--role", "superuser")
    assert bad.returncode == 1 and "unknown role superuser" in bad.stderr
    missing = _cli(tmp_path, "revoke", "nobody")
    assert missing.returncode == 1 and "no key with id 'nobody'" in missing.stderr


# ------------------------------------------------------------------ page size --------------
async def test_a_list_page_is_bounded_in_bytes(store_url: str, tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys")
    admin = keys.make("admin", "admin")
    big = {"blob": "x" * 300_000}
    async with Runkit(store_url, kinds=KINDS, autoload_plugins=False) as rk:
        for _ in range(5):
            await rk.create("free", big)
        app = asgi_app(rk, auth=KeyStore(keys.path), max_page_bytes=1_000_000)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            first = (await c.get(BASE, headers=admin)).json()
            assert len(first["runs"]) == 3 and first["limit"] == 3 and first["hasNext"]
            rest = (await c.get(BASE, params={"offset": first["limit"]}, headers=admin)).json()
            assert len(rest["runs"]) == 2 and not rest["hasNext"]
            seen = [r["id"] for r in first["runs"] + rest["runs"]]
            assert len(set(seen)) == 5
            # One run larger than the budget is still shown (a page is never empty).
            one: Any = (await c.get(BASE, params={"limit": 1}, headers=admin)).json()
            assert len(one["runs"]) == 1
        tiny = asgi_app(rk, auth=KeyStore(keys.path), max_page_bytes=1)
        transport = httpx.ASGITransport(app=tiny)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            page = (await c.get(BASE, headers=admin)).json()
            assert len(page["runs"]) == 1 and page["hasNext"]
