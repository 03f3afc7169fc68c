"""What an HMA client sees of HashHub: banks, bank content ids and index sizes.

Banks are the organisation's own lists (writable) and the lists it matches (read-only: verified
sources and subscribed community lists), named to HMA's pattern ``^[A-Z0-9_]+$`` by a mapping that
depends on the list alone, so a bank keeps its name whatever else changes:

* an own list whose name already fits the pattern keeps it (``CSAM``, ``SE``, banks made through
  the facade); any other own list is its name upper-cased, each run of other characters one
  ``_``, then ``_`` and six characters of its public id;
* a verified source's list is ``VERIFIED_<NAME>_<ID6>``, a community list ``COMMUNITY_<NAME>_<ID6>``
  from the list's own name (which matches already show), never its owner's: an anonymous list's
  bank names nobody.

``bank_content_id`` is the entry's ``hma_id``: 53 random bits drawn by the database for every new
entry (lists migration 0017), never a row number.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q
from django_scopes import scopes_disabled

from hub.errors import ServiceError
from hub.models import Organization
from lists.hashtypes import all_signal_types
from lists.models import Entry, HashList
from lists.selectors import lists_of
from sharing.policy import disables_active
from sharing.selectors import TIER_OWN, TIER_VERIFIED, MatchableList, matchable_by

HMA_REPOSITORY = "facebook/ThreatExchange"
HMA_COMMIT = "1777d8649f66cc79948b62b903995d268eeab65c"
"""The pinned HMA (hasher-matcher-actioner/ in facebook/ThreatExchange) the facade follows:
``src/OpenMediaMatch/blueprints/curation.py`` and ``schemas/curation.py`` as of this commit; the
matching and hashing blueprints as last changed before it (``blueprints/matching.py`` at
35f02700c6b3d830ff262d8ac85f398eaa077299, ``blueprints/hashing.py`` at
1c5c910942c57a2387460346f66557b335938076)."""

BANK_NAME = re.compile(r"^[A-Z0-9_]+$")
RESERVED_PREFIXES = ("VERIFIED_", "COMMUNITY_")
ENABLED = 1
"""HMA's ``disable_until_ts`` of content that matches (its BankContentConfig.ENABLED)."""


@dataclass(frozen=True)
class Bank:
    """One list as an HMA bank, for one organisation."""

    name: str
    hash_list: HashList
    seen: MatchableList | None  # how the organisation matches it (None: an own list turned off)
    writable: bool

    @property
    def published_view(self) -> bool:
        return self.seen is not None and self.seen.published_view

    def as_dict(self) -> dict[str, object]:
        """HMA's BankConfig. Every bank matches whole: HashHub has no matching_enabled_ratio."""
        return {"name": self.name, "matching_enabled_ratio": 1.0}


def _shout(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_") or "LIST"


def _id6(public_id: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", public_id.upper())[:6]


def bank_name_of(hash_list: HashList, tier: str) -> str:
    """The bank name of a list, from the list alone (see the module's docstring)."""
    if tier == TIER_OWN:
        name = hash_list.name
        if BANK_NAME.match(name) and not name.startswith(RESERVED_PREFIXES):
            return name
        return f"{_shout(name)}_{_id6(hash_list.public_id)}"
    prefix = "VERIFIED" if tier == TIER_VERIFIED else "COMMUNITY"
    return f"{prefix}_{_shout(hash_list.name)}_{_id6(hash_list.public_id)}"


def banks_of(*, org: Organization) -> dict[str, Bank]:
    """Every bank ``org`` sees, by name: its own live lists, then the lists it matches."""
    matchable = matchable_by(org=org).lists
    banks: dict[str, Bank] = {}
    for hash_list in lists_of(org=org).order_by("created", "pk"):
        name = bank_name_of(hash_list, TIER_OWN)
        banks.setdefault(name, Bank(name, hash_list, matchable.get(hash_list.pk), writable=True))
    others = [seen for seen in matchable.values() if seen.tier != TIER_OWN]
    if others:
        with scopes_disabled():
            models = HashList.objects.in_bulk([seen.pk for seen in others])
        for seen in sorted(others, key=lambda s: s.pk):
            hash_list = models[seen.pk]
            name = bank_name_of(hash_list, seen.tier)
            banks.setdefault(name, Bank(name, hash_list, seen, writable=False))
    return banks


def bank_get(*, org: Organization, name: str) -> Bank:
    """One bank ``org`` sees; 404 for a missing one and for another organisation's alike."""
    bank = banks_of(org=org).get(name)
    if bank is None:
        raise ServiceError("not_found", f"bank '{name[:100]}' not found", status=404)
    return bank


def bank_writable(*, org: Organization, name: str) -> Bank:
    """A bank ``org`` may change: its own. A bank it only matches is refused (403)."""
    bank = bank_get(org=org, name=name)
    if not bank.writable:
        raise ServiceError(
            "read_only_bank",
            f"bank '{name}' is a list your organisation matches but does not own: it is read-only.",
            status=403,
        )
    return bank


def _live_in_view(published: bool) -> Q:
    """The entries a caller sees live: another owner's anonymous list in its published view."""
    if published:
        return Q(published_seq__isnull=False, unpublished_seq__isnull=True)
    return Q(removed_seq__isnull=True)


def content_ids(pairs: Iterable[tuple[int, int, bool]]) -> dict[tuple[int, int], int]:
    """The ``bank_content_id`` of each ``(list pk, hash id, published view)`` live entry."""
    wanted = set(pairs)
    if not wanted:
        return {}
    condition = Q()
    for list_pk, hash_id, published in wanted:
        condition |= Q(hash_list_id=list_pk, hash_id=hash_id) & _live_in_view(published)
    with scopes_disabled():
        rows = Entry.objects.filter(condition).values_list("hash_list_id", "hash_id", "hma_id")
        return {(list_pk, hash_id): hma_id for list_pk, hash_id, hma_id in rows if hma_id}


def bank_entry(*, bank: Bank, content_id: str) -> Entry:
    """The live entry behind ``content_id`` in ``bank`` as its reader sees it; else 404 (also
    for an id that is not a whole number, as HMA's ``<int:content_id>`` route)."""
    if not content_id.isascii() or not content_id.isdigit() or len(content_id) > 16:
        raise ServiceError("not_found", f"content '{content_id[:30]}' not found", status=404)
    with scopes_disabled():
        entry = (
            Entry.objects.select_related("hash")
            .filter(
                _live_in_view(bank.published_view), hash_list=bank.hash_list, hma_id=int(content_id)
            )
            .first()
        )
    if entry is None:
        raise ServiceError("not_found", f"content '{content_id}' not found", status=404)
    return entry


def entry_content_id(*, hash_list: HashList, signal_type: str, value: bytes) -> int | None:
    """The ``bank_content_id`` of the live entry of a hash in one of the caller's own lists."""
    with scopes_disabled():
        return (
            Entry.objects.filter(
                hash_list=hash_list,
                hash__signal_type=signal_type,
                hash__value=value,
                removed_seq__isnull=True,
            )
            .values_list("hma_id", flat=True)
            .first()
        )


def disable_until_ts(*, org: Organization, entry: Entry) -> tuple[int, str]:
    """HMA's ``disable_until_ts`` of an entry for ``org`` (its active disable's end, as Unix
    seconds, or 1: enabled) and the disable's note."""
    for disable in disables_active(org=org):
        if disable.hash_list_id == entry.hash_list_id and disable.hash_id == entry.hash_id:
            return int(disable.until.timestamp()), disable.note
    return ENABLED, ""


def index_sizes(*, org: Organization) -> dict[str, int]:
    """Per signal type, how many entries ``org`` may match (own lists, entitled sources,
    subscribed community lists; another owner's anonymous list as published). Nothing else
    counts: the figure tells nothing of lists ``org`` may not match (DESIGN.md, invariant 7)."""
    seen = matchable_by(org=org).lists
    sizes = {signal_type.name: 0 for signal_type in all_signal_types()}
    with scopes_disabled():
        rows = HashList.objects.filter(pk__in=list(seen)).values_list(
            "pk", "live_counts", "published_counts"
        )
        for pk, live, published in rows:
            counts = published if seen[pk].published_view else live
            for name, count in (counts or {}).items():
                if name in sizes:
                    sizes[name] += int(count or 0)
    return sizes


def now_ts() -> int:
    """The index is current to the last committed change on every request: built to now."""
    return int(time.time())
