"""How the e2e tests reach a running hub: its management commands as an administrator runs
them, its API with an organisation's key, and its web pages as a person sees them.

Nothing here imports the hub's code: a test sees only what those users would see.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit

import httpx
import numpy as np
from PIL import Image, ImageDraw

from tests.launched_hub import ROOT, LaunchedHub, tail

Hash = tuple[str, str]
"""(signal type, value in its canonical text form)."""
Held = tuple[str, str, str]
"""(list id, signal type, value): one hash in one list, as the match API and the export name it."""

MATCH_BATCH = 1000  # the most hashes one match request may carry (API contract v1)
EXPORT_PAGE = 10_000  # the largest export page the hub gives
HEX_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "pdq": 32, "phash": 8, "photodna": 144}
COMMAND_SECONDS = 300  # generous: a limit against a hang, never asserted on
DEMO_KEY = re.compile(r"Acme's demo API key \(shown once\): (\S+)")


@dataclass(frozen=True)
class RunningHub(LaunchedHub):
    """The e2e hub: its temporary directory (data under var/), its three ports and its output."""

    @property
    def log(self) -> Path:
        return self.root / "launcher.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def manage(
        self, *args: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`manage.py ARGS` against this hub, as an administrator runs it in another shell.

        With ``check`` (the default) the command must succeed; its output is in the message if not.
        """
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.environment(env),
            capture_output=True, text=True, timeout=COMMAND_SECONDS, check=False,
        )  # fmt: skip
        if check:
            assert result.returncode == 0, (
                f"manage.py {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def api(self, key: str) -> Api:
        return Api(self.url, key)

    def demo_key(self) -> str:
        """The API key `seeddemo` printed for Acme, once, into the launcher's output."""
        found = DEMO_KEY.search(self.log.read_text(errors="replace"))
        assert found, f"seeddemo printed no API key:\n{self.log_tail()}"
        return found.group(1)

    def log_tail(self) -> str:
        return tail(self.log)


def random_hash(signal_type: str) -> Hash:
    """A random value of a type, in its canonical form (lowercase hex): never real material."""
    return signal_type, secrets.token_hex(HEX_BYTES[signal_type])


def synthetic_png(seed: int, size: tuple[int, int] = (256, 256)) -> bytes:
    """A busy synthetic picture (a gradient, shapes, noise), busy enough for a good PDQ."""
    rng = np.random.default_rng(seed)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    gradient = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // height], axis=-1)
    image = Image.fromarray(gradient.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.rectangle((x0, y0, x1, y1), fill=colour)
    noise = rng.integers(-12, 13, (height, width, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "PNG")
    return buffer.getvalue()


class Api:
    """One organisation's API key, used as a platform integration uses it (API contract v1)."""

    def __init__(self, base_url: str, key: str) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        )

    def close(self) -> None:
        self.http.close()

    def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        """The JSON body of a request that must answer ``expect``."""
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == expect, (
            f"{method} {path} answered {response.status_code}, not {expect}: {response.text[:2000]}"
        )
        return response.json()

    def lists(self, **filters: str) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/v1/lists", params=filters)["lists"])

    def list_id(self, name: str, tier: str = "own") -> str:
        """The id of the list the caller sees under this name in that tier."""
        found = [item["id"] for item in self.lists(tier=tier) if item["name"] == name]
        assert len(found) == 1, f"{len(found)} {tier} lists named {name!r}"
        return str(found[0])

    def entries(self, list_id: str, limit: int = 100) -> list[Hash]:
        body = self.call("GET", f"/api/v1/lists/{list_id}/entries", params={"limit": limit})
        return [(entry["type"], entry["value"]) for entry in body["entries"]]

    def add(self, list_id: str, hashes: Iterable[Hash]) -> dict[str, Any]:
        """Add hashes to one of the caller's lists; every one must be accepted."""
        items = [{"type": kind, "value": value} for kind, value in hashes]
        body = self.call("POST", f"/api/v1/lists/{list_id}/entries", json={"entries": items})
        assert body["errors"] == [], body["errors"]
        return dict(body)

    def match(self, hashes: Iterable[Hash]) -> dict[Hash, list[dict[str, Any]]]:
        """Each submitted hash's matches (in batches the API accepts); none may be refused."""
        queries = sorted(set(hashes))
        found: dict[Hash, list[dict[str, Any]]] = {}
        for start in range(0, len(queries), MATCH_BATCH):
            batch = queries[start : start + MATCH_BATCH]
            items = [{"type": kind, "value": value} for kind, value in batch]
            body = self.call("POST", "/api/v1/match", json={"hashes": items})
            for query, result in zip(batch, body["results"], strict=True):
                assert result["error"] is None, (query, result["error"])
                found[query] = result["matches"]
        return found

    def exact_matches(self, hashes: Iterable[Hash]) -> set[Held]:
        """(list, type, value) for each submitted hash found as itself (not merely near)."""
        return {
            (match["list"]["id"], kind, value)
            for (kind, value), matches in self.match(hashes).items()
            for match in matches
            if match["matched_value"] == value
        }

    def export_replay(self) -> set[Held]:
        """Replay the delta export from the start: the (list, hash) pairs live at its end."""
        live: set[Held] = set()
        cursor = ""
        while True:
            page = self.call(
                "GET", "/api/v1/export", params={"cursor": cursor, "limit": EXPORT_PAGE}
            )
            for item in page["items"]:
                held = (item["list"]["id"], item["type"], item["value"])
                if item["op"] == "add":
                    live.add(held)
                else:
                    live.discard(held)
            cursor = page["next_cursor"]
            if not page["has_more"]:
                return live


# --- the web UI -------------------------------------------------------------------------------


class _Page(HTMLParser):
    """The links and the CSRF token of an HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.csrf_token = ""
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        elif tag == "input" and values.get("name") == "csrfmiddlewaretoken":
            self.csrf_token = values.get("value") or ""


@dataclass
class Crawl:
    visited: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


class Browser:
    """A person at the web UI: a cookie jar, forms posted with the CSRF token they carry."""

    def __init__(self, base_url: str) -> None:
        self.base = urlsplit(base_url)
        self.http = httpx.Client(base_url=base_url, timeout=120)

    def close(self) -> None:
        self.http.close()

    def csrf_token(self, path: str) -> str:
        response = self.http.get(path, follow_redirects=True)
        assert response.status_code == 200, (path, response.status_code)
        token = _Page(response.text).csrf_token
        assert token, f"{path} has no form with a CSRF token"
        return token

    def post_form(
        self, path: str, data: dict[str, str], files: dict[str, Any] | None = None
    ) -> httpx.Response:
        """Fill in and send the form on ``path``, as its submit button would."""
        fields = {"csrfmiddlewaretoken": self.csrf_token(path), **data}
        return self.http.post(path, data=fields, files=files)

    def log_in(self, email: str, password: str) -> str:
        """Log in through the real login form; the path the hub lands on afterwards."""
        response = self.post_form("/accounts/login/", {"login": email, "password": password})
        assert response.status_code in (302, 303), (
            f"logging in as {email} answered {response.status_code}: {response.text[:2000]}"
        )
        landed = self.http.get(response.headers["location"], follow_redirects=True)
        return landed.url.path

    def logged_in(self) -> bool:
        response = self.http.get("/", follow_redirects=True)
        return not response.url.path.startswith("/accounts/login/")

    def crawl(self, start: str = "/", limit: int = 300) -> Crawl:
        """GET every same-origin page reachable by ``<a href>`` from ``start``, up to ``limit``.

        Redirects are followed by hand (never off this origin). Never logout, never the API
        (except its docs page); pages that differ only in long query values (hashes, cursors,
        ``next``) or in the order of their parameters count as one.
        """
        crawl = Crawl()
        queue = [start]
        seen = {page_key(start)}
        linked_from = {start: "(start)"}
        while queue and len(crawl.visited) < limit:
            url = queue.pop(0)
            crawl.visited.append(url)
            try:
                response = self.http.get(url)
            except httpx.HTTPError as error:
                failure = f"{type(error).__name__} {error}"
                crawl.failures.append(f"GET {url}: {failure} (linked from {linked_from[url]})")
                continue
            if response.status_code >= 500:
                crawl.failures.append(
                    f"GET {url}: {response.status_code} (linked from {linked_from[url]})"
                )
                continue
            if response.is_redirect:
                links = [response.headers["location"]]
            elif response.headers.get("content-type", "").startswith("text/html"):
                links = _Page(response.text).links
            else:
                continue
            for link in links:
                target = self._crawlable(urljoin(str(response.url), link))
                if target is not None and page_key(target) not in seen:
                    seen.add(page_key(target))
                    linked_from[target] = url
                    queue.append(target)
        return crawl

    def _crawlable(self, url: str) -> str | None:
        """The path and query of a URL the crawl may follow, or None."""
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (self.base.scheme, self.base.netloc):
            return None
        if "logout" in parts.path:
            return None
        if parts.path.startswith("/api/") and parts.path != "/api/docs":
            return None
        return parts.path + (f"?{parts.query}" if parts.query else "")


def page_key(url: str) -> str:
    """A URL with its query normalised: parameters sorted, long (opaque) values elided."""
    parts = urlsplit(url)
    query = sorted(
        (name, value if len(value) <= 20 else "…")
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return parts.path + (f"?{urlencode(query)}" if query else "")


# --- a hub whose operator lets webhooks and sources reach 127.0.0.1 -------------------------------

METRICS_TOKEN = "e2e-metrics-token-0123456789"

LOCAL_ONLY = {
    "HASHHUB_WEBHOOK_ALLOWED_NETWORKS": "127.0.0.1/32",
    "HASHHUB_SOURCE_ALLOWED_HOSTS": "127.0.0.1",
    # Prometheus scrapes /metrics with this token (hub.metrics).
    "HASHHUB_METRICS_TOKEN": METRICS_TOKEN,
}


@dataclass(frozen=True)
class LocalHub(RunningHub):
    """A hub whose operator allows webhooks and sources on 127.0.0.1 and lets Prometheus scrape
    /metrics with a token (the settings the README names), which the session's shared hub does
    not."""

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return super().environment({**LOCAL_ONLY, **(extra or {})})


class LocalServer:
    """A plain HTTP server on 127.0.0.1 in a thread: serves ``body`` on GET (a feed file), and
    records each POST's headers and body (a webhook receiver)."""

    def __init__(self, body: bytes = b"") -> None:
        self.body = body
        self.posts: list[tuple[dict[str, str], bytes]] = []
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(state.body)))
                self.end_headers()
                self.wfile.write(state.body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                state.posts.append((dict(self.headers.items()), self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}"

    def events(self, name: str) -> list[dict[str, Any]]:
        """The bodies of the webhook deliveries of event ``name`` received so far."""
        return [
            json.loads(body)
            for headers, body in self.posts
            if headers.get("X-HashHub-Event") == name
        ]

    def __enter__(self) -> LocalServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.http.shutdown()
        self.http.server_close()


def wait_for(condition: Callable[[], Any], seconds: float) -> Any:
    """``condition()`` once it is truthy, polling twice a second, or its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    return condition()
