"""The match service: one function per way of asking, each following DESIGN.md's match path.

``match_hashes`` parses, asks ``sharing`` what the caller may match, searches the index for the
nearest hashes held in those lists (the index filters before it caps: DESIGN.md invariant 9),
reads their entries in the database, keeps at most ``max_matches`` matches a submitted hash
(closest first) with the total count, applies the caller's allow list, and records a detection
(with an audit line and webhooks) when anything matched. ``match_image`` hashes an upload in
memory and then does the same. Views and API views stay thin and call these.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from lists import changes
from lists.changes import holder_key
from lists.hashtypes import (
    PDQ_MIN_QUALITY,
    ComputedHash,
    DecodedImage,
    HashParseError,
    all_signal_types,
    compute_all,
    decode_image,
    get_signal_type,
)
from matching import holds, kept, retractions, webhooks
from matching import metrics as match_metrics
from matching.engine import Found, get_engine
from matching.models import AllowedHash, Detection
from sharing.policy import disabled_pairs, policy_of
from sharing.policy_rules import Policy, server_max_distance, strongest
from sharing.selectors import (
    TIER_COMMUNITY,
    MatchableList,
    corroboration_counts,
    disputed_entries,
    entry_provenance,
    ignores_disputed,
    matchable_by,
)
from sharing.services import impact_record

MAX_HASHES = 1000
"""The most hashes one match request may carry (API contract v1)."""

ALLOW_LIST_DISTANCE = {"pdq": 10, "phash": 4}
"""How near a perceptual submission must be to an allow-listed hash to count as that content.

Tighter than the match radius: an allow-list entry says "this picture is benign", and a
re-encoded or resized copy of one picture stays within these distances, while a different picture
that merely resembles it does not. Exact types must be equal.
"""


@dataclass
class HashQuery:
    """One submitted hash: its position in the request and, once parsed, its canonical bytes."""

    index: int
    signal_type: str
    text: str
    value: bytes | None = None
    error: dict[str, Any] | None = None
    matches: list[dict[str, Any]] = field(default_factory=list)
    match_count: int = 0  # every match the caller may see, before the cap
    allow_listed: bool = False
    # Matches on lists or sources the organisation's policy puts in shadow mode: recorded as a
    # shadow detection, never returned.
    shadow_matches: list[dict[str, Any]] = field(default_factory=list)
    # (list id, matched value) of each match -> (list pk, hash id, published view): what it
    # matched through, recorded with the detection for matching.retractions.
    hits: dict[tuple[str, str], tuple[int, int, bool]] = field(default_factory=dict)

    def as_result(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": self.signal_type,
            "value": self.text,
            "error": self.error,
            "matches": self.matches,
            "match_count": self.match_count,
            "truncated": self.match_count > len(self.matches),
        }
        if self.allow_listed:
            body["allow_listed"] = True
        return body


@dataclass
class MatchOutcome:
    results: list[HashQuery]
    detection: Detection | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": [query.as_result() for query in self.results],
            "detection": self.detection.public_id if self.detection else None,
        }


def radii_for(requested: object) -> dict[str, int]:
    """The most each signal type may reach for this request: the server's maximum, lowered
    (never raised) by the request's ``max_distance``. The organisation's policy (or the type's
    default) then decides within it, per list: see :func:`_radii`."""
    radii = {t.name: server_max_distance(t.name) for t in all_signal_types()}
    if requested is None:
        return radii
    if not isinstance(requested, Mapping):
        raise ServiceError(
            "invalid_max_distance", 'max_distance must be an object such as {"pdq": 20}.'
        )
    for name, value in requested.items():
        signal_type = get_signal_type(str(name))
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ServiceError(
                "invalid_max_distance",
                f"max_distance for {signal_type.name} must be a whole number of bits, 0 or more.",
                {"type": signal_type.name},
            )
        most = server_max_distance(signal_type.name)
        if value > most:
            raise ServiceError(
                "max_distance_too_large",
                f"max_distance for {signal_type.name} may be at most {most} "
                f"bits on this hub; {value} was asked.",
                {"type": signal_type.name, "max": most, "asked": value},
            )
        radii[signal_type.name] = value
    return radii


def max_matches_for(requested: object) -> int:
    """The cap on matches a submitted hash: the hub's, lowered (never raised) by the request."""
    most = settings.HASHHUB_MAX_MATCHES_PER_HASH
    if requested is None:
        return most
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ServiceError(
            "invalid_max_matches",
            f"max_matches must be a whole number from 1 to {most}.",
            {"max": most},
        )
    if requested > most:
        raise ServiceError(
            "max_matches_too_large",
            f"max_matches may be at most {most} on this hub; {requested} was asked. Read "
            "match_count for how many there are.",
            {"max": most, "asked": requested},
        )
    return requested


def parse_queries(items: Sequence[object]) -> list[HashQuery]:
    """Parse each submitted ``{"type", "value"}``; a bad one carries its error, the rest go on."""
    if len(items) > MAX_HASHES:
        raise ServiceError(
            "too_many_hashes",
            f"At most {MAX_HASHES:,} hashes a request; split the batch.",
            {"max": MAX_HASHES},
        )
    queries = []
    for index, item in enumerate(items):
        if (
            not isinstance(item, Mapping)
            or not isinstance(item.get("type"), str)
            or not isinstance(item.get("value"), str)
        ):
            queries.append(
                HashQuery(
                    index,
                    str(item.get("type", "")) if isinstance(item, Mapping) else "",
                    "",
                    error={
                        "code": "invalid_item",
                        "message": 'Each hash is an object {"type": str, "value": str}.',
                    },
                )
            )
            continue
        query = HashQuery(index, item["type"], item["value"])
        try:
            signal_type = get_signal_type(item["type"])
            query.value = signal_type.parse(item["value"])
            query.signal_type = signal_type.name
            query.text = signal_type.to_text(query.value)
        except HashParseError as error:
            query.error = {"code": error.code, "message": error.message}
        queries.append(query)
    return queries


def _live_holders(
    *, hash_ids: set[int], exact: set[tuple[str, bytes]], lists: Mapping[int, MatchableList]
) -> tuple[
    dict[int, tuple[str, bytes, list[MatchableList]]], dict[tuple[int, int], changes.LiveEntry]
]:
    """hash id → (type, value, the allowed lists holding it live); and (list pk, hash id) →
    the live entry, for its provenance.

    Always one statement, even with nothing to look up: see :func:`_attach_matches`.
    """
    # Other owners' anonymous lists are matched in their published view (lists.changes).
    rows = changes.live_entries_of(
        hash_ids=hash_ids,
        exact=exact,
        lists=[pk for pk, seen in lists.items() if not seen.published_view],
        published=[pk for pk, seen in lists.items() if seen.published_view],
    )
    holders: dict[int, tuple[str, bytes, list[MatchableList]]] = {}
    entries: dict[tuple[int, int], changes.LiveEntry] = {}
    for row in rows:
        entry = holders.setdefault(row.hash_id, (row.signal_type, bytes(row.value), []))
        entry[2].append(lists[row.list_pk])
        entries[(row.list_pk, row.hash_id)] = row
    return holders, entries


def _search(
    queries: list[HashQuery],
    radii: Mapping[str, int],
    change_number: int | None,
    *,
    keys: Sequence[int],
    limit: int,
) -> dict[int, Found]:
    """Query index → what the match index found for each perceptual query: the nearest
    ``limit`` hashes held under ``keys`` (the lists the caller may match), and how many."""
    by_type: dict[str, list[HashQuery]] = defaultdict(list)
    for query in queries:
        if query.value is not None and get_signal_type(query.signal_type).kind == "perceptual":
            by_type[query.signal_type].append(query)
    found: dict[int, Found] = {}
    engine = get_engine()
    for name, group in by_type.items():
        codes = [q.value for q in group if q.value is not None]
        results = engine.search_bounded(
            name, codes, radii[name], keys=keys, limit=limit, last=change_number
        )
        for query, result in zip(group, results, strict=True):
            found[query.index] = result
    return found


def _sort_key(match: dict[str, Any]) -> tuple[int, int, str, str]:
    tier_order = {"verified": 0, "own": 1, "community": 2}
    return (
        match["distance"],
        tier_order.get(match["list"]["tier"], 9),
        match["list"]["name"],
        match["list"]["id"],
    )


@dataclass(frozen=True)
class _Hit:
    """One (list, stored hash) a query matched, before it becomes a match object."""

    holder: MatchableList
    hash_id: int
    signal_type: str
    value: bytes
    distance: int


def _provenance(hit: _Hit, entries: Mapping[tuple[int, int], changes.LiveEntry]) -> dict[str, Any]:
    entry = entries[(hit.holder.pk, hit.hash_id)]
    return entry_provenance(
        hit.holder,
        labels=entry.labels,
        added_at=entry.added_at,
        record_id=entry.record_id,
        share_classification=entry.share_classification,
        verification=entry.verification,
    )


DISPUTED_WIDENING = 8
"""How much further a search looks, once, when disputed matches the caller ignores left fewer
than ``max_matches`` of a truncated answer."""


def _attach_matches(
    queries: list[HashQuery],
    radii: Mapping[str, int],
    *,
    org: Organization,
    change_number: int | None,
    limit: int,
) -> tuple[dict[int, MatchableList], Policy]:
    """Set each query's matches (at most ``limit``, closest first) and match counts; returns
    the lists ``org`` may match (empty if no query was valid) and its match policy.

    ``radii`` are the request's caps per type; within them the organisation's policy decides
    the radius per type and per list (the index searches at the widest, and matches beyond a
    list's own radius are dropped before the cap like disputed ones)."""
    if not any(q.value is not None for q in queries):
        return {}, Policy()
    # What the caller may match is read first, for every request with a valid hash, and the
    # index leaves out everything held elsewhere before it counts or caps: a submission near a
    # hash held only where the caller may not match then costs what a miss costs, and another
    # organisation's cluster of near-duplicates can neither crowd out the caller's matches nor
    # show in its counts (DESIGN.md, invariants 7 and 9).
    matchable = matchable_by(org=org)
    lists, policy = matchable.lists, matchable.policy
    keys = sorted(holder_key(pk, published=seen.published_view) for pk, seen in lists.items())
    reach = _Reach(radii, policy)
    widest = {name: reach.widest(name, lists.values()) for name in radii}
    wanted = list(queries)
    search_limit = limit
    for attempt in range(2):
        perceptual = _search(wanted, widest, change_number, keys=keys, limit=search_limit)
        dropped = _fill_matches(wanted, perceptual, lists=lists, org=org, limit=limit, reach=reach)
        # Disputed matches the caller ignores come out after the index's cap; where that left
        # fewer than the cap of a truncated answer, look once more, further.
        wanted = [
            q
            for q in wanted
            if dropped.get(q.index)
            and len(q.matches) < limit
            and q.index in perceptual
            and perceptual[q.index].truncated
        ]
        if not wanted or attempt:
            break
        search_limit = limit * DISPUTED_WIDENING
    return lists, policy


@dataclass(frozen=True)
class _Reach:
    """How far a match may be, per type and list: the request's cap and the policy's radius."""

    caps: Mapping[str, int]
    policy: Policy

    def radius(self, signal_type: str, holder: MatchableList) -> int:
        return min(self.caps[signal_type], self.policy.radius(signal_type, holder.public_id))

    def widest(self, signal_type: str, holders: Iterable[MatchableList]) -> int:
        base = min(self.caps[signal_type], self.policy.radius(signal_type))
        own = [
            self.radius(signal_type, holder)
            for holder in holders
            if holder.public_id in self.policy.list_thresholds
        ]
        return max([base, *own])


def _fill_matches(
    queries: list[HashQuery],
    perceptual: Mapping[int, Found],
    *,
    lists: Mapping[int, MatchableList],
    org: Organization,
    limit: int,
    reach: _Reach,
) -> dict[int, int]:
    """Set the queries' matches from the index's hits (perceptual) or the database (exact);
    returns, per query, how many matches the caller's preferences and policy dropped (disputed
    ones it ignores, ones beyond a list's radius, disabled entries, shadow ones)."""
    exact = {
        (q.signal_type, q.value)
        for q in queries
        if q.value is not None and q.index not in perceptual
    }
    hash_ids = {hash_id for found in perceptual.values() for hash_id, _ in found.hits}
    # Only hashes the caller may match reach this statement, so it runs for a hit and for an
    # exact lookup, never because of what others hold.
    holders, entries = (
        _live_holders(hash_ids=hash_ids, exact=exact, lists=lists)
        if hash_ids or exact
        else ({}, {})
    )
    by_value = {(t, v): hash_id for hash_id, (t, v, _) in holders.items()}
    hits_by_query: dict[int, list[_Hit]] = {}
    for query in queries:
        if query.value is None:
            continue
        if query.index in perceptual:
            pairs = [
                (hash_id, distance)
                for hash_id, distance in perceptual[query.index].hits
                if hash_id in holders
            ]
        else:
            exact_id = by_value.get((query.signal_type, query.value))
            pairs = [(exact_id, 0)] if exact_id is not None else []
        hits_by_query[query.index] = [
            _Hit(holder, hash_id, holders[hash_id][0], holders[hash_id][1], distance)
            for hash_id, distance in pairs
            for holder in holders[hash_id][2]
        ]
    every_hit = [hit for hits in hits_by_query.values() for hit in hits]
    corroboration = corroboration_counts(
        {hash_id: holder_lists for hash_id, (_, _, holder_lists) in holders.items()}
    )
    # Disputes concern shared entries: the caller's own lists are its own judgement.
    disputed = disputed_entries(
        (hit.holder.pk, hit.hash_id) for hit in every_hit if hit.holder.tier == TIER_COMMUNITY
    )
    # Read the caller's preference only when it can matter (misses cost no extra query).
    ignore_disputed = bool(disputed) and ignores_disputed(org=org)
    # Entries the organisation disabled ("not for us" until a date): asked only for hits.
    disabled = disabled_pairs(org=org, pairs=((h.holder.pk, h.hash_id) for h in every_hit))
    # Community hashes held for a jump in their hub-wide match rate (matching.holds): one
    # statement for the community hits, none without.
    held = holds.held_hash_ids(
        hash_ids={h.hash_id for h in every_hit if h.holder.tier == TIER_COMMUNITY}
    )
    dropped: dict[int, int] = {}
    for query in queries:
        hits = hits_by_query.get(query.index)
        if hits is None:
            continue
        matches = []
        for hit in hits:
            is_disputed = (hit.holder.pk, hit.hash_id) in disputed
            if (
                (is_disputed and ignore_disputed)
                or hit.distance > reach.radius(hit.signal_type, hit.holder)
                or (hit.holder.pk, hit.hash_id) in disabled
            ):
                dropped[query.index] = dropped.get(query.index, 0) + 1
                continue
            matched_text = get_signal_type(hit.signal_type).to_text(hit.value)
            query.hits[(hit.holder.public_id, matched_text)] = (
                hit.holder.pk,
                hit.hash_id,
                hit.holder.published_view,
            )
            match = {
                "list": hit.holder.as_dict(),
                "distance": hit.distance,
                "matched_value": matched_text,
                "corroboration": corroboration.get(hit.hash_id, 0),
                "disputed": is_disputed,
                "held": hit.holder.tier == TIER_COMMUNITY and hit.hash_id in held,
                # labels, added, record_id, verification: as far as the caller may see them.
                **_provenance(hit, entries),
            }
            if reach.policy.is_shadow(list_id=hit.holder.public_id, source_id=hit.holder.source_id):
                # Tried, not acted on: recorded apart, and neither returned nor counted.
                query.shadow_matches.append(match)
                dropped[query.index] = dropped.get(query.index, 0) + 1
                continue
            matches.append(match)
        matches.sort(key=_sort_key)
        # The index counted (list, hash) pairs the caller may match, disputed ones included;
        # those it dropped here are taken off, so the count says what the caller could see.
        found = perceptual.get(query.index)
        total = len(matches)
        if found is not None:
            total = max(found.total - dropped.get(query.index, 0), total)
        query.matches = matches[:limit]
        query.match_count = total
    return dropped


def _apply_allow_list(org: Organization, queries: list[HashQuery]) -> None:
    """Drop the matches of submissions on the caller's allow list, and count each suppression."""
    matched = [q for q in queries if q.matches and q.value is not None]
    if not matched:
        return
    allowed = list(
        AllowedHash.objects.filter(
            organization=org, signal_type__in={q.signal_type for q in matched}
        ).values_list("pk", "signal_type", "value")
    )
    if not allowed:
        return
    used: list[int] = []
    for query in matched:
        signal_type = get_signal_type(query.signal_type)
        limit = ALLOW_LIST_DISTANCE.get(signal_type.name, 0)
        for pk, allowed_type, value in allowed:
            if allowed_type == signal_type.name and (
                signal_type.distance(query.value, bytes(value)) <= limit  # type: ignore[arg-type]
            ):
                query.matches = []
                query.allow_listed = True
                used.append(pk)
                break
    if used:
        AllowedHash.objects.filter(pk__in=used).update(
            suppressed_count=F("suppressed_count") + 1, last_suppressed_at=timezone.now()
        )


def _record_detection(
    *,
    org: Organization,
    actor: Actor,
    queries: list[HashQuery],
    content_ref: str,
    lists: Mapping[int, MatchableList],
    shadow: bool = False,
    retroactive_of: kept.RetroactiveOf | None = None,
) -> Detection | None:
    """Record what ``queries`` matched, audited; a ``shadow`` detection (matches of lists the
    policy tries in shadow mode) goes to no webhook and counts for no list's impact. With
    ``retroactive_of``, only if a (list, hash) that just entered is among the matches, marked
    retroactive with the original request's time."""
    matched = [q for q in queries if q.matches]
    if not matched:
        return None
    if retroactive_of is not None and not retroactive_of.raised_by(q.matches for q in matched):
        return None
    found = [m for q in matched for m in q.matches]
    with transaction.atomic():
        detection = Detection.objects.create(
            organization=org,
            api_key=actor.api_key,
            source_label=actor.label[:200],
            content_ref=content_ref,
            submitted=[
                {"type": q.signal_type, "value": q.text} for q in queries if q.value is not None
            ],
            matches=[q.as_result() for q in matched],
            match_count=len(found),
            match_total=sum(q.match_count for q in matched),
            tiers=sorted({m["list"]["tier"] for m in found}),
            categories=sorted({m["list"]["category"] for m in found}),
            action=strongest(m.get("action", "") for m in found),
            shadow=shadow,
            held=any(m.get("held", False) for m in found),
            retroactive=retroactive_of is not None,
            requested_at=retroactive_of.requested_at if retroactive_of is not None else None,
        )
        audit(
            actor=actor,
            action="detection.created",
            organization=org,
            target_type="detection",
            target_id=detection.public_id,
            metadata={
                "match_count": detection.match_count,
                "match_total": detection.match_total,
                "tiers": detection.tiers,
                "categories": detection.categories,
                "content_ref": content_ref,
                **({"shadow": True} if shadow else {}),
                **({"retroactive": True} if retroactive_of is not None else {}),
            },
        )
        if not shadow:
            webhooks.detection_notify(detection=detection)
        match_metrics.detection_counted(
            tiers=[m["list"]["tier"] for m in found],
            shadow=shadow,
            retroactive=retroactive_of is not None,
        )
        retractions.detection_hits_record(
            detection=detection,
            hits=[
                q.hits[(m["list"]["id"], m["matched_value"])]
                for q in matched
                for m in q.matches
                if (m["list"]["id"], m["matched_value"]) in q.hits
            ],
        )
        # Today's hub-wide counts of the community hashes matched, which may hold one. A
        # retroactive detection is an old upload found again: not today's rate.
        if retroactive_of is None:
            holds.hold_count_matches(
                org=org,
                hash_ids={
                    q.hits[(m["list"]["id"], m["matched_value"])][1]
                    for q in matched
                    for m in q.matches
                    if m["list"]["tier"] == TIER_COMMUNITY
                    and (m["list"]["id"], m["matched_value"]) in q.hits
                },
            )
        # The contributors' impact counts: one per community match, never who matched.
        community = {m["list"]["id"] for m in found if m["list"]["tier"] == TIER_COMMUNITY}
        if community and not shadow:
            pks = {hl.public_id: pk for pk, hl in lists.items()}
            impact_record(
                list_pks=[pks[m["list"]["id"]] for m in found if m["list"]["id"] in community]
            )
    return detection


def _clean_content_ref(content_ref: object) -> str:
    if content_ref is None:
        return ""
    if not isinstance(content_ref, str) or len(content_ref) > 500:
        raise ServiceError(
            "invalid_content_ref", "content_ref must be a string of at most 500 characters."
        )
    return content_ref


def match_hashes(
    *,
    org: Organization,
    items: Sequence[object],
    actor: Actor,
    max_distance: object = None,
    max_matches: object = None,
    content_ref: object = None,
    change_number: int | None = None,
    retroactive_of: kept.RetroactiveOf | None = None,
) -> MatchOutcome:
    """Match submitted hashes against everything ``org`` may match (DESIGN.md, "The match path").

    Each result keeps at most ``max_matches`` matches (the hub's cap when None), closest first,
    and says how many there are in all. Side effects when anything matched: a Detection, an
    audit event ``detection.created`` and webhook deliveries queued after commit; allow-listed
    submissions bump their counters. ``change_number``: the last committed change, if the
    caller read it already in this request. The submitted hashes are kept for retroactive
    matching when the organisation opted in (matching.retroactive), except in a retroactive
    re-match (``retroactive_of``), which records only a detection naming what just entered.
    """
    radii = radii_for(max_distance)
    limit = max_matches_for(max_matches)
    reference = _clean_content_ref(content_ref)
    queries = parse_queries(items)
    return _match(
        org=org,
        actor=actor,
        queries=queries,
        radii=radii,
        limit=limit,
        content_ref=reference,
        change_number=change_number,
        retroactive_of=retroactive_of,
    )


def _match(
    *,
    org: Organization,
    actor: Actor,
    queries: list[HashQuery],
    radii: Mapping[str, int],
    limit: int,
    content_ref: str,
    change_number: int | None,
    variants: Sequence[Variant] = (),
    retroactive_of: kept.RetroactiveOf | None = None,
) -> MatchOutcome:
    """Match ``queries`` (and ``variants``, merged into the query each belongs to)."""
    # A submission with variants is matched through them (its own value is one of them).
    merged = {variant.into for variant in variants}
    asked = [
        *(query for query in queries if query.index not in merged),
        *(variant.query for variant in variants),
    ]
    lists, policy = _attach_matches(asked, radii, org=org, change_number=change_number, limit=limit)
    _apply_allow_list(org, asked)
    if variants:
        _merge_variants(queries, variants, limit=limit)
    _recommend(queries, policy)
    if retroactive_of is None:
        kept.submissions_keep(
            org=org,
            days=policy.retroactive_days,
            hashes=[(q.signal_type, q.value) for q in queries if q.value is not None],
            content_ref=content_ref,
            seen_seq=change_number,
        )
    detection = _record_detection(
        org=org,
        actor=actor,
        queries=queries,
        content_ref=content_ref,
        lists=lists,
        retroactive_of=retroactive_of,
    )
    shadowed = [
        replace(q, matches=q.shadow_matches, match_count=len(q.shadow_matches))
        for q in queries
        if q.shadow_matches and not q.allow_listed
    ]
    if shadowed:
        _record_detection(
            org=org,
            actor=actor,
            queries=shadowed,
            content_ref=content_ref,
            lists=lists,
            shadow=True,
            retroactive_of=retroactive_of,
        )
    return MatchOutcome(queries, detection)


def _recommend(queries: Sequence[HashQuery], policy: Policy) -> None:
    """Give every match (returned or shadow) the action the organisation's rules recommend."""
    for query in queries:
        for match in (*query.matches, *query.shadow_matches):
            match["action"] = policy.action_for(match, signal_type=query.signal_type)


@dataclass
class Variant:
    """Another hash of one submission (the upload rotated, mirrored or as stored), matched as a
    query of its own and merged into the submission's result: ``into`` is that result's index,
    ``labels`` what each of its matches says about it (``{"transform": "rotate90"}``)."""

    into: int
    query: HashQuery
    labels: dict[str, str]


def _merge_variants(queries: list[HashQuery], variants: Sequence[Variant], *, limit: int) -> None:
    """Merge each variant's matches into its submission's: one match per list and stored hash,
    the nearest (the submission's own on a tie), capped at ``limit`` closest first.

    ``match_count`` is the most any one variant counted, or the merged matches if more: the
    index counted each variant alone, so the same stored hash near two variants counts once.
    """
    by_index = {query.index: query for query in queries}
    members: dict[int, list[tuple[HashQuery, dict[str, str]]]] = defaultdict(list)
    for variant in variants:
        members[variant.into].append((variant.query, variant.labels))
    for index, group in members.items():
        submission = by_index[index]
        best: dict[tuple[str, str], dict[str, Any]] = {}
        shadow: dict[tuple[str, str], dict[str, Any]] = {}
        for query, labels in group:
            submission.hits.update(query.hits)
            for match in query.shadow_matches:
                key = (match["list"]["id"], match["matched_value"])
                if key not in shadow or match["distance"] < shadow[key]["distance"]:
                    shadow[key] = {**match, **labels}
        submission.shadow_matches = sorted(shadow.values(), key=_sort_key)
        for query, labels in group:
            for match in query.matches:
                key = (match["list"]["id"], match["matched_value"])
                held = best.get(key)
                if held is None or match["distance"] < held["distance"]:
                    best[key] = {**match, **labels}
        merged = sorted(best.values(), key=_sort_key)
        submission.matches = merged[:limit]
        submission.match_count = max([len(merged), *(query.match_count for query, _ in group)])
        if any(query.allow_listed for query, _ in group):
            submission.matches = []
            submission.allow_listed = True


def _clean_dihedral(dihedral: object, org: Organization) -> bool:
    if dihedral is None or dihedral == "":
        # Not asked: the organisation's default (its match policy).
        return policy_of(org=org).dihedral_default
    if isinstance(dihedral, bool):
        return dihedral
    if isinstance(dihedral, str) and dihedral.strip().lower() in {"true", "false"}:
        return dihedral.strip().lower() == "true"
    raise ServiceError(
        "invalid_dihedral",
        "dihedral must be true or false: true also matches the upload's 7 rotations and mirrors.",
    )


def _low_quality_error(name: str, quality: int | None) -> dict[str, Any]:
    return {
        "code": "low_quality",
        "message": f"The {name} hash has quality {quality}, below {PDQ_MIN_QUALITY}: the image "
        "is too plain to match reliably, so it was not matched.",
    }


def _image_variants(
    pictures: Sequence[tuple[DecodedImage, dict[str, str]]],
    computed: Mapping[str, ComputedHash],
    *,
    dihedral: bool,
) -> list[tuple[str, ComputedHash, dict[str, str]]]:
    """Each perceptual hash of the upload to match, labelled: of each picture (as displayed,
    and as stored when it carries an EXIF orientation; ``computed`` holds the first's hashes)
    and, with ``dihedral``, of every rotation and mirror of it, for the types that have them."""
    found = []
    for position, (picture, labels) in enumerate(pictures):
        plain = computed if position == 0 else compute_all(picture)
        for name, result in plain.items():
            signal_type = get_signal_type(name)
            if signal_type.kind != "perceptual":
                continue
            variants = signal_type.compute_variants(picture) if dihedral else None
            if variants is None:
                found.append((name, result, labels))
                continue
            found.extend(
                (name, variant, {"transform": transform, **labels})
                for transform, variant in variants.items()
            )
    return found


@dataclass
class ImageMatchOutcome:
    hashes: dict[str, dict[str, Any]]
    outcome: MatchOutcome

    def as_dict(self) -> dict[str, Any]:
        return {"hashes": self.hashes, **self.outcome.as_dict()}


def match_image(
    *,
    org: Organization,
    data: bytes,
    actor: Actor,
    max_distance: object = None,
    max_matches: object = None,
    content_ref: object = None,
    change_number: int | None = None,
    dihedral: object = None,
) -> ImageMatchOutcome:
    """Hash an upload in memory (decoded once), then match every hash computed from it.

    The image bytes are never written anywhere; only the hashes go on. A PDQ hash below quality
    50 is reported with an error ``low_quality`` and not matched: flat images all hash alike.
    An image with an EXIF orientation is hashed as displayed (the ``hashes`` reported) and as
    stored, each match saying which (``"orientation"``); with ``dihedral`` true the types that
    have rotations and mirrors (PDQ) match those too, each match saying which (``"transform"``).
    Every result keeps one match per list and stored hash, the nearest.
    """
    radii = radii_for(max_distance)
    limit = max_matches_for(max_matches)
    reference = _clean_content_ref(content_ref)
    with_dihedral = _clean_dihedral(dihedral, org)
    decoded = decode_image(
        data,
        max_bytes=settings.HASHHUB_MAX_UPLOAD_BYTES,
        max_pixels=settings.HASHHUB_MAX_IMAGE_PIXELS,
    )
    displayed = decoded.as_displayed()
    pictures: list[tuple[DecodedImage, dict[str, str]]] = (
        [(decoded, {})]
        if displayed is None
        else [(displayed, {"orientation": "displayed"}), (decoded, {"orientation": "stored"})]
    )
    computed = compute_all(pictures[0][0])
    hashes: dict[str, dict[str, Any]] = {}
    queries: list[HashQuery] = []
    for position, (name, result) in enumerate(computed.items()):
        hashes[name] = {"value": result.text}
        query = HashQuery(position, name, result.text, value=result.value)
        if result.quality is not None:
            hashes[name]["quality"] = result.quality
        if result.low_quality:
            query.value = None
            query.error = _low_quality_error(name, result.quality)
        queries.append(query)
    variants: list[Variant] = []
    if with_dihedral or displayed is not None:
        by_type = {query.signal_type: query for query in queries}
        for name, result, labels in _image_variants(pictures, computed, dihedral=with_dihedral):
            index = len(queries) + len(variants)
            query = HashQuery(index, name, result.text, value=result.value)
            if result.low_quality:
                query.value = None
            variants.append(Variant(by_type[name].index, query, labels))
    outcome = _match(
        org=org,
        actor=actor,
        queries=queries,
        radii=radii,
        limit=limit,
        content_ref=reference,
        change_number=change_number,
        variants=variants,
    )
    return ImageMatchOutcome(hashes, outcome)
