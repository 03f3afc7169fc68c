"""`make run` as a user runs it: the hub serves, and a signal stops all of it, servers included.

Each test starts the launcher the way `make run` does (`python -m hub.embedded run` from the
repository root), in a data directory of its own and on free ports, given only through the
documented variables. What is left afterwards is looked up in /proc: any process whose environment,
command line or working directory names that directory or one of those ports, or that is still in
the session the launcher was started in.
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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Generous limits, polled and never asserted on: a first start runs initdb and every migration.
START_SECONDS = 300
STOP_SECONDS = 120
# What `make test` points the suite at: the hub under test must find its own servers from the
# launcher's variables alone.
SUITE_VARIABLES = frozenset(
    {
        "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "HASHHUB_SITE_URL", "HASHHUB_VAR_DIR",
        "HASHHUB_INDEX_DIR", "HASHHUB_FEED_DIR", "DJANGO_STATIC_ROOT", "HASHHUB_PG_PORT",
        "HASHHUB_REDIS_PORT", "HASHHUB_WEB_PORT",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Hub:
    """One embedded hub: a temporary directory (its data under var/) and three ports."""

    root: Path
    pg_port: int
    redis_port: int
    web_port: int

    @property
    def var(self) -> Path:
        return self.root / "var"

    @property
    def ports(self) -> tuple[int, int, int]:
        return self.pg_port, self.redis_port, self.web_port

    def environment(self, **overrides: str) -> dict[str, str]:
        env = {name: value for name, value in os.environ.items() if name not in SUITE_VARIABLES}
        env.update(
            HASHHUB_VAR_DIR=str(self.var),
            HASHHUB_PG_PORT=str(self.pg_port),
            HASHHUB_REDIS_PORT=str(self.redis_port),
            HASHHUB_WEB_PORT=str(self.web_port),
        )
        env.update(overrides)
        return env


def _free_ports(count: int) -> list[int]:
    # All bound at once, so that no two are the same.
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _new_hub() -> Hub:
    root = Path(tempfile.mkdtemp(prefix="hashhub-launcher-"))
    root.chmod(0o755)  # PostgreSQL runs as `postgres` when we are root, and must reach var/.
    return Hub(root, *_free_ports(3))


def _embedded(hub: Hub, action: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.embedded", action],
        cwd=ROOT, env=hub.environment(**overrides), capture_output=True, text=True,
        timeout=START_SECONDS, check=False,
    )  # fmt: skip


def _proc_text(pid: int, name: str) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / name).read_bytes().replace(b"\0", b" ").decode()
    return ""


def _processes_of(hub: Hub, session: int | None = None) -> list[str]:
    """The live processes that belong to `hub`, each as "pid command"."""
    env_entry = f"HASHHUB_VAR_DIR={hub.var}".encode()
    ports = [*(f":{port}" for port in hub.ports), f"-p {hub.pg_port} "]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        stat = _proc_text(pid, "stat")
        fields = stat.rsplit(")", 1)[-1].split()
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
            or any(port in command for port in ports)
            or (session is not None and int(fields[3]) == session)
        ):
            found.append(f"{pid} {command.strip()}")
    return found


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _celery_running(hub: Hub) -> bool:
    commands = [command for command in _processes_of(hub) if "bin/celery -A hub" in command]
    return all(any(role in c for c in commands) for role in (" worker ", " beat "))


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else "(no output)"


def _wait_until(
    condition: Callable[[], object], launcher: subprocess.Popen[bytes], log: Path, what: str
) -> None:
    deadline = time.monotonic() + START_SECONDS
    while not condition():
        if launcher.poll() is not None:
            pytest.fail(f"the launcher exited ({launcher.returncode}) before {what}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            pytest.fail(f"the launcher is still not {what}:\n{_tail(log)}")
        time.sleep(0.25)


def _start(hub: Hub, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.embedded", "run"], cwd=ROOT, env=hub.environment(),
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def _stop(launcher: subprocess.Popen[bytes], signum: int) -> int:
    """Send `signum` to the launcher and wait for it; kill its session if it does not exit."""
    launcher.send_signal(signum)
    try:
        return launcher.wait(timeout=STOP_SECONDS)
    finally:
        if launcher.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()


def _assert_nothing_left(hub: Hub, session: int, log: Path) -> None:
    # The launcher has exited; a process it killed may still need a moment to be reaped.
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and (
        _processes_of(hub, session) or any(_listening(port) for port in hub.ports)
    ):
        time.sleep(0.25)
    left = _processes_of(hub, session)
    assert not left, "left running:\n" + "\n".join(left) + f"\n\n{_tail(log)}"
    listening = [port for port in hub.ports if _listening(port)]
    assert not listening, f"still listening: {listening}\n\n{_tail(log)}"


def _clean_up(hub: Hub) -> None:
    # A failed test may have left servers or processes behind: they are this hub's only.
    _embedded(hub, "down")
    for process in _processes_of(hub):
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(process.split()[0]), signal.SIGKILL)
    shutil.rmtree(hub.root, ignore_errors=True)


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    """One hub for the module: whichever test starts it first migrates and seeds it."""
    made = _new_hub()
    yield made
    _clean_up(made)


@pytest.fixture
def new_hub() -> Iterator[Hub]:
    made = _new_hub()
    yield made
    _clean_up(made)


# A process manager's stop and a closed terminal; Ctrl-C (SIGINT) is the next test's.
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_the_serving_hub_and_all_it_started(
    hub: Hub, signum: signal.Signals
) -> None:
    log = hub.root / f"run-{signum.name}.log"
    launcher = _start(hub, log)
    try:
        _wait_until(lambda: _healthy(hub.web_port), launcher, log, "serving /healthz")
        # Celery's worker and beat run too, so that stopping them is part of what is tested.
        _wait_until(lambda: _celery_running(hub), launcher, log, "running Celery")
    finally:
        returncode = _stop(launcher, signum)
    assert returncode == 128 + signum, _tail(log)
    output = log.read_text(errors="replace")
    assert f"{signum.name} received" in output
    assert "Redis stopped" in output
    assert "PostgreSQL stopped" in output
    _assert_nothing_left(hub, launcher.pid, log)


def test_ctrl_c_during_the_migrations_stops_the_servers(new_hub: Hub) -> None:
    log = new_hub.root / "run.log"
    launcher = _start(new_hub, log)
    try:
        # The launcher runs `manage.py migrate` once both servers are up; a first migrate takes
        # a while, and honcho starts only after it and the seeds.
        _wait_until(
            lambda: any("manage.py migrate" in command for command in _processes_of(new_hub)),
            launcher, log, "migrating",
        )  # fmt: skip
    finally:
        returncode = _stop(launcher, signal.SIGINT)
    assert returncode == 128 + signal.SIGINT, _tail(log)
    output = log.read_text(errors="replace")
    assert "SIGINT received" in output
    assert "PostgreSQL stopped" in output
    _assert_nothing_left(new_hub, launcher.pid, log)


def test_a_port_taken_by_another_process_names_it_and_says_what_to_do(new_hub: Hub) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _embedded(new_hub, "up", HASHHUB_PG_PORT=str(port))
    assert result.returncode != 0
    message = result.stderr
    assert f"port {port} (HASHHUB_PG_PORT) is taken by pid {os.getpid()}" in message
    assert f"kill {os.getpid()}" in message
    assert not (new_hub.var / "postgres" / "PG_VERSION").exists()  # Nothing made for nothing.


def test_run_checks_the_web_port_before_it_starts_anything(new_hub: Hub) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _embedded(new_hub, "run", HASHHUB_WEB_PORT=str(port))
    assert result.returncode != 0
    assert f"port {port} (HASHHUB_WEB_PORT) is taken by pid {os.getpid()}" in result.stderr
    assert not (new_hub.var / "postgres").exists()
    assert not any(_listening(p) for p in (new_hub.pg_port, new_hub.redis_port))


def test_a_port_held_by_another_embedded_hub_says_to_stop_that_one(hub: Hub) -> None:
    started = _embedded(hub, "up")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        status = _embedded(hub, "status")
        assert f"postgres: running (postgres://hashhub@127.0.0.1:{hub.pg_port}/" in status.stdout
        assert f"redis:    running (redis://127.0.0.1:{hub.redis_port}/0)" in status.stdout
        # A second data directory on the same ports: its PostgreSQL would collide with ours.
        other = _embedded(hub, "up", HASHHUB_VAR_DIR=str(hub.root / "other"))
        assert other.returncode != 0
        assert f"port {hub.pg_port} (HASHHUB_PG_PORT) is taken by pid" in other.stderr
        assert f"`HASHHUB_VAR_DIR={hub.var} make services-down`" in other.stderr
    finally:
        stopped = _embedded(hub, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not any(_listening(port) for port in (hub.pg_port, hub.redis_port))
