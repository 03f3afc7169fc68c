"""Soak: the hub as production runs it on this machine, under mixed traffic for minutes (issue 18).

Sets the hub up with its management commands (``migrate``, then the demo ``seeddemo``,
``seedmatching``, ``seedsharing`` as ``make run`` does, and ``createapikey``), starts gunicorn
(``BENCH_SOAK_WORKERS`` sync workers, default 2: one per core here) and one Celery worker
(prefork, concurrency 2, every queue; ``BENCH_SOAK_BEAT=1`` adds beat, which nothing exercised
here needs), each a child process of this script. A loopback webhook receiver, registered through
the web UI, gives the Celery worker a delivery for every detection.

``BENCH_SOAK_CLIENTS`` (default 4) client threads then send ``BENCH_SOAK_SECONDS`` (default 300)
of mixed traffic, each picking, by the weights of ``bench._soak_traffic.MIX``:
``POST /api/v1/match`` (1 to 100 random PDQ/MD5/SHA-1 hashes, about one request in six with a PDQ
near a stored one or a stored MD5, a few malformed values), ``POST /api/v1/match/image`` (synthetic
Pillow images from 64x64 to 1920x1440, PNG and JPEG; two of them stored, so some match), list writes
(``POST /api/v1/lists/{id}/entries`` and ``/entries/remove`` on a list of its own, with re-adds
after removals), ``GET /api/v1/export`` paged with its cursor (polling on when caught up, now and
then replaying from the start), and UI pages as a member logged in through the allauth form
(dashboard, lists, a list of ``BENCH_SOAK_STORED`` + demo entries, the write list, detections).
The API rate and the image-match quota are raised (``HASHHUB_API_RATE``,
``HASHHUB_QUOTA_IMAGE_MATCHES_PER_MINUTE``) so that the soak measures the hub, not its limits;
any 429 is still counted, apart from the errors.

Every ``BENCH_SOAK_SAMPLE_SECONDS`` (default 10) it reads the RSS (``VmRSS`` of
``/proc/PID/status``) of gunicorn's master and workers and Celery's main process and pool
processes, found by walking the process tree from the PIDs it started.

It prints the errors (any 5xx, connection error or unexpected status, with a few examples), each
endpoint's N, p50, p99 and max latency, each process's RSS over time with its growth from the
first minute (from half the run for runs shorter than two minutes) to the end, what the servers
logged at ERROR, and where the machine's CPU went. Goals: 0 errors, RSS growth at most 10 % after
the first minute. It prints figures and asserts nothing: it exits 0 unless the hub failed to start.
Every child process is stopped on the way out, on Ctrl-C and SIGTERM too.

    .venv/bin/python -m hub.embedded test -- .venv/bin/python bench/soak.py
    BENCH_SOAK_SECONDS=60 .venv/bin/python -m hub.embedded test -- .venv/bin/python bench/soak.py

``hub.embedded test`` provides the throwaway PostgreSQL and Redis (``DATABASE_URL``, ``REDIS_URL``,
``HASHHUB_VAR_DIR``); ``BENCH_SOAK_KEEP_LOGS=1`` keeps the servers' logs (their folder is printed).
``make bench`` runs it too, after the other scripts and on their database, which it shares with
them (about six minutes at the default length). The settings stay in their default (embedded)
mode: production's are the same code, plus HTTPS-only cookies that plain-HTTP clients would drop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import requests

from bench._cpu_budget import CpuBudget
from bench._soak_traffic import (
    TIMEOUT_SECONDS,
    Client,
    Hub,
    Stats,
    WebhookReceiver,
    api_session,
    csrf_token_of,
    log_in,
    random_pdq,
    synthetic_images,
)

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "300"))
CLIENTS = int(os.environ.get("BENCH_SOAK_CLIENTS", "4"))
WORKERS = int(os.environ.get("BENCH_SOAK_WORKERS", "2"))
SAMPLE_SECONDS = float(os.environ.get("BENCH_SOAK_SAMPLE_SECONDS", "10"))
STORED = int(os.environ.get("BENCH_SOAK_STORED", "5000"))
BEAT = os.environ.get("BENCH_SOAK_BEAT", "0") == "1"
KEEP_LOGS = os.environ.get("BENCH_SOAK_KEEP_LOGS", "0") == "1"
# RSS growth is measured from here (the first minute is warm-up: imports, caches, the index).
BASELINE_SECONDS = 60.0 if SECONDS >= 120 else SECONDS / 2
ORG = "acme"
MEMBER = "alice@example.org"  # the demo's owner of Acme
STOP_SECONDS = 30


class HubFailedError(Exception):
    """The hub did not start: the one case this script exits non-zero."""


def say(text: str = "") -> None:
    print(text, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the process tree -------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()  # the command may hold spaces and brackets


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))) is not None:
            found[int(entry.name)] = int(fields[1])
    return found


def family(root: int, parents: dict[int, int]) -> list[tuple[int, int]]:
    """(pid, depth) of ``root`` (depth 0) and every process below it, children first."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, queue = [], [(root, 0)]
    while queue:
        pid, depth = queue.pop(0)
        found.append((pid, depth))
        queue += [(child, depth + 1) for child in children.get(pid, [])]
    return found


def descendants(root: int, parents: dict[int, int] | None = None) -> list[int]:
    """Every process below ``root``, children first."""
    parents = _parents() if parents is None else parents
    return [pid for pid, depth in family(root, parents) if depth]


def started_at(pid: int) -> str | None:
    """The start time of ``pid`` (clock ticks since boot): a PID and it name one process."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


# --- the hub's processes ----------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In the child before exec: SIGTERM when this script dies, even by SIGKILL (``hub.embedded
    test`` kills its command 0.25 s after a Ctrl-C, before a cleanup could finish)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # died before prctl
        os._exit(1)


@dataclass
class Children:
    """The child processes this script started, in order, and the logs they write."""

    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        parent = os.getpid()
        with open(self.logs / f"{name}.log", "ab") as log:
            # Same process group as this script: a terminal's Ctrl-C reaches them as well.
            process = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, preexec_fn=lambda: _die_with_parent(parent),
            )  # fmt: skip
        self.procs[name] = process
        return process

    def log_text(self, name: str) -> str:
        try:
            return (self.logs / f"{name}.log").read_text(errors="replace")
        except OSError:
            return ""

    def stop_all(self) -> None:
        """SIGTERM to each (gunicorn and Celery stop their own children), then SIGKILL for
        whatever of the tree is still there after STOP_SECONDS."""
        parents = _parents()
        tree: list[tuple[int, str | None]] = []
        for process in self.procs.values():
            for pid in [process.pid, *descendants(process.pid, parents)]:
                tree.append((pid, started_at(pid)))
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in self.procs.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"  pid {process.pid} did not stop in {STOP_SECONDS} s: killed")
                process.kill()
                process.wait()
        # Orphans (a worker whose master was killed): the same PID *and* start time only.
        time.sleep(0.5)
        left = [pid for pid, start in tree if start is not None and started_at(pid) == start]
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if left:
            say(f"  killed {len(left)} processes left behind: {left}")


def wait_ready(base: str, gunicorn: subprocess.Popen[bytes], children: Children) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if gunicorn.poll() is not None:
            tail = children.log_text("gunicorn")[-3000:]
            raise HubFailedError(f"gunicorn exited with {gunicorn.returncode}:\n{tail}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/readyz", timeout=5).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.3)
    raise HubFailedError("gunicorn did not answer /readyz with 200 within 120 s")


def wait_celery(celery: subprocess.Popen[bytes], children: Children) -> float:
    started = time.monotonic()
    while time.monotonic() - started < 120:
        if celery.poll() is not None:
            tail = children.log_text("celery")[-3000:]
            raise HubFailedError(f"the Celery worker exited with {celery.returncode}:\n{tail}")
        if " ready." in children.log_text("celery"):
            return time.monotonic() - started
        time.sleep(0.3)
    raise HubFailedError("the Celery worker did not say it was ready within 120 s")


# --- setup ------------------------------------------------------------------------------------


def manage(*args: str, env: dict[str, str]) -> str:
    """Run one management command as an administrator would; its stdout."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        raise HubFailedError(
            f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def hub_environment(port: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HASHHUB_SITE_URL=f"http://127.0.0.1:{port}",
        HASHHUB_WEB_PORT=str(port),
        # The soak measures the hub, not its rate limits.
        HASHHUB_API_RATE="100000000/min",
        HASHHUB_QUOTA_IMAGE_MATCHES_PER_MINUTE="100000000",
        # The webhook receiver is on loopback, which webhooks may not reach unless allowed.
        HASHHUB_WEBHOOK_ALLOWED_NETWORKS="127.0.0.1/32",
        HASHHUB_DEMO_PASSWORD=env.get("HASHHUB_DEMO_PASSWORD") or f"soak-{secrets.token_hex(8)}",
        PYTHONUNBUFFERED="1",
    )
    return env


def prepare(hub: Hub, receiver: WebhookReceiver) -> None:
    """Over HTTP, as an integration and a member would: the webhook, the write list, more stored
    hashes, the values to plant near-duplicates of, and the UI pages."""
    browser = log_in(hub)
    hooks = f"{hub.base}/o/{hub.org_slug}/webhooks/"
    response = browser.post(
        hooks,
        data={
            "csrfmiddlewaretoken": csrf_token_of(browser, hooks),
            "url": f"http://127.0.0.1:{receiver.port}/hook",
            "description": "soak receiver (loopback)",
        },
        headers={"Referer": hooks},
        allow_redirects=False,
        timeout=TIMEOUT_SECONDS,
    )
    if response.status_code != 201:
        say(f"  WARNING: the webhook was not registered ({response.status_code}); Celery idles")
    api = api_session(hub)

    def call(method: str, path: str, expected: int = 200, **kwargs: Any) -> dict[str, Any]:
        answer = api.request(method, hub.base + path, timeout=TIMEOUT_SECONDS, **kwargs)
        if answer.status_code != expected:
            raise HubFailedError(f"setup: {method} {path} answered {answer.status_code}: "
                                 f"{answer.text[:500]}")  # fmt: skip
        return answer.json()

    own = call("GET", "/api/v1/lists", params={"tier": "own"})["lists"]
    csam = next(item for item in own if item["category"] == "csam" and item.get("default"))
    created = call(
        "POST", "/api/v1/lists", 201,
        # A name of its own: `make bench` runs every script against the same database.
        json={"name": f"Soak writes {secrets.token_hex(3)}", "category": "se"},
    )  # fmt: skip
    hub.write_list = created["id"]
    started = time.perf_counter()
    rng = random.Random(18)
    for start in range(0, STORED, 1000):
        batch = [
            {"type": "pdq", "value": random_pdq(rng), "labels": ["soak"]}
            for _ in range(min(1000, STORED - start))
        ]
        call("POST", f"/api/v1/lists/{csam['id']}/entries", json={"entries": batch})
    # Two of the synthetic images are held, so that some image matches find something.
    for picture in [p for p in hub.images if p.name.startswith("soak-256x256")][:2]:
        hashed = call(
            "POST", "/api/v1/match/image",
            files={"image": (picture.name, picture.data, picture.content_type)},
        )  # fmt: skip
        value = hashed["hashes"]["pdq"]["value"]
        entry = {"type": "pdq", "value": value, "labels": ["soak-image"]}
        call("POST", f"/api/v1/lists/{csam['id']}/entries", json={"entries": [entry]})
    # Everything the org may match, from its export: the values to plant near-duplicates of.
    live: dict[tuple[str, str], int] = {}
    cursor = ""
    while True:
        page = call("GET", "/api/v1/export", params={"cursor": cursor, "limit": 10000})
        for item in page["items"]:
            key = (item["type"], item["value"])
            live[key] = live.get(key, 0) + (1 if item["op"] == "add" else -1)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    held = [key for key, count in live.items() if count > 0]
    hub.stored_pdq = [v for t, v in held if t == "pdq"][:5000]
    hub.stored_md5 = [v for t, v in held if t == "md5"][:5000]
    say(
        f"  stored: {csam['name']!r} +{STORED:,} PDQ via the API in "
        f"{time.perf_counter() - started:.1f} s; matchable now {len(held):,} hashes "
        f"({len(hub.stored_pdq):,} PDQ, {len(hub.stored_md5):,} MD5 sampled for near-duplicates)"
    )
    org = f"/o/{hub.org_slug}"
    hub.ui_pages = [
        ("UI dashboard", f"{org}/"),
        ("UI lists", f"{org}/lists/"),
        (f"UI list ({csam['size'] + STORED + 2:,} entries)", f"{org}/lists/{csam['id']}/"),
        ("UI list (soak writes)", f"{org}/lists/{hub.write_list}/"),
        ("UI detections", f"{org}/detections/"),
    ]
    for label, path in hub.ui_pages:
        status = browser.get(hub.base + path, allow_redirects=False, timeout=60).status_code
        if status != 200:
            say(f"  WARNING: {label} ({path}) answered {status} before the soak")
    browser.close()
    api.close()


# --- RSS samples ------------------------------------------------------------------------------


FORK = "fork"


@dataclass
class Sample:
    at: float  # seconds since the traffic started
    rss: dict[int, tuple[str, int]]  # pid -> (role, KiB)


class RssSampler(threading.Thread):
    def __init__(self, roots: dict[str, int], started: float) -> None:
        super().__init__(name="soak-rss", daemon=True)
        self.roots = roots
        self.started = started
        self.samples: list[Sample] = []
        self.stopping = threading.Event()

    def sample(self) -> Sample:
        parents = _parents()
        rss: dict[int, tuple[str, int]] = {}
        for name, root in self.roots.items():
            roles = ("master", "worker") if name == "gunicorn" else ("main", "child")
            for pid, depth in family(root, parents):
                # Deeper: a worker's short-lived fork (gunicorn's: the image decoder of
                # lists/hashtypes/decoding.py), reported apart from the long-lived processes.
                role = f"{name} {roles[depth] if depth < 2 else FORK}"
                if (kib := rss_kib(pid)) is not None:
                    rss[pid] = (role, kib)
        taken = Sample(time.monotonic() - self.started, rss)
        self.samples.append(taken)
        return taken

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            self.sample()


def clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def baseline_and_end(samples: list[Sample]) -> tuple[Sample, Sample]:
    end = samples[-1]
    return min(samples, key=lambda s: (abs(s.at - BASELINE_SECONDS), s.at)), end


def largest_growth(samples: list[Sample]) -> str:
    """The process whose RSS grew most from the baseline to the end, as a phrase."""
    if not samples:
        return "no samples"
    base, end = baseline_and_end(samples)
    growths = [
        (100 * (end.rss[pid][1] - kib) / kib, f"{role} {pid}")
        for pid, (role, kib) in base.rss.items()
        if pid in end.rss and kib and not role.endswith(FORK)
    ]
    if not growths:
        return "no process lived from the baseline to the end"
    growth, who = max(growths)
    return f"largest {growth:+.1f} % ({who})"


def rss_report(samples: list[Sample]) -> list[str]:
    if not samples:
        return ["  no RSS samples"]
    base, end = baseline_and_end(samples)
    columns = [samples[0]]
    for minute in range(60, int(end.at) + 1, 60):
        nearest = min(samples, key=lambda s: abs(s.at - minute))
        if nearest not in columns and abs(nearest.at - minute) <= SAMPLE_SECONDS:
            columns.append(nearest)
    if base not in columns:
        columns.append(base)
    # The last timed sample and the one taken as the traffic ended are often a moment apart.
    columns = [c for c in columns if c is base or end.at - c.at >= SAMPLE_SECONDS / 2]
    columns = sorted({id(c): c for c in [*columns, end]}.values(), key=lambda s: s.at)
    every = {pid for s in samples for pid in s.rss}
    forks = {pid for pid in every if _role(samples, pid).endswith(FORK)}
    pids = sorted(every - forks, key=lambda p: (_role(samples, p), p))
    head = "".join(f"{clock(c.at):>8}" for c in columns)
    lines = [
        f"  RSS in MiB; growth = end ({clock(end.at)}) against {clock(base.at)}, the end of the "
        f"warm-up",
        f"  {'process':<17} {'pid':>7}{head}  {'growth':>7}",
    ]
    totals: dict[str, list[float]] = {}
    for pid in pids:
        role = _role(samples, pid)
        cells = []
        for column in columns:
            kib = column.rss.get(pid, (role, None))[1]
            cells.append(f"{kib / 1024:>8.1f}" if kib is not None else f"{'-':>8}")
        first, last = base.rss.get(pid), end.rss.get(pid)
        if first and last:
            growth = f"{100 * (last[1] - first[1]) / first[1]:>+6.1f}%"
        elif last:
            seen = min(s.at for s in samples if pid in s.rss)
            growth = f"new {clock(seen)}"
        else:
            growth = "gone"
        lines.append(f"  {role:<17} {pid:>7}{''.join(cells)}  {growth:>7}")
        group = role.split()[0]
        sums = totals.setdefault(group, [0.0] * (len(columns) + 2))
        for i, column in enumerate(columns):
            sums[i] += column.rss.get(pid, ("", 0))[1]
        sums[-2] += base.rss.get(pid, ("", 0))[1]
        sums[-1] += end.rss.get(pid, ("", 0))[1]
    for group, sums in totals.items():
        row = "".join(f"{v / 1024:>8.1f}" for v in sums[:-2])
        growth = f"{100 * (sums[-1] - sums[-2]) / sums[-2]:>+6.1f}%" if sums[-2] else "-"
        lines.append(f"  {group + ' total':<17} {'':>7}{row}  {growth:>7}")
    if forks:
        caught = [s.rss[pid] for s in samples for pid in forks if pid in s.rss]
        largest = max(kib for _, kib in caught) / 1024
        lines.append(
            f"  not in the rows or totals: {len(caught)} sample(s) caught {len(forks)} short-lived "
            f"fork(s) of a worker ({', '.join(sorted({r for r, _ in caught}))}; largest RSS "
            f"{largest:.1f} MiB, mostly pages shared with its worker)"
        )
    return lines


def _role(samples: list[Sample], pid: int) -> str:
    return next(s.rss[pid][0] for s in samples if pid in s.rss)


# --- what the servers logged ------------------------------------------------------------------

LOGGED_PROBLEM = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b|WORKER TIMEOUT|Worker exiting|"
                            r"\[ERROR\]|exited with code|signal 9")  # fmt: skip


def log_report(children: Children) -> list[str]:
    lines = []
    for name in children.procs:
        text = children.log_text(name)
        found = [line for line in text.splitlines() if LOGGED_PROBLEM.search(line)]
        boots = len(re.findall(r"Booting worker with pid", text)) if name == "gunicorn" else 0
        extra = f", {boots} worker boots (initially {WORKERS})" if name == "gunicorn" else ""
        lines.append(f"  {name}: {len(text.splitlines()):,} log lines, {len(found)} at ERROR or "
                     f"worse{extra}")  # fmt: skip
        lines += [f"    {line[:300]}" for line in found[:5]]
    return lines


# --- CPU --------------------------------------------------------------------------------------


def cpu_classifier(roots: dict[str, int]) -> object:
    var = Path(os.environ.get("HASHHUB_VAR_DIR", "var"))
    postmaster = redis_pid = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        postmaster = int((var.parent / "postgres" / "postmaster.pid").read_text().split()[0])
    with contextlib.suppress(OSError, ValueError):
        redis_pid = int((var.parent / "redis" / "redis.pid").read_text().strip())
    known: dict[int, str | None] = {os.getpid(): "soak clients (this script)"}
    known.update({pid: f"hub: {name}" for name, pid in roots.items()})
    if postmaster is not None:
        known[postmaster] = "PostgreSQL (this hub's)"
    if redis_pid is not None:
        known[redis_pid] = "Redis (this hub's)"

    def classify(pid: int, ppid: int, command: str) -> str | None:
        # A process is its parent's part (workers, pool children, backends): parents are seen
        # first, since they are older. Anything else is other engineers' runs, or the machine.
        known.setdefault(pid, known.get(ppid))
        return known[pid]

    return classify


# --- the run ----------------------------------------------------------------------------------


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run as Ctrl-C does: through ``finally``, which stops all."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = {n: signal.signal(n, stop) for n in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(number, signal.SIG_IGN)  # the cleanup must not be cut short
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


def main() -> int:
    if not os.environ.get("DATABASE_URL"):
        say("DATABASE_URL is not set: run this under `python -m hub.embedded test -- …` "
            "(or against services of your own); trying the settings' defaults")  # fmt: skip
    # Inside the throwaway data directory, which `hub.embedded test` removes even when this
    # script is killed; elsewhere when they are to be kept.
    var = os.environ.get("HASHHUB_VAR_DIR", "").strip()
    if var and not KEEP_LOGS:
        Path(var).mkdir(parents=True, exist_ok=True)
    logs = Path(
        tempfile.mkdtemp(prefix="hashhub-soak-logs-", dir=None if KEEP_LOGS else var or None)
    )
    children = Children(logs)
    receiver = WebhookReceiver()
    port = free_port()
    env = hub_environment(port)
    hub = Hub(
        base=f"http://127.0.0.1:{port}", api_key="", org_slug=ORG, email=MEMBER,
        password=env["HASHHUB_DEMO_PASSWORD"],
    )  # fmt: skip
    cores = os.cpu_count() or 1
    say(
        f"soak: {SECONDS:.0f} s, {CLIENTS} client threads, gunicorn {WORKERS} sync workers + one "
        f"Celery worker{' + beat' if BEAT else ''}, on {cores} cores (load average "
        f"{os.getloadavg()[0]:.2f}: other work on the machine makes every figure noisy)"
    )
    stats = Stats()
    clients: list[Client] = []
    code = 0
    with signals_raise():
        try:
            started = time.perf_counter()
            manage("migrate", "--no-input", "-v", "0", env=env)
            manage("seeddemo", "--once", env=env)
            manage("seedmatching", "--org", ORG, "--once", env=env)
            manage("seedsharing", "--once", env=env)
            hub.api_key = manage(
                "createapikey", "--org", ORG, "--name", "soak",
                "--scopes", "match,lists:read,lists:write,export", env=env,
            ).strip().splitlines()[-1]  # fmt: skip
            say(f"  set up (migrate, seeddemo, seedmatching, seedsharing, createapikey) in "
                f"{time.perf_counter() - started:.1f} s")  # fmt: skip

            gunicorn = children.start("gunicorn", [
                sys.executable, "-m", "gunicorn", "hub.wsgi:application",
                "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--log-level", "info",
            ], env)  # fmt: skip
            celery = children.start("celery", [
                sys.executable, "-m", "celery", "-A", "hub", "worker", "--loglevel", "INFO",
                "--concurrency", "2", "-Q", "celery,imports,digests,webhooks",
                "-n", f"soak-{os.getpid()}@%h",
            ], env)  # fmt: skip
            if BEAT:
                children.start("beat", [
                    sys.executable, "-m", "celery", "-A", "hub", "beat", "--loglevel", "INFO",
                    "--schedule", str(logs / "celerybeat-schedule"),
                ], env)  # fmt: skip
            receiver.start()  # only now: no thread of ours may run while children fork
            ready = wait_ready(hub.base, gunicorn, children)
            celery_ready = wait_celery(celery, children)
            say(f"  gunicorn pid {gunicorn.pid} ready in {ready:.1f} s; Celery pid {celery.pid} "
                f"ready in {celery_ready:.1f} s; logs in {logs}")  # fmt: skip

            hub.images = synthetic_images()
            sizes = sorted({len(p.data) for p in hub.images})
            say(f"  {len(hub.images)} synthetic images, {sizes[0] / 1024:.0f} KiB to "
                f"{sizes[-1] / 1024:.0f} KiB")  # fmt: skip
            prepare(hub, receiver)

            roots = {name: p.pid for name, p in children.procs.items()}
            begin = time.monotonic()
            deadline = begin + SECONDS
            sampler = RssSampler(roots, begin)
            sampler.sample()
            sampler.start()
            clients = [Client(i, hub, stats, deadline) for i in range(CLIENTS)]
            with CpuBudget(cpu_classifier(roots)) as budget:  # type: ignore[arg-type]
                for client in clients:
                    client.start()
                next_report = begin + 60
                while any(c.is_alive() for c in clients):
                    time.sleep(0.5)
                    died = [n for n, p in children.procs.items() if p.poll() is not None]
                    if died and not clients[0].stopping.is_set():
                        say(f"  {', '.join(died)} exited during the soak: stopping the clients")
                        for client in clients:
                            client.stopping.set()
                    if time.monotonic() >= next_report and time.monotonic() < deadline:
                        next_report += 60
                        responses, errors, throttled = stats.totals()
                        latest = sampler.samples[-1]
                        mib = {
                            name: sum(
                                k
                                for r, k in latest.rss.values()
                                if r.startswith(name) and not r.endswith(FORK)
                            )
                            / 1024
                            for name in roots
                        }
                        say(f"  t={clock(time.monotonic() - begin)} responses={responses:,} "
                            f"errors={errors} 429={throttled} RSS "
                            + " ".join(f"{n}={v:.0f}MiB" for n, v in mib.items()))  # fmt: skip
                    if time.monotonic() > deadline + TIMEOUT_SECONDS + 30:
                        say("  some clients did not finish their last request: left behind")
                        break
                wall = time.monotonic() - begin
            sampler.stopping.set()
            sampler.join()
            sampler.sample()
            report(stats, begin, wall, sampler.samples, children, receiver, budget)
        except HubFailedError as error:
            say(f"the hub failed to start: {error}")
            code = 1
        finally:
            for client in clients:
                client.stopping.set()
            say("stopping gunicorn and Celery")
            children.stop_all()
            receiver.stop()
            if KEEP_LOGS:
                say(f"logs kept in {logs}")
            else:
                shutil.rmtree(logs, ignore_errors=True)
    return code


def report(
    stats: Stats,
    begin: float,
    wall: float,
    samples: list[Sample],
    children: Children,
    receiver: WebhookReceiver,
    budget: CpuBudget,
) -> None:
    responses, errors, throttled = stats.totals()
    say()
    say(f"== soak results: {wall:.0f} s of traffic, {responses:,} responses "
        f"({responses / wall:,.0f}/s), {CLIENTS} clients")  # fmt: skip
    kinds = ", ".join(f"{n} {k}" for k, n in stats.error_kinds.most_common()) or "none"
    say(f"errors: {errors} ({kinds}); 429s (counted apart): {throttled}")
    for example in stats.examples[:5]:
        say(f"  e.g. {example}")
    say(f"matches that found something: {stats.hits['match']:,} hash requests, "
        f"{stats.hits['image']:,} image requests")  # fmt: skip
    backlog = ""
    with contextlib.suppress(Exception):
        import redis

        queue = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:63799/0"))
        backlog = f"; still queued at the end: celery={queue.llen('celery')} " \
                  f"webhooks={queue.llen('webhooks')}"  # fmt: skip
    say(f"webhook deliveries received from Celery: {receiver.received:,} "
        f"({dict(receiver.events)}){backlog}")  # fmt: skip
    say("latency per endpoint (all responses; 429s and errors also counted in their columns):")
    window = 60.0 if wall >= 180 else wall / 3
    for line in stats.table(begin, begin + wall, window):
        say(line)
    say("RSS per process (gunicorn master and workers, Celery main and pool children):")
    for line in rss_report(samples):
        say(line)
    say("what the servers logged:")
    for line in log_report(children):
        say(line)
    say(
        "CPU during the traffic (the clients share the cores; a fork that ends between two "
        "CPU samples, like the image decoder's, shows only in the machine's busy time):"
    )
    say(budget.report())
    say(
        f"goals: 0 errors -> {errors}; RSS growth after the first minute <= 10 % -> "
        f"{largest_growth(samples)}"
    )


if __name__ == "__main__":
    sys.exit(main())
