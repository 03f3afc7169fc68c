"""NCMEC import: a full import of N entries (default 1,000,000) from a local NCMEC-format server.

The server (tests/lists/ncmec_fixtures.py, in its own process so it does not share our GIL)
serves a synthetic log in NCMEC's XML with 1,000-entry pages and ``next`` links: 85 % new
images and videos (MD5, SHA-1, PDQ, every fourth with PhotoDNA), 10 % updates of earlier
entries, 5 % deletions. It keeps every page it makes in memory: the adapter-only pass renders
them, and the timed import is served from memory, as a real upstream on another machine would
serve it, without taking our CPU. Prints the adapter's own rate (HTTP and XML, no database),
then a full import by lists.sources.runs.run_execute (the Celery task's body) into PostgreSQL:
entries/s, pages, counts, the CPU time of the runner, of its helper process and of PostgreSQL,
peak memory; the whole machine's CPU budget of the import (busy and idle core-seconds, and
each process's share, bench/_cpu_budget.py); then a second run that finds nothing new.
``BENCH_N`` sets N, ``BENCH_BATCH`` the upstream pages per applied page (default 1).
Run by `make bench`; asserts nothing.
"""

from __future__ import annotations

import os
import resource
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
# The synthetic NCMEC server listens on 127.0.0.1 over plain http: let the sources' guard pass it.
os.environ.setdefault("HASHHUB_SOURCE_ALLOWED_HOSTS", "127.0.0.1")

import django

django.setup()

from django.core.management import call_command
from django.db import connection

from bench._cpu_budget import CpuBudget
from hub.audit import Actor
from lists.models import ImportRun
from lists.sources.adapters import adapter_class
from lists.sources.adapters.base import Credentials
from lists.sources.adapters.http import Http
from lists.sources.runs import run_create, run_execute
from lists.sources.services import source_create
from tests.lists.ncmec_fixtures import PASSWORD, USERNAME, SyntheticLog

N = int(os.environ.get("BENCH_N", "1000000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1"))
PAGE_SIZE = 1000
PER_DAY = 10_000
START = datetime(2020, 1, 1, tzinfo=UTC)


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.lists.ncmec_fixtures", str(N), START.isoformat(),
         str(PAGE_SIZE), str(PER_DAY)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None  # noqa: S101 - a bench script's own invariant
    return server, server.stdout.readline().strip()


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """Of the child processes waited for: the run's helper (the fixture server is waited for
    only at the end)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


HELPERS_CPU: list[float] = []  # per timed run: its helper process's CPU seconds


def timed_run(source_id: int, label: str, server_pid: int) -> ImportRun:
    from lists.models import Source

    source = Source.objects.get(pk=source_id)
    run = run_create(source=source, trigger="bench", enqueue=False)
    http = Http(timeout=60, attempts=3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    started = time.perf_counter()
    cpu, helper_cpu = own_cpu_seconds(), children_cpu_seconds()
    try:
        with CpuBudget(partial(classify, backend=backend, server=server_pid)) as budget:
            run = run_execute(run_id=run.pk, http=http)
    finally:
        http.close()
    elapsed = time.perf_counter() - started
    cpu, helper_cpu = own_cpu_seconds() - cpu, children_cpu_seconds() - helper_cpu
    pg_cpu = sum(v for name, v in budget.by_name().items() if "PostgreSQL" in name)
    HELPERS_CPU.append(helper_cpu)
    print(
        f"{label}: {run.status}{' ' + run.error_code if run.error_code else ''}; "
        f"seen={run.seen:,} added={run.added:,} updated={run.updated:,} removed={run.removed:,} "
        f"rejected={run.rejected:,} pages={run.pages:,} in {elapsed:.1f} s "
        f"= {run.seen / elapsed if elapsed else 0:,.0f} entries/s"
    )
    print(
        f"  CPU: runner {cpu:.1f} s, its helper process {helper_cpu:.1f} s, "
        f"PostgreSQL {pg_cpu:.1f} s"
    )
    if run.seen:
        print(budget.report())
    return run


def classify(pid: int, ppid: int, command: str, *, backend: int, server: int) -> str | None:
    """The part of the import (or of the machine) a process is, for the CPU budget."""
    if pid == os.getpid():
        return "runner (Python)"
    if pid == server:
        return "fixture server (the upstream)"
    if ppid == os.getpid():
        return "runner's helper process (Python)"
    if pid == backend:
        return "runner's PostgreSQL backend"
    if command.startswith("postgres: autovacuum"):
        return "PostgreSQL autovacuum"
    if "/bin/postgres " in command or (
        command.startswith("postgres: ")
        and any(name in command for name in ("writer", "checkpointer", "launcher", "archiver"))
    ):
        return "PostgreSQL background (WAL writer, checkpointer, ...)"
    if command.startswith("postgres: "):
        return "other PostgreSQL backends (the helper's hash upserts, ANALYZE)"
    return None


def read_only(source_id: int) -> None:
    """The adapter alone (HTTP, XML, records) with no database work: the runner's ceiling."""
    from lists.models import Source

    source = Source.objects.get(pk=source_id)
    http = Http(timeout=60, attempts=3)
    adapter = adapter_class("ncmec")(config=source.config, credentials=Credentials(), http=http)
    started = time.perf_counter()
    try:
        records = pages = 0
        for page in adapter.pages({}):
            records += len(page.records)
            pages += 1
    finally:
        http.close()
    elapsed = time.perf_counter() - started
    print(
        f"upstream read alone (adapter, no database): {records:,} records in {pages:,} pages "
        f"in {elapsed:.1f} s = {records / elapsed:,.0f} entries/s"
    )


def main() -> None:
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    call_command("migrate", verbosity=0)
    server, url = start_server()
    os.environ["HASHHUB_SOURCE_BENCH_NCMEC_USER"] = USERNAME
    os.environ["HASHHUB_SOURCE_BENCH_NCMEC_PASS"] = PASSWORD
    end = datetime.fromtimestamp(SyntheticLog(N, start=START, per_day=PER_DAY).end, UTC)
    try:
        source = source_create(
            name=f"Bench NCMEC {secrets.token_hex(3)}",
            kind="ncmec",
            config={
                "url": url,
                "username_env": "HASHHUB_SOURCE_BENCH_NCMEC_USER",
                "password_env": "HASHHUB_SOURCE_BENCH_NCMEC_PASS",
                "start": START.isoformat(),
                "until": (end + timedelta(seconds=1)).isoformat(),
                "settle_minutes": 0,
                "pages_per_batch": BATCH,
            },
            actor=Actor(system="bench"),
        )
        print(
            f"NCMEC import of N={N:,} log entries ({PAGE_SIZE:,} per upstream page, "
            f"{BATCH} upstream page(s) per applied page, {PER_DAY:,} per day of upstream time)"
        )
        read_only(source.pk)
        timed_run(source.pk, "full import", server.pid)
        timed_run(source.pk, "second run, nothing new", server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_mib = children.ru_maxrss / 1024
    print(
        f"peak RSS: importing process {peak_mib:,.0f} MiB; "
        f"fixture server process {server_mib:,.0f} MiB"
    )
    server_cpu = children.ru_utime + children.ru_stime - sum(HELPERS_CPU)
    print(f"fixture server CPU, all runs: {server_cpu:.1f} s")


if __name__ == "__main__":
    main()
