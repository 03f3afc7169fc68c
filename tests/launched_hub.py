"""A hub started as `make run` starts it, for the tests that need one (tests/hub/test_launcher.py,
tests/e2e): `python -m hub.embedded run` from the repository root, in a temporary data directory of
its own and on free ports, given only through the variables the README documents
(HASHHUB_VAR_DIR, HASHHUB_PG_PORT, HASHHUB_REDIS_PORT, HASHHUB_WEB_PORT).

What is left of it afterwards is looked up in /proc: any process whose environment, command line or
working directory names its directory (optionally, one of its ports), or that is still in the
session the launcher was started in.

Nothing here imports the hub's code: the e2e tests see only what a user would see.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Generous limits, polled and never asserted on: a first start runs initdb and every migration,
# on a small machine that may be running other suites.
START_SECONDS = 300
STOP_SECONDS = 120
# What `make test` sets for the white-box suite (hub/embedded.py, cmd_test) and what the settings
# would read before the HASHHUB_* ports: none of it may reach a launched hub or its commands, which
# must find their own servers from the HASHHUB_* variables alone, as a second shell would.
SUITE_VARIABLES = frozenset(
    {
        "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "HASHHUB_SITE_URL", "HASHHUB_VAR_DIR",
        "HASHHUB_INDEX_DIR", "HASHHUB_FEED_DIR", "DJANGO_STATIC_ROOT", "HASHHUB_PG_PORT",
        "HASHHUB_REDIS_PORT", "HASHHUB_WEB_PORT",
    }
)  # fmt: skip


@dataclass(frozen=True)
class LaunchedHub:
    """One embedded hub: a temporary directory (its data under var/) and three ports."""

    root: Path
    pg_port: int
    redis_port: int
    web_port: int

    @classmethod
    def new(cls, prefix: str) -> Self:
        """A hub in a new temporary directory (named with `prefix`), on three free ports."""
        root = Path(tempfile.mkdtemp(prefix=prefix))
        root.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root, and must reach var/.
        return cls(root, *free_ports(3))

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.pg_port, self.redis_port, self.web_port

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """This process's environment without the suite's servers, plus this hub's variables."""
        env = {name: value for name, value in os.environ.items() if name not in SUITE_VARIABLES}
        env.update(
            HASHHUB_VAR_DIR=str(self.var),
            HASHHUB_PG_PORT=str(self.pg_port),
            HASHHUB_REDIS_PORT=str(self.redis_port),
            HASHHUB_WEB_PORT=str(self.web_port),
        )
        env.update(extra or {})
        return env


def free_ports(count: int) -> list[int]:
    # All bound at once, so that no two are the same.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def tail(log: Path) -> str:
    """The end of a launcher's output, for a failure's message."""
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no output)"


# --- running it -------------------------------------------------------------------------------


def embedded(hub: LaunchedHub, action: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """`python -m hub.embedded ACTION` for this hub (and `extra` variables), output captured."""
    return subprocess.run(
        [sys.executable, "-m", "hub.embedded", action],
        cwd=ROOT, env=hub.environment(extra), capture_output=True, text=True,
        timeout=START_SECONDS, check=False,
    )  # fmt: skip


def start(hub: LaunchedHub, log: Path) -> subprocess.Popen[bytes]:
    """`python -m hub.embedded run` as `make run` runs it, in a session of its own, into `log`."""
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.embedded", "run"], cwd=ROOT, env=hub.environment(),
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def answers(port: int, path: str) -> bool:
    """Whether GET `path` on the hub's web port answers 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_until(
    condition: Callable[[], object], launcher: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    """Poll `condition` until it holds; fail if the launcher exits first or it takes too long."""
    deadline = time.monotonic() + START_SECONDS
    while not condition():
        if launcher.poll() is not None:
            pytest.fail(f"the launcher exited ({launcher.returncode}) before {what}:\n{tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"the launcher is still not {what} after {START_SECONDS} s:\n{tail(log)}")
        time.sleep(0.25)


def stop(launcher: subprocess.Popen[bytes], signum: int) -> int:
    """Send `signum` to the launcher and wait for it; kill its session if it does not exit."""
    launcher.send_signal(signum)
    try:
        return launcher.wait(timeout=STOP_SECONDS)
    finally:
        if launcher.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


# --- what is left of it -----------------------------------------------------------------------


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def proc_text(pid: int, name: str) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / name).read_bytes().replace(b"\0", b" ").decode()
    return ""


def processes_of(
    hub: LaunchedHub, session: int | None = None, *, by_port: bool = False
) -> list[str]:
    """The live processes that belong to `hub`, each as "pid command".

    Those whose environment, command line or working directory names its directory, those in
    `session`, and with `by_port` those whose command line names one of its ports.
    """
    env_entry = f"HASHHUB_VAR_DIR={hub.var}".encode()
    ports = [*(f":{port}" for port in hub.ports), f"-p {hub.pg_port} "] if by_port else []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        fields = proc_text(pid, "stat").rsplit(")", 1)[-1].split()
        if len(fields) < 4 or fields[0] == "Z":  # Gone meanwhile, or a zombie holding nothing.
            continue
        command = proc_text(pid, "cmdline")
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            environ, cwd = [], ""
        if (
            env_entry in environ
            or str(hub.root) in command
            or cwd.startswith(str(hub.root))
            or any(port in command for port in ports)
            or (session is not None and int(fields[3]) == session)
        ):
            found.append(f"{pid} {command.strip()}")
    return found


def assert_nothing_left(
    hub: LaunchedHub, session: int, log: Path, *, by_port: bool = False
) -> None:
    """Nothing of `hub` (see `processes_of`) is left running, and none of its ports listens."""
    # The launcher has exited; a process it stopped may still need a moment to be reaped.
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and (
        processes_of(hub, session, by_port=by_port) or any(listening(p) for p in hub.ports)
    ):
        time.sleep(0.25)
    left = processes_of(hub, session, by_port=by_port)
    assert not left, "left running:\n" + "\n".join(left) + f"\n\n{tail(log)}"
    still = [port for port in hub.ports if listening(port)]
    assert not still, f"still listening: {still}\n\n{tail(log)}"


def clean_up(hub: LaunchedHub, *, by_port: bool = False) -> None:
    """Whatever a failure left behind, of this hub only; then its directory."""
    if processes_of(hub, by_port=by_port):
        embedded(hub, "down")
        for process in processes_of(hub, by_port=by_port):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(process.split()[0]), signal.SIGKILL)
    shutil.rmtree(hub.root, ignore_errors=True)
