"""The hub under test, started exactly as `make run` starts it, once for the whole e2e session.

`python -m hub.embedded run` from the repository root, in a temporary data directory of its own
and on free ports, given only through the variables the README documents (HASHHUB_VAR_DIR,
HASHHUB_PG_PORT, HASHHUB_REDIS_PORT, HASHHUB_WEB_PORT). `make test` points this process at the
white-box suite's throwaway servers (DATABASE_URL, REDIS_URL, ...): those are taken out of the
environment of the launcher and of every `manage.py` the tests run, so that all of them find the
e2e hub's own PostgreSQL and Redis from the HASHHUB_* variables alone, as a second shell would.

At the end the hub is stopped the way a process manager stops it (SIGTERM), and it must exit as
the launcher promises: with 128 + SIGTERM, its servers stopped, nothing left running or listening.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import ROOT, RunningHub

# Generous limits, polled and never asserted on: a first start runs initdb and every migration,
# on a small machine that may be running other suites.
START_SECONDS = 300
STOP_SECONDS = 120


@pytest.fixture(scope="session")
def hub() -> Iterator[RunningHub]:
    root = Path(tempfile.mkdtemp(prefix="hashhub-e2e-"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root, and must reach var/.
    running = RunningHub(root, *_free_ports(3))
    try:
        with running.log.open("wb") as output:
            launcher = subprocess.Popen(
                [sys.executable, "-m", "hub.embedded", "run"], cwd=ROOT,
                env=running.environment(), stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        try:
            _wait_until_ready(running, launcher)
            yield running
        finally:
            returncode = _stop(launcher)
        assert returncode == 128 + signal.SIGTERM, (
            f"the launcher exited {returncode} on SIGTERM:\n{running.log_tail()}"
        )
        output_text = running.log.read_text(errors="replace")
        assert "Redis stopped" in output_text, running.log_tail()
        assert "PostgreSQL stopped" in output_text, running.log_tail()
        _assert_nothing_left(running, session=launcher.pid)
    finally:
        _clean_up(running)


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


# --- starting and stopping ------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    # All bound at once, so that no two are the same.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until_ready(hub: RunningHub, launcher: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not (_answers(f"{hub.url}/healthz") and _answers(f"{hub.url}/readyz")):
        if launcher.poll() is not None:
            exited = f"the launcher exited ({launcher.returncode}) before serving"
            pytest.fail(f"{exited}:\n{hub.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"the hub is still not ready after {START_SECONDS} s:\n{hub.log_tail()}")
        time.sleep(0.25)


def _stop(launcher: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a process manager stops it; its session is killed if it does not exit."""
    launcher.send_signal(signal.SIGTERM)
    try:
        return launcher.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait()
        raise


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _proc_text(pid: int, name: str) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / name).read_bytes().replace(b"\0", b" ").decode()
    return ""


def _processes_of(hub: RunningHub, session: int | None = None) -> list[str]:
    """The live processes of this hub (by environment, command line, directory or session)."""
    env_entry = f"HASHHUB_VAR_DIR={hub.var}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        fields = _proc_text(pid, "stat").rsplit(")", 1)[-1].split()
        if len(fields) < 4 or fields[0] == "Z":  # Gone meanwhile, or a zombie holding nothing.
            continue
        command = _proc_text(pid, "cmdline")
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            environ, cwd = [], ""
        if (
            env_entry in environ
            or str(hub.root) in command
            or cwd.startswith(str(hub.root))
            or (session is not None and int(fields[3]) == session)
        ):
            found.append(f"{pid} {command.strip()}")
    return found


def _assert_nothing_left(hub: RunningHub, session: int) -> None:
    # The launcher has exited; a process it stopped may still need a moment to be reaped.
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and (
        _processes_of(hub, session) or any(_listening(port) for port in hub.ports)
    ):
        time.sleep(0.25)
    left = _processes_of(hub, session)
    assert not left, "left running:\n" + "\n".join(left) + f"\n\n{hub.log_tail()}"
    listening = [port for port in hub.ports if _listening(port)]
    assert not listening, f"still listening on {listening}:\n{hub.log_tail()}"


def _clean_up(hub: RunningHub) -> None:
    """Whatever a failure left behind, of this hub only; then its directory."""
    if _processes_of(hub):
        subprocess.run(
            [sys.executable, "-m", "hub.embedded", "down"], cwd=ROOT, env=hub.environment(),
            capture_output=True, timeout=STOP_SECONDS, check=False,
        )  # fmt: skip
        for process in _processes_of(hub):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process.split()[0]), signal.SIGKILL)
    shutil.rmtree(hub.root, ignore_errors=True)
