"""The traffic of the soak (bench/soak.py): what its client threads send, and how it is counted.

A helper module, not a script (``make bench`` runs bench/[!_]*.py). It imports nothing of the
hub: the soak drives the hub only over HTTP, as an integration and a person at a browser would.
Every hash is random and every image synthetic (noise, gradients and shapes drawn with Pillow):
never real material.
"""

from __future__ import annotations

import io
import json
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import requests
from PIL import Image, ImageDraw

# A request that takes longer than this is a connection error (gunicorn's own timeout is 30 s).
TIMEOUT_SECONDS = 60
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
EXAMPLES_KEPT = 8


# --- counting ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What came back for one request: ``kind`` is ok, throttled or error."""

    kind: str
    status: int | None


@dataclass
class Stats:
    """Per-endpoint latencies and the errors, shared by every client thread."""

    # endpoint -> [(when the response came, monotonic; how long it took, seconds)]
    latencies: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    throttled: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    error_kinds: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        endpoint: str,
        seconds: float,
        status: int | None,
        expected: Iterable[int],
        detail: Callable[[], str],
    ) -> Outcome:
        """Count one request; ``detail`` (called only for an error) says what went wrong."""
        if status == 429:
            kind = "throttled"
        elif status is not None and status in expected:
            kind = "ok"
        else:
            kind = "error"
        with self.lock:
            if status is not None:
                self.latencies[endpoint].append((time.monotonic(), seconds))
            if kind == "throttled":
                self.throttled[endpoint] += 1
            elif kind == "error":
                self.errors[endpoint] += 1
                label = "connection error" if status is None else f"HTTP {status}"
                self.error_kinds[label] += 1
                if len(self.examples) < EXAMPLES_KEPT:
                    self.examples.append(f"{endpoint}: {label}: {detail()}"[:400])
        return Outcome(kind, status)

    def totals(self) -> tuple[int, int, int]:
        """(responses, errors, 429s) so far."""
        with self.lock:
            responses = sum(len(v) for v in self.latencies.values())
            return responses, sum(self.errors.values()), sum(self.throttled.values())

    def table(self, begin: float, end: float, window: float) -> list[str]:
        """One line per endpoint: N, p50, p99, max, 429s and errors, and p50 in the first and
        the last ``window`` seconds of the traffic (a drift shows there)."""
        lines = [
            f"  {'endpoint':<40} {'N':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
            f" {'429':>5} {'errors':>6}   p50 first/last {window:.0f} s"
        ]
        with self.lock:
            names = sorted(set(self.latencies) | set(self.errors))
            for name in names:
                timed = self.latencies.get(name, [])
                timings = sorted(seconds for _, seconds in timed)
                first = sorted(s for at, s in timed if at <= begin + window)
                last = sorted(s for at, s in timed if at >= end - window)
                lines.append(
                    f"  {name:<40} {len(timings):>7,} {_ms(timings, 0.5):>8}"
                    f" {_ms(timings, 0.99):>8} {_ms(timings, 1.0):>8}"
                    f" {self.throttled[name]:>5} {self.errors[name]:>6}"
                    f"   {_ms(first, 0.5):>6} / {_ms(last, 0.5):<6}"
                )
        return lines


def _ms(ordered: list[float], q: float) -> str:
    return f"{percentile(ordered, q) * 1000:.1f}" if ordered else "-"


def percentile(ordered: list[float], q: float) -> float:
    """The nearest-rank percentile of an ordered list."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


# --- hashes and images ------------------------------------------------------------------------


def random_pdq(rng: random.Random) -> str:
    return f"{rng.getrandbits(256):064x}"


def random_md5(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def near(value: str, flips: int, rng: random.Random) -> str:
    """``value`` (hex) with ``flips`` distinct random bits flipped."""
    number = int(value, 16)
    for bit in rng.sample(range(len(value) * 4), flips):
        number ^= 1 << bit
    return f"{number:0{len(value)}x}"


@dataclass(frozen=True)
class SyntheticImage:
    name: str
    data: bytes
    content_type: str


def synthetic_images(seed: int = 18) -> list[SyntheticImage]:
    """A pool of made-up images, a few sizes and kinds, PNG and JPEG (a few KiB to ~1 MiB)."""
    rng = np.random.default_rng(seed)
    pool = []
    sizes = [(64, 64), (256, 256), (640, 480), (1280, 720), (1920, 1440)]
    for width, height in sizes:
        for variant in range(3):
            if variant == 0:  # coarse noise, scaled up: a photo-like texture
                small = rng.integers(0, 256, (max(2, height // 16), max(2, width // 16), 3))
                image = Image.fromarray(small.astype("uint8"), "RGB").resize(
                    (width, height), Image.Resampling.BILINEAR
                )
            else:  # a gradient with shapes: smooth areas and edges
                x = np.linspace(0, 255, width, dtype="float32")
                y = np.linspace(0, 255, height, dtype="float32")[:, None]
                tint = rng.integers(0, 256, 3)
                planes = [(x * (i + 1) / 3 + y * (3 - i) / 3 + tint[i]) % 256 for i in range(3)]
                image = Image.fromarray(np.dstack(planes).astype("uint8"), "RGB")
                draw = ImageDraw.Draw(image)
                for _ in range(12):
                    x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
                    x1 = x0 + int(rng.integers(4, max(5, width // 3)))
                    y1 = y0 + int(rng.integers(4, max(5, height // 3)))
                    colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                    if rng.random() < 0.5:
                        draw.ellipse((x0, y0, x1, y1), fill=colour)
                    else:
                        draw.rectangle((x0, y0, x1, y1), fill=colour)
            buffer = io.BytesIO()
            if width * height <= 256 * 256 or variant == 2:
                image.save(buffer, "PNG")
                kind, extension = "image/png", "png"
            else:
                image.save(buffer, "JPEG", quality=85)
                kind, extension = "image/jpeg", "jpg"
            name = f"soak-{width}x{height}-{variant}.{extension}"
            pool.append(SyntheticImage(name, buffer.getvalue(), kind))
    return pool


# --- the hub as its clients see it ------------------------------------------------------------


@dataclass
class Hub:
    """What the clients need to know about the hub under test (filled in by the soak's setup)."""

    base: str
    api_key: str
    org_slug: str
    email: str
    password: str
    write_list: str = ""  # the public id of the list the clients add to and remove from
    ui_pages: list[tuple[str, str]] = field(default_factory=list)  # (row of the table, path)
    stored_pdq: list[str] = field(default_factory=list)
    stored_md5: list[str] = field(default_factory=list)
    images: list[SyntheticImage] = field(default_factory=list)


def api_session(hub: Hub) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {hub.api_key}"
    return session


def log_in(hub: Hub) -> requests.Session:
    """A browser session logged in through allauth's login form (with its CSRF token)."""
    session = requests.Session()
    page = session.get(f"{hub.base}/accounts/login/", timeout=TIMEOUT_SECONDS)
    page.raise_for_status()
    token = CSRF_FIELD.search(page.text)
    if token is None:
        raise RuntimeError("the login page has no CSRF token")
    response = session.post(
        f"{hub.base}/accounts/login/",
        data={"csrfmiddlewaretoken": token.group(1), "login": hub.email, "password": hub.password},
        headers={"Referer": f"{hub.base}/accounts/login/"},
        allow_redirects=False,
        timeout=TIMEOUT_SECONDS,
    )
    if response.status_code not in (302, 303):
        raise RuntimeError(f"logging in answered {response.status_code}: {response.text[:300]}")
    return session


def csrf_token_of(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=TIMEOUT_SECONDS)
    page.raise_for_status()
    token = CSRF_FIELD.search(page.text)
    if token is None:
        raise RuntimeError(f"{url} has no form with a CSRF token")
    return token.group(1)


# --- the client threads -----------------------------------------------------------------------

# How often each operation is picked (relative weights).
MIX = {
    "match": 50,
    "image": 8,
    "write": 16,
    "export": 10,
    "ui": 16,
}


class Client(threading.Thread):
    """One client: picks an operation by MIX, sends it, counts it; until ``deadline``."""

    def __init__(self, index: int, hub: Hub, stats: Stats, deadline: float) -> None:
        super().__init__(name=f"soak-client-{index}", daemon=True)
        self.index = index
        self.hub = hub
        self.stats = stats
        self.deadline = deadline
        self.stopping = threading.Event()
        self.rng = random.Random(1800 + index)
        self.api = api_session(hub)
        self.browser: requests.Session | None = None
        self.export_cursor = ""
        self.added: list[tuple[str, str]] = []  # written by this client, still in the list
        self.removed: list[tuple[str, str]] = []  # written by this client, then removed
        self.sent = 0
        self.ops: dict[str, Callable[[], None]] = {
            "match": self.match,
            "image": self.image,
            "write": self.write,
            "export": self.export,
            "ui": self.ui,
        }

    def run(self) -> None:
        names, weights = list(MIX), list(MIX.values())
        while time.monotonic() < self.deadline and not self.stopping.is_set():
            self.ops[self.rng.choices(names, weights)[0]]()

    # -- one request -------------------------------------------------------------------------

    def call(
        self,
        endpoint: str,
        session: requests.Session,
        method: str,
        path: str,
        expected: tuple[int, ...] = (200,),
        **kwargs: Any,
    ) -> requests.Response | None:
        """Send one request and count it; the response when it was one of ``expected``."""
        started = time.perf_counter()
        self.sent += 1
        try:
            response = session.request(
                method, self.hub.base + path, timeout=TIMEOUT_SECONDS, allow_redirects=False,
                **kwargs,
            )  # fmt: skip
        except requests.RequestException as error:
            elapsed = time.perf_counter() - started
            message = f"{method} {path}: {type(error).__name__}: {error}"
            self.stats.record(endpoint, elapsed, None, expected, lambda: message)
            time.sleep(0.2)  # a hub that is down is not hammered in a tight loop
            return None
        elapsed = time.perf_counter() - started
        outcome = self.stats.record(
            endpoint,
            elapsed,
            response.status_code,
            expected,
            lambda: f"{method} {path} -> {response.text[:300]!r}",
        )
        return response if outcome.kind == "ok" else None

    # -- the operations ----------------------------------------------------------------------

    def _query(self) -> dict[str, str]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return {"type": "pdq", "value": random_pdq(rng)}
        if roll < 0.85:
            return {"type": "md5", "value": random_md5(rng)}
        if roll < 0.95:
            return {"type": "sha1", "value": f"{rng.getrandbits(160):040x}"}
        # A malformed value: a per-item error in a 200, never a 500 (invariant 6).
        return {"type": "pdq", "value": "not-a-hash-" + random_md5(rng)[:8]}

    def match(self) -> None:
        rng = self.rng
        size = rng.choice((1, 1, 1, 1, 2, 3, 5, 10, 25, 100))
        hashes = [self._query() for _ in range(size)]
        # About one request in six carries something held: a PDQ near a stored one, or a
        # stored MD5 as it is (a detection, and a webhook delivery through Celery).
        if rng.random() < 0.16 and (self.hub.stored_pdq or self.hub.stored_md5):
            if self.hub.stored_pdq and (rng.random() < 0.75 or not self.hub.stored_md5):
                value = near(rng.choice(self.hub.stored_pdq), rng.randint(0, 24), rng)
                hashes[rng.randrange(size)] = {"type": "pdq", "value": value}
            else:
                value = rng.choice(self.hub.stored_md5)
                hashes[rng.randrange(size)] = {"type": "md5", "value": value}
        body: dict[str, Any] = {"hashes": hashes}
        if rng.random() < 0.2:
            body["max_distance"] = {"pdq": rng.choice((0, 10, 20, 31))}
        if rng.random() < 0.5:
            body["content_ref"] = f"soak-{self.index}-{self.sent}"
        response = self.call("POST /api/v1/match", self.api, "POST", "/api/v1/match", json=body)
        if response is not None and any(r.get("matches") for r in response.json()["results"]):
            with self.stats.lock:
                self.stats.hits["match"] += 1

    def image(self) -> None:
        picture = self.rng.choice(self.hub.images)
        data: dict[str, str] = {"content_ref": f"soak-image-{self.index}-{self.sent}"}
        if self.rng.random() < 0.2:
            data["max_distance"] = json.dumps({"pdq": 20})
        response = self.call(
            "POST /api/v1/match/image", self.api, "POST", "/api/v1/match/image",
            files={"image": (picture.name, picture.data, picture.content_type)}, data=data,
        )  # fmt: skip
        if response is not None and any(r.get("matches") for r in response.json()["results"]):
            with self.stats.lock:
                self.stats.hits["image"] += 1

    def write(self) -> None:
        rng = self.rng
        path = f"/api/v1/lists/{self.hub.write_list}/entries"
        if self.added and (len(self.added) > 300 or rng.random() < 0.45):
            count = min(len(self.added), rng.randint(1, 20))
            chosen = [self.added.pop(rng.randrange(len(self.added))) for _ in range(count)]
            refs = [{"type": t, "value": v} for t, v in chosen]
            if rng.random() < 0.2:  # one that was never there: "not_present", not an error
                refs.append({"type": "md5", "value": random_md5(rng)})
            body: dict[str, Any] = {"entries": refs}
            if self.call(f"POST {path_label(path)}/remove", self.api, "POST", path + "/remove",
                         json=body) is not None:  # fmt: skip
                self.removed = (self.removed + chosen)[-300:]
            else:
                self.added += chosen  # unknown outcome: may be removed again later
            return
        count = rng.randint(1, 20)
        fresh = [
            ("pdq", random_pdq(rng)) if rng.random() < 0.6 else ("md5", random_md5(rng))
            for _ in range(count)
        ]
        # Some come back after a removal (a tombstone and a new membership of the same hash).
        if self.removed and rng.random() < 0.3:
            fresh += [self.removed.pop(rng.randrange(len(self.removed)))]
        body = {
            "entries": [
                {"type": t, "value": v, "labels": ["soak"], "note": "synthetic soak hash"}
                for t, v in fresh
            ]
        }
        if self.call(f"POST {path_label(path)}", self.api, "POST", path, json=body) is not None:
            self.added += fresh

    def export(self) -> None:
        response = self.call(
            "GET /api/v1/export", self.api, "GET", "/api/v1/export",
            params={"cursor": self.export_cursor, "limit": 500},
        )  # fmt: skip
        if response is None:
            return
        page = response.json()
        self.export_cursor = page["next_cursor"]
        # Caught up: usually poll on from here, as an integration does; sometimes replay it all.
        if not page["has_more"] and self.rng.random() < 0.3:
            self.export_cursor = ""

    def ui(self) -> None:
        if self.browser is None:
            started = time.perf_counter()
            try:
                self.browser = log_in(self.hub)
            except (requests.RequestException, RuntimeError) as error:
                message = f"{type(error).__name__}: {error}"
                elapsed = time.perf_counter() - started
                self.stats.record("UI log in", elapsed, None, (), lambda: message)
                return
            self.stats.record("UI log in", time.perf_counter() - started, 302, (302,), str)
        label, path = self.rng.choice(self.hub.ui_pages)
        self.call(label, self.browser, "GET", path)


def path_label(path: str) -> str:
    """A path with its opaque ids (16 characters) folded, so that an endpoint is one row."""
    return "/".join("{id}" if len(part) == 16 else part for part in path.split("/"))


# --- a webhook receiver, so that Celery has deliveries to make ------------------------------


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that answers every POST 204 and counts them."""

    def __init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.received += 1
                    try:
                        receiver.events[json.loads(body).get("event", "?")] += 1
                    except (ValueError, AttributeError):
                        receiver.events["(unreadable)"] += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.lock = threading.Lock()
        self.received = 0
        self.events: Counter[str] = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
