"""An organisation's match policy: what it matches and how (``GET|PUT /api/v1/policy``).

Two kinds of setting, kept apart because the export must equal what matches (DESIGN.md,
invariant 8):

- **What it matches at all**: a verified source, a shared list or a category of shared lists
  turned off (:class:`~sharing.models.PolicyExclusion`, applied by the access rules in
  ``sharing.selectors``, so access ends and the export removes the lists), and single entries
  disabled until a date (:class:`~sharing.models.EntryDisable`: the export removes the hash at
  the disable and adds it again when it ends, by the beat job ``policy_disables_end``).
- **How matches are answered**: thresholds per signal type and per list, shadow mode, the
  recommended action of each match. The export says nothing of these.

``Policy`` is the read model the match service uses (``sharing.selectors.matchable_by`` reads
it in the statement that reads the lists, so a miss costs no extra statement); ``policy_set``,
``entry_disable`` and ``entry_enable`` are the writes, each audited.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import SYSTEM, Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from lists.changes import entries_live_at, sequence_allocate, sequence_last
from lists.hashtypes import HashParseError, all_signal_types, get_signal_type
from lists.models import Hash, HashList, Source
from sharing.models import EntryDisable, MatchPolicy, PolicyExclusion
from sharing.policy_rules import (
    ACTIONS,
    LINK_FIELD,
    MAX_DISABLE_DAYS,
    MAX_RETROACTIVE_DAYS,
    MAX_RULES,
    RULE_FIELDS,
    Policy,
    _perceptual,
    server_max_distance,
)
from sharing.selectors import (
    lists_matchable_by,
    lists_turned_off,
    sources_available_to,
)


def policy_of(*, org: Organization) -> MatchPolicy:
    """The organisation's policy row; an unsaved default one if it never set any."""
    with scopes_disabled():
        found = MatchPolicy.objects.filter(organization=org).first()
    return found if found is not None else MatchPolicy(organization=org)


# --- validation -------------------------------------------------------------------------------


def _bad(code: str, message: str, details: dict[str, Any] | None = None) -> ServiceError:
    return ServiceError(code, message, details)


def _whole(value: object, name: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(
            f"invalid_{name}",
            f"{name} must be a whole number from {low} to {high}.",
            {"min": low, "max": high},
        )
    return value


def clean_thresholds(value: object, *, where: str = "thresholds") -> dict[str, int]:
    """``{"pdq": 24}``: perceptual types only, each at most the server's maximum."""
    if not isinstance(value, Mapping):
        raise _bad("invalid_thresholds", f'{where} must be an object such as {{"pdq": 24}}.')
    cleaned = {}
    for name, bits in value.items():
        if str(name) not in _perceptual():
            raise _bad(
                "invalid_thresholds",
                f"{where} may name only perceptual types ({', '.join(_perceptual())}): exact "
                f"types match byte for byte; {str(name)[:40]!r} was given.",
                {"allowed": _perceptual()},
            )
        most = server_max_distance(str(name))
        if isinstance(bits, bool) or not isinstance(bits, int) or bits < 0:
            raise _bad(
                "invalid_thresholds",
                f"{where} for {name} must be a whole number of bits, 0 or more.",
                {"type": name},
            )
        if bits > most:
            raise _bad(
                "threshold_too_large",
                f"{where} for {name} may be at most {most} bits on this hub; {bits} was asked.",
                {"type": name, "max": most, "asked": bits},
            )
        cleaned[str(name)] = bits
    return cleaned


def clean_action_rules(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise _bad(
            "invalid_action_rules",
            f"action_rules must be a list of at most {MAX_RULES} rules, each an object "
            'such as {"action": "block", "tier": "verified", "category": "csam"}.',
        )
    rules = []
    for position, rule in enumerate(value):
        where = f"action_rules[{position}]"
        if not isinstance(rule, Mapping) or rule.get("action") not in ACTIONS:
            raise _bad(
                "invalid_action_rules",
                f"{where} needs an action: one of {', '.join(ACTIONS)}.",
                {"index": position},
            )
        unknown = set(rule) - RULE_FIELDS
        if unknown:
            raise _bad(
                "invalid_action_rules",
                f"{where} has fields this hub does not know: {', '.join(sorted(unknown))[:200]}.",
                {"index": position, "allowed": sorted(RULE_FIELDS)},
            )
        checks: dict[str, Sequence[str]] = {
            "tier": ("verified", "own", "community"),
            "category": tuple(HashList.Category.values),
            "type": tuple(t.name for t in all_signal_types()),
        }
        for name, allowed in checks.items():
            if name in rule and rule[name] not in allowed:
                raise _bad(
                    "invalid_action_rules",
                    f"{where}.{name} must be one of {', '.join(allowed)}.",
                    {"index": position},
                )
        if "label" in rule and (
            not isinstance(rule["label"], str) or not 0 < len(rule["label"]) <= 64
        ):
            raise _bad(
                "invalid_action_rules",
                f"{where}.label must be a label of 1 to 64 characters, such as A1.",
                {"index": position},
            )
        if "max_distance" in rule:
            _whole(rule["max_distance"], "action_rules", low=0, high=256)
        rules.append(dict(rule))
    return rules


_LINK_RE = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def clean_link_template(value: object) -> str:
    """An http(s) URL with ``{content_ref}`` in it, or "" for none."""
    if value == "" or value is None:
        return ""
    if (
        not isinstance(value, str)
        or len(value) > 500
        or not _LINK_RE.fullmatch(value)
        or LINK_FIELD not in value
        or value.replace(LINK_FIELD, "").count("{") + value.replace(LINK_FIELD, "").count("}")
    ):
        raise _bad(
            "invalid_link_template",
            "link_template must be an http or https URL of at most 500 characters with "
            "{content_ref} in it, e.g. https://moderation.example/item/{content_ref}.",
        )
    return value


# --- writes -----------------------------------------------------------------------------------


def _list_choice(org: Organization, list_id: object) -> tuple[HashList, str]:
    """A list the organisation matches, or turned off, by public id: (list, tier)."""
    if not isinstance(list_id, str):
        raise _bad("unknown_list", "Each list is named by its id (a string).")
    matchable = {seen.public_id: seen for seen in lists_matchable_by(org=org).values()}
    if list_id in matchable:
        with scopes_disabled():
            return HashList.objects.get(pk=matchable[list_id].pk), matchable[list_id].tier
    off = lists_turned_off(org=org)
    if list_id in off:
        return off[list_id]
    raise _bad(
        "unknown_list",
        f"No list {list_id[:40]!r} that your organisation matches or turned off.",
        {"list": list_id[:40]},
    )


def _source_choice(org: Organization, source_id: object) -> Source:
    if not isinstance(source_id, str):
        raise _bad("unknown_source", "Each source is named by its id (a string).")
    available = sources_available_to(org=org)
    if source_id not in available:
        raise _bad(
            "unknown_source",
            f"No verified source {source_id[:40]!r} your organisation may match.",
            {"source": source_id[:40]},
        )
    return available[source_id]


def _set_exclusion(org: Organization, actor: Actor, *, enabled: bool, **target: Any) -> bool:
    with scopes_disabled():
        rows = PolicyExclusion.objects.filter(organization=org, **target)
        if enabled:
            return bool(rows.delete()[0])
        if rows.exists():
            return False
        PolicyExclusion.objects.create(
            organization=org, created_by_label=actor.label[:200], **target
        )
        return True


@transaction.atomic
def policy_set(*, org: Organization, changes: Mapping[str, Any], actor: Actor) -> MatchPolicy:
    """Change the given parts of ``org``'s policy; the rest stays. Validates everything before
    writing anything (a bad part changes nothing). Audited ``policy.updated`` with the parts
    changed; turning sources, lists or categories off or on syncs access at once, so the
    export carries their removals (or their return).

    ``changes`` keys: ``thresholds``, ``action_rules``, ``default_action``, ``dihedral_default``,
    ``link_template``, ``retroactive_days``, ``sources`` ([{"id", "enabled"?, "shadow"?}]),
    ``lists`` ([{"id", "enabled"?, "shadow"?, "thresholds"?}]), ``categories``
    ({"csam": {"enabled": bool}}).
    """
    known = {
        "thresholds",
        "action_rules",
        "default_action",
        "dihedral_default",
        "link_template",
        "retroactive_days",
        "sources",
        "lists",
        "categories",
    }
    if not isinstance(changes, Mapping):
        raise _bad("invalid_policy", "The policy is a JSON object.")
    unknown = set(changes) - known - {"server_max_distance", "disabled_entries"}
    if unknown:
        raise _bad(
            "unknown_policy_field",
            f"The policy has no field {sorted(unknown)[0][:40]!r}.",
            {"allowed": sorted(known)},
        )
    row = policy_of(org=org)
    fields: dict[str, Any] = {}
    if "thresholds" in changes:
        fields["thresholds"] = clean_thresholds(changes["thresholds"])
    if "action_rules" in changes:
        fields["action_rules"] = clean_action_rules(changes["action_rules"])
    if "default_action" in changes:
        if changes["default_action"] not in ACTIONS:
            raise _bad(
                "invalid_default_action", f"default_action must be one of {', '.join(ACTIONS)}."
            )
        fields["default_action"] = changes["default_action"]
    if "dihedral_default" in changes:
        if not isinstance(changes["dihedral_default"], bool):
            raise _bad("invalid_dihedral_default", "dihedral_default must be true or false.")
        fields["dihedral_default"] = changes["dihedral_default"]
    if "link_template" in changes:
        fields["link_template"] = clean_link_template(changes["link_template"])
    if "retroactive_days" in changes:
        fields["retroactive_days"] = _whole(
            changes["retroactive_days"], "retroactive_days", low=0, high=MAX_RETROACTIVE_DAYS
        )
    exclusions: list[tuple[bool, dict[str, Any]]] = []
    shadow_lists = set(row.shadow_lists)
    shadow_sources = set(row.shadow_sources)
    list_thresholds = {k: dict(v) for k, v in row.list_thresholds.items()}
    for item in _items(changes, "sources"):
        source = _source_choice(org, item.get("id"))
        if "enabled" in item:
            exclusions.append((_flag(item, "enabled", "sources"), {"source": source}))
        if "shadow" in item:
            (shadow_sources.add if _flag(item, "shadow", "sources") else shadow_sources.discard)(
                source.public_id
            )
    for item in _items(changes, "lists"):
        hash_list, tier = _list_choice(org, item.get("id"))
        if "enabled" in item:
            enabled = _flag(item, "enabled", "lists")
            if tier == "own" and not enabled:
                raise _bad(
                    "own_list_always_matched",
                    "Your own lists are always matched: remove the entries, or put the list "
                    "in shadow mode to record its matches without acting on them.",
                    {"list": hash_list.public_id},
                )
            if tier != "own":
                exclusions.append((enabled, {"hash_list": hash_list}))
        if "shadow" in item:
            (shadow_lists.add if _flag(item, "shadow", "lists") else shadow_lists.discard)(
                hash_list.public_id
            )
        if "thresholds" in item:
            chosen = clean_thresholds(
                item["thresholds"], where=f"thresholds of {hash_list.public_id}"
            )
            if chosen:
                list_thresholds[hash_list.public_id] = chosen
            else:
                list_thresholds.pop(hash_list.public_id, None)
    categories = changes.get("categories", {})
    if not isinstance(categories, Mapping):
        raise _bad(
            "invalid_categories", 'categories is an object such as {"se": {"enabled": false}}.'
        )
    for category, item in categories.items():
        if category not in HashList.Category.values or not isinstance(item, Mapping):
            raise _bad(
                "invalid_categories",
                'categories names csam or se, each with {"enabled": bool}; '
                f"{str(category)[:20]!r} was given.",
            )
        if "enabled" in item:
            exclusions.append((_flag(item, "enabled", "categories"), {"category": category}))
    fields["shadow_lists"] = sorted(shadow_lists)
    fields["shadow_sources"] = sorted(shadow_sources)
    fields["list_thresholds"] = list_thresholds
    changed = sorted(k for k, v in fields.items() if getattr(row, k) != v)
    access_changed = [
        target
        for enabled, target in exclusions
        if _set_exclusion(org, actor, enabled=enabled, **target)
    ]
    if changed or row.pk is None:
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated = timezone.now()
        with scopes_disabled():
            row.save()
    if access_changed:
        from sharing.services import access_sync

        access_sync(orgs=[org.pk], anonymous=True)
    if changed or access_changed:
        audit(
            actor=actor,
            action="policy.updated",
            organization=org,
            target_type="policy",
            metadata={
                "changed": changed,
                "turned": [
                    {key: getattr(value, "public_id", value) for key, value in target.items()}
                    for target in access_changed
                ],
            },
        )
    return row


def _items(changes: Mapping[str, Any], name: str) -> list[Mapping[str, Any]]:
    items = changes.get(name, [])
    if (
        not isinstance(items, list)
        or len(items) > 1000
        or not all(isinstance(item, Mapping) for item in items)
    ):
        raise _bad(
            f"invalid_{name}",
            f'{name} is a list of at most 1,000 objects such as {{"id": "...", "enabled": false}}.',
        )
    return items


def _flag(item: Mapping[str, Any], name: str, where: str) -> bool:
    if not isinstance(item[name], bool):
        raise _bad(f"invalid_{where}", f"{where}: {name} must be true or false.")
    return item[name]


# --- disabling one entry until a date -------------------------------------------------------


@transaction.atomic
def entry_disable(
    *,
    org: Organization,
    list_id: object,
    signal_type: object,
    value: object,
    until: dt.datetime,
    note: str,
    actor: Actor,
) -> EntryDisable:
    """Stop matching one hash of one list ``org`` matches until ``until`` ("not for us").

    The hash must be live in the list as ``org`` sees it. Audited ``policy.entry_disabled``;
    numbered from the change sequence, so the export removes the hash now and adds it again
    when the disable ends. Disabling an entry already disabled moves its end.
    """
    now = timezone.now()
    if until <= now:
        raise _bad("until_in_past", "until must be a moment in the future.")
    if until > now + dt.timedelta(days=MAX_DISABLE_DAYS):
        raise _bad("until_too_far", "An entry may be disabled for at most three years at a time.")
    hash_list, _ = _list_choice(org, list_id)
    if not isinstance(signal_type, str) or not isinstance(value, str):
        raise _bad("invalid_item", 'An entry is named by {"list", "type", "value"}.')
    try:
        kind = get_signal_type(signal_type)
        raw = kind.parse(value)
    except HashParseError as error:
        raise _bad(error.code, error.message) from None
    seen = {pk: item for pk, item in lists_matchable_by(org=org).items()}.get(hash_list.pk)
    stored = Hash.objects.filter(signal_type=kind.name, value=raw).first()
    if (
        seen is None
        or stored is None
        or not _live_in_view(hash_list, stored, published=seen.published_view)
    ):
        raise _bad(
            "not_in_list",
            "That hash is not in that list as your organisation sees it.",
            {"list": hash_list.public_id},
        )
    with scopes_disabled():
        current = EntryDisable.objects.filter(
            organization=org, hash_list=hash_list, hash=stored, ended_seq__isnull=True
        ).first()
        if current is not None:
            current.until, current.note = until, note[:2000]
            current.save(update_fields=["until", "note"])
            disable = current
        else:
            disable = EntryDisable.objects.create(
                organization=org,
                hash_list=hash_list,
                hash=stored,
                until=until,
                note=note[:2000],
                seq=sequence_allocate(1) + 1,
                created_by_label=actor.label[:200],
            )
    audit(
        actor=actor,
        action="policy.entry_disabled",
        organization=org,
        target_type="entry_disable",
        target_id=disable.public_id,
        metadata={"list": hash_list.public_id, "type": kind.name, "until": until.isoformat()},
    )
    return disable


def _live_in_view(hash_list: HashList, stored: Hash, *, published: bool) -> bool:
    now = sequence_last() + 1
    return bool(entries_live_at([(hash_list.pk, stored.pk, now, published)]))


@transaction.atomic
def entry_enable(*, org: Organization, public_id: str, actor: Actor) -> EntryDisable:
    """End a disable now (the export adds the hash again). 404 for another's or an ended one."""
    with scopes_disabled():
        disable = (
            EntryDisable.objects.select_for_update()
            .filter(organization=org, public_id=public_id, ended_seq__isnull=True)
            .first()
        )
    if disable is None:
        raise ServiceError("not_found", "No such disabled entry.", status=404)
    _end(disable, actor=actor, reason="enabled")
    return disable


def _end(disable: EntryDisable, *, actor: Actor, reason: str) -> None:
    disable.ended_seq = sequence_allocate(1) + 1
    disable.ended_at = timezone.now()
    with scopes_disabled():
        disable.save(update_fields=["ended_seq", "ended_at"])
        organization = Organization.objects.get(pk=disable.organization_id)
    audit(
        actor=actor,
        action="policy.entry_enabled",
        organization=organization,
        target_type="entry_disable",
        target_id=disable.public_id,
        metadata={"reason": reason},
    )


def disables_end_due(*, now: dt.datetime | None = None) -> int:
    """End every disable whose date has come (the beat job). Returns how many it ended."""
    moment = now or timezone.now()
    ended = 0
    with scopes_disabled():
        due = list(
            EntryDisable.objects.filter(ended_seq__isnull=True, until__lte=moment)
            .order_by("until", "id")
            .values_list("pk", flat=True)[:1000]
        )
    for pk in due:
        with transaction.atomic(), scopes_disabled():
            disable = (
                EntryDisable.objects.select_for_update()
                .filter(pk=pk, ended_seq__isnull=True)
                .first()
            )
            if disable is not None:
                _end(disable, actor=SYSTEM, reason="expired")
                ended += 1
    return ended


def disables_active(*, org: Organization) -> list[EntryDisable]:
    with scopes_disabled():
        return list(
            EntryDisable.objects.filter(organization=org, ended_seq__isnull=True)
            .select_related("hash_list", "hash")
            .order_by("until", "id")
        )


def disabled_pairs(*, org: Organization, pairs: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Of the (list pk, hash id) pairs, those ``org`` has disabled now: one statement, run only
    for hits."""
    wanted = sorted(set(pairs))
    if not wanted:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.hash_list_id, d.hash_id FROM sharing_entrydisable d"
            "  JOIN unnest(%s::bigint[], %s::bigint[]) AS q(l, h)"
            "    ON d.hash_list_id = q.l AND d.hash_id = q.h"
            " WHERE d.organization_id = %s AND d.ended_seq IS NULL",
            [[p[0] for p in wanted], [p[1] for p in wanted], org.pk],
        )
        return {(row[0], row[1]) for row in cursor.fetchall()}


@dataclass(frozen=True)
class DisableWindows:
    """The stretches of the change sequence during which ``org`` had (list, type, value)
    disabled, to leave the export's own rows for them out."""

    windows: Mapping[tuple[int, str, bytes], tuple[tuple[int, int], ...]]

    def hides(self, seq: int, list_pk: int, signal_type: str, value: bytes) -> bool:
        return any(lo < seq < hi for lo, hi in self.windows.get((list_pk, signal_type, value), ()))


def disable_windows(*, org: Organization) -> DisableWindows:
    with scopes_disabled():
        rows = EntryDisable.objects.filter(organization=org).select_related("hash")
        windows: dict[tuple[int, str, bytes], list[tuple[int, int]]] = {}
        for disable in rows:
            key = (disable.hash_list_id, disable.hash.signal_type, bytes(disable.hash.value))
            end = disable.ended_seq if disable.ended_seq is not None else 2**63 - 1
            windows.setdefault(key, []).append((disable.seq, end))
    return DisableWindows({key: tuple(spans) for key, spans in windows.items()})


def disable_feed_rows(
    *,
    org: Organization,
    after: int,
    upto: int,
    intervals: Iterable[tuple[int, int, int]],
    published: Iterable[int],
    limit: int,
) -> list[tuple[int, int, str, int, str, bytes]]:
    """The export rows ``(seq, 0, op, list pk, type, value)`` of ``org``'s disables numbered in
    (``after``, ``upto``]: a removal at each disable's number and an addition at its end, each
    only if the entry was live at that moment in the reader's view of the list (the published
    view for the lists in ``published``) and the reader could see the list then
    (``intervals``)."""
    spans = list(intervals)
    shown = set(published)
    with scopes_disabled():
        disables = list(
            EntryDisable.objects.filter(organization=org)
            .filter(Q(seq__gt=after, seq__lte=upto) | Q(ended_seq__gt=after, ended_seq__lte=upto))
            .select_related("hash")
            .order_by("seq")[: 2 * limit]
        )
    moments = [
        (disable, seq, op)
        for disable in disables
        for seq, op in ((disable.seq, "remove"), (disable.ended_seq, "add"))
        if seq is not None and after < seq <= upto
    ]
    live = entries_live_at(
        (d.hash_list_id, d.hash_id, seq, d.hash_list_id in shown) for d, seq, _ in moments
    )
    rows = [
        (seq, 0, op, d.hash_list_id, d.hash.signal_type, bytes(d.hash.value))
        for d, seq, op in moments
        if (d.hash_list_id, d.hash_id, seq) in live
        and any(pk == d.hash_list_id and lo < seq < hi for pk, lo, hi in spans)
    ]
    return sorted(rows)[:limit]


def policy_view(*, org: Organization) -> dict[str, Any]:
    """The policy as ``GET /api/v1/policy`` and the settings page show it: every part, with the
    sources, lists and categories it can turn on or off, and the entries disabled now."""
    row = policy_of(org=org)
    policy = Policy.of(row)
    with scopes_disabled():
        excluded = list(
            PolicyExclusion.objects.filter(organization=org).values_list(
                "source_id", "hash_list_id", "category"
            )
        )
    off_sources = {source for source, _, _ in excluded if source}
    off_categories = {category for _, _, category in excluded if category}
    lists: list[dict[str, Any]] = [
        {
            "id": seen.public_id,
            "name": seen.name,
            "category": seen.category,
            "tier": seen.tier,
            "enabled": True,
            "shadow": seen.public_id in policy.shadow_lists,
            "thresholds": dict(policy.list_thresholds.get(seen.public_id, {})),
        }
        for seen in lists_matchable_by(org=org).values()
    ] + [
        {
            "id": public_id,
            "name": hash_list.name,
            "category": hash_list.category,
            "tier": tier,
            "enabled": False,
            "shadow": public_id in policy.shadow_lists,
            "thresholds": dict(policy.list_thresholds.get(public_id, {})),
        }
        for public_id, (hash_list, tier) in lists_turned_off(org=org).items()
    ]
    order = {"own": 0, "verified": 1, "community": 2}
    lists.sort(key=lambda item: (order[item["tier"]], item["name"].lower(), item["id"]))
    return {
        "thresholds": {name: policy.radius(name) for name in _perceptual()},
        "server_max_distance": {name: server_max_distance(name) for name in _perceptual()},
        "default_action": policy.default_action,
        "action_rules": [dict(rule) for rule in policy.action_rules],
        "dihedral_default": policy.dihedral_default,
        "link_template": policy.link_template,
        "retroactive_days": policy.retroactive_days,
        "sources": [
            {
                "id": source.public_id,
                "name": source.name,
                "enabled": source.pk not in off_sources,
                "shadow": source.public_id in policy.shadow_sources,
            }
            for source in sorted(
                sources_available_to(org=org).values(), key=lambda s: s.name.lower()
            )
        ],
        "categories": {
            category: {"enabled": category not in off_categories}
            for category in HashList.Category.values
        },
        "lists": lists,
        "disabled_entries": [disable_view(disable) for disable in disables_active(org=org)],
    }


def disable_view(disable: EntryDisable) -> dict[str, Any]:
    kind = get_signal_type(disable.hash.signal_type)
    return {
        "id": disable.public_id,
        "list": disable.hash_list.public_id,
        "type": kind.name,
        "value": kind.to_text(bytes(disable.hash.value)),
        "until": disable.until,
        "note": disable.note,
    }
