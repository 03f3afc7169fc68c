"""Reads of hash lists and entries, always through the caller's organisation."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet
from django.http import Http404
from django_scopes import scope

from hub.errors import ServiceError
from hub.models import Organization
from lists.hashtypes import get_signal_type
from lists.models import Entry, HashList

PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def lists_of(*, org: Organization) -> QuerySet[HashList]:
    """The organisation's own live lists, categories first (CSAM before SE), then by name."""
    return HashList.objects.filter(organization=org, deleted_at__isnull=True).order_by(
        "category", "name"
    )


def get_list_for_org(*, org: Organization, public_id: str) -> HashList:
    """One of the organisation's lists; the same 404 for a missing id and for someone else's."""
    hash_list = (
        HashList.objects.filter(organization=org, public_id=public_id, deleted_at__isnull=True)
        .select_related("organization")
        .first()
    )
    if hash_list is None:
        raise Http404("No such list.")
    return hash_list


@dataclass
class ListStats:
    size: int
    by_type: dict[str, int]
    last_change: datetime | None


def list_stats(*, lists: list[HashList]) -> dict[int, ListStats]:
    """Live entry counts (total and per type) and the last change of each list.

    Read from the counters the services keep on the list row: no entry is counted here.
    """
    return {
        hl.pk: ListStats(sum(hl.live_counts.values()), dict(hl.live_counts), hl.last_change_at)
        for hl in lists
    }


def hex_prefix_range(prefix: str) -> tuple[bytes, bytes | None]:
    """The bytes range [low, high) of values whose hex starts with ``prefix`` (high None: no bound).

    Raises ServiceError ``bad_prefix`` for anything but 1 to 64 hex digits.
    """
    prefix = prefix.strip().lower()
    if not prefix or len(prefix) > 64 or any(c not in "0123456789abcdef" for c in prefix):
        raise ServiceError("bad_prefix", "Search by 1 to 64 hexadecimal digits of the hash.")
    low = bytes.fromhex(prefix + "0" * (len(prefix) % 2))
    high_hex = prefix + "f" * (len(prefix) % 2)
    number = int(high_hex, 16) + 1
    if number >= 16 ** len(high_hex):
        return low, None
    return low, number.to_bytes(len(high_hex) // 2, "big")


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("s"):
            raise ValueError
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ServiceError("bad_cursor", "The cursor is not one this hub gave out.") from None


@dataclass
class EntryPage:
    entries: list[Entry]
    next_cursor: str | None


def entries_page(
    *,
    hash_list: HashList,
    cursor: str = "",
    limit: int = PAGE_SIZE,
    signal_type: str = "",
    label: str = "",
    prefix: str = "",
) -> EntryPage:
    """A page of a list's live entries, newest first, by keyset on the change number.

    Keyset (not OFFSET) paging keeps every page as fast at entry 1,000,000 as at entry 1.
    """
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    entries = Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True)
    if cursor:
        entries = entries.filter(added_seq__lt=decode_cursor(cursor))
    if signal_type:
        entries = entries.filter(hash__signal_type=signal_type)
    if label:
        entries = entries.filter(labels__contains=[label])
    if prefix:
        low, high = hex_prefix_range(prefix)
        condition = Q(hash__value__gte=low)
        if high is not None:
            condition &= Q(hash__value__lt=high)
        entries = entries.filter(condition)
    rows = list(entries.select_related("hash").order_by("-added_seq")[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1].added_seq) if len(rows) > limit else None
    return EntryPage(rows[:limit], next_cursor)


EXPORT_PAGE = 5000


def entries_export_rows(*, hash_list: HashList) -> Iterator[tuple[str, str, str, str, str, str]]:
    """Every live entry as (type, value, labels, note, added_at, added_by), newest first.

    Plain tuples a keyset page at a time: memory stays flat and no model object is built, so a
    million-entry list streams in seconds. Opens the list's scope itself, because a streamed
    response is consumed after the view (and the middleware's scope) has returned.
    """
    last_seq: int | None = None
    while True:
        with scope(organization=hash_list.organization_id):
            page = Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True)
            if last_seq is not None:
                page = page.filter(added_seq__lt=last_seq)
            rows = list(
                page.order_by("-added_seq").values_list(
                    "added_seq", "hash__signal_type", "hash__value", "labels", "note", "added_at",
                    "added_by_label",
                )[:EXPORT_PAGE]
            )  # fmt: skip
        for _seq, signal_type, value, labels, note, added_at, added_by in rows:
            text = get_signal_type(signal_type).to_text(bytes(value))
            yield (signal_type, text, ";".join(labels), note, added_at.isoformat(), added_by)
        if len(rows) < EXPORT_PAGE:
            return
        last_seq = rows[-1][0]
