"""Every change to hash lists and their entries. Each service audits what it did.

Adds and removals, whether ten hashes from the API or a million from a file, take one path:
the parsed rows are COPYed into a temporary staging table, the merged set is upserted from it,
and the entries are written with numbers from the change sequence (see ``lists.models``) in a
handful of set-based statements.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from hub.quotas import quota_check_entries, quota_check_lists, quota_usage_counter
from lists.changes import (
    ALL_TARGETS,
    ParsedEntry,
    Provenance,
    entries_add,
    entries_remove,
    entries_tombstone,
)
from lists.hashtypes import get_signal_type
from lists.models import HashList

MAX_LABELS = 10
MAX_NOTE = 2000
MAX_REASON = 2000
# The industry classification of CSAM severity (A: prepubescent, B: pubescent; 1: sexual act,
# 2: lascivious exhibition). Written upper case; free tags are written lower case.
CLASSIFICATION_LABELS = ("A1", "A2", "B1", "B2")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_.:-]{0,39}$")

DEFAULT_LISTS = (
    (
        "CSAM",
        HashList.Category.CSAM,
        "Hashes of child sexual abuse material this organisation has confirmed.",
    ),
    (
        "SE",
        HashList.Category.SE,
        "Hashes of sexually exploitative content this organisation removes.",
    ),
)


# --- inputs and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class EntryInput:
    """One submitted hash as text, with optional labels and note.

    ``quality`` is set only for a hash the hub computed from an image itself (add by image):
    a PDQ below PDQ_MIN_QUALITY is then refused as ``degenerate_hash``.
    """

    type: str
    value: str
    labels: Sequence[str] = ()
    note: str = ""
    quality: int | None = None


@dataclass(frozen=True)
class ItemError:
    index: int
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "code": self.code, "message": self.message}


@dataclass
class AddResult:
    added: int = 0
    already_present: int = 0
    errors: list[ItemError] = field(default_factory=list)


@dataclass
class RemoveResult:
    removed: int = 0
    not_present: int = 0
    errors: list[ItemError] = field(default_factory=list)


# Sent inside the transaction that made new lists: a source's lists (``source_lists``), so that
# ``sharing`` grants them to the organisations entitled to the source, and, for a deleted list
# (``list_deleted``), so that it revokes them. ``lists`` may not import ``sharing`` (DESIGN.md).
source_lists_created = Signal()
list_deleted = Signal()


# --- parsing --------------------------------------------------------------------------------


def normalise_labels(labels: Iterable[str]) -> list[str]:
    """Classification labels upper case, free tags lower case, de-duplicated in order.

    Raises ServiceError ``bad_label`` or ``too_many_labels``.
    """
    result: list[str] = []
    for raw in labels:
        if not isinstance(raw, str):
            raise ServiceError("bad_label", "Labels must be strings.")
        label = raw.strip()
        if not label:
            continue
        if label.upper() in CLASSIFICATION_LABELS:
            label = label.upper()
        else:
            label = label.lower()
            if not _TAG.match(label):
                raise ServiceError(
                    "bad_label",
                    f"“{raw[:50]}” is not a label: use A1, A2, B1, B2 or a tag of letters, "
                    "digits and _ . : - (at most 40 characters).",
                )
        if label not in result:
            result.append(label)
    if len(result) > MAX_LABELS:
        raise ServiceError("too_many_labels", f"An entry takes at most {MAX_LABELS} labels.")
    return result


def parse_entry(index: int, item: EntryInput, *, adding: bool = True) -> ParsedEntry:
    """Parse and canonicalise one submitted hash.

    Raises ServiceError with a per-item code (a HashParseError for the type or the value, a
    DegenerateHashError ``degenerate_hash`` for a value that must not be added: every add path
    comes through here; a removal passes ``adding=False`` so such a value can still be removed).
    """
    signal_type = get_signal_type(item.type)
    value = signal_type.parse(item.value)
    if adding:
        signal_type.check_addable(value, quality=item.quality)
    if len(item.note) > MAX_NOTE:
        raise ServiceError("note_too_long", f"A note takes at most {MAX_NOTE} characters.")
    return ParsedEntry(
        index, signal_type.name, value, normalise_labels(item.labels), item.note.strip()
    )


def parse_entries(
    items: Sequence[EntryInput], *, adding: bool = True
) -> tuple[list[ParsedEntry], list[ItemError]]:
    parsed: list[ParsedEntry] = []
    errors: list[ItemError] = []
    for index, item in enumerate(items):
        try:
            parsed.append(parse_entry(index, item, adding=adding))
        except ServiceError as error:
            errors.append(ItemError(index, error.code, error.message))
    return parsed, errors


# --- quotas (hub.quotas) ---------------------------------------------------------------------


@quota_usage_counter("lists", "entries_per_list", "entries_total")
def lists_quota_usage(org: Organization) -> dict[str, int]:
    """What an organisation's own lists use of its quotas: lists, the largest list's live
    entries and all their live entries (hub cannot count them: it may not import lists)."""
    sizes = [
        sum(int(n) for n in counts.values())
        for counts in HashList.objects.filter(
            organization=org, deleted_at__isnull=True
        ).values_list("live_counts", flat=True)
    ]
    return {
        "lists": len(sizes),
        "entries_per_list": max(sizes, default=0),
        "entries_total": sum(sizes),
    }


def entries_quota_check(hash_list: HashList, added: int) -> None:
    """After ``added`` new entries were written to ``hash_list``, in their transaction: raise
    ``quota_exceeded`` (rolling them back) if they took it or its organisation past a quota."""
    quota_check_entries(
        org=hash_list.organization,
        list_name=hash_list.name,
        list_entries=sum(int(n) for n in hash_list.live_counts.values()),
        added=added,
    )


# --- services ---------------------------------------------------------------------------------


def audit_list(*, actor: Actor, action: str, hash_list: HashList, metadata: dict[str, Any]) -> None:
    """One audit event about a list, in the list's organisation (every list service writes one)."""
    audit(
        actor=actor,
        action=action,
        organization=hash_list.organization,
        target_type="list",
        target_id=hash_list.public_id,
        metadata=metadata,
    )


def check_writable(hash_list: HashList) -> None:
    if hash_list.deleted_at is not None:
        raise ServiceError("list_deleted", "This list has been deleted.", status=404)


@transaction.atomic
def entry_add(
    *, hash_list: HashList, items: Sequence[EntryInput], actor: Actor, label: str | None = None
) -> AddResult:
    """Add hashes to a list. Idempotent: a hash already live in the list counts as present.

    Bad items are reported with their index and the rest are added. Writes one audit event.
    An add that would take the list or its organisation past an entry quota is refused whole
    (ServiceError ``quota_exceeded``, hub.quotas).
    """
    check_writable(hash_list)
    parsed, errors = parse_entries(items)
    valid, added = entries_add(hash_list, parsed, Provenance.of(actor, label))
    entries_quota_check(hash_list, added)
    result = AddResult(added=added, already_present=valid - added, errors=errors)
    if added or errors:
        audit_list(
            actor=actor,
            action="entries.added",
            hash_list=hash_list,
            metadata={
                "added": added,
                "already_present": result.already_present,
                "rejected": len(errors),
            },
        )
    return result


@transaction.atomic
def entry_remove(
    *, hash_list: HashList, items: Sequence[EntryInput], reason: str, actor: Actor
) -> RemoveResult:
    """Tombstone the given hashes' live entries in a list, with a reason. Writes one audit event."""
    check_writable(hash_list)
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ServiceError("reason_too_long", f"A reason takes at most {MAX_REASON} characters.")
    parsed, errors = parse_entries(items, adding=False)
    distinct, removed = entries_remove(hash_list, parsed, Provenance.of(actor), reason)
    result = RemoveResult(removed=removed, not_present=distinct - removed, errors=errors)
    if removed or errors:
        audit_list(
            actor=actor,
            action="entries.removed",
            hash_list=hash_list,
            metadata={
                "removed": removed,
                "not_present": result.not_present,
                "rejected": len(errors),
                "reason": reason,
            },
        )
    return result


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 120:
        raise ServiceError("invalid_name", "A list needs a name of 1 to 120 characters.")
    return name


def _check_name_free(org: Organization, name: str, exclude: HashList | None = None) -> None:
    taken = HashList.objects.filter(organization=org, name__iexact=name, deleted_at__isnull=True)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise ServiceError("name_taken", f"This organisation already has a list named “{name}”.")


@transaction.atomic
def list_create(
    *,
    org: Organization,
    name: str,
    category: str,
    description: str = "",
    actor: Actor,
    is_default: bool = False,
) -> HashList:
    """Create a self-managed list.

    Raises ServiceError ``invalid_name``, ``name_taken``, ``invalid_category`` or
    ``quota_exceeded`` (hub.quotas; an organisation's own CSAM and SE lists are always made).
    """
    name = _clean_name(name)
    if category not in HashList.Category.values:
        raise ServiceError("invalid_category", "The category must be “csam” or “se”.")
    if len(description) > MAX_NOTE:
        raise ServiceError(
            "description_too_long", f"A description takes at most {MAX_NOTE} characters."
        )
    _check_name_free(org, name)
    if not is_default:
        quota_check_lists(org=org)
    hash_list = HashList.objects.create(
        organization=org,
        name=name,
        category=category,
        description=description.strip(),
        is_default=is_default,
    )
    audit_list(
        actor=actor,
        action="list.created",
        hash_list=hash_list,
        metadata={"name": name, "category": category},
    )
    return hash_list


def lists_create_defaults(*, org: Organization, actor: Actor) -> list[HashList]:
    """Give an organisation its own CSAM and SE lists (idempotent)."""
    made = []
    for name, category, description in DEFAULT_LISTS:
        exists = HashList.objects.filter(
            organization=org, category=category, is_default=True, deleted_at__isnull=True
        ).exists()
        if not exists:
            made.append(
                list_create(
                    org=org,
                    name=name,
                    category=category,
                    description=description,
                    actor=actor,
                    is_default=True,
                )
            )
    return made


@transaction.atomic
def list_update(*, hash_list: HashList, name: str, description: str, actor: Actor) -> HashList:
    """Rename a list and/or change its description."""
    check_writable(hash_list)
    name = _clean_name(name)
    if len(description) > MAX_NOTE:
        raise ServiceError(
            "description_too_long", f"A description takes at most {MAX_NOTE} characters."
        )
    if hash_list.organization is None:
        raise ServiceError("not_self_managed", "Only an organisation's own lists can be renamed.")
    _check_name_free(hash_list.organization, name, exclude=hash_list)
    changes: dict[str, list[str]] = {}
    if name != hash_list.name:
        changes["name"] = [hash_list.name, name]
    if description.strip() != hash_list.description:
        changes["description"] = [hash_list.description, description.strip()]
    hash_list.name = name
    hash_list.description = description.strip()
    hash_list.save(update_fields=["name", "description"])
    if changes:
        audit_list(
            actor=actor,
            action="list.updated",
            hash_list=hash_list,
            metadata=changes,
        )
    return hash_list


def list_rename(*, hash_list: HashList, name: str, actor: Actor) -> HashList:
    return list_update(
        hash_list=hash_list, name=name, description=hash_list.description, actor=actor
    )


@transaction.atomic
def list_delete(*, hash_list: HashList, reason: str, actor: Actor) -> int:
    """Delete a list; every live entry is tombstoned so deltas carry the removals. Returns how many.

    An organisation's own CSAM and SE lists cannot be deleted (``default_list``).
    """
    check_writable(hash_list)
    if hash_list.is_default:
        raise ServiceError(
            "default_list", "An organisation's own CSAM and SE lists cannot be deleted."
        )
    removed = entries_tombstone(
        hash_list, ALL_TARGETS, Provenance.of(actor), reason.strip() or "list deleted"
    )
    hash_list.deleted_at = timezone.now()
    hash_list.save(update_fields=["deleted_at"])
    list_deleted.send(sender=HashList, hash_list=hash_list)
    audit_list(
        actor=actor,
        action="list.deleted",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "entries_removed": removed},
    )
    return removed


@transaction.atomic
def organization_lists_retire(*, org: Organization, actor: Actor) -> int:
    """Delete every list of an organisation being purged (hub.offboarding), its own CSAM and SE
    lists too: like :func:`list_delete`, every live entry is tombstoned so that every process's
    index drops it and deltas carry the removals. Audits each list; returns the entries removed.
    """
    from django_scopes import scopes_disabled

    with scopes_disabled():
        live = list(HashList.objects.filter(organization=org, deleted_at__isnull=True))
    removed = 0
    for hash_list in live:
        count = entries_tombstone(
            hash_list, ALL_TARGETS, Provenance.of(actor), "organisation deleted"
        )
        hash_list.deleted_at = timezone.now()
        hash_list.save(update_fields=["deleted_at"])
        list_deleted.send(sender=HashList, hash_list=hash_list)
        audit_list(
            actor=actor,
            action="list.deleted",
            hash_list=hash_list,
            metadata={"name": hash_list.name, "entries_removed": count},
        )
        removed += count
    return removed


@transaction.atomic
def organization_entries_erase(
    *, org: Organization, shared_list_pks: Iterable[int]
) -> dict[str, int]:
    """Erase the entries of a purged organisation's lists (hub.offboarding), which
    :func:`organization_lists_retire` tombstoned a day or more before (so every process's index
    has dropped them), and blank the lists' names and descriptions.

    The entries of a list no other organisation ever matched are deleted. Those of a list that
    was shared with someone (``shared_list_pks``, from the access log) are stripped of labels,
    notes and provenance but kept as bare (list, hash, change numbers) tombstones: a platform's
    export that was told of the additions must still be told of the removals, however late it
    asks (deltas carry deletions). The list rows stay, as what other organisations' detections
    and access log point to. Returns how many entries were ``erased`` and ``stripped``.
    """
    from django_scopes import scopes_disabled

    from lists.models import Entry

    shared = set(shared_list_pks)
    with scopes_disabled():
        lists = HashList.objects.filter(organization=org, deleted_at__isnull=False)
        tombstones = Entry.objects.filter(hash_list__in=lists, removed_seq__isnull=False)
        erased, _ = tombstones.exclude(hash_list_id__in=shared).delete()
        stripped = tombstones.filter(hash_list_id__in=shared).update(
            labels=[],
            note="",
            added_by_user=None,
            added_by_key=None,
            added_by_label="",
            removed_by_user=None,
            removed_by_key=None,
            removed_by_label="",
            removed_reason="",
        )
        lists.update(name="Deleted list", description="", live_counts={}, published_counts={})
    return {"erased": erased, "stripped": stripped}


def list_export_record(*, hash_list: HashList, actor: Actor, export_format: str = "csv") -> None:
    """Audit an export of a list: a sensitive read (DESIGN.md, invariant 5)."""
    audit_list(
        actor=actor,
        action="list.exported",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "format": export_format},
    )
