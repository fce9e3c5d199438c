"""What dashboard.js does that the page tests cannot see, in a real browser (the same
``runkit serve`` and headless Chromium as test_dashboard_browser.py): a long log read page
by page to its end, the level filter (a level and those above it), the delete dialog, a
refused action's message, a retried run's log followed again, the raw JSON editor in step
with the fields, and signing in back to where one was going."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from browser_support import (  # noqa: F401 (the fixtures server and driver)
    Server,
    console_errors,
    driver_fixture,
    mark_page,
    no_alert,
    same_page,
    server_fixture,
    wait_for,
)
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select

RUNS = "/api/v1/action-runs"
LIVE = 8.0
IDS = "return [...document.querySelectorAll('#logs .log-entry')].map(e => e.dataset.id)"


def css(driver: webdriver.Chrome | WebElement, selector: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, selector)


def css_all(driver: webdriver.Chrome | WebElement, selector: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def path_of(driver: webdriver.Chrome) -> str:
    return urlsplit(driver.current_url).path


@pytest.fixture(autouse=True)
def signed_in(driver: webdriver.Chrome, server: Server) -> None:
    """Each test starts signed in as the admin, its console drained."""
    if driver.get_cookie("vai_token") is None:
        driver.get(server.url("/ui/sign-in"))
        css(driver, "input#api-key").send_keys(server.keys["admin"])
        css(driver, "button#sign-in").click()
        wait_for(lambda: path_of(driver) == "/ui/", what="the runs page")
    driver.get_log("browser")


def create(server: Server, kind: str, definition: dict[str, Any], execute: bool) -> str:
    with server.client() as api:
        answer = api.post(
            RUNS,
            params={"execute": str(execute).lower()},
            json={"kind": kind, "definition": definition},
        )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def api_status(server: Server, run_id: str) -> str:
    with server.client() as api:
        return str(api.get(f"{RUNS}/{run_id}").json()["status"])


def api_ids(server: Server, run_id: str) -> list[str]:
    ids: list[str] = []
    after = ""
    with server.client() as api:
        while True:
            body = api.get(f"{RUNS}/{run_id}/logs", params={"after": after, "limit": 500}).json()
            ids += [e["id"] for e in body["entries"]]
            if not body["hasMore"]:
                return ids
            after = body["nextCursor"]


def open_run(driver: webdriver.Chrome, server: Server, run_id: str) -> None:
    driver.get(server.url(f"/ui/runs/{run_id}"))
    wait_for(lambda: css(driver, f'#run[data-run-id="{run_id}"]'), what="the run page")


def clean(driver: webdriver.Chrome, *allow: str) -> None:
    assert no_alert(driver)
    assert console_errors(driver, allow) == []


def test_a_long_log_is_read_page_by_page_to_its_end(
    driver: webdriver.Chrome, server: Server
) -> None:
    run = create(server, "emit_logs", {"count": 1200}, execute=True)
    wait_for(lambda: api_status(server, run) == "succeeded", 30, "the run to end")
    expected = api_ids(server, run)
    assert len(expected) > 1200
    open_run(driver, server, run)
    mark_page(driver)
    # Following the newest (the default), the page reads on from its first 200 entries.
    wait_for(lambda: driver.execute_script(IDS) == expected, LIVE, "every entry, in order")
    assert same_page(driver)
    # The level filter hides what is below that level; "all" shows everything again.
    entries = css_all(driver, "#logs .log-entry")
    Select(css(driver, "select#log-level")).select_by_value("error")
    assert not any(e.is_displayed() for e in entries[:20])
    Select(css(driver, "select#log-level")).select_by_value("info")
    assert entries[-2].is_displayed()
    Select(css(driver, "select#log-level")).select_by_value("all")
    assert entries[0].is_displayed()
    clean(driver)


def test_a_level_shows_its_entries_and_those_above_it(
    driver: webdriver.Chrome, server: Server
) -> None:
    # A failed run's log: info entries (its moves) and error entries (its failure).
    run = create(server, "fail_n_times", {"times": 1, "maxAttempts": 1}, execute=True)
    wait_for(lambda: api_status(server, run) == "failed", 30, "the run to fail")
    open_run(driver, server, run)
    wait_for(lambda: driver.execute_script(IDS) == api_ids(server, run), LIVE, "the log")
    shown_levels = (
        "return [...document.querySelectorAll('#logs .log-entry')]"
        ".filter(e => e.offsetParent !== null).map(e => e.dataset.level)"
    )
    every = driver.execute_script(shown_levels)
    assert {"info", "error"} <= set(every), every
    expected = {
        "all": every,
        "debug": every,
        "info": [v for v in every if v in ("info", "warning", "error")],
        "warning": [v for v in every if v in ("warning", "error")],
        "error": [v for v in every if v == "error"],
    }
    for level, levels in expected.items():
        Select(css(driver, "select#log-level")).select_by_value(level)
        assert driver.execute_script(shown_levels) == levels, level
    Select(css(driver, "select#log-level")).select_by_value("all")
    clean(driver)


def test_delete_asks_in_a_dialog_then_goes_to_the_runs(
    driver: webdriver.Chrome, server: Server
) -> None:
    run = create(server, "noop", {}, execute=False)
    open_run(driver, server, run)
    dialog = css(driver, "dialog#confirm-delete")
    assert not dialog.is_displayed()
    css(driver, 'button[data-action="delete"]').click()
    wait_for(dialog.is_displayed, what="the dialog")
    css(driver, "button#confirm-delete-no").click()
    wait_for(lambda: not dialog.is_displayed(), what="the dialog to close")
    assert api_status(server, run) == "pending"
    css(driver, 'button[data-action="delete"]').click()
    wait_for(dialog.is_displayed, what="the dialog")
    css(driver, "button#confirm-delete-yes").click()
    wait_for(lambda: path_of(driver) == "/ui/", LIVE, "the runs page")
    with server.client() as api:
        assert api.get(f"{RUNS}/{run}").status_code == 404
    clean(driver)


def test_a_refused_action_shows_the_apis_message(driver: webdriver.Chrome, server: Server) -> None:
    run = create(server, "noop", {}, execute=False)
    open_run(driver, server, run)
    # Hold the live refresh, so the page still offers what the run no longer allows.
    driver.execute_script(
        "document.addEventListener('htmx:beforeRequest', e => e.preventDefault())"
    )
    with server.client() as api:
        assert api.post(f"{RUNS}/{run}/cancel").is_success
    error = css(driver, "#action-error")
    assert not error.is_displayed()
    css(driver, 'button[data-action="execute"]').click()
    wait_for(lambda: error.is_displayed() and "cancelled" in error.text, LIVE, "#action-error")
    clean(driver, r"/execute .* 409")


def test_a_retried_run_is_followed_again(driver: webdriver.Chrome, server: Server) -> None:
    run = create(server, "fail_n_times", {"times": 1, "maxAttempts": 1}, execute=True)
    wait_for(lambda: api_status(server, run) == "failed", 30, "the run to fail")
    open_run(driver, server, run)
    mark_page(driver)
    before = driver.execute_script(IDS)
    assert before == api_ids(server, run)
    css(driver, 'button[data-action="retry"]').click()
    wait_for(
        lambda: css(driver, "#run-status").get_attribute("data-status") == "succeeded",
        LIVE + 5,
        "the retried run to succeed",
    )
    wait_for(lambda: driver.execute_script(IDS) == api_ids(server, run), LIVE, "the new entries")
    assert len(driver.execute_script(IDS)) > len(before)
    assert same_page(driver)
    clean(driver)


def test_the_raw_editor_and_the_fields_stay_in_step(
    driver: webdriver.Chrome, server: Server
) -> None:
    driver.get(server.url("/ui/new?kind=approval_gate"))
    title = wait_for(lambda: css(driver, '[name="definition.title"]'))
    title.clear()
    title.send_keys("From the field")
    css(driver, "button#raw-toggle").click()
    raw = wait_for(lambda: (e := css(driver, "textarea#definition-json")).is_displayed() and e)
    assert '"title": "From the field"' in (raw.get_attribute("value") or "")
    raw.clear()
    raw.send_keys('{"title": "From the JSON", "requiredApprovals": 2}')
    assert title.get_attribute("value") == "From the JSON"
    assert css(driver, '[name="definition.requiredApprovals"]').get_attribute("value") == "2"
    raw.send_keys("}")  # not JSON any more: the editor will not close
    css(driver, "button#raw-toggle").click()
    error = css(driver, '.field-error[data-for="definition"]')
    wait_for(lambda: error.is_displayed() and error.text, what="the JSON error")
    assert raw.is_displayed()
    time.sleep(0.2)
    clean(driver)


def test_signing_in_returns_to_where_one_was_going(
    driver: webdriver.Chrome, server: Server
) -> None:
    driver.delete_all_cookies()
    driver.get(server.url("/ui/workers"))
    wait_for(lambda: path_of(driver) == "/ui/sign-in", what="the sign-in page")
    css(driver, "input#api-key").send_keys(server.keys["admin"])
    css(driver, "button#sign-in").click()
    wait_for(lambda: path_of(driver) == "/ui/workers", LIVE, "the workers page")
    clean(driver)
