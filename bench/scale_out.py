"""Scale-out on one machine: 4 web nodes, one PostgreSQL and one Redis (README "Production").

Simulates the deployment the README describes when one machine is not enough: ``BENCH_NODES``
(default 4) web nodes, each a gunicorn of its own (``BENCH_NODE_WORKERS`` sync workers, default
1) with its *own* snapshot directory (``HASHHUB_INDEX_DIR``), all on the one PostgreSQL and Redis
that ``hub.embedded test`` starts, as web machines share the database and Redis of a real
deployment. The database holds ``BENCH_N`` random PDQ hashes (default 200,000) in one
organisation's list; a snapshot is written into each node's directory before it starts, so each
node memory-maps its own copy and then follows the change sequence.

Then, for ``BENCH_SECONDS`` (default 20 s), two things run at once:

* a round-robin client: ``BENCH_CONCURRENCY`` (default 8) connections, each request a single-hash
  ``POST /api/v1/match`` sent to the next node in turn (one in a hundred a planted hit, the rest
  random misses);
* a writer: every ``BENCH_WRITE_EVERY`` seconds (default 0.25) it adds a fresh random PDQ hash
  through ``POST /api/v1/lists/{id}/entries`` on one node (in turn), then asks every node for that
  hash until each has matched it, then removes it through ``/entries/remove`` on another node
  and asks every node until none matches it.

It prints freshness (the time from the write's answer to the first answer that shows it, on
every node: median and p99 over the writes, in ms, and how many asks that took), requests a
second overall and per node with their p50/p99, the errors, and each node's memory (RSS of
gunicorn's master and its workers, read from /proc; the memory-mapped snapshot's pages count in
each worker's RSS although the page cache holds them once). Prints figures, asserts nothing:

    .venv/bin/python -m hub.embedded test -- .venv/bin/python bench/scale_out.py
    BENCH_N=1000000 BENCH_SECONDS=60 .venv/bin/python -m hub.embedded test -- \\
        .venv/bin/python bench/scale_out.py

On a 2-core machine the nodes, PostgreSQL, Redis and the load generator share the same two
cores, so req/s here is the machine's, not four machines'; freshness is the figure that carries
over, since it depends on the change sequence, not on the cores.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
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

N = int(os.environ.get("BENCH_N", "200000"))
NODES = int(os.environ.get("BENCH_NODES", "4"))
NODE_WORKERS = int(os.environ.get("BENCH_NODE_WORKERS", "1"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
WRITE_EVERY = float(os.environ.get("BENCH_WRITE_EVERY", "0.25"))
# A write not visible on a node after this long counts as not seen (it never should happen).
FRESHNESS_GIVE_UP = 10.0
PLANTED = 200


@dataclass
class Node:
    port: int
    index_dir: Path
    process: subprocess.Popen[bytes]
    timings: list[float] = field(default_factory=list)
    errors: int = 0


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held open together, so that none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def set_up() -> tuple[str, str, list[str]]:
    """The org, its API key and list, filled to N; returns (secret, list id, planted values)."""
    call_command("migrate", verbosity=0)
    org = Organization.objects.filter(slug="bench-scale-out").first() or organization_create(
        name="Bench scale-out", slug="bench-scale-out", owner=None, actor=Actor(system="bench"),
        approved=True,
    )  # fmt: skip
    with scope(organization=org.pk):
        _key, secret = api_key_create(
            org=org, name="bench", scopes=["match", "lists:write"], actor=Actor(system="bench")
        )
        csam = HashList.objects.get(organization=org, category="csam", is_default=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM lists_entry WHERE hash_list_id = %s", [csam.pk])
        present = cursor.fetchone()[0]
    started = time.perf_counter()
    if present < N:
        fill_pdq(csam.pk, N - present)
    print(
        f"PostgreSQL holds {max(N, present):,} PDQ hashes in the list"
        f" (filled in {time.perf_counter() - started:.1f} s)"
    )
    return secret, csam.public_id, stored_values(csam.pk, PLANTED)


def start_node(index_dir: Path, port: int) -> Node:
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env["HASHHUB_INDEX_DIR"] = str(index_dir)
    env["HASHHUB_API_RATE"] = "100000000/min"
    env["HASHHUB_QUOTA_ENTRIES_PER_LIST"] = str(N * 2 + 1_000_000)
    env["HASHHUB_QUOTA_ENTRIES_TOTAL"] = str(N * 2 + 1_000_000)
    env["HASHHUB_LOG_LEVEL"] = "WARNING"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "hub.wsgi", "--workers", str(NODE_WORKERS),
         "--bind", f"127.0.0.1:{port}", "--log-level", "warning", "--backlog", "2048"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    return Node(port, index_dir, process)


def wait_ready(node: Node) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and node.process.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"node on port {node.port} did not start")


def still_running(nodes: list[Node]) -> None:
    """Every node's gunicorn is the one serving its port (none exited after answering)."""
    for node in nodes:
        if node.process.poll() is not None:
            raise SystemExit(f"node on port {node.port} exited with {node.process.returncode}")


def rss_mib(pid: int) -> tuple[float, list[float]]:
    """(master's RSS, each worker's RSS) in MiB: the process and its children, from /proc."""

    def rss(status: str) -> float:
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    master = 0.0
    workers = []
    for path in Path("/proc").glob("[0-9]*/status"):
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.parent.name == str(pid):
            master = rss(text)
        elif f"PPid:\t{pid}\n" in text:
            workers.append(rss(text))
    return master, workers


def request(port: int, secret: str, path: str, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


async def send(raw: bytes, port: int) -> tuple[int, dict[str, object]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    response = await reader.read()
    writer.close()
    status = int(response[9:12]) if response[:5] == b"HTTP/" else 0
    _, _, body = response.partition(b"\r\n\r\n")
    try:
        return status, json.loads(body) if body else {}
    except ValueError:
        return status, {}


def matched(answer: dict[str, object]) -> bool:
    results = answer.get("results")
    return bool(isinstance(results, list) and results and results[0].get("matches"))


@dataclass
class Freshness:
    add_ms: list[float] = field(default_factory=list)
    remove_ms: list[float] = field(default_factory=list)
    add_asks: list[int] = field(default_factory=list)
    remove_asks: list[int] = field(default_factory=list)
    never_seen: int = 0
    write_errors: int = 0
    per_node_add_ms: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))


async def until_every_node(
    nodes: list[Node], secret: str, value: str, *, present: bool, since: float
) -> tuple[float, int, list[float]] | None:
    """Ask every node for ``value`` until each answers as ``present`` says; the slowest node's
    time since ``since`` (ms), the most asks one node needed, and each node's time."""
    raw = {
        node.port: request(
            node.port, secret, "/api/v1/match", {"hashes": [{"type": "pdq", "value": value}]}
        )
        for node in nodes
    }

    async def one(node: Node) -> tuple[float, int] | None:
        for asks in itertools.count(1):
            status, answer = await send(raw[node.port], node.port)
            if status == 200 and matched(answer) == present:
                return (time.perf_counter() - since) * 1000, asks
            if time.perf_counter() - since > FRESHNESS_GIVE_UP:
                return None
        return None

    seen = await asyncio.gather(*(one(node) for node in nodes))
    if any(result is None for result in seen):
        return None
    times = [result[0] for result in seen if result is not None]
    asks = [result[1] for result in seen if result is not None]
    return max(times), max(asks), times


async def writer(
    nodes: list[Node], secret: str, list_id: str, deadline: float, fresh: Freshness
) -> None:
    entries = f"/api/v1/lists/{list_id}/entries"
    turn = itertools.count()
    while time.perf_counter() < deadline:
        value = secrets.token_hex(32)
        item = {"entries": [{"type": "pdq", "value": value}]}
        node = nodes[next(turn) % len(nodes)]
        status, answer = await send(request(node.port, secret, entries, item), node.port)
        if status != 200 or answer.get("added") != 1:
            fresh.write_errors += 1
            continue
        seen = await until_every_node(nodes, secret, value, present=True, since=time.perf_counter())
        if seen is None:
            fresh.never_seen += 1
        else:
            fresh.add_ms.append(seen[0])
            fresh.add_asks.append(seen[1])
            for index, node_ms in enumerate(seen[2]):
                fresh.per_node_add_ms[index].append(node_ms)
        node = nodes[next(turn) % len(nodes)]
        status, answer = await send(
            request(node.port, secret, f"{entries}/remove", item), node.port
        )
        if status != 200 or answer.get("removed") != 1:
            fresh.write_errors += 1
            continue
        seen = await until_every_node(
            nodes, secret, value, present=False, since=time.perf_counter()
        )
        if seen is None:
            fresh.never_seen += 1
        else:
            fresh.remove_ms.append(seen[0])
            fresh.remove_asks.append(seen[1])
        await asyncio.sleep(max(0.0, min(WRITE_EVERY, deadline - time.perf_counter())))


async def reader(nodes: list[Node], secret: str, planted: list[str], deadline: float) -> int:
    """Round-robin single-hash matches over the nodes; returns how many were planted hits."""
    turn = itertools.count()
    hits = 0

    async def client() -> None:
        nonlocal hits
        while time.perf_counter() < deadline:
            node = nodes[next(turn) % len(nodes)]
            if random.random() < 0.01:
                value, hits = near(random.choice(planted), 8), hits + 1
            else:
                value = secrets.token_hex(32)
            raw = request(
                node.port, secret, "/api/v1/match", {"hashes": [{"type": "pdq", "value": value}]}
            )
            started = time.perf_counter()
            try:
                status, _ = await send(raw, node.port)
            except OSError:
                node.errors += 1
                continue
            node.timings.append(time.perf_counter() - started)
            if status != 200:
                node.errors += 1

    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return hits


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction + 0.5) - 1))]


def summary_ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return (
        f"median {statistics.median(values):.1f} ms, p99 {percentile(values, 0.99):.1f} ms,"
        f" max {max(values):.1f} ms"
    )


async def run(nodes: list[Node], secret: str, list_id: str, planted: list[str]) -> None:
    # Warm-up: every worker of every node loads its snapshot on its first requests.
    started = time.perf_counter()
    warm = [
        send(request(node.port, secret, "/api/v1/match", {"hashes": [{"type": "pdq",
             "value": secrets.token_hex(32)}]}), node.port)
        for node in nodes for _ in range(NODE_WORKERS * 4)
    ]  # fmt: skip
    await asyncio.gather(*warm)
    print(
        f"warm-up (each node's workers load their snapshot) {time.perf_counter() - started:.1f} s"
    )

    fresh = Freshness()
    deadline = time.perf_counter() + SECONDS
    started = time.perf_counter()
    hits, _ = await asyncio.gather(
        reader(nodes, secret, planted, deadline), writer(nodes, secret, list_id, deadline, fresh)
    )
    wall = time.perf_counter() - started
    report(nodes, fresh, wall, hits)


def report(nodes: list[Node], fresh: Freshness, wall: float, hits: int) -> None:
    total = sum(len(node.timings) for node in nodes)
    every = [t * 1000 for node in nodes for t in node.timings]
    print(
        f"\n== {NODES} web nodes x {NODE_WORKERS} sync worker(s), N={N:,} PDQ hashes, one"
        f" PostgreSQL and Redis, {os.cpu_count()} cores, {wall:.1f} s"
    )
    print(
        f"round-robin matches: {total:,} requests ({hits} planted hits),"
        f" {total / wall:,.0f} req/s overall, concurrency {CONCURRENCY}, {summary_ms(every)},"
        f" errors {sum(node.errors for node in nodes)}"
    )
    for index, node in enumerate(nodes):
        timings = [t * 1000 for t in node.timings]
        master, workers = rss_mib(node.process.pid)
        node_fresh = fresh.per_node_add_ms.get(index, [])
        seen_ms = statistics.median(node_fresh) if node_fresh else float("nan")
        print(
            f"  node {index} (:{node.port}, own snapshot dir {node.index_dir.name}):"
            f" {len(timings) / wall:,.0f} req/s, {summary_ms(timings)}, errors {node.errors};"
            f" add visible after {seen_ms:.1f} ms (median); RSS master {master:.0f} MiB, workers "
            + ", ".join(f"{rss:.0f}" for rss in workers)
            + " MiB"
        )
    writes = len(fresh.add_ms)
    print(
        f"freshness, add -> matched on every node ({writes} adds): {summary_ms(fresh.add_ms)};"
        f" asks per node: {dict(sorted(Counter(fresh.add_asks).items()))}"
    )
    print(
        f"freshness, remove -> unmatched on every node ({len(fresh.remove_ms)} removes):"
        f" {summary_ms(fresh.remove_ms)}; asks per node:"
        f" {dict(sorted(Counter(fresh.remove_asks).items()))}"
    )
    print(
        f"writes not visible within {FRESHNESS_GIVE_UP:.0f} s: {fresh.never_seen};"
        f" write errors: {fresh.write_errors}"
    )
    print(
        "  (asks per node 1 = the very first request on every node after the write's answer saw"
        " it: read-your-writes across nodes through the change sequence, no waiting on a clock)"
    )


def main() -> None:
    secret, list_id, planted = set_up()
    scratch = Path(tempfile.mkdtemp(prefix="hashhub-scale-out-"))
    nodes: list[Node] = []
    try:
        for index in range(NODES):
            directory = scratch / f"node{index}-index"
            started = time.perf_counter()
            version = snapshot_write(directory)
            print(
                f"node {index}: snapshot at change {version:,} written to its own directory in"
                f" {time.perf_counter() - started:.1f} s"
            )
        connection.close()
        for index, port in enumerate(free_ports(NODES)):
            nodes.append(start_node(scratch / f"node{index}-index", port))
        for node in nodes:
            wait_ready(node)
        time.sleep(1)
        still_running(nodes)
        asyncio.run(run(nodes, secret, list_id, planted))
    finally:
        for node in nodes:
            node.process.terminate()
        for node in nodes:
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.process.kill()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
