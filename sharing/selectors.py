"""What an organisation may match against and read: the one place that decides it.

``matchable_by`` answers DESIGN.md's match path step 3: the organisation's own lists, the
verified sources it is entitled to (tier ``verified``) and the shared lists of other approved
organisations it subscribes to (tier ``community``). The match service, the export feed and the
list API all read it; ``access_pairs`` holds the rules it follows, and sharing.services keeps the
two in step.

Anonymity: a community list of an anonymous owner is described with ``contributor = None`` and
``anonymous = True``; nothing returned here to another organisation names or orders by its owner.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from hub.errors import ServiceError
from hub.models import AuditEvent, Organization
from lists import selectors as list_selectors
from lists.models import HashList, Source
from lists.services import CLASSIFICATION_LABELS
from sharing.models import AccessEvent, ListImpact, SharingPreferences, Subscription
from sharing.policy_rules import Policy

TIER_VERIFIED = "verified"
TIER_OWN = "own"
TIER_COMMUNITY = "community"


@dataclass(frozen=True)
class MatchableList:
    """A list as a match result shows it to the organisation that matched.

    ``contributor`` is None and ``anonymous`` True for an anonymous community list: nothing here
    may name its owner.
    """

    pk: int
    public_id: str
    name: str
    category: str
    tier: str
    contributor: str | None
    anonymous: bool
    # Who holds what this list holds, for corroboration: ("source", id), ("org", id) for an
    # open or own list, ("list", id) for an anonymous one (never paired with its owner's other
    # lists). Never shown: it names the owner.
    holder: tuple[str, int] = field(default=("", 0), compare=False, repr=False)
    # The public id of a verified list's source (for the match policy's per-source settings).
    source_id: str = field(default="", compare=False, repr=False)

    @property
    def published_view(self) -> bool:
        """Whether the caller sees this list's published view (another owner's anonymous list:
        its changes reach the caller in batches, lists.changes)."""
        return self.tier == TIER_COMMUNITY and self.anonymous

    def as_dict(self) -> dict[str, Any]:
        """The ``list`` object of a match or export item (API contract v1)."""
        return {
            "id": self.public_id,
            "name": self.name,
            "category": self.category,
            "tier": self.tier,
            "contributor": self.contributor,
            "anonymous": self.anonymous,
        }


# The (subscriber, list) pairs with community access now: a shared list (open or anonymous, not
# deleted) of an approved owner, an approved subscriber that is not the owner, and a subscription
# to the list or to its category without an opt-out of the list. ``orgs`` limits the subscribers
# (NULL: all), ``lists`` the lists, ``owners`` the owners; the services' access log and the
# matchable set are both computed from this one statement. Its second half is the verified
# tier: every approved organisation matches a source open to all, and a gated source only with
# a staff grant (an entitlement); sources have no owner organisation, so ``owners`` skips them.
# In both halves the subscriber's match policy may turn a list, a category of shared lists or a
# source off (sharing.policy): access ends like any other loss, and the export removes it all.
_ACCESS_SQL = """
SELECT sub.id AS org_id, l.id AS list_id
  FROM lists_hashlist l
  JOIN hub_organization owner ON owner.id = l.organization_id AND owner.approved
  JOIN hub_organization sub ON sub.approved AND sub.id <> l.organization_id
 WHERE l.deleted_at IS NULL
   AND l.visibility IN ('open', 'anonymous')
   AND (%(orgs)s::bigint[] IS NULL OR sub.id = ANY(%(orgs)s::bigint[]))
   AND (%(lists)s::bigint[] IS NULL OR l.id = ANY(%(lists)s::bigint[]))
   AND (%(owners)s::bigint[] IS NULL OR l.organization_id = ANY(%(owners)s::bigint[]))
   AND (
        EXISTS (SELECT 1 FROM sharing_subscription s
                 WHERE s.organization_id = sub.id AND s.hash_list_id = l.id AND NOT s.excluded)
     OR (EXISTS (SELECT 1 FROM sharing_subscription s
                  WHERE s.organization_id = sub.id AND s.hash_list_id IS NULL
                    AND s.category = l.category)
         AND NOT EXISTS (SELECT 1 FROM sharing_subscription s
                          WHERE s.organization_id = sub.id AND s.hash_list_id = l.id
                            AND s.excluded))
   )
   AND NOT EXISTS (SELECT 1 FROM sharing_policyexclusion x
                    WHERE x.organization_id = sub.id
                      AND (x.hash_list_id = l.id OR x.category = l.category))
UNION ALL
SELECT sub.id, l.id
  FROM lists_hashlist l
  JOIN lists_source src ON src.id = l.source_id
  JOIN hub_organization sub ON sub.approved
 WHERE l.deleted_at IS NULL
   AND %(owners)s::bigint[] IS NULL
   AND (%(orgs)s::bigint[] IS NULL OR sub.id = ANY(%(orgs)s::bigint[]))
   AND (%(lists)s::bigint[] IS NULL OR l.id = ANY(%(lists)s::bigint[]))
   AND (src.access = 'all'
        OR EXISTS (SELECT 1 FROM sharing_sourceentitlement g
                    WHERE g.source_id = src.id AND g.organization_id = sub.id))
   AND NOT EXISTS (SELECT 1 FROM sharing_policyexclusion x
                    WHERE x.organization_id = sub.id
                      AND (x.source_id = src.id OR x.hash_list_id = l.id))
"""


def access_pairs(
    *,
    orgs: Iterable[int] | None = None,
    lists: Iterable[int] | None = None,
    owners: Iterable[int] | None = None,
) -> set[tuple[int, int]]:
    """(subscriber org pk, list pk) for every community access that holds now, filtered."""
    params = {
        "orgs": None if orgs is None else list(orgs),
        "lists": None if lists is None else list(lists),
        "owners": None if owners is None else list(owners),
    }
    with connection.cursor() as cursor:
        cursor.execute(_ACCESS_SQL, params)
        return {(org_id, list_id) for org_id, list_id in cursor.fetchall()}


_LIST_SELECT = (
    "SELECT l.id, l.public_id, l.name, l.category, l.visibility, l.organization_id,"
    " COALESCE(o.name, src.name), l.source_id, src.public_id"
)
_LIST_FROM = (
    " FROM lists_hashlist l LEFT JOIN hub_organization o ON o.id = l.organization_id"
    " LEFT JOIN lists_source src ON src.id = l.source_id"
)
_LIST_COLUMNS = _LIST_SELECT + _LIST_FROM
_WIDTH = 9  # the columns of _LIST_SELECT, which _described reads


def _described(row: tuple[Any, ...], org: Organization) -> MatchableList:
    pk, public_id, name, category, visibility, owner_id, owner_name, source_id = row[:8]
    if source_id is not None:
        return MatchableList(
            pk=pk,
            public_id=public_id,
            name=name,
            category=category,
            tier=TIER_VERIFIED,
            contributor=owner_name,
            anonymous=False,
            holder=("source", source_id),
            source_id=row[8],
        )
    own = owner_id == org.pk
    # Only an open list names its owner to others: a list made private may have been anonymous.
    anonymous = not own and visibility != HashList.Visibility.OPEN
    return MatchableList(
        pk=pk,
        public_id=public_id,
        name=name,
        category=category,
        tier=TIER_OWN if own else TIER_COMMUNITY,
        contributor=None if anonymous else owner_name,
        anonymous=anonymous,
        holder=("list", pk) if anonymous else ("org", owner_id),
    )


FOREVER = 2**63 - 1
"""The open end of an access interval that has not ended."""


@dataclass(frozen=True)
class Matchable:
    """What an organisation matches: the one answer the match path and the export both read.

    ``lists`` are the lists it matches now. ``intervals`` (asked for with ``history=True``) are
    the stretches of the change sequence during which it matched each list, as
    ``(list pk, after seq, before seq)``: its own lists always, a shared or verified list from
    each grant to the revoke that ended it (or ``FOREVER``). ``events`` are the grants and
    revokes themselves, ``(seq, list pk, granted)`` in order.
    """

    lists: dict[int, MatchableList]
    policy: Policy = field(default_factory=Policy)
    intervals: tuple[tuple[int, int, int], ...] = ()
    events: tuple[tuple[int, int, bool], ...] = ()
    # The lists of ``intervals`` read in their published view (others' anonymous lists).
    published: frozenset[int] = frozenset()


# The organisation's own lists and the lists whose latest access event for it is a grant. The
# access log is kept in step with the rules (``_ACCESS_SQL``) by sharing.services.access_sync in
# the transaction of every change, and checked by the reconciler; reading the log here rather
# than the rules is what makes "replaying the export equals what matches" hold by construction.
#
# The log of an anonymous list waits for the next publication (sharing.services), so a shared
# list also needs to be shared now, undeleted, by an approved owner: suspending an organisation
# or unsharing stops others matching its lists at once, before the revoke is published.
_MATCHABLE_SQL = (
    _LIST_SELECT  # noqa: S608 (constants only)
    # The organisation's match policy rides along (one evaluation, InitPlan): a match reads
    # what and how it matches in one statement.
    + ", (SELECT row_to_json(p) FROM sharing_matchpolicy p WHERE p.organization_id = %(org)s)"
    + _LIST_FROM
    + """
 WHERE (l.organization_id = %(org)s AND l.deleted_at IS NULL)
    OR (l.id IN (SELECT latest.hash_list_id FROM (
            SELECT DISTINCT ON (a.hash_list_id) a.hash_list_id, a.granted
              FROM sharing_accessevent a
             WHERE a.organization_id = %(org)s
             ORDER BY a.hash_list_id, a.seq DESC) AS latest
         WHERE latest.granted)
        AND l.deleted_at IS NULL
        AND (l.source_id IS NOT NULL
             OR (o.approved AND l.visibility IN ('open', 'anonymous'))))
"""
)


# Of the given lists (first parameter), those the reader (second parameter, an organisation)
# reads in their published view: another owner's anonymous list, and one made private since it
# was anonymous (published_through is no longer 0 once a list has been made anonymous), so that
# its revoke removes only what was published and no interval replays an entry that never was.
# A list made private from open never was anonymous and is read by its change numbers.
_PUBLISHED_VIEW_SQL = """
SELECT id FROM lists_hashlist
 WHERE id = ANY(%s) AND organization_id <> %s
   AND (visibility = 'anonymous' OR (visibility = 'private' AND published_through <> 0))
"""


def matchable_by(*, org: Organization, history: bool = False) -> Matchable:
    """What ``org`` matches now and, with ``history``, since when (for the export feed).

    The single selector of "what this organisation matches" (DESIGN.md, match path step 3):
    the match service, the export and the tests all ask it. Every match request asks, so the
    current lists come from one hand-written statement (constants only; values are bound).
    """
    with connection.cursor() as cursor:
        cursor.execute(_MATCHABLE_SQL, {"org": org.pk})
        rows = cursor.fetchall()
    lists = {row[0]: _described(row, org) for row in rows}
    policy = Policy.of(_json(rows[0][_WIDTH]) if rows else None)
    if not history:
        return Matchable(lists=lists, policy=policy)
    with scope(organization=org.pk):
        # Deleted own lists too: their removals stay in the feed.
        own = HashList.objects.filter(organization=org).values_list("pk", flat=True)
        intervals = [(pk, 0, FOREVER) for pk in own]
    events = access_log(org=org)
    opened: dict[int, int] = {}
    for seq, list_pk, granted in events:
        if granted:
            opened.setdefault(list_pk, seq)
        elif list_pk in opened:
            intervals.append((list_pk, opened.pop(list_pk), seq))
    intervals += [(list_pk, seq, FOREVER) for list_pk, seq in opened.items()]
    with connection.cursor() as cursor:
        cursor.execute(_PUBLISHED_VIEW_SQL, [sorted({pk for pk, _, _ in intervals}), org.pk])
        published = frozenset(pk for (pk,) in cursor.fetchall())
    return Matchable(
        lists=lists,
        policy=policy,
        intervals=tuple(intervals),
        events=tuple(events),
        published=published,
    )


def _json(value: Any) -> Any:
    # Django leaves json undecoded on raw cursors.
    return json.loads(value) if isinstance(value, str) else value


def lists_turned_off(*, org: Organization) -> dict[str, tuple[HashList, str]]:
    """The lists ``org`` turned off by its match policy (one by one) that it could match
    otherwise: public id → (list, tier)."""
    # Only lists it could match but for the exclusion: a list since made private or deleted,
    # or of a source no longer open to it, is not named again (nor is its existence told).
    sources = [source.pk for source in sources_available_to(org=org).values()]
    with scopes_disabled():
        off = list(
            HashList.objects.filter(policyexclusion__organization=org, deleted_at__isnull=True)
            .filter(
                Q(source_id__in=sources)
                | Q(
                    source__isnull=True,
                    organization__approved=True,
                    visibility__in=(HashList.Visibility.OPEN, HashList.Visibility.ANONYMOUS),
                )
            )
            .exclude(organization=org)
            .distinct()
        )
    return {hl.public_id: (hl, TIER_VERIFIED if hl.source_id else TIER_COMMUNITY) for hl in off}


def sources_available_to(*, org: Organization) -> dict[str, Source]:
    """The verified sources ``org`` may match (open to all, or granted), whether or not its
    policy turned them off: public id → source."""
    with scopes_disabled():
        found = Source.objects.filter(
            Q(access=Source.Access.ALL) | Q(entitlements__organization=org)
        ).distinct()
        return {source.public_id: source for source in found} if org.approved else {}


def lists_matchable_by(*, org: Organization) -> dict[int, MatchableList]:
    """The lists ``org`` matches against now, keyed by primary key (see :func:`matchable_by`)."""
    return matchable_by(org=org).lists


def lists_described(*, org: Organization, pks: Iterable[int]) -> dict[int, MatchableList]:
    """The given lists as ``org`` sees them (for feed items of lists it no longer matches)."""
    wanted = list(pks)
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(_LIST_COLUMNS + " WHERE l.id = ANY(%s)", [wanted])
        return {row[0]: _described(row, org) for row in cursor.fetchall()}


@dataclass(frozen=True)
class CatalogueItem:
    """One shared list of another organisation, as the community catalogue shows it."""

    hash_list: MatchableList
    size: int
    size_by_type: dict[str, int]
    last_change: dt.datetime | None
    subscribers: int
    subscribed: bool
    via_category: bool
    excluded: bool
    description: str
    verification: str = ""  # a verified list's: how its source verifies its entries


# The shared lists (of the given ones) that their own owner's category subscription takes in.
_OWNER_COVERED_SQL = """
SELECT l.id
  FROM lists_hashlist l
  JOIN hub_organization owner ON owner.id = l.organization_id AND owner.approved
 WHERE l.id = ANY(%s::bigint[])
   AND l.deleted_at IS NULL
   AND l.visibility IN ('open', 'anonymous')
   AND EXISTS (SELECT 1 FROM sharing_subscription s
                WHERE s.organization_id = owner.id AND s.hash_list_id IS NULL
                  AND s.category = l.category)
   AND NOT EXISTS (SELECT 1 FROM sharing_subscription s
                    WHERE s.organization_id = owner.id AND s.hash_list_id = l.id AND s.excluded)
"""


def subscriber_counts(list_pks: Iterable[int]) -> dict[int, int]:
    """How many organisations subscribe to each list, to it or to its whole category.

    The owner counts like any other organisation when its category subscription takes the list
    in (it matches the list as its own either way): left out, every list of a category
    subscriber would show one subscriber fewer than the others, and so tell which lists such an
    organisation owns (DESIGN.md, invariant 3).
    """
    wanted = list(list_pks)
    counts: dict[int, int] = dict.fromkeys(wanted, 0)
    if not wanted:
        return counts
    for _, list_pk in access_pairs(lists=wanted):
        counts[list_pk] += 1
    with connection.cursor() as cursor:
        cursor.execute(_OWNER_COVERED_SQL, [wanted])
        for (list_pk,) in cursor.fetchall():
            counts[list_pk] += 1
    return counts


def _shown_rows(
    where: str, params: dict[str, Any], *, category: str, public_id: str
) -> list[tuple[Any, ...]]:
    """Lists as the catalogue and the verified tier show them: described, sized, filtered.

    ``where`` is a constant condition (values go in ``params``). Ordered by category, name and
    the list's random id, never by owner.
    """
    # Others see an anonymous list's size and last change as of its last publication.
    sql = (
        _LIST_SELECT
        + ", CASE WHEN l.visibility = 'anonymous' THEN l.published_counts ELSE l.live_counts END"
        + ", CASE WHEN l.visibility = 'anonymous' THEN l.published_at ELSE l.last_change_at END"
        + ", l.description" + _LIST_FROM + " WHERE " + where
    )  # fmt: skip
    params = dict(params)
    if category:
        sql += " AND l.category = %(category)s"
        params["category"] = category
    if public_id:
        sql += " AND l.public_id = %(public_id)s"
        params["public_id"] = public_id
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY l.category, l.name, l.public_id", params)
        return cursor.fetchall()


def _sizes(live_counts: Any) -> dict[str, int]:
    """A list's live counts per type (Django leaves jsonb undecoded on raw cursors)."""
    counts = json.loads(live_counts) if isinstance(live_counts, str) else live_counts
    return {k: int(v) for k, v in (counts or {}).items() if v}


def catalogue(*, org: Organization, category: str = "", public_id: str = "") -> list[CatalogueItem]:
    """The shared lists of other approved organisations, for an approved ``org``.

    Ordered by category, name and the list's random id, never by owner, so the order says nothing
    about who shares what. An unapproved organisation sees an empty catalogue.
    """
    if not org.approved:
        return []
    # An anonymous list appears once a publication has taken it in (lists.changes), not when
    # it was shared or its owner approved, which its owner's open lists would show at once.
    rows = _shown_rows(
        "l.deleted_at IS NULL"
        " AND (l.visibility = 'open' OR (l.visibility = 'anonymous' AND l.published_through >= 0))"
        " AND o.approved AND l.organization_id <> %(org)s",
        {"org": org.pk},
        category=category,
        public_id=public_id,
    )
    list_pks = [row[0] for row in rows]
    subscribers = subscriber_counts(list_pks)
    mine = subscription_state(org=org)
    items = []
    for row in rows:
        described = _described(row[:_WIDTH], org)
        live_counts, last_change, description = row[_WIDTH:]
        by_type = _sizes(live_counts)
        explicit = mine.lists.get(described.pk)
        via_category = described.category in mine.categories and explicit is None
        subscribed = explicit is True or via_category
        items.append(
            CatalogueItem(
                hash_list=described,
                size=sum(by_type.values()),
                size_by_type=by_type,
                last_change=community_day(last_change),
                subscribers=subscribers[described.pk],
                subscribed=subscribed,
                via_category=via_category,
                excluded=explicit is False,
                description=description,
            )
        )
    return items


def community_day(moment: dt.datetime | None) -> dt.datetime | None:
    """A shared list's last change as other organisations see it: the day only (UTC).

    To the minute, the change times of an anonymous list and of its owner's open lists (one
    import touches both) would let a member pair them up; the day says as much as anyone needs.
    """
    return None if moment is None else day_of(moment)


def day_of(moment: dt.datetime) -> dt.datetime:
    """The start (UTC) of the day of ``moment``: all of a time other organisations may see."""
    return moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def entry_provenance(
    seen: MatchableList,
    *,
    labels: Iterable[str],
    added_at: dt.datetime | None,
    record_id: str | None,
    share_classification: bool,
    verification: str,
) -> dict[str, Any]:
    """An entry's provenance as the caller sees it in a match or an export item, for an entry of
    the list ``seen`` (as sharing describes it to the caller). Always the same four keys, empty
    or null where the caller may not see:

    - ``labels``: all of them in the caller's own lists and in a source's (its A1-B2
      classification, and any tags of its own); in another organisation's list only while its
      owner shares them (``share_classification``), and then, for an anonymous list, the A1-B2
      classification only: a free tag could name the owner.
    - ``added``: the moment in the caller's own lists, the day (UTC) in an open or a source's
      list, and null in another owner's anonymous list: the day it was added could pair it with
      the owner's other lists (the published view's batches exist to prevent that, see
      lists.changes), and no publication time is kept per entry.
    - ``record_id`` (the upstream record's id, while a record holds the hash) and
      ``verification`` (how the source says it verifies its entries): a source's lists only.
    """
    own = seen.tier == TIER_OWN
    verified = seen.tier == TIER_VERIFIED
    shown: list[str] = []
    if own or verified:
        shown = list(labels)
    elif share_classification:
        shown = [label for label in labels if not seen.anonymous or label in CLASSIFICATION_LABELS]
    added: str | None = None
    if added_at is not None and own:
        added = added_at.isoformat()
    elif added_at is not None and not seen.anonymous:
        added = day_of(added_at).date().isoformat()
    return {
        "labels": shown,
        "added": added,
        "record_id": record_id if verified else None,
        "verification": (verification or None) if verified else None,
    }


def catalogue_item(*, org: Organization, public_id: str) -> CatalogueItem:
    """One catalogue list by its public id; 404 ``not_found`` when ``org`` may not see it."""
    found = catalogue(org=org, public_id=public_id)
    if not found:
        raise ServiceError("not_found", "No such list.", status=404)
    return found[0]


def verified_lists(
    *, org: Organization, category: str = "", public_id: str = ""
) -> list[CatalogueItem]:
    """The verified source lists ``org`` is entitled to (always matched: no subscription)."""
    matched = lists_matchable_by(org=org)
    rows = _shown_rows(
        "l.source_id IS NOT NULL AND l.id = ANY(%(lists)s)",
        {"lists": [pk for pk, described in matched.items() if described.tier == TIER_VERIFIED]},
        category=category,
        public_id=public_id,
    )
    with scopes_disabled():
        verification = dict(
            HashList.objects.filter(pk__in=[row[0] for row in rows]).values_list(
                "pk", "source__verification"
            )
        )
    items = []
    for row in rows:
        live_counts, last_change, description = row[_WIDTH:]
        by_type = _sizes(live_counts)
        items.append(
            CatalogueItem(
                hash_list=_described(row[:_WIDTH], org),
                size=sum(by_type.values()),
                size_by_type=by_type,
                last_change=last_change,
                subscribers=0,
                subscribed=True,
                via_category=False,
                excluded=False,
                description=description,
                verification=verification.get(row[0]) or "",
            )
        )
    return items


def verified_item(*, org: Organization, public_id: str) -> CatalogueItem:
    """One verified list ``org`` is entitled to; 404 ``not_found`` otherwise."""
    found = verified_lists(org=org, public_id=public_id)
    if not found:
        raise ServiceError("not_found", "No such list.", status=404)
    return found[0]


@dataclass(frozen=True)
class SubscriptionState:
    """Subscriptions: per list (True: subscribed, False: opted out of its category), categories."""

    lists: dict[int, bool]
    categories: set[str]


def subscription_state(*, org: Organization) -> SubscriptionState:
    with scope(organization=org.pk):
        rows = list(Subscription.objects.values_list("hash_list_id", "category", "excluded"))
    return SubscriptionState(
        lists={list_pk: not excluded for list_pk, _, excluded in rows if list_pk is not None},
        categories={category for list_pk, category, _ in rows if list_pk is None},
    )


def list_readable_by(*, org: Organization, public_id: str) -> tuple[HashList, MatchableList]:
    """A list ``org`` may read: its own (live) list or one in its catalogue. Else 404.

    Returns the model (for entry pages) and how ``org`` sees it (tier, contributor).
    """
    with scopes_disabled():
        hash_list = (
            HashList.objects.select_related("organization")
            .filter(public_id=public_id, deleted_at__isnull=True)
            .first()
        )
    if hash_list is None:
        raise ServiceError("not_found", "No such list.", status=404)
    if hash_list.organization_id == org.pk:
        row = (
            hash_list.pk,
            hash_list.public_id,
            hash_list.name,
            hash_list.category,
            hash_list.visibility,
            org.pk,
            org.name,
            None,
            None,
        )
        return hash_list, _described(row, org)
    if hash_list.source_id is not None:
        return hash_list, verified_item(org=org, public_id=public_id).hash_list
    return hash_list, catalogue_item(org=org, public_id=public_id).hash_list


def _page_limit(limit: int | str) -> int:
    """The page size a caller asked for (a number, or the text of a query parameter)."""
    if isinstance(limit, int):
        return limit
    try:
        return int(limit)
    except ValueError:
        raise ServiceError("bad_limit", "limit must be a whole number from 1 to 1000.") from None


def entries_readable_by(
    *,
    org: Organization,
    public_id: str,
    cursor: str = "",
    limit: int | str = list_selectors.PAGE_SIZE,
    signal_type: str = "",
    label: str = "",
    prefix: str = "",
) -> tuple[MatchableList, list_selectors.EntryPage]:
    """A page of the live entries of a list ``org`` may read (see :func:`list_readable_by`).

    Returns how ``org`` sees the list (its tier says which fields of an entry it may be shown)
    and the page, newest first. 404 ``not_found`` for a list ``org`` may not read, whatever the
    paging parameters; only then are they checked (``bad_limit``, ``bad_cursor``,
    ``bad_prefix``). ``label`` filters the caller's own lists only: another owner's labels are
    not the caller's to search, since a label could name the owner.

    The entries are read inside the scope of the list's owner (none for a verified source's
    list), so no caller needs to turn the tenant scopes off.
    """
    hash_list, seen = list_readable_by(org=org, public_id=public_id)
    size = _page_limit(limit)
    with scope(organization=hash_list.organization_id):
        page = list_selectors.entries_page(
            hash_list=hash_list,
            cursor=cursor,
            limit=size,
            signal_type=signal_type,
            label=label if seen.tier == TIER_OWN else "",
            prefix=prefix,
            published=seen.published_view,
        )
    return seen, page


def list_was_open(*, hash_list: HashList) -> bool:
    """Whether other organisations have ever seen ``hash_list`` open, with its owner's name.

    Read from the audit log, the append-only record of every visibility change: such a list
    can never become anonymous (its id, name, subscribers and entries would name its owner).
    """
    if hash_list.organization_id is None:
        return False  # a source's list is never shared by visibility
    with scopes_disabled():
        return AuditEvent.objects.filter(
            organization_id=hash_list.organization_id,
            target_type="list",
            target_id=hash_list.public_id,
            action="list.visibility_changed",
            metadata__to=HashList.Visibility.OPEN,
        ).exists()


def access_log(*, org: Organization) -> list[tuple[int, int, bool]]:
    """(seq, list pk, granted) of every community access change of ``org``, in sequence order."""
    with scope(organization=org.pk):
        events = AccessEvent.objects.order_by("seq").values_list("seq", "hash_list_id", "granted")
        return [(seq, list_pk, granted) for seq, list_pk, granted in events]


def corroboration_counts(
    holders: Mapping[int, Iterable[MatchableList]],
) -> dict[int, int]:
    """hash id → how many holders of it the caller can see: distinct organisations and sources
    among the lists the caller may match, other than its own (DESIGN.md, invariant 7).

    ``holders`` are the lists the caller matches that hold each hash live, as the match path
    read them already: counting only those tells the caller nothing it could not learn by
    matching (a private list elsewhere or a gated source never counts), and costs no statement.
    Each anonymous list counts as a holder of its own, apart from its owner's other lists:
    counted with them, a hash in an open list of X and an anonymous list would count 1 when X
    owns both and 2 otherwise, telling a subscriber who owns the anonymous list (invariant 3).
    """
    return {
        hash_id: len({hl.holder for hl in lists if hl.tier != TIER_OWN})
        for hash_id, lists in holders.items()
    }


def disputed_entries(pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of the given (list pk, hash id) pairs, those with open disputes from enough organisations."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.hash_list_id, d.hash_id FROM sharing_dispute d"
            "  JOIN unnest(%s::bigint[], %s::bigint[]) AS q(list_id, hash_id)"
            "    ON d.hash_list_id = q.list_id AND d.hash_id = q.hash_id"
            " WHERE d.status = 'open'"
            " GROUP BY d.hash_list_id, d.hash_id"
            " HAVING count(DISTINCT d.organization_id) >= %s",
            [[p[0] for p in wanted], [p[1] for p in wanted], settings.HASHHUB_DISPUTE_THRESHOLD],
        )
        return {(list_pk, hash_id) for list_pk, hash_id in cursor.fetchall()}


def ignores_disputed(*, org: Organization) -> bool:
    with scope(organization=org.pk):
        return SharingPreferences.objects.filter(ignore_disputed=True).exists()


def week_start(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def impact_weeks(*, hash_list: HashList, weeks: int = 12) -> list[tuple[dt.date, int]]:
    """(Monday, matches for other organisations) for the last ``weeks`` weeks, zeros included."""
    this_week = week_start(timezone.now().date())
    first = this_week - dt.timedelta(weeks=weeks - 1)
    counts = dict(
        ListImpact.objects.filter(hash_list=hash_list, week__gte=first).values_list(
            "week", "matches"
        )
    )
    return [
        (first + dt.timedelta(weeks=i), int(counts.get(first + dt.timedelta(weeks=i), 0)))
        for i in range(weeks)
    ]
