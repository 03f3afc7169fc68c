"""Small steps the browser tests share."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import ConsoleMessage, Page, Response

REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO_ROOT / "var" / "test-artifacts"


def submit(page: Page, label: str) -> None:
    """Press the page's own button (never the header's "Sign out") by its exact label."""
    page.locator("main").get_by_role("button", name=label, exact=True).click()


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.locator("input[name=login]").fill(email)
    page.locator("input[name=password]").fill(password)
    submit(page, "Sign In")


def log_out(page: Page) -> None:
    page.locator("header").get_by_role("button", name="Sign out", exact=True).click()


def reauthenticate(page: Page, password: str) -> None:
    """allauth asks for the password again before MFA changes; a fresh login does not count."""
    page.locator("input[name=password]").fill(password)
    submit(page, "Confirm")


def watch_for_problems(page: Page) -> list[str]:
    """Collect, from now on, uncaught JavaScript errors, console errors and 5xx answers.

    Chromium also logs "Failed to load resource" for every 4xx it receives; those are left out,
    because the hub answers 400 to a refused form on purpose (and has no ``/favicon.ico``, which
    Chromium asks for on its own). Statuses that are problems are caught as responses instead.
    """
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            problems.append(f"console error: {message.text} at {message.location}")

    def on_response(response: Response) -> None:
        if response.status >= 500:
            problems.append(f"{response.status} from {response.url}")

    page.on("pageerror", lambda error: problems.append(f"uncaught JavaScript error: {error}"))
    page.on("console", on_console)
    page.on("response", on_response)
    return problems
