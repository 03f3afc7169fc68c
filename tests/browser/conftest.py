"""Real-browser fixtures: Debian's Chromium, headless, driven by Playwright's sync API.

The hub runs in pytest-django's ``live_server`` thread inside this process, so mail it sends
lands in ``mailoutbox`` and the test can read the database directly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.helpers import ARTIFACTS

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page
    from pytest_django.live_server_helper import LiveServer

# Playwright's sync API keeps an asyncio event loop registered as running on the test thread.
# Django then takes every ORM call from that thread for a call from async code and refuses it
# (SynchronousOnlyOperation), although nothing here is really concurrent: the live server has
# its own thread and connection. This must be set before the first such call, hence module level.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Long enough for a cold first request to the live server, short enough to fail fast.
DEFAULT_TIMEOUT_MS = 15_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the item so the page fixture knows whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module.

    Module scope, not session scope: Playwright's event loop must not stay registered on the
    thread while the rest of the suite (which runs after ``tests/browser``) executes.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM}: browser tests SKIPPED")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@contextmanager
def _fresh_page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest, suffix: str = ""
) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    context.set_default_timeout(DEFAULT_TIMEOUT_MS)
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / f"failed-{request.node.name}{suffix}.png"
            new_page.screenshot(path=shot, full_page=True)
        context.close()


@pytest.fixture
def page(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser context (no cookies) whose relative URLs go to the live server.

    When the test fails, the page as it was is saved to ``var/test-artifacts/failed-<test>.png``.
    """
    with _fresh_page(browser, live_server, request) as new_page:
        yield new_page


@pytest.fixture
def page_b(
    browser: Browser, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A second browser context, with cookies of its own (another organisation's member)."""
    with _fresh_page(browser, live_server, request, "-org-b") as new_page:
        yield new_page
