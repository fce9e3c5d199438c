"""The dashboard's pages served by the app: each page and its contract ids for a signed-in
caller, the sign-in redirect for anyone else, security headers, markup shown as text,
tenants, a mount prefix, and the runs page's paging and filters."""

from __future__ import annotations

import re
from collections.abc import Iterable
from uuid import uuid4

import httpx
import pytest
from selectolax.lexbor import LexborHTMLParser as HTMLParser
from starlette.applications import Starlette
from starlette.routing import Mount
from ui_support import (  # noqa: F401 (the fixtures runkit, app and client)
    AUTH,
    KEYS,
    app_fixture,
    build_app,
    claim,
    client_fixture,
    key,
    make,
    page,
    runkit_fixture,
)

from runkit import Principal, Runkit, UserProfile, WorkerInfo
from runkit_contrib import asgi_app

pytestmark = pytest.mark.anyio

NAV = ("#nav", "#nav-runs", "#nav-new", "#nav-approvals", "#nav-workers", "#whoami", "#sign-out")
SCRIPT = "<script>alert(1)</script>"


async def pages(runkit: Runkit) -> dict[str, tuple[str, ...]]:
    """Every page (with a run to look at) and the ids its contract names."""
    run = await make(runkit, "deploy", {"service": "billing"})
    return {
        "/ui/": ("form#filters", "table#runs-table", "#runs-total"),
        f"/ui/runs/{run.id}": ("#run", "#run-status", "#run-display-status", "pre#definition"),
        "/ui/new": ("form#new-run-form", "select#kind", "#raw-toggle", "#create"),
        "/ui/approvals": ("table#approvals-table",),
        "/ui/workers": ("table#workers-table",),
    }


async def test_every_page_renders_its_contract_ids_for_a_signed_in_caller(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    for path, ids in (await pages(runkit)).items():
        html = page(await client.get(path, headers=key("admin")))
        for selector in (*NAV, *ids):
            assert html.css_first(selector) is not None, (path, selector)
        assert html.css_first("#whoami").text().strip() == "admin-key"
        nav = {a.attributes["id"]: a.attributes["href"] for a in html.css("#nav a")}
        assert nav == {
            "nav-runs": "/ui/",
            "nav-new": "/ui/new",
            "nav-approvals": "/ui/approvals",
            "nav-workers": "/ui/workers",
        }


async def test_a_person_is_shown_by_name(client: httpx.AsyncClient, runkit: Runkit) -> None:
    html = page(await client.get("/ui/", headers=key("ada")))
    assert html.css_first("#whoami").text().strip() == "Ada Lovelace"


async def test_anonymous_pages_redirect_to_sign_in_remembering_where(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    for path in [*(await pages(runkit)), "/ui/new?kind=noop", "/ui/?status=running"]:
        answer = await client.get(path)
        assert answer.status_code == 303, (path, answer.status_code)
        location = answer.headers["location"]
        assert location.startswith("/ui/sign-in?next="), location
        assert httpx.URL(location).params["next"] == path
    # A wrong key is no better than none.
    answer = await client.get("/ui/", headers={"X-API-Key": "rk_wrong_key_0123456789"})
    assert answer.status_code == 303


async def test_an_expired_session_sends_a_live_refresh_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get(
        "/ui/fragments/runs",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/ui/?kind=noop"},
    )
    assert answer.status_code == 401
    assert answer.headers["hx-redirect"] == "/ui/sign-in?next=/ui/%3Fkind%3Dnoop"


async def test_sign_in_page_needs_no_credentials_and_keeps_next_inside(
    client: httpx.AsyncClient,
) -> None:
    html = page(await client.get("/ui/sign-in?next=/ui/workers"))
    field = html.css_first("form#sign-in-form input#api-key")
    assert field.attributes["type"] == "password" and field.attributes["name"] == "apiKey"
    assert html.css_first("button#sign-in") is not None
    assert html.css_first("#sign-in-error") is not None
    form = html.css_first("#sign-in-form")
    assert form.attributes["data-next"] == "/ui/workers"
    assert form.attributes["data-api-url"] == "/api/v1/sessions"
    outsides = (
        "https://evil.example/ui/",
        "//evil.example/ui/",
        "/api/v1/action-runs",
        "/ui/../api/v1/action-runs",
        "/ui/%2E%2E/docs",
        "",
    )
    for outside in outsides:
        html = page(await client.get("/ui/sign-in", params={"next": outside}))
        assert html.css_first("#sign-in-form").attributes["data-next"] == "/ui/"


async def test_ui_answers_carry_the_security_headers(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    for path in [*(await pages(runkit)), "/ui/sign-in"]:
        answer = await client.get(path, headers=key("admin"))
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        # No inline script or style: every script has a src, no style attribute or element.
        html = page(answer)
        assert all(s.attributes.get("src") for s in html.css("script")), path
        assert html.css("style") == [] and html.css("[style]") == [], path
        assert "on" not in {a[:2] for n in html.css("*") for a in n.attributes}, path


async def test_static_files_are_served_from_the_package_with_a_cache_header(
    client: httpx.AsyncClient,
) -> None:
    html = page(await client.get("/ui/", headers=key("admin")))
    sources = [s.attributes["src"] for s in html.css("script")]
    sheets = [link.attributes["href"] for link in html.css("link[rel=stylesheet]")]
    assert any("/ui/static/vendor/htmx.min.js?v=" in s for s in sources)
    assert any("/ui/static/dashboard.js?v=" in s for s in sources)
    for url in [*sources, *sheets]:
        assert url and url.startswith("/ui/static/"), url
        answer = await client.get(url)  # public: the sign-in page needs them too
        assert answer.status_code == 200, url
        assert "max-age" in answer.headers["cache-control"]
    htmx = await client.get("/ui/static/vendor/htmx.min.js")
    assert "htmx" in htmx.text[:200]
    license_text = (await client.get("/ui/static/vendor/htmx.LICENSE")).text
    assert "2.0." in license_text.splitlines()[0]


async def test_markup_in_a_definition_shows_as_text(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    run = await make(runkit, "free", {"title": SCRIPT, "<b>key</b>": "x"})
    for path in (f"/ui/runs/{run.id}", "/ui/", "/ui/fragments/runs"):
        answer = await client.get(path, headers=key("admin"))
        assert SCRIPT not in answer.text and "<b>key</b>" not in answer.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text, path
        assert page(answer).css("script:not([src])") == []
    html = page(await client.get(f"/ui/runs/{run.id}", headers=key("admin")))
    assert SCRIPT in html.css_first("pre#definition").text()
    html = page(await client.get("/ui/", headers=key("admin")))
    assert SCRIPT in html.css_first(f'tr[data-run-id="{run.id}"] td.run-definition').text()


async def test_a_tenant_does_not_see_another_tenants_run(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    made = await client.post(
        "/api/v1/action-runs", json={"kind": "noop", "definition": {}}, headers=key("acme")
    )
    assert made.status_code == 201, made.text
    run_id = made.json()["id"]
    mine = page(await client.get(f"/ui/runs/{run_id}", headers=key("acme")))
    assert mine.css_first("#run").attributes["data-run-id"] == run_id
    for path in (f"/ui/runs/{run_id}", f"/ui/runs/{run_id}/summary"):
        answer = await client.get(path, headers=key("globex"))
        assert answer.status_code == 404, path
    assert run_id not in (await client.get("/ui/", headers=key("globex"))).text
    assert run_id in (await client.get("/ui/", headers=key("acme"))).text
    assert run_id in (await client.get("/ui/", headers=key("admin"))).text


async def test_unknown_and_malformed_run_ids_are_the_not_found_page(
    client: httpx.AsyncClient,
) -> None:
    for path in (f"/ui/runs/{uuid4()}", "/ui/runs/not-a-uuid", "/ui/runs/1%27%3B--"):
        answer = await client.get(path, headers=key("admin"))
        assert answer.status_code == 404, path
        assert "text/html" in answer.headers["content-type"]
        assert HTMLParserText(answer).count("Not found") >= 1


def HTMLParserText(answer: httpx.Response) -> str:
    return HTMLParser(answer.text).text()


async def test_pages_work_mounted_under_a_prefix(runkit: Runkit) -> None:
    host = Starlette(routes=[Mount("/runkit", app=build_app(runkit))])
    run = await make(runkit, "deploy", {"service": "billing"})
    transport = httpx.ASGITransport(app=host)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.get("/runkit/ui/")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/runkit/ui/sign-in?next=/runkit/ui/"
        html = page(await client.get("/runkit/ui/", headers=key("admin")))
        assert html.css_first("body").attributes["data-root"] == "/runkit"
        link = html.css_first(f'tr[data-run-id="{run.id}"] a.run-link').attributes["href"]
        assert link == f"/runkit/ui/runs/{run.id}"
        assert html.css_first("#nav-new").attributes["href"] == "/runkit/ui/new"
        rows = html.css_first("#runs-rows").attributes["hx-get"]
        assert rows == "/runkit/ui/fragments/runs"
        for node in html.css("script[src], link[href], a[href], form[action]"):
            url = node.attributes.get("src") or node.attributes.get("href") or ""
            url = url or node.attributes.get("action") or ""
            assert url.startswith(("/runkit/", "#", "data:")), url
        css = html.css_first("link[rel=stylesheet]").attributes["href"] or ""
        assert (await client.get(css)).status_code == 200
        html = page(await client.get(f"/runkit/ui/runs/{run.id}", headers=key("admin")))
        run_node = html.css_first("#run")
        assert run_node.attributes["data-api-url"] == f"/runkit/api/v1/action-runs/{run.id}"
        logs = html.css_first("#logs-panel").attributes["data-stream-url"]
        assert logs == f"/runkit/api/v1/action-runs/{run.id}/logs/stream"
        form = page(await client.get("/runkit/ui/new", headers=key("admin")))
        assert form.css_first("#new-run-form").attributes["data-api-url"] == (
            "/runkit/api/v1/action-runs"
        )
        signin = page(await client.get("/runkit/ui/sign-in?next=/runkit/ui/workers"))
        assert signin.css_first("#sign-in-form").attributes["data-next"] == "/runkit/ui/workers"
        assert (await client.get("/runkit/ui")).headers["location"] == "/runkit/ui/"


async def test_runs_page_pages_by_fifty(client: httpx.AsyncClient, runkit: Runkit) -> None:
    made = [await make(runkit, "noop") for _ in range(120)]
    newest_first = [str(r.id) for r in reversed(made)]

    def ids(html: object) -> list[str]:
        return [tr.attributes["data-run-id"] or "" for tr in html.css("#runs-rows tr[data-run-id]")]  # type: ignore[attr-defined]

    first = page(await client.get("/ui/", headers=key("admin")))
    assert ids(first) == newest_first[:50]
    assert first.css_first("#prev-page") is None
    assert first.css_first("#next-page").attributes["href"] == "/ui/?offset=50"
    assert "1\u201350 of 120" in first.css_first("#runs-total").text()
    last = page(await client.get("/ui/?offset=100", headers=key("admin")))
    assert ids(last) == newest_first[100:]
    assert last.css_first("#next-page") is None
    assert last.css_first("#prev-page").attributes["href"] == "/ui/?offset=50"
    # The live rows ask for the same page.
    assert last.css_first("#runs-rows").attributes["hx-get"] == "/ui/fragments/runs?offset=100"
    assert last.css_first("#runs-rows").attributes["hx-trigger"] == "every 2s"


async def test_runs_page_filters_and_keeps_them_in_links(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    parent = await make(runkit, "free", {})
    child = await make(runkit, "noop", parent_action_run_id=parent.id)
    other = await make(runkit, "deploy", {"service": "x"})
    running = await make(runkit, "sleep", {"seconds": 5})
    await claim(runkit, running)

    async def shown(query: str) -> set[str]:
        html = page(await client.get(f"/ui/?{query}", headers=key("admin")))
        return {tr.attributes["data-run-id"] or "" for tr in html.css("tr[data-run-id]")}

    assert await shown("kind=deploy") == {str(other.id)}
    assert await shown("status=running") == {str(running.id)}
    assert await shown(f"parent={parent.id}") == {str(child.id)}
    assert await shown("kind=noop&status=pending") == {str(child.id)}
    html = page(await client.get("/ui/?kind=deploy&status=pending", headers=key("admin")))
    assert html.css_first("select[name=kind] option[selected]").attributes["value"] == "deploy"
    assert html.css_first("select[name=status] option[selected]").attributes["value"] == "pending"
    live = html.css_first("#runs-rows").attributes["hx-get"]
    assert live == "/ui/fragments/runs?kind=deploy&status=pending"
    kinds = {o.attributes["value"] for o in html.css("select[name=kind] option")}
    assert {"deploy", "noop", "sleep", "approval_gate", ""} <= kinds
    statuses = {o.attributes["value"] for o in html.css("select[name=status] option")}
    assert "awaiting_approval" in statuses and "succeeded" in statuses


@pytest.mark.parametrize(
    "query",
    ["parent=not-a-uuid", "status=exploded", "kind=nope", "offset=-3", "offset=x", "parent=%00"],
)
async def test_bad_filters_show_a_message_never_a_500(
    client: httpx.AsyncClient, runkit: Runkit, query: str
) -> None:
    await make(runkit, "noop")
    html = page(await client.get(f"/ui/?{query}", headers=key("admin")))
    assert html.css_first("#filter-error").text().strip()
    assert html.css("tr[data-run-id]") == []


async def test_runs_table_cells(client: httpx.AsyncClient, runkit: Runkit) -> None:
    made = await client.post(
        "/api/v1/action-runs", json={"kind": "noop", "definition": {}}, headers=key("ada")
    )
    run_id = made.json()["id"]
    by_key = await make(runkit, "sleep", {"seconds": 1})
    await claim(runkit, by_key)
    html = page(await client.get("/ui/", headers=key("admin")))
    row = html.css_first(f'tr[data-run-id="{run_id}"]')
    status = row.css_first("td.run-status span.status")
    assert status.attributes["data-status"] == "pending" and "status-pending" in (
        status.attributes["class"] or ""
    )
    assert status.text().strip() == "pending"
    assert row.css_first("td.run-kind").text().strip() == "noop"
    assert "Pending" in row.css_first("td.run-display-status").text()
    created = row.css_first("td.run-created time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", created.attributes["title"] or "")
    assert "ago" in created.text() or "just now" in created.text()
    trigger = row.css_first("td.run-trigger").text()
    assert "Ada Lovelace" in trigger and "ui" in trigger
    assert row.css_first("td.run-duration").text().strip() == "—"
    row = html.css_first(f'tr[data-run-id="{by_key.id}"]')
    assert re.search(r"\d", row.css_first("td.run-duration").text())  # running: so far


async def test_workers_page_shows_load_from_the_runs_they_hold(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    now = runkit.clock.now()
    await runkit.ops.register_worker(
        WorkerInfo("test-worker", "host-1", 4242, ("sleep", "noop"), 3, now, now)
    )
    running = await make(runkit, "sleep", {"seconds": 5})
    await claim(runkit, running)
    html = page(await client.get("/ui/workers", headers=key("read")))
    row = html.css_first('tr[data-worker-id="test-worker"]')
    assert "sleep" in row.css_first("td.worker-kinds").text()
    assert row.css_first("td.worker-load").text().strip() == "1 / 3"
    assert row.css_first("td.worker-seen time").attributes["datetime"]
    fragment = page(await client.get("/ui/fragments/workers", headers=key("read")))
    assert fragment.css_first('tr[data-worker-id="test-worker"]') is not None


async def test_a_caller_without_the_right_sees_a_403_page(
    client: httpx.AsyncClient, runkit: Runkit
) -> None:
    answer = await client.get("/ui/new", headers=key("read"))
    assert answer.status_code == 403
    assert "You are not allowed to create runs." in HTMLParserText(answer)


async def test_a_403_page_names_what_was_refused(runkit: Runkit) -> None:
    app = build_app(runkit, authorize=lambda p, action, r: action not in ("list", "workers"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path, refused in (
            ("/ui/", "list runs"),
            ("/ui/approvals", "list runs"),
            ("/ui/workers", "see the workers"),
        ):
            answer = await client.get(path, headers=key("admin"))
            assert answer.status_code == 403, path
            assert f"You are not allowed to {refused}." in HTMLParserText(answer), path


async def test_every_key_in_the_support_module_signs_in(client: httpx.AsyncClient) -> None:
    for name in KEYS:
        assert (await client.get("/ui/workers", headers=key(name))).status_code == 200, name


async def test_pages_open_to_anyone_when_the_app_allows_anonymous_callers(
    runkit: Runkit,
) -> None:
    transport = httpx.ASGITransport(app=build_app(runkit, allow_anonymous=True))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        html = page(await client.get("/ui/"))
        assert html.css_first("#whoami").text().strip() == "anonymous"
        assert html.css_first("table#runs-table") is not None


async def test_an_unavailable_store_is_a_503_page(
    client: httpx.AsyncClient, runkit: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runkit import StorageUnavailable

    async def down(*args: object, **kwargs: object) -> None:
        raise StorageUnavailable("connection to 10.0.0.1 refused, password=hunter2")

    monkeypatch.setattr(runkit, "list", down)
    answer = await client.get("/ui/", headers=key("admin"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "hunter2" not in answer.text and "10.0.0.1" not in answer.text
    assert "unavailable" in answer.text


class Namesakes:
    """A host's directory that knows a person whose id is also an API key's."""

    async def authenticate(self, credentials: object) -> None:
        return None

    def users(self, ids: Iterable[str]) -> dict[str, UserProfile]:
        known = {"admin-key": UserProfile("admin-key", first_name="Adam", last_name="Mink")}
        return {i: known[i] for i in ids if i in known}


async def test_a_key_is_never_named_after_a_person_with_its_id(runkit: Runkit) -> None:
    by_key = await make(runkit, "noop", principal=Principal("admin-key", kind="api_key"))
    by_person = await make(runkit, "noop", principal=Principal("admin-key", kind="user"))
    app = asgi_app(runkit, auth=[*AUTH, Namesakes()])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        html = page(await client.get("/ui/", headers=key("admin")))

        def who(run_id: object) -> str:
            return html.css_first(f'tr[data-run-id="{run_id}"] .trigger-who').text()

        # The person's run by name; the key's run (same id, on the same page) by the key.
        assert who(by_person.id) == "Adam Mink"
        assert who(by_key.id) == "admin-key"
        assert html.css_first("#whoami").text().strip() == "admin-key"  # a key, signed in
        run = page(await client.get(f"/ui/runs/{by_key.id}", headers=key("admin")))
        source = run.css_first('[data-field="triggerSourceId"] dd').text().strip()
        assert source == "admin-key"
        run = page(await client.get(f"/ui/runs/{by_person.id}", headers=key("admin")))
        source = run.css_first('[data-field="triggerSourceId"] dd').text()
        assert "Adam Mink" in source


def without_sessions(runkit: Runkit) -> Starlette:
    """The app of ``asgi_app(..., sessions=False)``: its pages know there is no sign-in."""
    return asgi_app(runkit, auth=AUTH, sessions=False)


async def test_without_sessions_the_sign_in_page_says_the_host_signs_in(
    runkit: Runkit,
) -> None:
    transport = httpx.ASGITransport(app=without_sessions(runkit))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await client.post("/api/v1/sessions", json={"apiKey": "x"})).status_code == 404
        # Pages still send a signed-out caller to the sign-in page...
        answer = await client.get("/ui/workers")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/ui/sign-in?next=/ui/workers"
        # ... which answers, with no form posting to the missing sessions endpoint.
        html = page(await client.get(answer.headers["location"]))
        assert html.css_first("form#sign-in-form") is None and html.css_first("#api-key") is None
        assert "signs people in itself" in html.css_first("#host-sign-in").text()
        assert html.css_first("a#sign-in-next").attributes["href"] == "/ui/workers"
        assert html.css_first("#sign-out") is None
        assert html.css_first("link[rel=icon]").attributes["href"] == "data:,"
        # Signed in the host's way (here a header), the pages have no Sign out either.
        html = page(await client.get("/ui/workers", headers=key("admin")))
        assert html.css_first("#sign-out") is None and html.css_first("#nav") is not None
        html = page(await client.get("/ui/sign-in", headers=key("admin")))
        assert "admin-key" in html.css_first("#whoami").text()


async def test_with_sessions_the_sign_in_page_has_the_key_form(
    client: httpx.AsyncClient,
) -> None:
    html = page(await client.get("/ui/sign-in"))
    assert html.css_first("form#sign-in-form") is not None
    assert html.css_first("#host-sign-in") is None
    html = page(await client.get("/ui/", headers=key("admin")))
    assert html.css_first("#sign-out") is not None


async def test_every_page_and_error_page_has_an_icon_so_none_is_asked_for(
    client: httpx.AsyncClient, runkit: Runkit, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = [await client.get(path, headers=key("admin")) for path in await pages(runkit)]
    answers += [
        await client.get("/ui/sign-in"),
        await client.get("/ui/new", headers=key("read")),  # 403
        await client.get(f"/ui/runs/{uuid4()}", headers=key("admin")),  # 404
        await client.get("/ui/no-such-page", headers=key("admin")),  # 404
    ]

    async def down(*args: object, **kwargs: object) -> None:
        from runkit import StorageUnavailable

        raise StorageUnavailable("down")

    monkeypatch.setattr(runkit, "list", down)
    answers.append(await client.get("/ui/", headers=key("admin")))  # 503
    assert [a.status_code for a in answers][-5:] == [200, 403, 404, 404, 503]
    for answer in answers:
        icons = HTMLParser(answer.text).css("link[rel=icon]")
        assert [i.attributes["href"] for i in icons] == ["data:,"], answer.url


async def test_an_unknown_address_under_ui_is_the_not_found_page(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/ui/no-such-page", "/ui/runs/", "/ui/fragments/nope"):
        answer = await client.get(path, headers=key("admin"))
        assert answer.status_code == 404, path
        assert answer.headers["content-type"].startswith("text/html"), path
        assert HTMLParser(answer.text).css_first("#error-page").attributes["data-status"] == "404"
    answer = await client.get("/ui/no-such-page")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/sign-in")
    assert (await client.get("/ui/static/no-such-file.css")).status_code == 404
