"""Match API under load: gunicorn (2 sync workers) on PostgreSQL holding N PDQ hashes (default 1M).

A load generator on 127.0.0.1 keeps ``BENCH_CONCURRENCY`` (default 8) single-hash POST
/api/v1/match requests in flight for ``BENCH_SECONDS`` (default 20 s) and prints requests/s, p50,
p99 and errors. One request in a hundred is a planted near-duplicate (a hit, which records a
detection); the rest are random hashes (misses). The database is filled with set-based SQL (the
import path has its own benchmark, bench/bulk_import.py). Run by `make bench`; asserts nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

import django

django.setup()

from django.core.management import call_command
from django.db import connection
from django_scopes import scope

from bench._pdq_fill import fill_pdq, near, stored_values
from hub.audit import Actor
from hub.models import Organization
from hub.services import api_key_create, organization_create
from lists.models import HashList
from matching.engine import snapshot_write

N = int(os.environ.get("BENCH_N", "1000000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
# Threads per worker: 1 is gunicorn's sync worker; more uses gthread, so that a worker waiting
# on PostgreSQL or Redis serves another request meanwhile.
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
PLANTED = 1000


def fill(org: Organization) -> list[str]:
    """N random PDQ hashes in the org's CSAM list; returns some stored values to plant hits."""
    with scope(organization=org.pk):
        csam = HashList.objects.get(organization=org, category="csam", is_default=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM lists_entry WHERE hash_list_id = %s", [csam.pk])
        present = cursor.fetchone()[0]
    if present < N:
        fill_pdq(csam.pk, N - present)
    return stored_values(csam.pk, PLANTED)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["HASHHUB_API_RATE"] = "100000000/min"
    env["HASHHUB_LOG_LEVEL"] = "WARNING"
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hub.wsgi", "--workers", str(WORKERS),
         *(["--worker-class", "gthread", "--threads", str(THREADS)] if THREADS > 1 else []),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048"],
        cwd=ROOT, env=env,
    )  # fmt: skip


async def one(port: int, request: bytes) -> tuple[float, int]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status = int(response[9:12]) if response[:5] == b"HTTP/" else 0
    return time.perf_counter() - started, status


def build(port: int, secret: str, value: str) -> bytes:
    body = json.dumps({"hashes": [{"type": "pdq", "value": value}]}).encode()
    head = (
        f"POST /api/v1/match HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def load(port: int, secret: str, planted: list[str], seconds: float) -> None:
    timings: list[float] = []
    errors = 0
    hits_sent = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal errors, hits_sent
        while time.perf_counter() < deadline:
            if random.random() < 0.01:
                value, hits_sent = near(random.choice(planted), 8), hits_sent + 1
            else:
                value = secrets.token_hex(32)
            try:
                elapsed, status = await one(port, build(port, secret, value))
            except OSError:
                errors += 1
                continue
            if status != 200:
                errors += 1
            timings.append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    wall = time.perf_counter() - started
    timings.sort()
    print(
        f"match API, single-hash PDQ, N={N:,} stored, {WORKERS} gunicorn workers "
        f"({'sync' if THREADS == 1 else f'gthread x {THREADS} threads'}), "
        f"concurrency {CONCURRENCY}, {wall:.1f} s: requests={len(timings):,} "
        f"({hits_sent} planted hits) throughput={len(timings) / wall:,.0f} req/s "
        f"p50={statistics.median(timings) * 1000:.2f} ms "
        f"p99={timings[int(len(timings) * 0.99) - 1] * 1000:.2f} ms "
        f"max={timings[-1] * 1000:.1f} ms errors={errors}"
    )


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(secret)s"
local hex = "0123456789abcdef"
local near = {%(near)s}
request = function()
  local value
  if math.random() < 0.01 then
    value = near[math.random(1, #near)]
  else
    local t = {}
    for i = 1, 64 do
      local n = math.random(1, 16)
      t[i] = hex:sub(n, n)
    end
    value = table.concat(t)
  end
  return wrk.format(nil, "/api/v1/match", nil,
    '{"hashes":[{"type":"pdq","value":"' .. value .. '"}]}')
end
"""


def load_with_wrk(port: int, secret: str, planted: list[str]) -> None:
    """The same load from wrk (C, one thread): the Python generator's own CPU use is left out.

    As in :func:`load`, one request in a hundred is a near-duplicate (8 bits off) of a stored
    hash, so hits, with their detections, are part of the mix.
    """
    near_values = ",".join(f'"{near(value, 8)}"' for value in planted)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"secret": secret, "near": near_values})
    try:
        out = subprocess.run(
            [str(shutil.which("wrk")), "-t1", f"-c{CONCURRENCY}", f"-d{int(SECONDS)}s",
             "--latency", "-s", script.name, f"http://127.0.0.1:{port}/"],
            capture_output=True, text=True, check=False, timeout=SECONDS + 60,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
    figures = {
        "rate": re.search(r"Requests/sec:\s+([\d.]+)", out),
        "p50": re.search(r"\s50%\s+([\d.]+\w+)", out),
        "p99": re.search(r"\s99%\s+([\d.]+\w+)", out),
        "non2xx": re.search(r"Non-2xx or 3xx responses: (\d+)", out),
        "socket": re.search(r"Socket errors: (.*)", out),
    }
    found = {k: (m.group(1) if m else "0") for k, m in figures.items()}
    print(
        f"wrk, concurrency {CONCURRENCY}, {int(SECONDS)} s, 1 % planted hits: "
        f"throughput={found['rate']} req/s "
        f"p50={found['p50']} p99={found['p99']} non-2xx={found['non2xx']} "
        f"socket errors={found['socket'] if figures['socket'] else 'none'}"
    )


def server_rss_mib(server: subprocess.Popen[bytes]) -> float:
    total = 0
    for status in Path("/proc").glob("*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"PPid:\t{server.pid}\n" in text or status.parent.name == str(server.pid):
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def main() -> None:
    call_command("migrate", verbosity=0)
    org = Organization.objects.filter(slug="bench-match").first() or organization_create(
        name="Bench match", slug="bench-match", owner=None, actor=Actor(system="bench"),
        approved=True,
    )  # fmt: skip
    with scope(organization=org.pk):
        _key, secret = api_key_create(
            org=org, name="bench", scopes=["match"], actor=Actor(system="bench")
        )
    started = time.perf_counter()
    planted = fill(org)
    print(f"filled PostgreSQL with {N:,} PDQ hashes in {time.perf_counter() - started:.1f} s")
    if os.environ.get("BENCH_SNAPSHOT", "1") == "1":
        started = time.perf_counter()
        version = snapshot_write()
        print(
            f"index snapshot at change {version:,} written in {time.perf_counter() - started:.1f} s"
        )
    else:
        print("no snapshot: each worker builds its index from PostgreSQL")
    connection.close()

    port = free_port()
    server = start_server(port)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.3)
        # Warm-up: each worker loads the snapshot and its connections on its first requests.
        started = time.perf_counter()
        asyncio.run(load_quietly(port, secret, planted))
        print(f"warm-up (index load in each worker) {time.perf_counter() - started:.1f} s")
        asyncio.run(load(port, secret, planted, SECONDS))
        print(f"server RSS (master + workers): {server_rss_mib(server):,.0f} MiB")
        if shutil.which("wrk"):
            load_with_wrk(port, secret, planted)
        else:
            print("wrk not installed (apt-get install wrk): the C load generator was skipped")
    finally:
        server.terminate()
        server.wait(timeout=30)


async def load_quietly(port: int, secret: str, planted: list[str]) -> None:
    for _ in range(20 * WORKERS):
        await asyncio.gather(
            *(one(port, build(port, secret, secrets.token_hex(32))) for _ in range(4))
        )


if __name__ == "__main__":
    main()
