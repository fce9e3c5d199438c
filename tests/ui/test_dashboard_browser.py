"""The dashboard (``/ui/``) in a real browser: Debian's headless Chromium, driven by Selenium,
against a real ``runkit serve`` subprocess (SQLite, two worker slots, the test kinds). Each
test is a user's flow through the pages; the JSON API only sets things up (runs to look
at) and checks what the pages did. The DOM the tests rely on is the dashboard's contract
(ids and classes, not wording or layout).

Every test ends with the browser's console free of errors (SEVERE entries), except the
error answers a test provokes on purpose (a wrong key's 401, an invalid definition's 422),
which Chromium logs for any failed fetch; no page makes the browser ask for a favicon. No
test ever sees an alert.

With RUNKIT_SCREENSHOTS=1 the pages' screenshots are written to
docs/images/dashboard-<name>.png for docs/dashboard.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from browser_support import (  # noqa: F401 (the fixtures server and driver)
    IMG,
    PHONE,
    RUNS,
    SCRIPT,
    WIDE,
    Server,
    api_log_ids,
    assert_clean,
    color_scheme,
    console_errors,
    create_run,
    css,
    css_all,
    driver_fixture,
    mark_page,
    no_alert,
    open_run,
    path_of,
    same_page,
    screenshot,
    server_fixture,
    viewport,
    wait_for,
)
from selenium import webdriver
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from tcp_proxy import TcpProxy, cut_after, cut_inside

#: A live change must show within the contract's 2 s poll; this leaves room for a slow CI.
LIVE = 8.0
TERMINAL = {"succeeded", "failed", "cancelled", "rejected"}
#: Who is signed in in the module's browser (one session at a time).
_SIGNED_IN: dict[int, str] = {}


# ------------------------------------------------------------------ helpers ------------
def sign_in(driver: webdriver.Chrome, server: Server, who: str) -> None:
    """Sign in through the sign-in page with the key named ``who``; on the runs page after."""
    if _SIGNED_IN.get(id(driver)) == who and driver.get_cookie("vai_token"):
        return
    driver.get(server.url("/ui/sign-in"))
    driver.delete_all_cookies()
    driver.get(server.url("/ui/sign-in"))
    field = wait_for(lambda: css(driver, "#sign-in-form input#api-key"), what="the key field")
    field.send_keys(server.keys[who])
    css(driver, "button#sign-in").click()
    wait_for(lambda: path_of(driver) == "/ui/", what="the runs page after signing in")
    _SIGNED_IN[id(driver)] = who


def api_run(server: Server, run_id: str) -> dict[str, Any]:
    with server.client() as api:
        answer = api.get(f"{RUNS}/{run_id}")
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def api_wait(server: Server, run_id: str, statuses: set[str], within: float = 20.0) -> None:
    wait_for(
        lambda: api_run(server, run_id)["status"] in statuses,
        within,
        f"run {run_id} in {statuses}",
        every=0.1,
    )


def run_total(server: Server) -> int:
    with server.client() as api:
        answer = api.get(RUNS, params={"limit": 1})
    assert answer.status_code == 200, answer.text
    total: int = answer.json()["total"]
    return total


def status_of(driver: webdriver.Chrome) -> str | None:
    """The run page's ``#run-status[data-status]``, read in one step: the live refresh
    replaces the element at any time, so a found element may be gone when read."""
    script = "const e = document.querySelector('#run-status'); return e && e.dataset.status"
    status: str | None = driver.execute_script(script)
    return status


def row_status(driver: webdriver.Chrome, run_id: str) -> str | None:
    """The status in a runs table row (None: no such row), read in one step."""
    script = (
        "const e = document.querySelector("
        '`tr[data-run-id="${arguments[0]}"] td.run-status .status`);'
        " return e && e.dataset.status"
    )
    status: str | None = driver.execute_script(script, run_id)
    return status


def text(driver: webdriver.Chrome, selector: str) -> str | None:
    """The rendered text of the first ``selector`` (None: none), read in one step."""
    script = "const e = document.querySelector(arguments[0]); return e && e.innerText"
    found: str | None = driver.execute_script(script, selector)
    return found


def attribute(driver: webdriver.Chrome, selector: str, name: str) -> str | None:
    script = (
        "const e = document.querySelector(arguments[0]); return e && e.getAttribute(arguments[1])"
    )
    found: str | None = driver.execute_script(script, selector, name)
    return found


def shown_text(driver: webdriver.Chrome, selector: str) -> str:
    """The text of ``selector`` if it is displayed, else "" (also when there is none)."""
    found = css_all(driver, selector)
    return found[0].text.strip() if found and found[0].is_displayed() else ""


def click(driver: webdriver.Chrome, selector: str) -> None:
    """Click ``selector``, finding it again if a live refresh replaced it meanwhile."""
    wait_for(lambda: css(driver, selector).click() or True, what=f"a click on {selector}")


@pytest.fixture(autouse=True)
def fresh_console(driver: webdriver.Chrome) -> Iterator[None]:
    """Each test reads only what its own pages logged."""
    driver.get_log("browser")
    yield


# ------------------------------------------------------------------ signing in ---------
def test_sign_in_with_a_key_and_a_wrong_key_shows_an_error(
    driver: webdriver.Chrome, server: Server
) -> None:
    driver.get(server.url("/ui/sign-in"))
    driver.delete_all_cookies()
    _SIGNED_IN.pop(id(driver), None)
    # Signed out, a page sends you to sign in, remembering where you were going.
    driver.get(server.url("/ui/"))
    wait_for(lambda: path_of(driver) == "/ui/sign-in", what="the redirect to sign-in")
    assert "next=" in urlsplit(driver.current_url).query
    field = wait_for(lambda: css(driver, "form#sign-in-form input#api-key"))
    assert field.get_attribute("type") == "password" and field.get_attribute("name") == "apiKey"
    screenshot(driver, "sign-in")

    field.send_keys("rk_not-a-key-of-this-server")
    css(driver, "button#sign-in").click()
    wait_for(lambda: shown_text(driver, "#sign-in-error"), what="#sign-in-error")
    assert path_of(driver) == "/ui/sign-in" and driver.get_cookie("vai_token") is None

    field = css(driver, "input#api-key")
    field.clear()
    field.send_keys(server.keys["admin"])
    css(driver, "button#sign-in").click()
    wait_for(lambda: path_of(driver) == "/ui/", what="the runs page after signing in")
    _SIGNED_IN[id(driver)] = "admin"
    wait_for(lambda: css(driver, "table#runs-table"), what="the runs table")
    cookie = driver.get_cookie("vai_token")
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie.get("sameSite") == "Lax", cookie
    assert cookie["path"] == "/", cookie
    assert "vai_token" not in driver.execute_script("return document.cookie")
    assert css(driver, "#whoami").text.strip()
    assert_clean(driver, r"/api/v1/sessions .*401")


# ------------------------------------------------------------------ the runs page ------
def test_runs_page_lists_runs_and_follows_them_live(
    driver: webdriver.Chrome, server: Server
) -> None:
    sign_in(driver, server, "admin")
    made = [create_run(server, "noop", {}) for _ in range(3)]
    driver.get(server.url("/ui/"))
    wait_for(lambda: css(driver, "table#runs-table"))
    for run in made:
        row = f'#runs-table tr[data-run-id="{run["id"]}"]'
        assert (text(driver, f"{row} td.run-kind") or "").strip() == "noop"
        assert row_status(driver, run["id"]) == "pending"
        assert (text(driver, f"{row} td.run-status") or "").strip().lower() == "pending"
        for cell in ("run-display-status", "run-created", "run-duration", "run-trigger"):
            assert text(driver, f"{row} td.{cell}") is not None, cell
        link = attribute(driver, f"{row} a.run-link", "href") or ""
        assert link == f"/ui/runs/{run['id']}", link  # absolute under R, never relative
    assert (text(driver, "#runs-total") or "").strip()
    mark_page(driver)

    # A run made elsewhere after the page loaded shows up, and its status follows along.
    late = create_run(server, "sleep", {"seconds": 1.0})
    wait_for(lambda: css_all(driver, f'tr[data-run-id="{late["id"]}"]'), LIVE, "the new run's row")
    assert row_status(driver, late["id"]) == "pending"
    with server.client() as api:
        assert api.post(f"{RUNS}/{late['id']}/execute").is_success
    wait_for(lambda: row_status(driver, late["id"]) != "pending", LIVE, "the row's status to move")
    wait_for(lambda: row_status(driver, late["id"]) == "succeeded", LIVE + 5, "the row to succeed")
    assert same_page(driver), "the page was reloaded"
    assert_clean(driver)


# ------------------------------------------------------------------ a new run ----------
def test_new_run_form_creates_and_executes_a_noop(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    driver.get(server.url("/ui/new?kind=noop"))
    form = wait_for(lambda: css(driver, "form#new-run-form"))
    assert css(form, "select#kind").get_attribute("value") == "noop"
    css(form, "button#create-execute").click()
    wait_for(lambda: path_of(driver).startswith("/ui/runs/"), what="the new run's page")
    run_id = path_of(driver).rsplit("/", 1)[1]
    wait_for(lambda: css(driver, f'#run[data-run-id="{run_id}"]'))
    mark_page(driver)
    wait_for(lambda: status_of(driver) == "succeeded", LIVE, "the run to succeed on its page")
    assert same_page(driver), "the page was reloaded"
    assert (text(driver, "#run-status") or "").strip()

    run = api_run(server, run_id)
    assert (run["triggerMethod"], run["triggerSourceType"]) == ("ui", "user"), run
    assert run["triggerSourceId"], run
    # The runs table says who started it, by name (the key store knows the person), and how.
    driver.get(server.url("/ui/"))
    trigger = wait_for(lambda: text(driver, f'tr[data-run-id="{run_id}"] td.run-trigger')) or ""
    assert "Ada" in trigger and "ui" in trigger, trigger
    assert_clean(driver)


# ------------------------------------------------------------------ live logs ----------
def test_log_entries_arrive_live_in_order_and_once(
    driver: webdriver.Chrome, server: Server
) -> None:
    sign_in(driver, server, "admin")
    run = create_run(server, "emit_logs", {"count": 40, "intervalSeconds": 0.15}, execute=True)
    open_run(driver, server, run["id"])
    mark_page(driver)
    assert css(driver, "input#follow").is_selected()  # follows the newest by default
    script = "return [...document.querySelectorAll('#logs .log-entry')].map(e => e.dataset.id)"
    seen: list[list[str]] = []
    deadline = time.monotonic() + 40
    shot = False
    while True:
        ids: list[str] = driver.execute_script(script)
        assert len(ids) == len(set(ids)), f"an entry shown twice: {ids}"
        seen.append(ids)
        if not shot and len(ids) >= 15:
            screenshot(driver, "run", whole=True)
            shot = True
        if status_of(driver) in TERMINAL and ids == api_log_ids(server, run["id"]):
            break
        assert time.monotonic() < deadline, f"the log did not catch up: {ids}"
        time.sleep(0.1)
    final = seen[-1]
    assert status_of(driver) == "succeeded"
    assert api_run(server, run["id"])["status"] == "succeeded"
    # Entries came while the page was open (not all in the first render), each snapshot a
    # run of the final list in order: nothing reordered, skipped then filled in, or doubled.
    assert len(seen[0]) < len(final), "no entry arrived live"
    for ids in seen:
        if ids:
            start = final.index(ids[0])
            assert final[start : start + len(ids)] == ids, ids
    messages = [e.text for e in css_all(driver, "#logs .log-entry .log-message")]
    ours = [m for m in messages if m.startswith("entry ")]
    assert ours == [f"entry {i}" for i in range(40)]
    for entry in css_all(driver, "#logs .log-entry")[:3]:
        css(entry, ".log-level"), css(entry, ".log-time")
    assert same_page(driver), "the page was reloaded"
    assert_clean(driver)


def test_a_dropped_log_stream_resumes_with_no_gap_and_no_duplicate(
    driver: webdriver.Chrome, server: Server
) -> None:
    """The page reached through a proxy that drops the log stream twice, once in the middle
    of an event and once between an event and its blank line: EventSource reconnects with
    Last-Event-ID and the page shows every entry once, in order."""
    sign_in(driver, server, "admin")  # cookies ignore ports: the session rides to the proxy
    run_id = create_run(server, "emit_logs", {"count": 40, "intervalSeconds": 0.1})["id"]
    with TcpProxy(int(urlsplit(server.base).port or 0)) as proxy:
        proxy.plan(cut_inside(b'"entry 10"', 2), cut_after(b'"entry 25"', b"\n\n", 1))
        driver.get(f"{proxy.url}/ui/runs/{run_id}")
        wait_for(lambda: css(driver, f'#run[data-run-id="{run_id}"]'), what="the run page")
        mark_page(driver)
        with server.client() as api:  # executed once the page follows its (empty) log
            assert api.post(f"{RUNS}/{run_id}/execute").status_code == 200
        script = "return [...document.querySelectorAll('#logs .log-entry')].map(e => e.dataset.id)"
        deadline = time.monotonic() + 60
        while True:
            ids: list[str] = driver.execute_script(script)
            assert len(ids) == len(set(ids)), f"an entry shown twice: {ids}"
            if ids == api_log_ids(server, run_id) and status_of(driver) in TERMINAL:
                break
            assert time.monotonic() < deadline, f"the log did not catch up: {ids}"
            time.sleep(0.2)
        assert proxy.cuts_made == 2
    messages = [e.text for e in css_all(driver, "#logs .log-entry .log-message")]
    assert [m for m in messages if m.startswith("entry ")] == [f"entry {i}" for i in range(40)]
    assert same_page(driver), "the page was reloaded"
    # A dropped stream is logged by Chromium as a failed request; nothing else may be.
    assert no_alert(driver)
    errors = console_errors(driver, ("logs/stream",))
    assert errors == [], errors


# ------------------------------------------------------------------ approvals ----------
def gate(server: Server, title: str) -> str:
    definition = {"title": title, "message": "14 changes.", "allowSelfApproval": True}
    run = create_run(server, "approval_gate", definition, execute=True)
    api_wait(server, run["id"], {"awaiting_approval"})
    return str(run["id"])


def test_approve_on_the_approvals_page_and_reject_on_the_run_page(
    driver: webdriver.Chrome, server: Server
) -> None:
    sign_in(driver, server, "admin")
    approved = gate(server, "Deploy 2.4.1 to production")
    rejected = gate(server, "Drop the old tables")
    driver.get(server.url("/ui/approvals"))
    row = f'#approvals-table tr[data-run-id="{approved}"]'
    wait_for(lambda: css(driver, row))
    css(driver, f'#approvals-table tr[data-run-id="{rejected}"]')
    assert (text(driver, f"{row} td.approvers") or "").strip()
    screenshot(driver, "approvals")
    reason = f"{row} textarea.decision-reason"
    css(driver, reason).send_keys("Checked the release notes.")
    # Writing a reason takes longer than the rows' 2 s refresh: what was typed stays.
    time.sleep(2.5)
    assert (
        attribute(driver, reason, "id")
        and driver.execute_script("return document.querySelector(arguments[0]).value", reason)
        == "Checked the release notes."
    ), "the live refresh lost the reason being typed"
    click(driver, f'{row} button[data-action="approve"]')
    api_wait(server, approved, {"succeeded"})
    wait_for(lambda: not css_all(driver, row), LIVE, "the decided run to leave the approvals table")
    open_run(driver, server, approved)
    assert status_of(driver) == "succeeded"
    decision = text(driver, "#approval") or ""
    assert "Checked the release notes." in decision and "approve" in decision.lower(), decision

    open_run(driver, server, rejected)
    mark_page(driver)
    css(driver, "textarea#decision-reason").send_keys("Not during the freeze.")
    time.sleep(2.5)  # the summary (buttons and reason box) refreshes meanwhile
    typed = driver.execute_script("return document.querySelector('#decision-reason').value")
    assert typed == "Not during the freeze.", "the live refresh lost the reason being typed"
    click(driver, 'button[data-action="reject"]')
    wait_for(lambda: status_of(driver) == "rejected", LIVE, "the run to show rejected")
    wait_for(
        lambda: "Not during the freeze." in (text(driver, "#approval") or ""),
        LIVE,
        "the reason on the run",
    )
    assert same_page(driver), "the page was reloaded"
    assert api_run(server, rejected)["status"] == "rejected"

    # A gate only grace may decide: no Approve or Reject for anyone else, but who may.
    definition = {"title": "Grace decides", "approvers": ["grace"], "allowSelfApproval": False}
    theirs = create_run(server, "approval_gate", definition, execute=True)["id"]
    api_wait(server, theirs, {"awaiting_approval"})
    open_run(driver, server, theirs)
    assert shown_text(driver, "#decision-note") == "Only grace may decide."
    assert css_all(driver, 'button[data-action="approve"], button[data-action="reject"]') == []
    assert css_all(driver, "textarea#decision-reason") == []
    assert css_all(driver, 'button[data-action="cancel"]')  # what they may do stays
    driver.get(server.url("/ui/approvals"))
    row = f'#approvals-table tr[data-run-id="{theirs}"]'
    wait_for(lambda: css(driver, row))
    assert shown_text(driver, f"{row} .decision-note") == "Only grace may decide."
    assert css_all(driver, f"{row} button[data-action]") == []
    assert api_run(server, theirs)["status"] == "awaiting_approval"
    assert_clean(driver)


# ------------------------------------------------------------------ cancelling ---------
def test_cancel_a_sleeping_run_from_its_page(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    run = create_run(server, "sleep", {"seconds": 60}, execute=True)
    open_run(driver, server, run["id"])
    mark_page(driver)
    wait_for(lambda: status_of(driver) == "running", LIVE, "the run to show running")
    click(driver, 'button[data-action="cancel"]')
    wait_for(lambda: status_of(driver) == "cancelled", LIVE + 5, "the run to show cancelled")
    assert api_run(server, run["id"])["status"] == "cancelled"
    # A cancelled run offers no cancel any more.
    wait_for(lambda: not css_all(driver, 'button[data-action="cancel"]'), LIVE, "no cancel")
    assert same_page(driver), "the page was reloaded"
    assert_clean(driver)


# ------------------------------------------------------------------ dark mode ----------
def test_runs_page_in_dark_mode(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    # By now the runs of the earlier tests are there, in many statuses: the docs' picture
    # of the runs page, in light and dark.
    driver.get(server.url("/ui/"))
    wait_for(lambda: css(driver, "table#runs-table"))
    screenshot(driver, "runs")
    color_scheme(driver, "dark")
    try:
        driver.get(server.url("/ui/"))
        wait_for(lambda: css(driver, "table#runs-table"))
        screenshot(driver, "runs-dark")
        # Text stays readable: the body's text and background differ in lightness.
        colors = driver.execute_script(
            "const s = getComputedStyle(document.body);"
            " return [s.color, s.backgroundColor,"
            " getComputedStyle(document.documentElement).backgroundColor]"
        )
        assert colors[0] != colors[1], colors
    finally:
        color_scheme(driver, "")
    assert_clean(driver)


# ------------------------------------------------------------------ validation ---------
def test_an_invalid_definition_shows_its_field_error_and_creates_nothing(
    driver: webdriver.Chrome, server: Server
) -> None:
    sign_in(driver, server, "admin")
    before = run_total(server)
    driver.get(server.url("/ui/new?kind=sleep"))
    field = wait_for(lambda: css(driver, '#new-run-form [name="definition.seconds"]'))
    field.clear()
    field.send_keys("-1")
    css(driver, "button#create").click()
    selector = '.field-error[data-for="definition.seconds"]'
    wait_for(lambda: shown_text(driver, selector), LIVE, "the field's error")
    assert path_of(driver) == "/ui/new"
    screenshot(driver, "new-run")

    # Not a number at all, through the raw JSON of the whole definition (on a fresh form).
    driver.get(server.url("/ui/new?kind=sleep"))
    wait_for(lambda: css(driver, '#new-run-form [name="definition.seconds"]'))
    css(driver, "button#raw-toggle").click()
    wait_for(lambda: css(driver, "textarea#definition-json").is_displayed())
    raw = css(driver, "textarea#definition-json")
    raw.clear()
    raw.send_keys('{"seconds": "soon"}')
    css(driver, "button#create").click()
    wait_for(lambda: shown_text(driver, selector), LIVE, "the field's error for a string")
    time.sleep(0.5)
    assert path_of(driver) == "/ui/new"
    assert run_total(server) == before, "an invalid definition made a run"
    assert_clean(driver, r"/api/v1/action-runs.* 422")


# ------------------------------------------------------------------ markup is text -----
def test_markup_in_a_definition_and_a_name_shows_as_text(
    driver: webdriver.Chrome, server: Server
) -> None:
    # mallory's first and last names are markup too (see browser_support.KEYS).
    sign_in(driver, server, "mallory")
    driver.get(server.url("/ui/new?kind=approval_gate"))
    title = wait_for(lambda: css(driver, '#new-run-form [name="definition.title"]'))
    title.clear()
    title.send_keys(SCRIPT)
    message = css(driver, '#new-run-form [name="definition.message"]')
    message.clear()
    message.send_keys(IMG)
    css(driver, "button#create").click()
    wait_for(lambda: path_of(driver).startswith("/ui/runs/"), LIVE, "the new run's page")
    run_id = path_of(driver).rsplit("/", 1)[1]
    definition = wait_for(lambda: css(driver, "pre#definition"))
    assert SCRIPT in definition.text and IMG in definition.text
    assert api_run(server, run_id)["definition"]["title"] == SCRIPT

    def injected() -> int:
        count: int = driver.execute_script(
            'return document.querySelectorAll(\'img[src="x"], #definition script,'
            " #runs-table script, #whoami script').length"
        )
        return count

    assert injected() == 0 and no_alert(driver)
    assert SCRIPT in css(driver, "#whoami").text or "mallory" in css(driver, "#whoami").text

    driver.get(server.url("/ui/"))
    row = f'#runs-table tr[data-run-id="{run_id}"]'
    trigger = wait_for(lambda: text(driver, f"{row} td.run-trigger")) or ""
    assert SCRIPT in trigger and IMG in trigger, trigger
    script = "return document.querySelector(arguments[0]).textContent"
    shown: str = driver.execute_script(script, row)
    assert shown.count(SCRIPT) >= 2 and IMG in shown  # the definition's title, and the name
    time.sleep(2.5)  # a live refresh of the rows too
    trigger = text(driver, f"{row} td.run-trigger") or ""
    assert SCRIPT in trigger, trigger
    assert injected() == 0

    # The same run made through the API, executed: on the approvals page too.
    other = create_run(server, "approval_gate", {"title": SCRIPT, "message": IMG}, execute=True)
    api_wait(server, other["id"], {"awaiting_approval"})
    driver.get(server.url("/ui/approvals"))
    wait_for(lambda: css(driver, f'#approvals-table tr[data-run-id="{other["id"]}"]'))
    assert injected() == 0
    assert_clean(driver)
    sign_in(driver, server, "admin")


# ------------------------------------------------------------------ layout -------------
def test_runs_table_rows_stay_short_at_1280_px(driver: webdriver.Chrome, server: Server) -> None:
    # A run of mallory's (a long name, and markup) made on the dashboard, and one by a key.
    sign_in(driver, server, "mallory")
    made = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        " fetch(arguments[0], {method: 'POST', credentials: 'same-origin',"
        " headers: {'X-Runkit-CSRF': '1', 'Content-Type': 'application/json'},"
        " body: JSON.stringify({kind: 'noop', definition: {}})}).then(r => r.json()).then(done)",
        server.url(RUNS),
    )
    long_definition = {"title": "A title long enough to need cutting short " * 4}
    by_key = create_run(server, "approval_gate", long_definition)
    sign_in(driver, server, "admin")
    driver.get(server.url("/ui/"))
    wait_for(lambda: css(driver, f'tr[data-run-id="{made["id"]}"]'))
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#runs-rows tr[data-run-id]')].map(tr => {"
        " const who = tr.querySelector('.trigger-who'), via = tr.querySelector('.trigger-method');"
        " const code = tr.querySelector('.run-definition code');"
        " return {id: tr.dataset.runId, height: tr.getBoundingClientRect().height,"
        " whoTop: who.getBoundingClientRect().top, viaTop: via.getBoundingClientRect().top,"
        " viaLines: via.getClientRects().length, title: who.title,"
        " cut: who.scrollWidth > who.clientWidth,"
        " line: parseFloat(getComputedStyle(tr).lineHeight),"
        " codeCut: code.scrollWidth > code.clientWidth}; })"
    )
    assert rows and driver.execute_script("return window.innerWidth") == 1280
    for row in rows:
        # "via api" / "via ui" on the trigger's own line, in every row (the name's box
        # is an inline block: its top is the line's, the text's a little lower).
        assert row["viaLines"] == 1, row
        assert abs(row["viaTop"] - row["whoTop"]) < row["line"] / 2, row
    mallory = next(r for r in rows if r["id"] == made["id"])
    assert mallory["title"] == f"{SCRIPT} {IMG}" and mallory["cut"], mallory
    # The Details column may take two lines; nothing takes more.
    tallest = max(r["height"] for r in rows)
    assert tallest < 4 * mallory["line"], rows
    assert next(r for r in rows if r["id"] == by_key["id"])["codeCut"]
    # The filters' labels line up, over controls of one height.
    boxes = driver.execute_script(
        "return [...document.querySelectorAll('#filters label')].map(l =>"
        " [l.getBoundingClientRect().top, l.lastElementChild.getBoundingClientRect().height])"
    )
    assert len(boxes) == 3
    assert max(b[0] for b in boxes) - min(b[0] for b in boxes) < 0.5, boxes
    assert max(b[1] for b in boxes) - min(b[1] for b in boxes) < 0.5, boxes
    assert_clean(driver)


def test_edit_as_json_looks_like_a_button(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    driver.get(server.url("/ui/new?kind=sleep"))
    wait_for(lambda: css(driver, "button#raw-toggle"))
    style = driver.execute_script(
        "const s = getComputedStyle(document.querySelector('#raw-toggle'));"
        " const form = getComputedStyle(document.querySelector('#new-run-form'));"
        " return {bg: s.backgroundColor, panel: form.backgroundColor, border: s.borderTopStyle,"
        " width: parseFloat(s.borderTopWidth), cursor: s.cursor,"
        " height: document.querySelector('#raw-toggle').getBoundingClientRect().height}"
    )
    assert style["bg"] != style["panel"], style  # stands out of its panel, like a button
    assert style["border"] == "solid" and style["width"] >= 1, style
    assert style["cursor"] == "pointer" and style["height"] >= 30, style
    assert_clean(driver)


# ------------------------------------------------------------------ roles --------------
def test_a_reader_sees_runs_but_no_buttons_to_change_them(
    driver: webdriver.Chrome, server: Server
) -> None:
    run = create_run(server, "sleep", {"seconds": 60}, execute=True)
    api_wait(server, run["id"], {"running"})
    try:
        sign_in(driver, server, "reader")
        open_run(driver, server, run["id"])
        wait_for(lambda: status_of(driver) == "running", LIVE)
        assert css_all(driver, "button[data-action]") == []
        driver.get(server.url("/ui/"))
        wait_for(lambda: css(driver, f'tr[data-run-id="{run["id"]}"]'))
        assert_clean(driver)
    finally:
        with server.client() as api:
            api.post(f"{RUNS}/{run['id']}/cancel")
    sign_in(driver, server, "admin")
    open_run(driver, server, run["id"])
    wait_for(lambda: status_of(driver) == "cancelled", LIVE + 5)
    # The admin, on a finished run: retry and delete, no cancel.
    actions = {b.get_attribute("data-action") for b in css_all(driver, "button[data-action]")}
    assert "cancel" not in actions and "delete" in actions, actions


# ------------------------------------------------------------------ workers ------------
def test_workers_page_lists_the_servers_worker(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    driver.get(server.url("/ui/workers"))
    row = "#workers-table tr[data-worker-id]"
    wait_for(lambda: css(driver, row))
    assert attribute(driver, row, "data-worker-id")
    kinds = text(driver, f"{row} td.worker-kinds") or ""
    assert "sleep" in kinds and "approval_gate" in kinds, kinds
    assert (text(driver, f"{row} td.worker-load") or "").strip()
    assert (text(driver, f"{row} td.worker-seen") or "").strip()
    screenshot(driver, "workers")
    assert_clean(driver)


# ------------------------------------------------------------------ keyboard -----------
def test_tab_reaches_the_nav_links_and_the_create_buttons(
    driver: webdriver.Chrome, server: Server
) -> None:
    sign_in(driver, server, "admin")
    driver.get(server.url("/ui/new?kind=noop"))
    wait_for(lambda: css(driver, "form#new-run-form"))
    driver.execute_script("document.activeElement && document.activeElement.blur()")
    wanted = {"nav-runs", "nav-new", "nav-approvals", "nav-workers", "create", "create-execute"}
    reached: set[str] = set()
    for _ in range(80):
        ActionChains(driver).send_keys(Keys.TAB).perform()
        reached.add(driver.execute_script("return document.activeElement.id"))
        if wanted <= reached:
            break
    assert wanted <= reached, f"not reached by Tab: {wanted - reached}"
    assert_clean(driver)


# ------------------------------------------------------------------ a phone ------------
def test_every_page_fits_a_phone_width(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    run = create_run(server, "emit_logs", {"count": 30}, execute=True)
    api_wait(server, run["id"], TERMINAL)
    gate(server, "A gate with a rather long title, to see it wrap on a small screen")
    pages = {
        "/ui/": "table#runs-table",
        f"/ui/runs/{run['id']}": "#run",
        "/ui/new?kind=approval_gate": "form#new-run-form",
        "/ui/approvals": "table#approvals-table",
        "/ui/workers": "table#workers-table",
    }
    # Against the layout viewport (clientWidth), not innerWidth: an emulated phone zooms
    # out to fit a page that overflows, and innerWidth grows with it.
    overflow = (
        "const d = document.documentElement;"
        f" return d.scrollWidth - Math.min(d.clientWidth, window.innerWidth, {PHONE[0]})"
    )
    viewport(driver, *PHONE, mobile=True)
    try:
        wide: dict[str, int] = {}
        for path, ready in pages.items():
            driver.get(server.url(path))
            wait_for(lambda: css(driver, ready))  # noqa: B023 (called at once)
            time.sleep(0.3)
            if (extra := driver.execute_script(overflow)) > 1:
                wide[path] = extra
            if path == "/ui/":
                screenshot(driver, "runs-phone")
        # Signed out: the sign-in page.
        driver.delete_all_cookies()
        _SIGNED_IN.pop(id(driver), None)
        driver.get(server.url("/ui/sign-in"))
        wait_for(lambda: css(driver, "form#sign-in-form"))
        if (extra := driver.execute_script(overflow)) > 1:
            wide["/ui/sign-in"] = extra
        assert wide == {}, f"pages wider than the phone (px beyond {PHONE[0]}): {wide}"
    finally:
        viewport(driver, *WIDE)
    assert_clean(driver)


# ------------------------------------------------------------------ signing out --------
def test_sign_out_ends_the_session_for_good(driver: webdriver.Chrome, server: Server) -> None:
    sign_in(driver, server, "admin")
    driver.get(server.url("/ui/workers"))
    wait_for(lambda: css(driver, "#sign-out"))
    cookie = driver.get_cookie("vai_token")
    assert cookie is not None
    old = {"vai_token": cookie["value"]}
    assert httpx.get(server.url(RUNS), cookies=old, timeout=10).status_code == 200
    css(driver, "#sign-out").click()
    wait_for(lambda: path_of(driver) == "/ui/sign-in", LIVE, "the sign-in page")
    _SIGNED_IN.pop(id(driver), None)
    assert driver.get_cookie("vai_token") is None
    # The old cookie, replayed, is refused: the session ended on the server, not only here.
    replay = httpx.get(server.url(RUNS), cookies=old, timeout=10)
    assert replay.status_code == 401, replay.text
    # And the pages send you back to sign in.
    driver.get(server.url("/ui/approvals"))
    wait_for(lambda: path_of(driver) == "/ui/sign-in", what="the redirect to sign-in")
    assert_clean(driver)


# ------------------------------------------------------------------ no favicon ---------
def test_no_page_made_the_browser_ask_for_a_favicon(
    driver: webdriver.Chrome, server: Server
) -> None:
    # The last test of the module: every page of the ones before it, the sign-in, error
    # and not-found pages here, carry an icon, so none asked the server for /favicon.ico.
    sign_in(driver, server, "admin")
    for path in ("/ui/no-such-page", f"/ui/runs/{'0' * 8}-0000-0000-0000-{'0' * 12}"):
        driver.get(server.url(path))
        wait_for(lambda: css(driver, "#error-page"))
    time.sleep(0.5)
    assert "/favicon.ico" not in server.log()
    assert_clean(driver, r"no-such-page .*404", r"/ui/runs/0{8}.* 404")
