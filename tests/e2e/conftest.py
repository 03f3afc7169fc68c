"""The hub under test, started exactly as `make run` starts it, once for the whole e2e session.

`python -m hub.embedded run` from the repository root, in a temporary data directory of its own
and on free ports, given only through the variables the README documents (HASHHUB_VAR_DIR,
HASHHUB_PG_PORT, HASHHUB_REDIS_PORT, HASHHUB_WEB_PORT). `make test` points this process at the
white-box suite's throwaway servers (DATABASE_URL, REDIS_URL, ...): those are taken out of the
environment of the launcher and of every `manage.py` the tests run, so that all of them find the
e2e hub's own PostgreSQL and Redis from the HASHHUB_* variables alone, as a second shell would.

At the end the hub is stopped the way a process manager stops it (SIGTERM), and it must exit as
the launcher promises: with 128 + SIGTERM, its servers stopped, nothing left running or listening.
Starting, waiting, stopping and looking for what is left are tests/launched_hub.py's, shared with
tests/hub/test_launcher.py.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.e2e.helpers import LocalHub, RunningHub
from tests.launched_hub import answers, assert_nothing_left, clean_up, start, stop, wait_until


def _serve(running: RunningHub) -> Iterator[RunningHub]:
    try:
        launcher = start(running, running.log)
        try:
            wait_until(lambda: _ready(running), launcher, running.log, "ready")
            yield running
        finally:
            returncode = stop(launcher, signal.SIGTERM)
        assert returncode == 128 + signal.SIGTERM, (
            f"the launcher exited {returncode} on SIGTERM:\n{running.log_tail()}"
        )
        output_text = running.log.read_text(errors="replace")
        assert "Redis stopped" in output_text, running.log_tail()
        assert "PostgreSQL stopped" in output_text, running.log_tail()
        assert_nothing_left(running, launcher.pid, running.log)
    finally:
        clean_up(running)


@pytest.fixture(scope="session")
def hub() -> Iterator[RunningHub]:
    yield from _serve(RunningHub.new("hashhub-e2e-"))


@pytest.fixture(scope="session")
def local_hub() -> Iterator[LocalHub]:
    """A second hub, whose operator lets webhooks and sources reach 127.0.0.1."""
    running = LocalHub.new("hashhub-e2e-local-")
    yield from _serve(running)  # type: ignore[misc]


def _ready(hub: RunningHub) -> bool:
    return answers(hub.web_port, "/healthz") and answers(hub.web_port, "/readyz")


# The suite's own autouse fixtures set up the white-box test database, clear its cache and reset
# this process's match index. The e2e tests use none of those (their hub has its own servers and
# processes), so here they do nothing, and an e2e-only run creates no test database.
@pytest.fixture(scope="session", autouse=True)
def _announce_database() -> None:
    return None


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    return None


@pytest.fixture(autouse=True)
def _fresh_match_index() -> None:
    return None
