"""Real HTTP servers on 127.0.0.1, in threads, that serve upstream feeds in their real formats.

:class:`Upstream` answers whatever a test puts in its routes and remembers every request;
:class:`FakeStopNCII` is a StopNCII ``FetchHashes`` endpoint (the JSON of the public
``threatexchange`` client) over a list of hash records. Hashes are random, never real.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lists.sources.adapters.http import Http


@dataclass(frozen=True)
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass
class Reply:
    body: bytes | str = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        return cls(json.dumps(data), status, {"Content-Type": "application/json"})


Route = Reply | Callable[[Request], Reply]


class Upstream:
    """A threaded HTTP server on 127.0.0.1; ``routes[path]``: a Reply, or a function making one."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = Request(
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    {k.lower(): v for k, v in self.headers.items()},
                )
                upstream.requests.append(request)
                route = upstream.routes.get(parts.path)
                if route is None:
                    reply = Reply("not found", 404)
                else:
                    reply = route(request) if callable(route) else route
                body = reply.body.encode() if isinstance(reply.body, str) else reply.body
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Upstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def serve_upstream() -> Iterator[Upstream]:
    """Body of a fixture: a running Upstream, stopped afterwards."""
    upstream = Upstream().start()
    try:
        yield upstream
    finally:
        upstream.stop()


def quick_http() -> Iterator[Http]:
    """Body of a fixture: an Http client that retries twice without waiting."""
    http = Http(timeout=5, attempts=2, backoff=0, sleep=lambda _: None)
    try:
        yield http
    finally:
        http.close()


def random_pdq() -> str:
    return secrets.token_hex(32)


def random_md5() -> str:
    return secrets.token_hex(16)


def stopncii_record(
    value: str,
    *,
    status: str = "Received",
    signal_type: str = "ImagePDQ",
    timestamp: int = 1_625_167_804,
) -> dict[str, Any]:
    """One hash record as StopNCII's FetchHashes returns it."""
    return {
        "lastModtimestamp": timestamp,
        "hashValue": value,
        "hashStatus": status,
        "caseNumbers": {str(secrets.token_hex(8)): status},
        "signalType": signal_type,
        "CSPFeedbacks": [{"source": "Example", "feedbackValue": "Blocked", "tags": ["Nude"]}],
    }


class FakeStopNCII:
    """``GET /v1/FetchHashes`` over ``records``, paged by startTimestamp and nextPageToken.

    Answers 401 unless both keys match; ``expire_tokens`` makes every page token a 400 (as a
    token that outlived the upstream's patience).
    """

    PATH = "/v1/FetchHashes"

    def __init__(self, subscription_key: str, function_key: str) -> None:
        self.records: list[dict[str, Any]] = []
        self.subscription_key = subscription_key
        self.function_key = function_key
        self.expire_tokens = False

    def __call__(self, request: Request) -> Reply:
        if (
            request.headers.get("ocp-apim-subscription-key") != self.subscription_key
            or request.headers.get("x-functions-key") != self.function_key
        ):
            return Reply.json({"statusCode": 401, "message": "Access denied"}, 401)
        start = int(request.query.get("startTimestamp", "10"))
        size = int(request.query.get("pageSize", "800"))
        offset = 0
        if request.query.get("nextPageToken"):
            if self.expire_tokens:
                return Reply.json({"message": "The page token has expired."}, 400)
            offset = json.loads(base64.b64decode(request.query["nextPageToken"]))["offset"]
        matching = sorted(
            (r for r in self.records if r["lastModtimestamp"] >= start),
            key=lambda r: r["lastModtimestamp"],
        )
        chunk = matching[offset : offset + size]
        more = offset + size < len(matching)
        token = base64.b64encode(json.dumps({"offset": offset + size}).encode()).decode()
        newest = max((r["lastModtimestamp"] for r in matching), default=start)
        return Reply.json(
            {
                "count": len(chunk),
                "nextPageToken": token if more else None,
                "nextSetTimestamp": newest + 1 if not more else newest,
                "hasMoreRecords": more,
                "hashRecords": chunk,
            }
        )
