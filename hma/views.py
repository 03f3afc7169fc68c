"""HMA's REST routes (hashing ``/h``, matching ``/m``, curation ``/c``) over HashHub's services.

Each view takes HMA's request shape, calls the same services and selectors as API v1 (the match
service, the list services, the match policy) under the same scopes, tenancy, throttles and bounds,
and answers in HMA's response shape (see hma.selectors.HMA_COMMIT for the version followed). Bad
input gets the status HMA gives (400, or 422 where HMA's request model refuses it) with HashHub's
error body; what HashHub cannot honour is refused or documented in README.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from hma import selectors
from hma.auth import HmaKeyAuthentication
from hma.selectors import Bank
from hub.api_base import OrgAPIView
from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import Organization
from hub.quotas import ImageMatchQuotaThrottle
from hub.uploads import UploadTooLargeError, cap_uploads
from lists import services as list_services
from lists.changes import SEQUENCE_LAST_SQL
from lists.hashtypes import all_signal_types, compute_all, decode_image, get_signal_type
from lists.services import EntryInput
from lists.sources.adapters.http import Http
from lists.sources.errors import SourceError
from matching import services as match_services
from matching import webhooks
from matching.services import HashQuery
from sharing import policy

MAX_NOTE = 255  # HMA's limit on a content note
FIVE_YEARS = dt.timedelta(days=365 * 5)  # HMA's limit on disable_until_ts
PHOTO = "photo"  # HMA's content type for images; its other, "video", HashHub cannot hash
BOOL_WORDS = {
    "true": True,
    "1": True,
    "yes": True,
    "on": True,
    "t": True,
    "y": True,
    "false": False,
    "0": False,
    "no": False,
    "off": False,
    "f": False,
    "n": False,
}


URL_FETCH_SECONDS = 10.0
"""How long fetching a client's ``url`` may take, all in (one attempt, no retries)."""


def _fetched_photo(url: str) -> bytes:
    """The picture at an organisation's ``url``, fetched for HMA's ``?url=`` parameter.

    The URL is the organisation's, like a webhook's: it passes the same address guard with the
    allowance of organisations' URLs (``HASHHUB_WEBHOOK_ALLOWED_NETWORKS``: loopback, private,
    link-local and metadata addresses are refused unless a network there names them), the
    connection goes to the checked address, no redirect is followed, one attempt within
    ``URL_FETCH_SECONDS``, and the body is capped at ``HASHHUB_MAX_UPLOAD_BYTES`` while it
    streams. The bytes are hashed in memory like an upload and never stored.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError("invalid_url", "url must be an http:// or https:// URL.")
    client = Http(
        timeout=URL_FETCH_SECONDS,
        attempts=1,
        backoff=0,
        max_body_bytes=settings.HASHHUB_MAX_UPLOAD_BYTES,
        allowance=webhooks.url_allowance(),
    )
    try:
        return client.get(url.strip()).content
    except SourceError as error:
        if error.code == "body_too_large":
            raise ServiceError(
                "image_too_large",
                f"The picture at url is larger than {settings.HASHHUB_MAX_UPLOAD_BYTES:,} bytes.",
                status=413,
            ) from None
        if error.code == "address_not_allowed":
            raise ServiceError(
                "url_not_allowed",
                "HashHub does not fetch from that address (loopback, private, link-local or "
                "metadata addresses are refused).",
            ) from None
        raise ServiceError(
            "url_fetch_failed", f"The picture at url could not be fetched ({error.code})."
        ) from None
    finally:
        client.close()


def _missing(name: str) -> ServiceError:
    # HMA's request models (pydantic, through flask-openapi3) refuse a missing field with 422.
    return ServiceError("invalid", f"{name}: Field required", {"field": name}, status=422)


def _bool(raw: str, name: str) -> bool:
    value = BOOL_WORDS.get(raw.strip().lower())
    if value is None:
        raise ServiceError(
            "invalid", f"{name}: Input should be a valid boolean", {"field": name}, status=422
        )
    return value


def _banks_param(request: Request) -> set[str] | None:
    raw = request.query_params.get("banks")
    return {name.strip() for name in raw.split(",") if name.strip()} if raw else None


def _json_object(request: Request, message: str) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ServiceError("invalid_body", message)
    return dict(request.data)


def _org(request: Request) -> Organization:
    return request.organization  # type: ignore[attr-defined]


def _change_number(request: Request) -> int | None:
    also = getattr(request.auth, "lookup_also", None)
    return int(also) if also is not None else None


# --- hashing: an upload, in memory --------------------------------------------------------------


def _uploaded_photo(request: Request) -> bytes:
    """The one file of a multipart body, sent in a field named for its content type (HMA)."""
    limit = settings.HASHHUB_MAX_UPLOAD_BYTES
    try:
        # Before the body is read: held in memory only, refused past the image limit.
        cap_uploads(request._request, limit)
        files = request.FILES
    except UploadTooLargeError as error:
        details = {"max_bytes": limit, "declared_bytes": error.declared}
        raise ServiceError("image_too_large", error.message, details, status=413) from None
    if not files:
        raise ServiceError("file_missing", "Missing multipart/form-data file upload")
    if len(files) > 1 or any(len(files.getlist(field)) > 1 for field in files):
        raise ServiceError("too_many_files", "Only one file allowed per request")
    field = next(iter(files))
    if field != PHOTO:
        known = field == "video"
        raise ServiceError(
            "content_type_unsupported" if known else "unknown_content_type",
            f"content_type {field} is disabled: HashHub hashes photos only"
            if known
            else f"no such content_type: '{field[:50]}'",
        )
    return files[field].read()


def _types(request: Request, available: Iterable[str]) -> list[str]:
    """The signal types asked for with ``types`` (HMA: comma-separated), else every one."""
    names = list(available)
    raw = request.query_params.get("types")
    if raw is None:
        return names
    wanted = [name.strip() for name in raw.split(",") if name.strip()]
    for name in wanted:
        if name not in names:
            raise ServiceError(
                "unknown_type", f"signal type '{name[:50]}' doesn't exist or is disabled"
            )
    if not wanted:
        raise ServiceError("unknown_type", "empty signal type selection")
    return wanted


def _photo_hashes(data: bytes) -> dict[str, tuple[str, bool]]:
    """Every hash HashHub computes from an image: type → (value, low quality)."""
    decoded = decode_image(
        data,
        max_bytes=settings.HASHHUB_MAX_UPLOAD_BYTES,
        max_pixels=settings.HASHHUB_MAX_IMAGE_PIXELS,
    )
    computed = compute_all(decoded.as_displayed() or decoded)
    return {name: (result.text, result.low_quality) for name, result in computed.items()}


# --- matching: HashHub's results as HMA's banks -------------------------------------------------


def _matches_by_bank(
    query: HashQuery, *, names: Mapping[int, str], wanted: set[str] | None
) -> dict[str, list[dict[str, Any]]]:
    """One result's matches as HMA's ``{bank: [{bank_content_id, distance}]}``."""
    found = []
    for match in query.matches:
        hit = query.hits.get((match["list"]["id"], match["matched_value"]))
        if hit is not None:
            found.append((hit, match["distance"]))
    ids = selectors.content_ids((pk, hash_id, published) for (pk, hash_id, published), _ in found)
    result: dict[str, list[dict[str, Any]]] = {}
    for (list_pk, hash_id, _), distance in found:
        name, content_id = names.get(list_pk), ids.get((list_pk, hash_id))
        if name is None or content_id is None or (wanted is not None and name not in wanted):
            continue
        # HMA reports a distance as its similarity's pretty string.
        result.setdefault(name, []).append(
            {"bank_content_id": content_id, "distance": str(distance)}
        )
    return result


def _bank_names(org: Organization, queries: Iterable[HashQuery]) -> dict[int, str]:
    """The bank name of each list the queries matched in (nothing to name for misses)."""
    if not any(query.matches for query in queries):
        return {}
    return {bank.hash_list.pk: name for name, bank in selectors.banks_of(org=org).items()}


def _match_one(request: Request, signal_type: str, signal: str) -> HashQuery:
    """Match one hash as API v1's match does (a detection when it matches, webhooks, audit)."""
    kind = get_signal_type(signal_type)  # 400 unknown_type, as HMA's "No such SignalType"
    value = kind.parse(signal)  # 400 for a malformed hash, as HMA's "invalid signal"
    outcome = match_services.match_hashes(
        org=_org(request),
        items=[{"type": kind.name, "value": kind.to_text(value)}],
        actor=Actor.from_request(request),
        change_number=_change_number(request),
    )
    return outcome.results[0]


class HmaView(OrgAPIView):
    """A route of the facade: the key as Bearer or Basic, and a scope per method."""

    authentication_classes = (HmaKeyAuthentication,)
    scopes: Mapping[str, str] = {}

    def get_required_scope(self) -> str | None:
        return self.scopes.get(self.request.method or "GET", self.required_scope)


@extend_schema(exclude=True)  # HMA's own OpenAPI document (of HMA_COMMIT) describes these routes
class HashView(HmaView):
    """``GET /h/hash?url=`` (fetched through the address guard) and ``POST /h/hash``
    (multipart)."""

    required_scope = "match"
    throttle_classes = (*OrgAPIView.throttle_classes, ImageMatchQuotaThrottle)

    def get(self, request: Request) -> Response:
        url = request.query_params.get("url")
        if url is None:
            raise ServiceError("url_required", "url is required")
        hashes = _photo_hashes(_fetched_photo(url))
        return Response({name: hashes[name][0] for name in _types(request, hashes)})

    def post(self, request: Request) -> Response:
        hashes = _photo_hashes(_uploaded_photo(request))
        return Response({name: hashes[name][0] for name in _types(request, hashes)})


@extend_schema(exclude=True)
class LookupView(HmaView):
    """``GET /m/lookup?signal=&signal_type=`` and ``POST /m/lookup`` (multipart)."""

    required_scope = "match"
    throttle_classes = (*OrgAPIView.throttle_classes, ImageMatchQuotaThrottle)
    key_lookup_also = SEQUENCE_LAST_SQL  # read-your-writes, as API v1's match

    def get(self, request: Request) -> Response:
        params = request.query_params
        if params.get("url"):
            return self._image(request, _fetched_photo(params["url"]))
        signal, signal_type = params.get("signal"), params.get("signal_type")
        if not signal or not signal_type:
            raise ServiceError(
                "invalid_request", "Either url or both signal and signal_type are required"
            )
        query = _match_one(request, signal_type, signal)
        names = _bank_names(_org(request), [query])
        # With signal_type given, HMA elides the outer type key.
        return Response(_matches_by_bank(query, names=names, wanted=_banks_param(request)))

    def post(self, request: Request) -> Response:
        return self._image(request, _uploaded_photo(request))

    def _image(self, request: Request, data: bytes) -> Response:
        # Checked before anything is matched (and a detection recorded), as HMA checks first.
        types = _types(request, [kind.name for kind in all_signal_types()])
        outcome = match_services.match_image(
            org=_org(request),
            data=data,
            actor=Actor.from_request(request),
            change_number=_change_number(request),
        )
        names = _bank_names(_org(request), outcome.outcome.results)
        wanted = _banks_param(request)
        by_type = {
            query.signal_type: _matches_by_bank(query, names=names, wanted=wanted)
            for query in outcome.outcome.results
            if query.signal_type in types
        }
        return Response(by_type)


@extend_schema(exclude=True)
class RawLookupView(HmaView):
    """``GET /m/raw_lookup?signal=&signal_type=[&include_distance=][&banks=]``."""

    required_scope = "match"
    key_lookup_also = SEQUENCE_LAST_SQL

    def get(self, request: Request) -> Response:
        params = request.query_params
        signal, signal_type = params.get("signal"), params.get("signal_type")
        if signal is None:
            raise _missing("signal")
        if signal_type is None:
            raise _missing("signal_type")
        with_distance = _bool(params.get("include_distance", "false"), "include_distance")
        query = _match_one(request, signal_type, signal)
        by_bank = _matches_by_bank(
            query, names=_bank_names(_org(request), [query]), wanted=_banks_param(request)
        )
        matches = [match for found in by_bank.values() for match in found]
        if with_distance:
            return Response({"matches": matches})
        return Response({"matches": [match["bank_content_id"] for match in matches]})


@extend_schema(exclude=True)
class CompareView(HmaView):
    """``POST /m/compare`` ``{"pdq": [a, b]}`` → ``{"pdq": [match, {"distance": n}]}``."""

    required_scope = "match"

    def post(self, request: Request) -> Response:
        body = _json_object(request, "Request input was not a dict")
        results: dict[str, Any] = {}
        for name, pair in body.items():
            if not isinstance(pair, list):
                raise ServiceError("invalid_body", f"Comparison hashes for {name} was not a list")
            if len(pair) != 2:
                raise ServiceError("invalid_body", "Comparison hash list length must be exactly 2")
            kind = get_signal_type(str(name))
            if not all(isinstance(value, str) for value in pair):
                raise ServiceError("invalid_hash", f"Invalid {name} hash: hashes are strings")
            left, right = kind.parse(pair[0]), kind.parse(pair[1])
            distance = kind.distance(left, right)
            # A match is a distance within the type's default radius (PDQ 31, as HMA's).
            results[str(name)] = [distance <= kind.default_max_distance, {"distance": distance}]
        return Response(results)


@extend_schema(exclude=True)
class IndexStatusView(HmaView):
    """``GET /m/index/status[?signal_type=]``: sizes count only what the caller may match."""

    required_scope = "match"

    def get(self, request: Request) -> Response:
        sizes = selectors.index_sizes(org=_org(request))
        only = request.query_params.get("signal_type")
        if only is not None:
            if only not in sizes:
                raise ServiceError("unknown_type", f"No such signal type '{only[:50]}'")
            sizes = {only: sizes[only]}
        built_to = selectors.now_ts()
        return Response(
            {
                name: {"present": True, "built_to": built_to, "size": size}
                for name, size in sizes.items()
            }
        )


# --- curation: banks and their content ----------------------------------------------------------


def _check_matching_fields(body: Mapping[str, Any]) -> None:
    """HMA's enabled / enabled_ratio: HashHub matches a bank whole or (policy) not at all."""
    ratio = body.get("enabled_ratio")
    enabled = body.get("enabled")
    if (ratio is not None and ratio not in (1, 1.0)) or enabled not in (None, True):
        raise ServiceError(
            "matching_ratio_unsupported",
            "HashHub matches every bank whole: enabled_ratio can only be 1.0 and enabled only "
            "true. Turn a list off in the match policy instead (PUT /api/v1/policy).",
        )


def _check_bank_name(name: object) -> str:
    if not isinstance(name, str):
        raise _missing("name")
    if not selectors.BANK_NAME.match(name):
        raise ServiceError("invalid_name", "Bank name must match /^[A-Z0-9_]+$/")
    if name.startswith(selectors.RESERVED_PREFIXES):
        raise ServiceError(
            "invalid_name",
            "Bank names starting VERIFIED_ or COMMUNITY_ name the lists you match; choose another.",
        )
    return name


def _taken(error: ServiceError) -> ServiceError:
    if error.code == "name_taken":
        # HMA refuses an existing bank name with 403.
        return ServiceError(error.code, "Bank name already exists", status=403)
    return error


@extend_schema(exclude=True)
class BanksView(HmaView):
    """``GET /c/banks`` and ``POST /c/banks`` ``{"name", "category"?}``."""

    scopes = {"POST": "lists:admin"}

    def get(self, request: Request) -> Response:
        banks = selectors.banks_of(org=_org(request))
        return Response([bank.as_dict() for bank in banks.values()])

    def post(self, request: Request) -> Response:
        body = _json_object(request, 'The body must be a JSON object such as {"name": "BANK"}.')
        name = _check_bank_name(body.get("name"))
        _check_matching_fields(body)
        org = _org(request)
        if name in selectors.banks_of(org=org):
            raise ServiceError("name_taken", "Bank already exists", status=403)
        try:
            list_services.list_create(
                org=org,
                name=name,
                category=str(body.get("category", "csam")),
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            raise _taken(error) from None
        return Response(selectors.bank_get(org=org, name=name).as_dict(), status=201)


@extend_schema(exclude=True)
class BankView(HmaView):
    """``GET|PUT|DELETE /c/bank/<name>``: only the organisation's own banks change."""

    scopes = {"PUT": "lists:write", "DELETE": "lists:admin"}

    def get(self, request: Request, bank_name: str) -> Response:
        return Response(selectors.bank_get(org=_org(request), name=bank_name).as_dict())

    def put(self, request: Request, bank_name: str) -> Response:
        org = _org(request)
        bank = selectors.bank_writable(org=org, name=bank_name)
        body = _json_object(request, 'The body must be a JSON object such as {"name": "BANK"}.')
        _check_matching_fields(body)
        name = bank.name
        if body.get("name") is not None and body["name"] != bank.name:
            name = _check_bank_name(body["name"])
            if name in selectors.banks_of(org=org):
                raise ServiceError("name_taken", "Bank name already exists", status=403)
            try:
                list_services.list_rename(
                    hash_list=bank.hash_list, name=name, actor=Actor.from_request(request)
                )
            except ServiceError as error:
                raise _taken(error) from None
        return Response(selectors.bank_get(org=org, name=name).as_dict())

    def delete(self, request: Request, bank_name: str) -> Response:
        bank = selectors.bank_writable(org=_org(request), name=bank_name)
        list_services.list_delete(
            hash_list=bank.hash_list,
            reason="deleted through the HMA API",
            actor=Actor.from_request(request),
        )
        return Response({"message": "Done"})


def _add_to_bank(
    request: Request, bank: Bank, signals: Mapping[str, object], note: str = ""
) -> dict[str, Any]:
    """Add signals to one of the organisation's banks with entry_add, as API v1's entries do.

    HMA keeps the signals of one piece of content under one id; a HashHub entry is one hash, so
    each signal gets its own ``bank_content_id``: ``id`` is the first's and, when there are
    several, ``ids`` gives each one's.
    """
    if not signals:
        raise ServiceError("no_signals", "No signals given")
    items = []
    for name, value in signals.items():
        if not isinstance(value, str):
            raise ServiceError("invalid_hash", f"Invalid {name} signal: a signal is a string")
        items.append(EntryInput(type=str(name), value=value, note=note))
    # Every signal is checked before any is added, as HMA does.
    parsed, errors = list_services.parse_entries(items)
    if errors:
        bad = errors[0]
        raise ServiceError(bad.code, f"Invalid {items[bad.index].type} signal: {bad.message}")
    list_services.entry_add(
        hash_list=bank.hash_list, items=items, actor=Actor.from_request(request)
    )
    ids: dict[str, int] = {}
    texts: dict[str, str] = {}
    for entry in parsed:
        kind = get_signal_type(entry.signal_type)
        texts[kind.name] = kind.to_text(entry.value)
        content_id = selectors.entry_content_id(
            hash_list=bank.hash_list, signal_type=kind.name, value=entry.value
        )
        if content_id is not None:
            ids[kind.name] = content_id
    answer: dict[str, Any] = {"id": next(iter(ids.values()), None), "signals": texts}
    if len(ids) > 1:
        answer["ids"] = ids
    return answer


def _note(raw: object) -> str:
    """HMA's note: a string of at most 255 characters (empty: none)."""
    if not raw:
        return ""
    if not isinstance(raw, str):
        raise ServiceError("invalid_note", "note should be a string")
    if len(raw) > MAX_NOTE:
        raise ServiceError("note_too_long", f"note must be at most {MAX_NOTE} characters")
    return raw


@extend_schema(exclude=True)
class BankSignalView(HmaView):
    """``POST /c/bank/<name>/signal`` ``{"pdq": "…"}``: add hashes as they are."""

    required_scope = "lists:write"

    def post(self, request: Request, bank_name: str) -> Response:
        bank = selectors.bank_writable(org=_org(request), name=bank_name)
        body = _json_object(request, 'The body must be a JSON object such as {"pdq": "…"}.')
        return Response(_add_to_bank(request, bank, body))


@extend_schema(exclude=True)
class BankContentView(HmaView):
    """``POST /c/bank/<name>/content`` (multipart ``photo``, optional ``note``): hashed in
    memory, each hash HashHub computes (or those of ``types``) added."""

    required_scope = "lists:write"
    throttle_classes = (*OrgAPIView.throttle_classes, ImageMatchQuotaThrottle)

    def post(self, request: Request, bank_name: str) -> Response:
        bank = selectors.bank_writable(org=_org(request), name=bank_name)
        url = request.query_params.get("url")
        if not url and not request.content_type.startswith("multipart/"):
            raise ServiceError(
                "file_missing", "Neither `url` nor multipart file upload was received"
            )
        data = _fetched_photo(url) if url else _uploaded_photo(request)
        note = _note(request.data.get("note"))
        hashes = _photo_hashes(data)
        # A flat picture's PDQ is left out (HashHub refuses to list degenerate hashes).
        signals = {name: hashes[name][0] for name in _types(request, hashes) if not hashes[name][1]}
        return Response(_add_to_bank(request, bank, signals, note))


def _content(org: Organization, bank: Bank, entry: Any, *, with_signals: bool) -> dict[str, Any]:
    """HMA's BankContentResponse for one entry."""
    until, disable_note = selectors.disable_until_ts(org=org, entry=entry)
    body: dict[str, Any] = {
        "id": entry.hma_id,
        "disable_until_ts": until,
        "original_media_uri": None,
        "bank": bank.as_dict(),
    }
    if with_signals:
        kind = get_signal_type(entry.hash.signal_type)
        body["signals"] = {kind.name: kind.to_text(bytes(entry.hash.value))}
    # An entry's own note only in the organisation's own lists: another's note could name it.
    note = disable_note or (entry.note if bank.writable else "")
    if note:
        body["note"] = note
    return body


@extend_schema(exclude=True)
class BankContentItemView(HmaView):
    """``GET|PUT|DELETE /c/bank/<name>/content/<id>``; PUT's ``disable_until_ts`` and ``note``
    are the match policy's disable of that entry (sharing.policy.entry_disable / entry_enable)."""

    scopes = {"GET": "lists:read", "PUT": "lists:admin", "DELETE": "lists:write"}

    def get(self, request: Request, bank_name: str, content_id: str) -> Response:
        org = _org(request)
        bank = selectors.bank_get(org=org, name=bank_name)
        entry = selectors.bank_entry(bank=bank, content_id=content_id)
        signals = request.query_params.get("include_signals", "false").lower() == "true"
        return Response(_content(org, bank, entry, with_signals=signals))

    def put(self, request: Request, bank_name: str, content_id: str) -> Response:
        org = _org(request)
        bank = selectors.bank_get(org=org, name=bank_name)
        entry = selectors.bank_entry(bank=bank, content_id=content_id)
        body = _json_object(request, 'The body must be a JSON object such as {"note": "…"}.')
        actor = Actor.from_request(request)
        note = _note(body.get("note")) if "note" in body else None
        active = next(
            (
                d
                for d in policy.disables_active(org=org)
                if d.hash_list_id == entry.hash_list_id and d.hash_id == entry.hash_id
            ),
            None,
        )
        kind = get_signal_type(entry.hash.signal_type)
        value = kind.to_text(bytes(entry.hash.value))

        def disable(until: dt.datetime, text: str) -> None:
            policy.entry_disable(
                org=org,
                list_id=bank.hash_list.public_id,
                signal_type=kind.name,
                value=value,
                until=until,
                note=text,
                actor=actor,
            )

        if "disable_until_ts" in body:
            until = _disable_until(body["disable_until_ts"])
            if until is None:
                if active is not None:
                    policy.entry_enable(org=org, public_id=active.public_id, actor=actor)
            else:
                keep = active.note if active is not None else ""
                disable(until, keep if note is None else note)
        elif note is not None:
            if active is None:
                raise ServiceError(
                    "note_needs_disable",
                    "HashHub keeps a note with a disable only: send disable_until_ts too.",
                )
            disable(active.until, note)
        return Response(_content(org, bank, entry, with_signals=False))

    def delete(self, request: Request, bank_name: str, content_id: str) -> Response:
        bank = selectors.bank_writable(org=_org(request), name=bank_name)
        # Unlike HMA ({"deleted": 0}), content not in the bank is 404: the same answer as for an
        # id of another organisation's, whatever the id looks like.
        entry = selectors.bank_entry(bank=bank, content_id=content_id)
        kind = get_signal_type(entry.hash.signal_type)
        result = list_services.entry_remove(
            hash_list=bank.hash_list,
            items=[EntryInput(type=kind.name, value=kind.to_text(bytes(entry.hash.value)))],
            reason="deleted through the HMA API",
            actor=Actor.from_request(request),
        )
        return Response({"deleted": result.removed})


def _disable_until(raw: object) -> dt.datetime | None:
    """HMA's ``disable_until_ts`` as the end of a disable, or None to enable (1, or a moment
    already past). 0 (HMA: disabled for ever) cannot be honoured: a disable has an end."""
    if isinstance(raw, bool):
        raw = int(raw)
    try:
        seconds = int(str(raw).strip())
    except ValueError:
        raise ServiceError("invalid_disable_until_ts", f"Invalid int: '{str(raw)[:50]}'") from None
    if seconds < 0:
        raise ServiceError(
            "invalid_disable_until_ts", "disable_until_ts must be a non-negative integer"
        )
    if seconds == 0:
        raise ServiceError(
            "disable_forever_unsupported",
            "HashHub disables an entry until a moment (at most three years ahead), never for "
            "ever: send a Unix timestamp.",
        )
    now = timezone.now()
    if seconds > (now + FIVE_YEARS).timestamp():
        raise ServiceError(
            "invalid_disable_until_ts", "disable_until_ts must be less than 5 years in the future"
        )
    until = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return None if seconds == selectors.ENABLED or until <= now else until
