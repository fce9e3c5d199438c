"""What the dashboard's browser tests share: a real ``runkit serve`` (a subprocess on
loopback, a SQLite file, two embedded worker slots, the test kinds) with keys made by
``runkit keys create`` beforehand, Debian's headless Chromium driven by Selenium through
chromium-driver (without them the tests fail, never skip: ``make browser`` installs them),
and the waits, console checks and screenshots the tests use.

A test module imports the fixtures (``server_fixture``, ``driver_fixture``) to use
``server`` and ``driver``. A plain module, not a package (see tests/run_support.py).

Chromium makes no DNS lookup of its own (``--host-resolver-rules``) and no background
request; the only server it talks to is the one started here on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from chromium import headless_chrome
from serve_support import create_key, serve_process

REPO = Path(__file__).resolve().parents[2]
IMAGES = REPO / "docs" / "images"
#: Screenshots for docs/dashboard.md are written only when this is "1" (CI keeps the tree).
SCREENSHOTS_ENV = "RUNKIT_SCREENSHOTS"
WIDE = (1280, 800)
PHONE = (390, 844)

T = TypeVar("T")


# ------------------------------------------------------------------ the server ----------
class Server:
    """A running ``runkit serve`` and the keys made for it (by name)."""

    def __init__(
        self, proc: subprocess.Popen[bytes], base: str, keys: dict[str, str], output: Path
    ) -> None:
        self.proc, self.base, self.keys, self.output = proc, base, keys, output

    def url(self, path: str) -> str:
        return self.base + path

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def client(self, key: str = "admin") -> httpx.Client:
        """An API client with one of the keys as ``X-API-Key`` (only to set things up)."""
        headers = {"X-API-Key": self.keys[key]}
        return httpx.Client(base_url=self.base, headers=headers, timeout=10)


SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
#: The keys the module's server accepts: name -> (roles, person flags of `keys create`).
KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "admin": ("admin", ("--first-name", "Ada", "--last-name", "Lovelace")),
    "reader": ("read", ("--first-name", "Rita", "--last-name", "Reader")),
    # A person whose name is markup: the runs table and the header must show it as text.
    "mallory": ("operate", ("--first-name", SCRIPT, "--last-name", IMG)),
}


@pytest.fixture(name="server", scope="module")
def server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``runkit serve --workers 2`` on a free loopback port and a SQLite file of its own,
    its keys made first with ``runkit keys create`` (so none is generated)."""
    tmp = tmp_path_factory.mktemp("dashboard")
    database = f"sqlite:///{tmp / 'runkit.db'}"
    keys = {name: create_key(database, name, roles, *who) for name, (roles, who) in KEYS.items()}
    with serve_process(database, tmp) as (proc, url, log):
        yield Server(proc, url, keys, log)


# ------------------------------------------------------------------ the browser ---------
@pytest.fixture(name="driver", scope="module")
def driver_fixture() -> Iterator[webdriver.Chrome]:
    with headless_chrome(*WIDE) as driver:
        viewport(driver, *WIDE)
        yield driver


def viewport(driver: webdriver.Chrome, width: int, height: int, mobile: bool = False) -> None:
    """Size the page's viewport exactly (a headless window's size includes no chrome, but
    this also sets the device's mobile flag and pixel ratio)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def color_scheme(driver: webdriver.Chrome, scheme: str) -> None:
    """Emulate ``prefers-color-scheme`` (``dark``/``light``; ``""`` for the default)."""
    features = [{"name": "prefers-color-scheme", "value": scheme}]
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "", "features": features})


def wait_for(
    condition: Callable[[], T], within: float = 10.0, what: str = "", every: float = 0.05
) -> T:
    """``condition()`` once it is truthy; fails after ``within`` seconds with ``what``."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = condition()
        except Exception as exc:  # an element not there yet, a stale one
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what or condition} (last: {last!r})")
        time.sleep(every)


def mark_page(driver: webdriver.Chrome) -> None:
    """Tag the loaded document; :func:`same_page` then says it was not reloaded."""
    driver.execute_script("window.__runkitTestMark = 'kept'")


def same_page(driver: webdriver.Chrome) -> bool:
    return bool(driver.execute_script("return window.__runkitTestMark === 'kept'"))


def no_alert(driver: webdriver.Chrome) -> bool:
    """True when no alert (or confirm/prompt) dialog is open."""
    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return True
    text = alert.text
    alert.dismiss()
    pytest.fail(f"an alert opened: {text!r}")


def console_errors(driver: webdriver.Chrome, allow: Iterable[str] = ()) -> list[dict[str, Any]]:
    """The SEVERE console entries logged since the last call (the log is drained), except
    those matching one of the ``allow`` patterns (an error answer a test provokes on
    purpose: Chromium logs every failed fetch, whatever the page does). No favicon 404 is
    excused: every page carries its own (empty) icon."""
    patterns = [re.compile(p) for p in allow]
    return [
        entry
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(p.search(entry["message"]) for p in patterns)
    ]


def screenshot(driver: webdriver.Chrome, name: str, whole: bool = False) -> None:
    """docs/images/dashboard-<name>.png of the viewport (``whole``: of the whole page, as
    tall as its content), when RUNKIT_SCREENSHOTS=1."""
    if os.environ.get(SCREENSHOTS_ENV) != "1":
        return
    time.sleep(0.3)  # let a live refresh or a transition settle
    width = driver.execute_script("return window.innerWidth")
    if whole:
        # A headless window cannot outgrow the screen: the viewport is set through the
        # DevTools protocol instead, then put back.
        height = driver.execute_script("return document.documentElement.scrollHeight")
        viewport(driver, width, height)
        time.sleep(0.3)
    try:
        png: bytes = driver.get_screenshot_as_png()
    finally:
        if whole:
            viewport(driver, *WIDE)
    assert png.startswith(b"\x89PNG")
    IMAGES.mkdir(parents=True, exist_ok=True)
    (IMAGES / f"dashboard-{name}.png").write_bytes(png)


# ------------------------------------------------------------------ page and API helpers --
RUNS = "/api/v1/action-runs"


def css(driver: webdriver.Chrome | WebElement, selector: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, selector)


def css_all(driver: webdriver.Chrome | WebElement, selector: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def path_of(driver: webdriver.Chrome) -> str:
    return urlsplit(driver.current_url).path


def open_run(driver: webdriver.Chrome, server: Server, run_id: str) -> None:
    driver.get(server.url(f"/ui/runs/{run_id}"))
    wait_for(lambda: css(driver, f'#run[data-run-id="{run_id}"]'), what="the run page")


def assert_clean(driver: webdriver.Chrome, *allow: str) -> None:
    """No alert open, and no console error since the last look but the ``allow``ed ones."""
    assert no_alert(driver)
    assert console_errors(driver, allow) == []


def create_run(
    server: Server, kind: str, definition: dict[str, Any], execute: bool = False
) -> dict[str, Any]:
    """A run made through the API with the admin key (a fixture, not what is tested)."""
    with server.client() as api:
        answer = api.post(
            RUNS,
            params={"execute": str(execute).lower()},
            json={"kind": kind, "definition": definition},
        )
    assert answer.status_code == 201, answer.text
    run: dict[str, Any] = answer.json()
    return run


def api_log_ids(server: Server, run_id: str) -> list[str]:
    """The ids of the run's whole log, as the API pages it."""
    ids: list[str] = []
    after = ""
    with server.client() as api:
        while True:
            page = api.get(f"{RUNS}/{run_id}/logs", params={"after": after, "limit": 500})
            assert page.status_code == 200, page.text
            body = page.json()
            ids += [entry["id"] for entry in body["entries"]]
            if not body["hasMore"]:
                return ids
            after = body["nextCursor"]
