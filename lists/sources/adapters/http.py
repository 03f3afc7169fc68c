"""The HTTP client import adapters use: timeouts, retries with backoff, no secrets in errors.

Every connection goes through the address guard (lists.sources.guard): the host is resolved when
the connection is made, every address checked, and the connection made to the checked address
(TLS still verifies the URL's host name), so a DNS answer that changed since the URL was saved
cannot point a fetch inside. Environment proxies are not used: a proxy would hide the address
actually reached. A request that carries a credential (basic auth, or any header beyond the
plain ones) is refused over plain http unless HASHHUB_SOURCE_ALLOWED_HOSTS names the host.

Bodies are read as a stream and capped (HASHHUB_SOURCE_MAX_BODY_BYTES, or less where an adapter
asks): an answer announcing more is refused before its body is read, and one that turns out
larger (chunked, or a Content-Length that lied) as soon as it passes the cap. gzip and deflate
are the only content codings asked for and accepted, and they are undone here, a bounded step at
a time, so a small compressed body that inflates without end (a "zip bomb") stops at the cap too.
"""

from __future__ import annotations

import random
import time
import typing
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import httpcore
import httpx
from django.conf import settings

from hub.lib import netguard
from lists.sources import guard
from lists.sources.errors import SourceError

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Headers that never carry a credential; any other header of a request counts as one.
PLAIN_HEADERS = frozenset({"accept", "accept-encoding", "accept-language", "user-agent"})
# The content codings asked for, and the only ones a body may come in (undone by _Inflater).
ACCEPT_ENCODING = "gzip, deflate"
# Decompressed output per step: what one step may hold in memory beyond the body itself.
_INFLATE_STEP = 1 << 20


class GuardedBackend(httpcore.NetworkBackend):
    """Opens TCP connections only to addresses the guard passed, resolving at connect time."""

    def __init__(self, allowance: netguard.Allowance) -> None:
        self.allowance = allowance
        self._plain = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        # Raises netguard.AddressRefusedError, which httpx passes through unchanged.
        address = netguard.checked_addresses(host, port, self.allowance)[0]
        return self._plain.connect_tcp(
            str(address), port, timeout, local_address, typing.cast(Any, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise netguard.AddressRefusedError("not_allowed", path, "it is a local socket")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport, its connection pool opening connections through GuardedBackend."""

    def __init__(self, allowance: netguard.Allowance) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            network_backend=GuardedBackend(allowance),
        )


class Http:
    """GET with a timeout, retrying connection errors, timeouts and 5xx/429 with backoff.

    ``sleep`` is injectable so tests can run the backoff without waiting. A final failure raises
    lists.sources.errors.SourceError with ``auth_failed`` (401/403), ``timeout`` or ``http_error``;
    an answer over ``max_body_bytes`` (default HASHHUB_SOURCE_MAX_BODY_BYTES, counted after
    decompression) raises ``body_too_large`` at once, without a retry.
    """

    def __init__(
        self,
        *,
        timeout: float | None = None,
        attempts: int | None = None,
        backoff: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_body_bytes: int | None = None,
        allowance: netguard.Allowance | None = None,
    ) -> None:
        self.timeout = timeout if timeout is not None else settings.HASHHUB_SOURCE_HTTP_TIMEOUT
        self.max_body_bytes = (
            max_body_bytes if max_body_bytes is not None else settings.HASHHUB_SOURCE_MAX_BODY_BYTES
        )
        self.attempts = attempts if attempts is not None else settings.HASHHUB_SOURCE_HTTP_ATTEMPTS
        self.backoff = backoff if backoff is not None else settings.HASHHUB_SOURCE_HTTP_BACKOFF
        self.sleep = sleep
        # The sources' allowance unless the caller fetches for someone else (an organisation's
        # URL passes the allowance of organisations' URLs: hma.views).
        self.allowance = allowance if allowance is not None else guard.allowance()
        self._client = httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            transport=GuardedTransport(self.allowance),
            trust_env=False,
            headers={"Accept-Encoding": ACCEPT_ENCODING},
        )

    def close(self) -> None:
        self._client.close()

    def get(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        max_bytes: int | None = None,
    ) -> httpx.Response:
        """The response of a successful (2xx) GET, its body read in full and decompressed;
        raises SourceError once retries are spent.

        Refused at once, without a request: credentials (``auth``, or a header other than the
        plain ones) over plain http to a host the allow-list does not name
        (``insecure_credentials``), an address the guard refuses (``address_not_allowed``), and
        a header value an HTTP header cannot carry (``bad_config``: a line break, a control
        character or non-ASCII, say in a stored credential). Refused once the answer is seen,
        without a retry: a body over ``max_bytes`` (at most the client's ``max_body_bytes``)
        once decompressed (``body_too_large``), and one in a coding other than gzip or deflate
        or that does not decompress (``malformed_page``).
        """
        carries_credentials = auth is not None or any(
            name.lower() not in PLAIN_HEADERS for name in headers or {}
        )
        if carries_credentials:
            guard.credentials_check(url)
        for name, value in (headers or {}).items():
            _check_header_value(name, value)
        limit = self.max_body_bytes if max_bytes is None else min(max_bytes, self.max_body_bytes)
        last_error = ""
        code = "http_error"
        for attempt in range(1, self.attempts + 1):
            try:
                with self._client.stream(
                    "GET", url, params=params, headers=headers, auth=auth
                ) as streamed:
                    if streamed.is_success:
                        response = _read_capped(streamed, url, limit, self.max_body_bytes)
                    else:
                        response = streamed  # its status is all we look at
            except netguard.AddressRefusedError as refused:
                if refused.code != "unresolvable":
                    raise guard.refused_address(refused.host, refused.detail) from None
                code, last_error = "http_error", f"{refused.host} could not be resolved"
            except httpx.TimeoutException:
                code, last_error = "timeout", f"no answer within {self.timeout:g} s"
            except httpx.HTTPError as error:
                code, last_error = "http_error", f"{type(error).__name__}"
            else:
                if response.status_code in (401, 403):
                    raise SourceError(
                        "auth_failed",
                        f"The upstream refused the credentials (HTTP {response.status_code}).",
                    )
                if response.is_success:
                    return response
                code, last_error = "http_error", f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUSES:
                    break
            if attempt < self.attempts:
                delay = self.backoff * 2 ** (attempt - 1)
                self.sleep(delay * random.uniform(0.9, 1.1))  # noqa: S311 - jitter, not crypto
        raise SourceError(code, f"GET {_redact(url)} failed: {last_error}.")


def _check_header_value(name: str, value: str) -> None:
    """Refuse a header value with a line break, a control character or a non-ASCII character.

    Values come from credentials (stored on the source, or in the environment): a line break
    would end the header (h11 refuses it, which read as a retried network error) and non-ASCII
    made httpx raise UnicodeEncodeError (an internal error of the run). The value is never shown.
    """
    if not all(" " <= char <= "~" or char == "\t" for char in value):
        raise SourceError(
            "bad_config",
            f"The value of the {name[:40]} header holds a line break, a control character or a "
            "non-ASCII character, which an HTTP header cannot carry: check the credential "
            "stored on the source, or the environment variable that holds it.",
        )


def _too_large(url: str, limit: int, setting_limit: int, how: str) -> SourceError:
    where = " (HASHHUB_SOURCE_MAX_BODY_BYTES)" if limit == setting_limit else ""
    return SourceError(
        "body_too_large",
        f"GET {_redact(url)} {how} more than {limit:,} bytes, the most an import reads from one "
        f"answer{where}; nothing of it was applied.",
    )


class _Inflater:
    """Undoes a body's content coding in steps of at most ``_INFLATE_STEP`` bytes of output.

    httpx inflates each network read in one go, so a 64 KiB read of a gzip bomb became some
    64 MiB at once before any cap could look at it.
    """

    def __init__(self, coding: str) -> None:
        self.coding = coding
        wbits = zlib.MAX_WBITS | 16 if coding == "gzip" else zlib.MAX_WBITS
        self._inflate = zlib.decompressobj(wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self.coding == "identity":
            yield data
            return
        if not self._started and data:
            self._started = True
            if self.coding == "deflate":
                # "deflate" should be zlib-wrapped; some servers send it raw (httpx takes both).
                try:
                    zlib.decompressobj().decompress(data[:2])
                except zlib.error:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        while True:
            piece = self._inflate.decompress(data, _INFLATE_STEP)
            if piece:
                yield piece
            data = self._inflate.unconsumed_tail
            if not data and len(piece) < _INFLATE_STEP:
                return

    def finish(self) -> bytes:
        return b"" if self.coding == "identity" else self._inflate.flush()


def _read_capped(
    response: httpx.Response, url: str, limit: int, setting_limit: int
) -> httpx.Response:
    """``response`` (streamed, not read yet) as a read response holding its decoded body.

    Raises SourceError ``body_too_large`` when the body announces or turns out to hold more
    than ``limit`` bytes, raw or decompressed, and ``malformed_page`` for a coding we did not
    ask for or a body that does not decompress.
    """
    announced = response.headers.get("content-length", "").strip()
    if announced.isdigit() and (len(announced) > 20 or int(announced) > limit):
        raise _too_large(url, limit, setting_limit, "announced")
    codings = [
        part.strip().lower()
        for part in response.headers.get("content-encoding", "").split(",")
        if part.strip() and part.strip().lower() != "identity"
    ]
    coding = {"x-gzip": "gzip"}.get(codings[0], codings[0]) if codings else "identity"
    if len(codings) > 1 or coding not in ("identity", "gzip", "deflate"):
        raise SourceError(
            "malformed_page",
            f"GET {_redact(url)} answered in a content coding HashHub did not ask for "
            f"({', '.join(codings)[:60]}); it accepts {ACCEPT_ENCODING}.",
        )
    inflater = _Inflater(coding)
    parts: list[bytes] = []
    raw = size = 0
    how = "answered" if coding == "identity" else "answered, once decompressed,"
    try:
        for chunk in response.iter_raw():
            raw += len(chunk)
            if raw > limit:
                raise _too_large(url, limit, setting_limit, "answered")
            for piece in inflater.feed(chunk):
                size += len(piece)
                if size > limit:
                    raise _too_large(url, limit, setting_limit, how)
                parts.append(piece)
        rest = inflater.finish()
    except zlib.error:
        raise SourceError(
            "malformed_page", f"GET {_redact(url)} answered a {coding} body that does not inflate."
        ) from None
    size += len(rest)
    if size > limit:
        raise _too_large(url, limit, setting_limit, how)
    parts.append(rest)
    # The decoded body, under headers that no longer promise a coding or another length.
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(parts),
        request=response.request,
        extensions=response.extensions,
    )


def _redact(url: str) -> str:
    """The URL without query string or user info (either may carry a token)."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, userinfo=b""))
