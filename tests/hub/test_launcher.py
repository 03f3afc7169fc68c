"""`make run` as a user runs it: the hub serves, and a signal stops all of it, servers included.

Each test starts the launcher the way `make run` does (`python -m hub.embedded run` from the
repository root), in a data directory of its own and on free ports, given only through the
documented variables. What is left afterwards is looked up in /proc: any process whose environment,
command line or working directory names that directory or one of those ports, or that is still in
the session the launcher was started in (hence `by_port=True` wherever this module asks).
The launching, waiting and looking up are tests/launched_hub.py's, shared with tests/e2e.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator

import pytest

from tests.launched_hub import (
    LaunchedHub,
    answers,
    assert_nothing_left,
    clean_up,
    embedded,
    listening,
    processes_of,
    start,
    stop,
    tail,
    wait_until,
)


def _celery_running(hub: LaunchedHub) -> bool:
    commands = [
        command for command in processes_of(hub, by_port=True) if "bin/celery -A hub" in command
    ]
    return all(any(role in c for c in commands) for role in (" worker ", " beat "))


@pytest.fixture(scope="module")
def hub() -> Iterator[LaunchedHub]:
    """One hub for the module: whichever test starts it first migrates and seeds it."""
    made = LaunchedHub.new("hashhub-launcher-")
    yield made
    clean_up(made, by_port=True)


@pytest.fixture
def new_hub() -> Iterator[LaunchedHub]:
    made = LaunchedHub.new("hashhub-launcher-")
    yield made
    clean_up(made, by_port=True)


# A process manager's stop and a closed terminal; Ctrl-C (SIGINT) is the next test's.
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_the_serving_hub_and_all_it_started(
    hub: LaunchedHub, signum: signal.Signals
) -> None:
    log = hub.root / f"run-{signum.name}.log"
    launcher = start(hub, log)
    try:
        wait_until(lambda: answers(hub.web_port, "/healthz"), launcher, log, "serving /healthz")
        # Celery's worker and beat run too, so that stopping them is part of what is tested.
        wait_until(lambda: _celery_running(hub), launcher, log, "running Celery")
    finally:
        returncode = stop(launcher, signum)
    assert returncode == 128 + signum, tail(log)
    output = log.read_text(errors="replace")
    assert f"{signum.name} received" in output
    assert "Redis stopped" in output
    assert "PostgreSQL stopped" in output
    assert_nothing_left(hub, launcher.pid, log, by_port=True)


def test_ctrl_c_during_the_migrations_stops_the_servers(new_hub: LaunchedHub) -> None:
    log = new_hub.root / "run.log"
    launcher = start(new_hub, log)
    try:
        # The launcher runs `manage.py migrate` once both servers are up; a first migrate takes
        # a while, and honcho starts only after it and the seeds.
        wait_until(
            lambda: any(
                "manage.py migrate" in command for command in processes_of(new_hub, by_port=True)
            ),
            launcher, log, "migrating",
        )  # fmt: skip
    finally:
        returncode = stop(launcher, signal.SIGINT)
    assert returncode == 128 + signal.SIGINT, tail(log)
    output = log.read_text(errors="replace")
    assert "SIGINT received" in output
    assert "PostgreSQL stopped" in output
    assert_nothing_left(new_hub, launcher.pid, log, by_port=True)


def test_a_port_taken_by_another_process_names_it_and_says_what_to_do(new_hub: LaunchedHub) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = embedded(new_hub, "up", HASHHUB_PG_PORT=str(port))
    assert result.returncode != 0
    message = result.stderr
    assert f"port {port} (HASHHUB_PG_PORT) is taken by pid {os.getpid()}" in message
    assert f"kill {os.getpid()}" in message
    assert not (new_hub.var / "postgres" / "PG_VERSION").exists()  # Nothing made for nothing.


def test_run_checks_the_web_port_before_it_starts_anything(new_hub: LaunchedHub) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = embedded(new_hub, "run", HASHHUB_WEB_PORT=str(port))
    assert result.returncode != 0
    assert f"port {port} (HASHHUB_WEB_PORT) is taken by pid {os.getpid()}" in result.stderr
    assert not (new_hub.var / "postgres").exists()
    assert not any(listening(p) for p in (new_hub.pg_port, new_hub.redis_port))


def test_a_port_held_by_another_embedded_hub_says_to_stop_that_one(hub: LaunchedHub) -> None:
    started = embedded(hub, "up")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        status = embedded(hub, "status")
        assert f"postgres: running (postgres://hashhub@127.0.0.1:{hub.pg_port}/" in status.stdout
        assert f"redis:    running (redis://127.0.0.1:{hub.redis_port}/0)" in status.stdout
        # A second data directory on the same ports: its PostgreSQL would collide with ours.
        other = embedded(hub, "up", HASHHUB_VAR_DIR=str(hub.root / "other"))
        assert other.returncode != 0
        assert f"port {hub.pg_port} (HASHHUB_PG_PORT) is taken by pid" in other.stderr
        assert f"`HASHHUB_VAR_DIR={hub.var} make services-down`" in other.stderr
    finally:
        stopped = embedded(hub, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not any(listening(port) for port in (hub.pg_port, hub.redis_port))
