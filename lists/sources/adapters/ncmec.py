"""NCMEC hash-sharing API v2: XML over HTTPS with Basic auth.

The API, as NCMEC documents it and as the ``threatexchange`` package's client reads it:

- ``GET {base}/v2/status`` says who the credentials belong to (``<status><member id=..>``); a
  run asks it first, so bad credentials fail the run before any page (``auth_failed``).
- ``GET {base}/v2/entries?from=..&to=..`` returns the entries *changed* in that time range,
  in pages: ``<queryResult><images>`` and ``<videos>`` hold ``image``/``video`` elements
  (``member id=``, ``id``, ``timestamp``, ``classification``, ``fingerprints`` with ``md5``,
  ``sha1``, ``pdq``, ``pdna``) and ``deletedImage``/``deletedVideo`` ones (member and id only);
  ``<paging><next>`` is the path of the next page of the same range (``start``, ``size`` and
  ``max`` in its query), absent on the last page.
- Entries come in NCMEC's own order, **not** in time order: an entry with an earlier timestamp
  may come on a later page of the same range. Within one range, later-delivered records are the
  newer ones (the reference client lets the later one win), and so does the runner.

How this adapter reads it, and what a checkpoint promises:

- It walks time **windows** ``[window_start, window_end)`` from ``start`` on. The checkpoint is
  ``{"window_start", "window_end", "window_seconds", "next"}``: while a window is being read,
  ``next`` is the path of its next page and ``window_start`` stays put, so a resumed run
  re-reads at most the page that was in flight; only after the window's last page does
  ``window_start`` move to the window's end (and ``next`` become null). An entry with an early
  timestamp on the window's last page is therefore never skipped.
- Windows never reach past ``now - settle_minutes`` (nor past ``until`` when set): NCMEC may
  still add entries to recent times, and a window is only closed once nothing more can land in it.
- Window length adapts: a window read in one page doubles the next one (up to
  ``max_window_hours``), so a years-long history of quiet time costs few requests; a window
  whose first page says it holds more than ``max_window_entries`` is shrunk before anything of
  it is applied.

Records: the key is ``"{member id}:{entry id}"``; ``image``/``video`` become adds (a later one
with the same key replaces the hashes, i.e. an update), ``deletedImage``/``deletedVideo``
become removals by key. Fingerprints map ``md5``, ``sha1``, ``pdq`` and ``pdna`` (PhotoDNA) to
the hub's signal types; others (``tmk-pdqf``, ``videntifier``, which NCMEC gives as links, not
values) are skipped, and an entry left with no usable fingerprint removes what its key held
before. The classification (A1, A2, B1, B2) becomes the entries' label.

Category: NCMEC keeps CSAM and exploitative (SE) material in separate *environments*
(``https://report.cybertip.org/hashsharing`` and ``https://hashsharing.ncmec.org/npo`` for CSAM,
``https://hashsharing.ncmec.org/exploitative`` for SE), not in a field of the entry. So the
category is a property of the source: ``environment`` in the config (``industry``, ``ngo`` or
``exploitative``), or, when it is not set, ``exploitative`` when the URL's last path segment
says so, and the source's default category otherwise. Register one source per environment.

Config keys: ``url`` (the environment's base URL, without ``/v2``), ``username_env`` and
``password_env`` (names of environment variables; or store ``username`` and ``password`` on the
source), and optionally ``start`` (ISO time of the
first window, default 2000-01-01), ``until`` (never read past this time), ``window_hours``
(first window, default 24), ``max_window_hours`` (default 720), ``max_window_entries`` (default
400,000), ``settle_minutes`` (default 10), ``environment``, ``member_ids`` (only entries of these
NCMEC members) and ``pages_per_batch`` (HTTP pages per applied page, default 1).

All XML is checked as defusedxml checks it, with DTDs forbidden, before it is parsed: a document
type declaration, an entity definition or an external reference fails the run with
``unsafe_xml``; XML that does not parse,
or is not a ``queryResult``, fails it with ``malformed_page``. Either way the checkpoint stays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit
from xml.etree.ElementTree import Element, fromstring
from xml.parsers import expat

from defusedxml import (
    DefusedXmlException,
    DTDForbidden,
    EntitiesForbidden,
    ExternalReferenceForbidden,
)

from lists.sources.adapters.base import (
    ADD,
    REMOVE,
    Adapter,
    Page,
    Record,
    RecordError,
    prefetched,
)
from lists.sources.errors import SourceError

CATEGORY_OF_ENVIRONMENT = {"industry": "csam", "ngo": "csam", "exploitative": "se"}
FINGERPRINT_TYPES = {"md5": "md5", "sha1": "sha1", "pdq": "pdq", "pdna": "photodna"}
DEFAULT_START = "2000-01-01T00:00:00Z"
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_KEY_LENGTH = 200
PREFETCH_PAGES = 2
_DEFAULTS: dict[str, Any] = {
    "window_hours": 24,
    "max_window_hours": 720,
    "max_window_entries": 400_000,
    "settle_minutes": 10,
    "pages_per_batch": 1,
}
_KNOWN_KEYS = frozenset(
    {"url", "username_env", "password_env", "start", "until", "environment", "member_ids"}
    | set(_DEFAULTS)
)


def utcnow() -> datetime:
    """The current time (a module function so that tests can move the clock)."""
    return datetime.now(UTC)


def format_time(moment: datetime) -> str:
    """The API's time form, whole seconds in UTC: ``2024-05-01T12:00:00Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; one without a zone is taken as UTC. Raises ValueError."""
    moment = datetime.fromisoformat(str(text).strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def _bad(message: str) -> SourceError:
    return SourceError("bad_config", message)


def _positive(config: Mapping[str, Any], name: str, *, minimum: float) -> float:
    value = config.get(name, _DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _bad(f"{name} must be a number.")
    if value < minimum:
        raise _bad(f"{name} must be at least {minimum:g}.")
    return float(value)


@dataclass(frozen=True)
class _Settings:
    base: str
    start: datetime
    until: datetime | None
    window: int  # seconds
    max_window: int
    max_window_entries: int
    settle: timedelta
    category: str
    member_ids: frozenset[str] | None
    pages_per_batch: int


def _settings(config: Mapping[str, Any]) -> _Settings:
    unknown = sorted(set(config) - _KNOWN_KEYS)
    if unknown:
        raise _bad(f"Unknown NCMEC setting(s): {', '.join(unknown)}.")
    url = config.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _bad("url (the NCMEC environment's base URL) is required.")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _bad("url must be an http:// or https:// URL.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise _bad("url must be a plain base URL (no query, fragment or user name).")
    for name in ("username_env", "password_env"):
        # Optional here: the credential may be stored on the source instead (a run without
        # either fails with credentials_missing).
        if name in config and (not isinstance(config[name], str) or not config[name]):
            raise _bad(f"{name} must be the name of an environment variable.")
    try:
        start = parse_time(config.get("start") or DEFAULT_START)
        until = parse_time(config["until"]) if config.get("until") else None
    except (TypeError, ValueError):
        raise _bad("start and until must be ISO 8601 times.") from None
    environment = config.get("environment") or ""
    if environment:
        if environment not in CATEGORY_OF_ENVIRONMENT:
            raise _bad(f"environment must be one of: {', '.join(CATEGORY_OF_ENVIRONMENT)}.")
        category = CATEGORY_OF_ENVIRONMENT[environment]
    else:
        last_segment = parts.path.rstrip("/").rsplit("/", 1)[-1].lower()
        category = "se" if last_segment == "exploitative" else ""
    members = config.get("member_ids")
    member_ids = None
    if members is not None:
        if not isinstance(members, list) or not all(
            isinstance(m, int) and not isinstance(m, bool) for m in members
        ):
            raise _bad("member_ids must be a list of NCMEC member ids (numbers).")
        member_ids = frozenset(str(m) for m in members)
    window = max(1, round(_positive(config, "window_hours", minimum=1 / 3600) * 3600))
    max_window = max(1, round(_positive(config, "max_window_hours", minimum=1 / 3600) * 3600))
    return _Settings(
        base=url.strip().rstrip("/"),
        start=start,
        until=until,
        window=window,
        max_window=max(window, max_window),
        max_window_entries=int(_positive(config, "max_window_entries", minimum=1)),
        settle=timedelta(minutes=_positive(config, "settle_minutes", minimum=0)),
        category=category,
        member_ids=member_ids,
        pages_per_batch=int(_positive(config, "pages_per_batch", minimum=1)),
    )


def _refuse_declarations(body: bytes) -> None:
    """defusedxml's checks with ``forbid_dtd=True``, made by expat alone.

    The same handlers as defusedxml's parser, raising its exceptions, on an expat parser with no
    handler for elements or text: expat reads the document at C speed and calls back only on a
    declaration. defusedxml's own ElementTree parser builds the tree in Python (ElementTree's
    pure-Python parser, to reach these handlers), which cost more than anything else an import
    does per entry in Python.
    """

    def doctype(name: str, sysid: str | None, pubid: str | None, internal: bool) -> None:
        raise DTDForbidden(name, sysid, pubid)

    def entity(name: str, parameter: bool, value: str | None, base: str | None,
               sysid: str | None, pubid: str | None, notation: str | None) -> None:  # fmt: skip
        raise EntitiesForbidden(name, value, base, sysid, pubid, notation)

    def unparsed(name: str, base: str | None, sysid: str | None, pubid: str | None,
                 notation: str | None) -> None:  # fmt: skip
        raise EntitiesForbidden(name, None, base, sysid, pubid, notation)

    def external(context: str, base: str | None, sysid: str | None, pubid: str | None) -> int:
        raise ExternalReferenceForbidden(context, base, sysid, pubid)

    scanner = expat.ParserCreate()
    scanner.StartDoctypeDeclHandler = doctype
    scanner.EntityDeclHandler = entity
    scanner.UnparsedEntityDeclHandler = unparsed
    scanner.ExternalEntityRefHandler = external
    scanner.Parse(body, True)


def parse_xml(body: bytes, *, what: str) -> Element:
    """Parse an API response, refusing DTDs, entities and external references (defusedxml's).

    First the declarations check, then ElementTree's C parser builds the tree: a document that
    passed the check declares nothing, so there is nothing for the parser to expand or fetch.
    """
    if len(body) > MAX_BODY_BYTES:
        raise SourceError("malformed_page", f"The {what} response is larger than we accept.")
    try:
        _refuse_declarations(body)
        root: Element = fromstring(body)  # noqa: S314 - checked by _refuse_declarations
    except DefusedXmlException as error:
        raise SourceError(
            "unsafe_xml",
            f"The {what} response declares a DTD, entities or external references "
            f"({type(error).__name__}); it was not read.",
        ) from None
    except (SyntaxError, ValueError, LookupError, expat.ExpatError) as error:
        # ParseError is a SyntaxError; an unknown declared encoding is a LookupError.
        raise SourceError(
            "malformed_page", f"The {what} response is not well-formed XML: {error}."
        ) from None
    return root


def _namespace(tag: str) -> str:
    """``{uri}`` of a qualified tag, or '' (NCMEC uses a default namespace; we accept none)."""
    return tag[: tag.index("}") + 1] if tag.startswith("{") else ""


@dataclass
class _Response:
    records: list[Record]
    errors: list[RecordError]
    next: str | None
    entries: int  # entry elements on this page, read or not
    after: int | None  # entries of the window after this page, when the next link says


class NcmecAdapter(Adapter):
    """NCMEC hash-sharing API v2 (see the module docstring for the format and checkpoint)."""

    kind: ClassVar[str] = "ncmec"
    credential_keys: ClassVar[tuple[str, ...]] = ("username_env", "password_env")

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        _settings(config)
        return dict(config)

    def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
        settings = _settings(self.config)
        auth = (
            self.credentials.get(self.config, "username_env"),
            self.credentials.get(self.config, "password_env"),
        )
        self._check_status(settings, auth)
        state = _State.load(checkpoint, settings)
        horizon = utcnow() - settings.settle
        if settings.until is not None:
            horizon = min(horizon, settings.until)
        # The next pages are fetched and parsed while the runner applies this one: most of the
        # runner's time is spent waiting on PostgreSQL, and most of ours waiting on NCMEC.
        yield from prefetched(
            lambda: self._read(settings, auth, state, horizon),
            depth=PREFETCH_PAGES,
            stop_wait=self.http.timeout + 1,
        )

    def _read(
        self, settings: _Settings, auth: tuple[str, str], state: _State, horizon: datetime
    ) -> Iterator[Page]:
        yielded = 0
        batch: list[_Response] = []
        while True:
            if state.next is None:
                if state.window_start >= horizon:
                    break
                state.window_end = min(
                    state.window_start + timedelta(seconds=state.window_seconds), horizon
                )
            last_window = state.window_end >= horizon
            response = self._fetch(settings, auth, state)
            if response is None:  # the window was too full and has been shrunk: ask again
                continue
            batch.append(response)
            if response.next is None:
                state.close_window(settings)
            else:
                state.next = response.next
                state.first_page = False
            if response.next is not None and len(batch) < settings.pages_per_batch:
                continue
            records = [r for part in batch for r in part.records]
            expected = None
            if last_window:
                expected = yielded + len(records) + (response.after or 0)
            yielded += len(records)
            yield Page(
                records=records,
                checkpoint=state.dump(),
                errors=[e for part in batch for e in part.errors],
                expected=expected,
            )
            batch = []

    def _check_status(self, settings: _Settings, auth: tuple[str, str]) -> None:
        response = self.http.get(f"{settings.base}/v2/status", auth=auth, max_bytes=MAX_BODY_BYTES)
        root = parse_xml(response.content, what="status")
        ns = _namespace(root.tag)
        member = root.find(f"{ns}member")
        if root.tag != f"{ns}status" or member is None or not member.get("id"):
            raise SourceError(
                "malformed_page", "The status response does not name the member it serves."
            )

    def _fetch(self, settings: _Settings, auth: tuple[str, str], state: _State) -> _Response | None:
        window = f"{format_time(state.window_start)}..{format_time(state.window_end)}"
        if state.next is not None:
            url, params = settings.base + state.next, None
            offset = _query_int(state.next, "start") or 1
        else:
            url = f"{settings.base}/v2/entries"
            params = {"from": format_time(state.window_start), "to": format_time(state.window_end)}
            offset = 1
        response = self.http.get(url, params=params, auth=auth, max_bytes=MAX_BODY_BYTES)
        parsed = read_entries(
            response.content,
            window=window,
            offset=offset,
            category=settings.category,
            member_ids=settings.member_ids,
        )
        if parsed.next is not None:
            last, following = _query_int(parsed.next, "max"), _query_int(parsed.next, "start")
            if last is not None and following is not None:
                parsed.after = max(0, last - following + 1)
        span = int((state.window_end - state.window_start).total_seconds())
        total = parsed.entries + (parsed.after or 0)
        if state.next is None and total > settings.max_window_entries and span > 1:
            # Nothing of this window is applied yet: ask again for a shorter one.
            state.window_seconds = max(
                1, min(span // 4, span * settings.max_window_entries // total)
            )
            return None
        return parsed


def _query_int(path: str | None, name: str) -> int | None:
    if not path:
        return None
    values = parse_qs(urlsplit(path).query).get(name)
    try:
        return int(values[0]) if values else None
    except ValueError:
        return None


@dataclass
class _State:
    """Where the adapter stands; ``window_end`` means something only while ``next`` is set."""

    window_start: datetime
    window_end: datetime
    window_seconds: int
    next: str | None
    first_page: bool = True

    @classmethod
    def load(cls, checkpoint: Mapping[str, Any], settings: _Settings) -> _State:
        if not checkpoint:
            return cls(settings.start, settings.start, settings.window, None)
        try:
            start = parse_time(checkpoint["window_start"])
            next_link = checkpoint.get("next") or None
            end = parse_time(checkpoint["window_end"]) if next_link else start
            seconds = int(checkpoint.get("window_seconds") or settings.window)
        except (KeyError, TypeError, ValueError):
            raise SourceError(
                "bad_checkpoint", "The stored checkpoint is not an NCMEC checkpoint."
            ) from None
        if next_link is not None and (
            not isinstance(next_link, str) or not _is_entries_path(next_link) or end <= start
        ):
            raise SourceError("bad_checkpoint", "The stored checkpoint's next page is unusable.")
        seconds = max(1, min(seconds, settings.max_window))
        return cls(start, end, seconds, next_link, first_page=next_link is None)

    def close_window(self, settings: _Settings) -> None:
        """The window's last page is read: the next window starts where this one ended.

        A window read in one page was quiet: the next one may be twice as long.
        """
        if self.first_page:
            self.window_seconds = min(self.window_seconds * 2, settings.max_window)
        self.window_start = self.window_end
        self.next = None
        self.first_page = True

    def dump(self) -> dict[str, Any]:
        return {
            "window_start": format_time(self.window_start),
            # The end only matters while a window is open (its next page is in ``next``).
            "window_end": format_time(self.window_end) if self.next else None,
            "window_seconds": self.window_seconds,
            "next": self.next,
        }


def _is_entries_path(path: str) -> bool:
    """A ``next`` link must be a path on the same server (never another host) to /v2/entries."""
    return path.startswith("/") and not path.startswith("//") and "/v2/entries" in path


def read_entries(
    body: bytes,
    *,
    window: str = "",
    offset: int = 1,
    category: str = "",
    member_ids: frozenset[str] | None = None,
) -> _Response:
    """The records, per-record errors and next link of one ``/v2/entries`` response."""
    root = parse_xml(body, what="entries")
    ns = _namespace(root.tag)
    if root.tag != f"{ns}queryResult":
        raise SourceError("malformed_page", "The entries response is not a queryResult.")
    q_member, q_id, q_class, q_fingerprints = (
        f"{ns}member",
        f"{ns}id",
        f"{ns}classification",
        f"{ns}fingerprints",
    )
    kinds = {
        f"{ns}image": False,
        f"{ns}video": False,
        f"{ns}deletedImage": True,
        f"{ns}deletedVideo": True,
    }
    fingerprint_types = {f"{ns}{name}": kind for name, kind in FINGERPRINT_TYPES.items()}
    sections = (f"{ns}images", f"{ns}videos")
    records: list[Record] = []
    errors: list[RecordError] = []
    next_link: str | None = None
    position = offset
    for section in root:
        if section.tag == f"{ns}paging":
            link = section.find(f"{ns}next")
            next_link = (link.text or "").strip() if link is not None else None
            continue
        if section.tag not in sections:
            continue
        for entry in section:
            deleted = kinds.get(entry.tag)
            if deleted is None:
                continue
            where = f"{window} #{position}"
            position += 1
            member_id = entry_id = classification = ""
            fingerprints: Element | None = None
            for child in entry:
                tag = child.tag
                if tag == q_member:
                    member_id = (child.get("id") or "").strip()
                elif tag == q_id:
                    entry_id = (child.text or "").strip()
                elif tag == q_class:
                    classification = (child.text or "").strip()
                elif tag == q_fingerprints:
                    fingerprints = child
            if not member_id or not entry_id:
                missing = "member id" if not member_id else "id"
                errors.append(RecordError(where, "missing_id", f"The entry has no {missing}."))
                continue
            if member_ids is not None and member_id not in member_ids:
                continue
            key = f"{member_id}:{entry_id}"
            if len(key) > MAX_KEY_LENGTH:
                errors.append(
                    RecordError(
                        where, "id_too_long", f"The entry id is over {MAX_KEY_LENGTH} characters."
                    )
                )
                continue
            where = f"{where} {key}"[:200]
            if deleted:
                records.append(Record(position=where, op=REMOVE, key=key, category=category))
                continue
            hashes = []
            if fingerprints is not None:
                for fingerprint in fingerprints:
                    signal_type = fingerprint_types.get(fingerprint.tag)
                    value = (fingerprint.text or "").strip()
                    if signal_type is not None and value:
                        hashes.append((signal_type, value))
            if not hashes:
                # Nothing we can match on (only linked video fingerprints, say): whatever the
                # key held before is no longer what upstream says it is.
                records.append(Record(position=where, op=REMOVE, key=key, category=category))
                continue
            records.append(
                Record(
                    position=where,
                    op=ADD,
                    key=key,
                    hashes=tuple(hashes),
                    category=category,
                    labels=(classification,) if classification else (),
                )
            )
    if next_link is not None and not next_link:
        next_link = None
    if next_link is not None and not _is_entries_path(next_link):
        raise SourceError(
            "malformed_page", "The entries response links to an unexpected next page."
        )
    following = _query_int(next_link, "start")
    if following is not None and following <= offset:
        # A next page that does not move on would have us read the same page forever.
        raise SourceError("malformed_page", "The entries response links back to the same page.")
    return _Response(records, errors, next_link, position - offset, None)


ADAPTER: type[Adapter] = NcmecAdapter
