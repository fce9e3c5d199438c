"""create_flashboard's page in a real browser: Debian's headless Chromium, driven by
Selenium through chromium-driver (both installed by the test set-up; without them these
tests fail, they never skip). Every chart draws an SVG, the console stays free of errors,
nothing in a title or the data runs as script, and the page fetches nothing, even when a
spec names a URL. With RUNKIT_WRITE_SCREENSHOTS=1 the dashboard's screenshot is written to
docs/kinds/create_flashboard.png for the kind's page.

Chromium makes no DNS lookup of its own (``--host-resolver-rules``) and no background
request; the only server is one this test starts on loopback.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver

from chromium import headless_chrome
from flashboard_support import (  # noqa: F401 (the fixture root)
    DATABASE,
    PLUGINS,
    QUERIES,
    root_fixture,
    succeeded,
)
from run_support import FAST, SETTINGS
from runkit import Runkit
from runkit.engine import embedded_workers
from runkit.kinds.flashboard import page
from web_support import serving

pytestmark = pytest.mark.anyio
SCREENSHOT = Path(__file__).parent.parent / "docs" / "kinds" / "create_flashboard.png"
INJECTION = "</script><script>window.pwned = 1</script><!--"


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with headless_chrome() as driver:
        yield driver


@pytest.fixture
async def rk(root: Path) -> AsyncIterator[Runkit]:
    """The page does not depend on the store: one Runkit on memory draws it."""
    async with (
        Runkit("memory://", settings=SETTINGS, plugins=PLUGINS, autoload_plugins=False) as rk,
        embedded_workers(rk, concurrency=2, **FAST),
    ):
        yield rk


def open_page(browser: webdriver.Chrome, path: Path, within: float = 20.0) -> float:
    """Load ``path`` and wait until every chart is drawn or has failed; the seconds taken."""
    browser.get_log("browser")  # drop what earlier pages logged
    began = time.monotonic()
    browser.get(path.as_uri())
    while not browser.execute_script("return document.body.getAttribute('data-ready')"):
        assert time.monotonic() - began < within, "the charts were not drawn in time"
        time.sleep(0.05)
    return time.monotonic() - began


def drawn(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    script = """return Array.from(document.querySelectorAll('.chart')).map(e => ({
        type: e.dataset.type, rendered: e.dataset.rendered,
        graphics: e.querySelectorAll('svg, canvas').length, text: e.textContent}))"""
    charts: list[dict[str, Any]] = browser.execute_script(script)
    return charts


def whole_page(browser: webdriver.Chrome, width: int = 1400) -> bytes:
    """A PNG of the whole page, as tall as its content (a window cannot outgrow the screen
    in headless mode, so the viewport is set through the DevTools protocol)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        time.sleep(0.3)  # charts sized to their container redraw at the new width
        png: bytes = browser.get_screenshot_as_png()
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert png.startswith(b"\x89PNG")
    return png


def errors(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    return [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


async def test_every_chart_draws_without_a_console_error(
    rk: Runkit, root: Path, browser: webdriver.Chrome
) -> None:
    result = await succeeded(
        rk, {"title": "Sales overview", "database": DATABASE, "queries": QUERIES}
    )
    html = root / result["path"]
    seconds = open_page(browser, html)
    charts = drawn(browser)
    assert [c["type"] for c in charts] == [c["type"] for c in result["charts"]]
    assert {c["type"] for c in charts} == {"number", "line", "area", "bar", "scatter", "table"}
    for chart in charts:
        assert chart["rendered"] == "true" and chart["graphics"] >= 1, chart
    assert errors(browser) == []
    resources = browser.execute_script("return performance.getEntriesByType('resource').length")
    assert resources == 0  # nothing fetched: the libraries and the data are in the page
    size = html.stat().st_size
    print(f"\ncreate_flashboard page: {size:,} bytes, drawn in {seconds:.2f} s")
    if os.environ.get("RUNKIT_WRITE_SCREENSHOTS") == "1":
        SCREENSHOT.write_bytes(whole_page(browser))


async def test_a_title_or_a_value_never_runs_as_script(
    rk: Runkit, root: Path, browser: webdriver.Chrome
) -> None:
    queries = [
        {"title": INJECTION, "sql": f"SELECT $${INJECTION}$$ AS label, 1 AS n"},
        {"title": "Cells", "sql": f'SELECT $${INJECTION}$$ AS "{INJECTION}", [1, 2] AS l'},
    ]
    result = await succeeded(rk, {"title": INJECTION, "database": DATABASE, "queries": queries})
    open_page(browser, root / result["path"])
    assert browser.execute_script("return typeof window.pwned") == "undefined"
    assert browser.title == INJECTION
    assert browser.execute_script("return document.querySelector('h1').textContent") == INJECTION
    charts = drawn(browser)
    assert [c["rendered"] for c in charts] == ["true", "true"]
    assert INJECTION in charts[0]["text"]  # the chart's title, drawn as text
    assert "</script><script>win" in charts[1]["text"]  # a column name and a cell, cut short
    assert errors(browser) == []


def test_the_page_fetches_nothing_even_when_a_spec_names_a_url(
    browser: webdriver.Chrome, tmp_path: Path
) -> None:
    with serving("127.0.0.1") as server:
        spec = {
            "data": {"url": server.url("/data.json")},
            "mark": "point",
            "encoding": {"x": {"field": "a", "type": "quantitative"}},
        }
        chart = {"title": "Remote", "type": "scatter", "spec": spec}
        html = tmp_path / "remote.html"
        bundle = page.javascript_bundle()
        html.write_text(page.render("Remote", [chart], datetime.now(UTC), bundle), "utf-8")
        open_page(browser, html)
        time.sleep(0.3)
        assert server.connections == 0 and server.requests == []
    refused = [e["message"] for e in errors(browser)]
    assert any("Content Security Policy" in m for m in refused), refused
