"""Another HashHub (federation): a peer hub's delta export, read with one of its API keys.

``GET {url}/api/v1/export?cursor=&limit=`` with ``Authorization: Bearer <key>`` (scope
``export``) answers ``{"items": [{"seq", "op", "type", "value", "list": {"id", "name",
"category", "tier", "contributor", "anonymous"}}], "next_cursor", "has_more"}``: every add and
removal, in change order, of everything the key's organisation may match against on the peer.

The same hash may sit in several peer lists of one category, and a removal from one of them
must not drop it while another still holds it. So each item is a record keyed by
``{peer list id}:{type}:{canonical value}`` in the list of the peer list's category: the runner
keeps a hash while any record of the list holds it (SourceRecord refcounting), which mirrors the
peer exactly. Replaying the feed in order is idempotent, so a page read twice changes nothing.

Config: ``url`` (the peer's base URL), ``api_key_env`` (the *name* of the environment variable
holding the peer API key, or ``api_key`` stored on the source), ``page_size`` (1 to 10,000,
default 1,000), and the filters ``categories`` (default both) and ``tiers`` (default
``["own", "community"]``): items of other lists are skipped. The peer's own *verified* lists
are left out unless ``tiers`` names ``verified``: upstream licences (IWF, NCMEC) rarely allow
passing their lists on, and two hubs federating each other's verified lists would echo hashes
back and forth. Changing a filter later does not withdraw what earlier runs imported; re-import
from an empty checkpoint for that.

Checkpoint: ``{"cursor": next_cursor}``; the peer's cursors never expire.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hub.lib.jsonsafe import JSONLimitError, loads_bounded
from lists.hashtypes import HashParseError
from lists.sources.adapters.base import ADD, REMOVE, Adapter, Page, Record, RecordError
from lists.sources.adapters.feed import CATEGORIES, hash_key, short_key
from lists.sources.errors import SourceError

PAGE_SIZE = 1000
MAX_PAGE_SIZE = 10_000
TIERS = ("own", "community", "verified")
DEFAULT_TIERS = ("own", "community")
OPS = {"add": ADD, "remove": REMOVE}
# An export page nests 4 levels (the page, items, an item, its list).
MAX_JSON_DEPTH = 32


class HashHubAdapter(Adapter):
    """A peer hub's export feed as keyed records; see the module docstring."""

    kind = "hashhub"
    credential_keys = ("api_key_env",)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = dict(config)
        url = str(config.get("url") or "")
        if not url.startswith(("https://", "http://")):
            raise SourceError(
                "bad_config", "The peer hub's url must start with https:// or http://."
            )
        cleaned["url"] = url.rstrip("/")
        size = config.get("page_size", PAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PAGE_SIZE:
            raise SourceError(
                "bad_config", f"page_size is a whole number from 1 to {MAX_PAGE_SIZE}."
            )
        cleaned["page_size"] = size
        for name, allowed in (("categories", CATEGORIES), ("tiers", TIERS)):
            chosen = config.get(name)
            if chosen is None:
                continue
            if not isinstance(chosen, list) or not set(chosen) <= set(allowed) or not chosen:
                raise SourceError("bad_config", f"{name} is a list of {', '.join(allowed)}.")
        return cleaned

    def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
        config = self.check_config(self.config)
        headers = {
            "Accept": "application/json",
            "Authorization": f"Bearer {self.credentials.get(config, 'api_key_env')}",
        }
        categories = set(config.get("categories") or CATEGORIES)
        tiers = set(config.get("tiers") or DEFAULT_TIERS)
        cursor = str(checkpoint.get("cursor") or "")
        while True:
            response = self.http.get(
                f"{config['url']}/api/v1/export",
                params={"cursor": cursor, "limit": config["page_size"]},
                headers=headers,
            )
            position = f"export after cursor {cursor[:60] or '(start)'}"
            body = _body(response.content, position)
            page = Page(records=[], checkpoint={"cursor": body["next_cursor"]})
            for index, item in enumerate(body["items"]):
                outcome = _record(f"{position}, item {index}", item, categories, tiers)
                if isinstance(outcome, Record):
                    page.records.append(outcome)
                elif outcome is not None:
                    page.errors.append(outcome)
            if body["items"] or body["next_cursor"] != cursor:
                yield page
            if not body["has_more"]:
                return
            if body["next_cursor"] == cursor:
                raise SourceError(
                    "malformed_page",
                    "The peer says there is more but its cursor did not move.",
                    position=position,
                )
            cursor = body["next_cursor"]


def _body(content: bytes, position: str) -> dict[str, Any]:
    try:
        body = loads_bounded(content, max_depth=MAX_JSON_DEPTH)
    except JSONLimitError as error:
        # One JSON document: nothing of it can be read apart, so the whole page is refused.
        raise SourceError(
            "malformed_page",
            f"The peer's {position} is refused: {error.message}",
            position=position,
        ) from None
    except ValueError:
        raise SourceError("malformed_page", f"The peer's {position} is not JSON.") from None
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("items"), list)
        or not isinstance(body.get("next_cursor"), str)
        or "\x00" in body["next_cursor"]  # the checkpoint (jsonb) cannot hold it
        or not isinstance(body.get("has_more"), bool)
    ):
        raise SourceError(
            "malformed_page",
            "The peer's answer is not an export page (items, next_cursor, has_more).",
            position=position,
        )
    return body


def _record(
    position: str, item: Any, categories: set[str], tiers: set[str]
) -> Record | RecordError | None:
    """One export item as a keyed record; an error; None when a filter skips it."""
    if not isinstance(item, dict) or not isinstance(item.get("list"), dict):
        return RecordError(position, "bad_record", "An export item must be an object with a list.")
    if isinstance(item.get("seq"), int):
        position = f"seq {item['seq']}"
    peer_list = item["list"]
    list_id, category = peer_list.get("id"), peer_list.get("category")
    raw_op = item.get("op")
    op = OPS.get(raw_op) if isinstance(raw_op, str) else None
    if (
        not isinstance(list_id, str)
        or not list_id
        or "\x00" in list_id  # part of the record's key, which PostgreSQL's text cannot hold
        or category not in CATEGORIES
        or op is None
    ):
        return RecordError(
            position, "bad_record", "The item needs op add/remove, a list id and a category."
        )
    tier = peer_list.get("tier")
    # (A tier that is not text is no tier asked for: a list or object in a set test raised.)
    if category not in categories or not isinstance(tier, str) or tier not in tiers:
        return None
    signal_type, value = item.get("type"), item.get("value")
    if not isinstance(signal_type, str) or not isinstance(value, str):
        return RecordError(position, "bad_record", "The item has no type or value.")
    try:
        name, canonical, key = hash_key(signal_type, value)
    except HashParseError as error:
        return RecordError(position, error.code, error.message)
    key = short_key(f"{list_id}:{key}")
    if op == REMOVE:
        return Record(position=position, op=REMOVE, key=key, category=category)
    return Record(
        position=position, op=ADD, hashes=((name, canonical),), key=key, category=category
    )


ADAPTER = HashHubAdapter
