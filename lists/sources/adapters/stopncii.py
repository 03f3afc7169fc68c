"""StopNCII-style JSON: the ``FetchHashes`` call of the StopNCII.org hash-exchange API.

The format follows the public ``threatexchange`` client (``exchanges/clients/stopncii``):
``GET {url}/FetchHashes?startTimestamp=&pageSize=[&nextPageToken=]`` with the headers
``Ocp-Apim-Subscription-Key`` and ``x-functions-key``, answering::

    {"count": 2, "nextPageToken": "...", "nextSetTimestamp": 1625175071, "hasMoreRecords": true,
     "hashRecords": [{"lastModtimestamp": 1625167804, "signalType": "ImagePDQ",
                      "hashValue": "2afc...", "hashStatus": "Received",
                      "caseNumbers": {"<case id>": "Received"}, "CSPFeedbacks": [...]}]}

Each record is the current state of one (signal type, hash): a later record for the same hash
replaces the earlier one, so records are keyed by the canonical hash. ``hashStatus``
``Received`` and ``Active`` add, ``Withdrawn`` and ``Deleted`` remove (the person who submitted
the image took it back); any other status is reported and not applied, since adding a hash whose
state is unknown could keep a withdrawn one. ``ImagePDQ`` becomes ``pdq`` and ``VideoMD5`` ``md5``;
other types (TMK, text, URL) are not hashes this hub holds: adds of them are reported,
removals of them skipped. StopNCII is non-consensual intimate imagery, hence category ``se``.

Config: ``url`` (default ``https://api.stopncii.org/v1``), ``subscription_key_env`` (required,
unless ``subscription_key`` is stored on the source) and ``function_key_env`` (optional), the
*names* of environment variables holding the two keys;
``category`` (default ``se``), ``page_size`` (default 800, as the reference client asks) and
``start_timestamp`` (where a first run begins, default 10).

Checkpoint: ``{"updated_after": unix time, "page_token": "..."}``. While a run pages through one
window the timestamp stays and the token advances; the last page stores the upstream's
``nextSetTimestamp`` and no token. Page tokens do not live long, so a run resuming with a token
the upstream refuses starts that window again from its timestamp (re-applying is harmless).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hub.lib.jsonsafe import JSONLimitError, loads_bounded
from lists.hashtypes import HashParseError
from lists.sources.adapters.base import ADD, REMOVE, Adapter, Page, Record, RecordError
from lists.sources.adapters.feed import CATEGORIES, hash_key
from lists.sources.errors import SourceError

DEFAULT_URL = "https://api.stopncii.org/v1"
DEFAULT_START_TIME = 10
PAGE_SIZE = 800
MAX_PAGE_SIZE = 10_000
MAX_TIMESTAMP = 2**40  # unix seconds, some 34,000 years ahead: past it a time is nonsense
# A FetchHashes answer nests 5 levels (hashRecords, a record, CSPFeedbacks, one, its tags).
MAX_JSON_DEPTH = 32
SIGNAL_TYPES = {"ImagePDQ": "pdq", "VideoMD5": "md5"}
STATUS_OPS = {"Received": ADD, "Active": ADD, "Withdrawn": REMOVE, "Deleted": REMOVE}


class StopNCIIAdapter(Adapter):
    """Pages of StopNCII hash records by timestamp and page token; see the module docstring."""

    kind = "stopncii"
    credential_keys = ("subscription_key_env", "function_key_env")

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = dict(config)
        url = str(config.get("url") or DEFAULT_URL)
        if not url.startswith(("https://", "http://")):
            raise SourceError("bad_config", "The StopNCII url must start with https:// or http://.")
        cleaned["url"] = url.rstrip("/")
        cleaned["category"] = str(config.get("category") or "se")
        if cleaned["category"] not in CATEGORIES:
            raise SourceError("bad_config", "category must be csam or se.")
        for name, default, top in (
            ("page_size", PAGE_SIZE, MAX_PAGE_SIZE),
            ("start_timestamp", DEFAULT_START_TIME, 2**40),
        ):
            value = config.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
                raise SourceError("bad_config", f"{name} is a whole number from 0 to {top}.")
            cleaned[name] = value
        return cleaned

    def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
        config = self.check_config(self.config)
        headers = {
            "Accept": "application/json",
            "Ocp-Apim-Subscription-Key": self.credentials.get(config, "subscription_key_env"),
        }
        if self.credentials.has(config, "function_key_env"):
            headers["x-functions-key"] = self.credentials.get(config, "function_key_env")
        start = checkpoint.get("updated_after")
        if not isinstance(start, int):
            start = config["start_timestamp"]
        token = str(checkpoint.get("page_token") or "")
        resuming = bool(token)
        number = 0
        newest = start
        while True:
            params: dict[str, Any] = {"startTimestamp": start, "pageSize": config["page_size"]}
            if token:
                params["nextPageToken"] = token
            try:
                response = self.http.get(
                    f"{config['url']}/FetchHashes", params=params, headers=headers
                )
            except SourceError as error:
                if resuming and error.code == "http_error":
                    # The stored token has expired: read the window again from its start.
                    token, resuming = "", False
                    continue
                raise
            resuming = False
            number += 1
            body = _body(response.content, number)
            page = Page(records=[], checkpoint={})
            for index, item in enumerate(body["hashRecords"], start=1):
                position = f"FetchHashes page {number}, record {index}"
                # A time of absurd size (a record error below) must not move the window: it
                # would carry the checkpoint past every later record.
                if isinstance(item, dict) and _timestamp(item.get("lastModtimestamp")):
                    newest = max(newest, item["lastModtimestamp"])
                outcome = _record(position, item, config["category"])
                if isinstance(outcome, Record):
                    page.records.append(outcome)
                elif outcome is not None:
                    page.errors.append(outcome)
            if body["hasMoreRecords"]:
                next_token = body.get("nextPageToken")
                if (
                    not isinstance(next_token, str)
                    or not next_token
                    or next_token == token
                    or "\x00" in next_token  # the checkpoint (jsonb) cannot hold it
                ):
                    raise SourceError(
                        "malformed_page",
                        f"FetchHashes page {number} says there is more but has no usable new "
                        "page token.",
                        position=f"FetchHashes page {number}",
                    )
                page.checkpoint = {"updated_after": start, "page_token": next_token}
                yield page
                token = next_token
                continue
            following = body.get("nextSetTimestamp")
            if not _timestamp(following):
                following = newest
            page.checkpoint = {"updated_after": following, "page_token": ""}
            yield page
            return


def _body(content: bytes, number: int) -> dict[str, Any]:
    """One FetchHashes answer, checked for the fields paging depends on."""
    position = f"FetchHashes page {number}"
    try:
        body = loads_bounded(content, max_depth=MAX_JSON_DEPTH)
    except JSONLimitError as error:
        # One JSON document: nothing of it can be read apart, so the whole page is refused.
        raise SourceError(
            "malformed_page", f"{position} is refused: {error.message}", position=position
        ) from None
    except ValueError:
        raise SourceError("malformed_page", f"{position} is not JSON.", position=position) from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("hashRecords"), list)
        or not isinstance(body.get("hasMoreRecords"), bool)
    ):
        raise SourceError(
            "malformed_page",
            f"{position} is not a FetchHashes answer (hashRecords and hasMoreRecords missing).",
            position=position,
        )
    return body


def _timestamp(value: Any) -> bool:
    """Whether ``value`` is a time in unix seconds that the checkpoint may hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TIMESTAMP


def _record(position: str, item: Any, category: str) -> Record | RecordError | None:
    """One hash record as a keyed add or remove; an error; None for a removal of nothing held."""
    if not isinstance(item, dict):
        return RecordError(position, "bad_record", "A hash record must be a JSON object.")
    upstream_type, value, status = (
        item.get("signalType"),
        item.get("hashValue"),
        item.get("hashStatus"),
    )
    if not isinstance(value, str) or not isinstance(upstream_type, str):
        return RecordError(position, "bad_record", "The record has no signalType or hashValue.")
    modified = item.get("lastModtimestamp")
    if isinstance(modified, int) and not isinstance(modified, bool) and not _timestamp(modified):
        return RecordError(
            position,
            "bad_timestamp",
            f"lastModtimestamp is not a time in unix seconds (0 to {MAX_TIMESTAMP:,}).",
        )
    op = STATUS_OPS.get(status) if isinstance(status, str) else None
    if op is None:
        shown = str(status)[:30]
        return RecordError(
            position, "unknown_status", f"Hash status {shown!r} is neither active nor withdrawn."
        )
    signal_type = SIGNAL_TYPES.get(upstream_type)
    if signal_type is None:
        if op == REMOVE:
            return None
        return RecordError(
            position,
            "unsupported_type",
            f"Signal type {upstream_type[:30]!r} is not one this hub holds.",
        )
    try:
        name, canonical, key = hash_key(signal_type, value)
    except HashParseError as error:
        return RecordError(position, error.code, error.message)
    if op == REMOVE:
        return Record(position=position, op=REMOVE, key=key, category=category)
    return Record(
        position=position, op=ADD, hashes=((name, canonical),), key=key, category=category
    )


ADAPTER = StopNCIIAdapter
