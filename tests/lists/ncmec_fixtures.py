"""A local NCMEC hash-sharing API v2 server for tests and bench/ncmec_import.py.

A real HTTP server on 127.0.0.1 (http.server in a thread) speaking the format the real API
speaks (see lists/sources/adapters/ncmec.py): Basic auth, ``/v2/status``, ``/v2/entries?from=&to=``
with ``<paging><next>`` links carrying ``start``, ``size`` and ``max``. Every path sits under a
prefix (``/hashsharing`` by default), like NCMEC's environments, while ``next`` links are
relative to it, as NCMEC's are.

The entries are a *log* in delivery order: :class:`EntryLog` keeps explicit entries (tests add
updates and deletions between fetches), :class:`SyntheticLog` computes N entries on the fly (the
benchmark, the crash test). Within a time range they are served in delivery order, which is not
time order: an entry may carry an earlier timestamp than one delivered before it.

Faults are planned per request (:class:`Fault`): an HTTP status, a delay, or a body to serve
instead. Hashes are random or derived from a counter: never real material.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, quote, urlsplit
from xml.sax.saxutils import escape, quoteattr

NS = "https://hashsharing.ncmec.org/hashsharing/v2"
USERNAME = "hub-user"
PASSWORD = "correct horse"
CLASSIFICATIONS = ("A1", "A2", "B1", "B2")


def iso(moment: datetime | int) -> str:
    if isinstance(moment, int):
        moment = datetime.fromtimestamp(moment, UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


@dataclass(frozen=True)
class UpstreamEntry:
    """One record of the log: an image or video (with fingerprints) or a deletion."""

    member: int
    id: str
    timestamp: int  # seconds since the epoch
    kind: str = "image"  # image | video
    deleted: bool = False
    classification: str = ""
    fingerprints: tuple[tuple[str, str], ...] = ()  # (element name, value)
    raw: str = ""  # served verbatim instead (a malformed entry)

    @property
    def key(self) -> str:
        return f"{self.member}:{self.id}"

    def xml(self) -> str:
        if self.raw:
            return self.raw
        tag = ("deleted" + self.kind.capitalize()) if self.deleted else self.kind
        parts = [
            f"<{tag}><member id={quoteattr(str(self.member))}>Member {self.member}</member>",
            f"<timestamp>{iso(self.timestamp)}</timestamp><id>{escape(self.id)}</id>",
        ]
        if not self.deleted:
            if self.classification:
                parts.append(f"<classification>{escape(self.classification)}</classification>")
            parts.append("<fingerprints>")
            for name, value in self.fingerprints:
                if name in ("tmk-pdqf", "videntifier"):  # NCMEC links these, it does not inline
                    parts.append(f'<{name} rel="self" href="/v2/entries/1/fingerprints/{name}"/>')
                else:
                    parts.append(f"<{name}>{escape(value)}</{name}>")
            parts.append("</fingerprints>")
        parts.append(f"</{tag}>")
        return "".join(parts)


def random_fingerprints(*, pdna: bool = True) -> tuple[tuple[str, str], ...]:
    prints = [
        ("md5", secrets.token_hex(16)),
        ("sha1", secrets.token_hex(20)),
        ("pdq", secrets.token_hex(32)),
    ]
    if pdna:
        prints.append(("pdna", base64.b64encode(secrets.token_bytes(144)).decode()))
    return tuple(prints)


def image(
    member: int, entry_id: str, timestamp: int, classification: str = "A1", **kw: Any
) -> UpstreamEntry:
    fingerprints = kw.pop("fingerprints", None) or random_fingerprints()
    return UpstreamEntry(
        member, entry_id, timestamp, "image", False, classification, fingerprints, **kw
    )


def video(member: int, entry_id: str, timestamp: int, classification: str = "B1") -> UpstreamEntry:
    prints = (("md5", secrets.token_hex(16)), ("tmk-pdqf", ""))
    return UpstreamEntry(member, entry_id, timestamp, "video", False, classification, prints)


def deleted(member: int, entry_id: str, timestamp: int, kind: str = "image") -> UpstreamEntry:
    return UpstreamEntry(member, entry_id, timestamp, kind, True)


class Log(Protocol):
    def window(self, start: int, end: int) -> Sequence[UpstreamEntry]:
        """Entries with ``start <= timestamp < end``, in delivery order."""
        ...


class EntryLog:
    """Explicit entries in delivery order; tests append more between fetches."""

    def __init__(self, entries: Sequence[UpstreamEntry] = ()) -> None:
        self._entries = list(entries)
        self._lock = threading.Lock()

    def add(self, *entries: UpstreamEntry) -> None:
        with self._lock:
            self._entries.extend(entries)

    def window(self, start: int, end: int) -> Sequence[UpstreamEntry]:
        with self._lock:
            return [e for e in self._entries if start <= e.timestamp < end]


class SyntheticLog:
    """``n`` entries computed from their sequence number (no per-entry memory).

    Entry ``i`` is delivered ``i``-th, ~``86400 / per_day`` seconds after the one before, with a
    timestamp jitter of up to ``jitter`` seconds either way (so time order and delivery order
    differ). Of every 20: 85 % add a new image (every tenth a video), 10 % update an image
    added ``update_gap`` entries earlier (new fingerprints and classification), 5 % delete one
    added ``delete_gap`` earlier (after its update). Fingerprints derive from ``i``.
    """

    def __init__(
        self,
        n: int,
        *,
        start: datetime,
        per_day: int = 10_000,
        jitter: int = 120,
        update_gap: int = 5003,
        delete_gap: int = 6007,
    ) -> None:
        if update_gap % 20 != 3 or delete_gap % 20 != 7 or delete_gap <= update_gap:
            raise ValueError("gaps must be 3 and 7 modulo 20, deletions after updates")
        self.n = n
        self.base = int(start.timestamp())
        self.step_centis = max(1, 8_640_000 // per_day)  # hundredths of a second per entry
        self.jitter = jitter
        self.update_gap = update_gap
        self.delete_gap = delete_gap
        self._cache: tuple[tuple[int, int], list[int]] | None = None

    def timestamp(self, i: int) -> int:
        wobble = (i * 2654435761) % (2 * self.jitter + 1) - self.jitter
        return max(self.base, self.base + i * self.step_centis // 100 + wobble)

    @property
    def end(self) -> int:
        """A time after every entry's timestamp."""
        return self.base + self.n * self.step_centis // 100 + self.jitter + 1

    def window(self, start: int, end: int) -> Sequence[UpstreamEntry]:
        if self._cache is None or self._cache[0] != (start, end):
            low = max(0, (start - self.base - self.jitter) * 100 // self.step_centis - 1)
            high = min(self.n, (end - self.base + self.jitter) * 100 // self.step_centis + 2)
            found = [i for i in range(low, high) if start <= self.timestamp(i) < end]
            self._cache = ((start, end), found)
        return _LazyEntries(self, self._cache[1])

    def entry(self, i: int) -> UpstreamEntry:
        residue = i % 20
        ref, version, removal = i, 0, False
        if residue in (3, 13) and i >= self.update_gap:
            ref, version = i - self.update_gap, 1
        elif residue == 7 and i >= self.delete_gap:
            ref, removal = i - self.delete_gap, True
        member, entry_id = 1000 + ref % 7, f"e{ref}"
        kind = "video" if ref % 10 == 5 else "image"
        if removal:
            return UpstreamEntry(member, entry_id, self.timestamp(i), kind, True)
        seed = f"hashhub-bench-{i}".encode()
        classification = CLASSIFICATIONS[(ref + version) % 4]
        if kind == "video":
            prints: tuple[tuple[str, str], ...] = (
                ("md5", hashlib.md5(seed).hexdigest()),  # noqa: S324 - synthetic data
                ("tmk-pdqf", ""),
            )
        else:
            prints = (
                ("md5", hashlib.md5(seed).hexdigest()),  # noqa: S324 - synthetic data
                ("sha1", hashlib.sha1(seed).hexdigest()),  # noqa: S324 - synthetic data
                ("pdq", hashlib.sha256(seed).hexdigest()),
            )
            if i % 4 == 0:
                prints += (
                    ("pdna", base64.b64encode(hashlib.shake_128(seed).digest(144)).decode()),
                )
        moment = self.timestamp(i)
        return UpstreamEntry(member, entry_id, moment, kind, False, classification, prints)


class _LazyEntries(Sequence[UpstreamEntry]):
    def __init__(self, log: SyntheticLog, indices: list[int]) -> None:
        self._log = log
        self._indices = indices

    def __len__(self) -> int:
        return len(self._indices)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice):
            return [self._log.entry(i) for i in self._indices[item]]
        return self._log.entry(self._indices[item])


@dataclass
class Fault:
    """What the server does instead of answering one request normally."""

    status: int = 0  # answer with this HTTP status
    delay: float = 0.0  # sleep this long first
    body: bytes | None = None  # serve this body (with status 200 unless ``status``)
    path: str = "/v2/entries"  # the endpoint it applies to ('' = any)
    skip: int = 0  # let this many of its requests through first


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a killed worker, a timed-out request) is part of the tests.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class NcmecServer:
    """The server; use as a context manager. ``url`` is the base a source's config names."""

    log: Log = field(default_factory=EntryLog)
    page_size: int = 1000
    delay: float = 0.0  # seconds per entries page
    prefix: str = "/hashsharing"
    username: str = USERNAME
    password: str = PASSWORD
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    # Keep each entries page once made and serve it again from memory (the benchmark's server:
    # its first, adapter-only pass renders the pages, so the timed import that follows does not
    # share the CPU with making XML, as it would not with a real upstream on another machine).
    memo: bool = False

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        self._expected_auth = f"Basic {token}"
        self._pages: dict[str, tuple[int, bytes]] = {}

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}"

    def __enter__(self) -> NcmecServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                status, body = owner.answer(self.path, self.headers.get("Authorization", ""))
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="hashsharing"')
                self.send_header("Content-Type", "application/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def wait(self) -> None:
        """Block while the server runs (a server process: the benchmark's)."""
        if self._thread is not None:
            self._thread.join()

    # --- answering ------------------------------------------------------------------------

    def entries_requests(self) -> list[str]:
        return [path for path in self.requests if "/v2/entries" in path]

    def answer(self, raw_path: str, authorization: str) -> tuple[int, bytes]:
        parts = urlsplit(raw_path)
        if not parts.path.startswith(self.prefix + "/"):
            return 404, b"<error>not found</error>"
        path = parts.path[len(self.prefix) :]
        with self._lock:
            self.requests.append(path + (f"?{parts.query}" if parts.query else ""))
            fault = next((f for f in self.faults if not f.path or f.path == path), None)
            if fault is not None and fault.skip:
                fault.skip -= 1
                fault = None
            elif fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.body is not None or fault.status:
                return fault.status or 200, fault.body or b"<error>planned failure</error>"
        if not secrets.compare_digest(authorization, self._expected_auth):
            return 401, b"<error>unauthorized</error>"
        if path == "/v2/status":
            return 200, self.status_xml()
        if path == "/v2/entries":
            if self.delay:
                time.sleep(self.delay)
            if not self.memo:
                return self.entries_xml(parse_qs(parts.query))
            answer = self._pages.get(parts.query)
            if answer is None:
                answer = self._pages[parts.query] = self.entries_xml(parse_qs(parts.query))
            return answer
        return 404, b"<error>not found</error>"

    def status_xml(self) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<status xmlns="{NS}"><ipAddress>127.0.0.1</ipAddress>'
            f"<username>{escape(self.username)}</username>"
            '<member id="1">HashHub test member</member></status>'
        ).encode()

    def entries_xml(self, query: dict[str, list[str]]) -> tuple[int, bytes]:
        try:
            start_text, end_text = query["from"][0], query["to"][0]
            start, end = _epoch(start_text), _epoch(end_text)
            first = int(query.get("start", ["1"])[0])
            size = min(self.page_size, int(query.get("size", [str(self.page_size)])[0]))
        except (KeyError, ValueError):
            return 400, b"<error>bad query</error>"
        entries = self.log.window(start, end)
        total = len(entries)
        page = entries[first - 1 : first - 1 + size]
        sections = []
        for section, kind in (("images", "image"), ("videos", "video")):
            members = [e for e in page if e.kind == kind]
            if members:
                newest = max(e.timestamp for e in members)
                sections.append(
                    f'<{section} count="{len(members)}" maxTimestamp="{iso(newest)}">'
                    + "".join(e.xml() for e in members)
                    + f"</{section}>"
                )
        paging = ""
        following = first + len(page)
        if page and following <= total:
            link = (
                f"/v2/entries?from={quote(start_text, safe='')}&to={quote(end_text, safe='')}"
                f"&start={following}&size={size}&max={total}"
            )
            paging = f"<paging><next>{escape(link)}</next></paging>"
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            f'<queryResult xmlns="{NS}">{"".join(sections)}{paging}</queryResult>'
        )
        return 200, body.encode()


# Hostile documents: each must be refused without being expanded or fetched.
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<queryResult xmlns="https://hashsharing.ncmec.org/hashsharing/v2"><images count="1">
<image><member id="1">&lol9;</member><id>x</id></image></images></queryResult>"""


def external_entity(target: str) -> bytes:
    """XXE: an entity whose value is read from ``target`` (a file or URL)."""
    return f"""<?xml version="1.0"?>
<!DOCTYPE queryResult [<!ENTITY xxe SYSTEM "{target}">]>
<queryResult xmlns="{NS}"><images count="1">
<image><member id="1">m</member><id>&xxe;</id><fingerprints><md5>{"0" * 32}</md5></fingerprints>
</image></images></queryResult>""".encode()


def external_dtd(target: str) -> bytes:
    """A document that pulls in an external DTD (parameter entities, out-of-band XXE)."""
    return f"""<?xml version="1.0"?>
<!DOCTYPE queryResult SYSTEM "{target}">
<queryResult xmlns="{NS}"></queryResult>""".encode()


def main() -> None:
    """``python -m tests.lists.ncmec_fixtures N START [PAGE_SIZE [PER_DAY]]``: serve a synthetic
    log of N entries from START (ISO) in this process; prints the base URL, then blocks."""
    n, start = int(sys.argv[1]), datetime.fromisoformat(sys.argv[2])
    page_size = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    per_day = int(sys.argv[4]) if len(sys.argv) > 4 else 10_000
    server = NcmecServer(
        log=SyntheticLog(n, start=start, per_day=per_day), page_size=page_size, memo=True
    )
    server.start()
    print(server.url, flush=True)
    server.wait()


if __name__ == "__main__":
    main()
