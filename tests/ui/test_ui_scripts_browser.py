"""What dashboard.js does that the page tests cannot see, in a real browser (the same
``runkit serve`` and headless Chromium as test_dashboard_browser.py): a long log read page
by page to its end, the level filter (a level and those above it), the delete dialog, a
refused action's message, a retried run's log followed again, the raw JSON editor in step
with the fields, and signing in back to where one was going."""

from __future__ import annotations

import time
from typing import Any

import pytest
from browser_support import (  # noqa: F401 (the fixtures server and driver)
    RUNS,
    Server,
    api_log_ids,
    assert_clean,
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
    server_fixture,
    wait_for,
)
from selenium import webdriver
from selenium.webdriver.support.ui import Select

LIVE = 8.0
IDS = "return [...document.querySelectorAll('#logs .log-entry')].map(e => e.dataset.id)"


def create_id(server: Server, kind: str, definition: dict[str, Any], execute: bool) -> str:
    return str(create_run(server, kind, definition, execute)["id"])


@pytest.fixture(autouse=True)
def signed_in(driver: webdriver.Chrome, server: Server) -> None:
    """Each test starts signed in as the admin, its console drained."""
    if driver.get_cookie("vai_token") is None:
        driver.get(server.url("/ui/sign-in"))
        css(driver, "input#api-key").send_keys(server.keys["admin"])
        css(driver, "button#sign-in").click()
        wait_for(lambda: path_of(driver) == "/ui/", what="the runs page")
    driver.get_log("browser")


def api_status(server: Server, run_id: str) -> str:
    with server.client() as api:
        return str(api.get(f"{RUNS}/{run_id}").json()["status"])


def test_a_long_log_is_read_page_by_page_to_its_end(
    driver: webdriver.Chrome, server: Server
) -> None:
    run = create_id(server, "emit_logs", {"count": 1200}, execute=True)
    wait_for(lambda: api_status(server, run) == "succeeded", 30, "the run to end")
    expected = api_log_ids(server, run)
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
    assert_clean(driver)


def test_a_level_shows_its_entries_and_those_above_it(
    driver: webdriver.Chrome, server: Server
) -> None:
    # A failed run's log: info entries (its moves) and error entries (its failure).
    run = create_id(server, "fail_n_times", {"times": 1, "maxAttempts": 1}, execute=True)
    wait_for(lambda: api_status(server, run) == "failed", 30, "the run to fail")
    open_run(driver, server, run)
    wait_for(lambda: driver.execute_script(IDS) == api_log_ids(server, run), LIVE, "the log")
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
    assert_clean(driver)


def test_delete_asks_in_a_dialog_then_goes_to_the_runs(
    driver: webdriver.Chrome, server: Server
) -> None:
    run = create_id(server, "noop", {}, execute=False)
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
    assert_clean(driver)


def test_a_refused_action_shows_the_apis_message(driver: webdriver.Chrome, server: Server) -> None:
    run = create_id(server, "noop", {}, execute=False)
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
    assert_clean(driver, r"/execute .* 409")


def test_a_retried_run_is_followed_again(driver: webdriver.Chrome, server: Server) -> None:
    run = create_id(server, "fail_n_times", {"times": 1, "maxAttempts": 1}, execute=True)
    wait_for(lambda: api_status(server, run) == "failed", 30, "the run to fail")
    open_run(driver, server, run)
    mark_page(driver)
    before = driver.execute_script(IDS)
    assert before == api_log_ids(server, run)
    css(driver, 'button[data-action="retry"]').click()
    wait_for(
        lambda: css(driver, "#run-status").get_attribute("data-status") == "succeeded",
        LIVE + 5,
        "the retried run to succeed",
    )
    wait_for(
        lambda: driver.execute_script(IDS) == api_log_ids(server, run), LIVE, "the new entries"
    )
    assert len(driver.execute_script(IDS)) > len(before)
    assert same_page(driver)
    assert_clean(driver)


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
    assert_clean(driver)


def test_signing_in_returns_to_where_one_was_going(
    driver: webdriver.Chrome, server: Server
) -> None:
    driver.delete_all_cookies()
    driver.get(server.url("/ui/workers"))
    wait_for(lambda: path_of(driver) == "/ui/sign-in", what="the sign-in page")
    css(driver, "input#api-key").send_keys(server.keys["admin"])
    css(driver, "button#sign-in").click()
    wait_for(lambda: path_of(driver) == "/ui/workers", LIVE, "the workers page")
    assert_clean(driver)
