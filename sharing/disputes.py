"""Disputes: a subscriber's objection to one entry of another organisation's shared list.

Two organisations look at every dispute, and each must learn only what it is owed:

* the **disputer** (the organisation that raised it, the tenant that owns the row) sees the list
  as its catalogue shows it, the hash, its own reason and note, and the outcome (status and the
  owner's resolution note). It never learns who owns an anonymous list: the list is described by
  :func:`list_as_seen` (no owner unless the list is open), and nothing on the owner's side (who
  resolved it, the owner's audit events) is handed to it;
* the **owner** of the list sees the reason, note, time, status and how many distinct
  organisations dispute the same entry, and the disputer's organisation name only when the
  disputer chose ``reveal``. Its audit log records each dispute with a system actor, never the
  disputer's user, API key or IP address.

Selectors hand templates and API views :class:`RaisedDispute` and :class:`ReceivedDispute`, which
carry only what their side may see, so a page cannot show what it was never given. Another
organisation's dispute is the same 404 as a missing one.

Decisions the API documents:

* a hash that is not live in the list is 404 ``entry_not_found`` (the disputer can read the list,
  so saying the hash is not in it reveals nothing);
* one's own list is 400 ``own_list`` (remove the entry instead); a private, deleted or unknown list
  is 404 ``not_found``; an organisation not yet approved is 403 ``org_not_approved``;
* a second open dispute by the same organisation on the same (list, hash) is 409
  ``already_disputed``, with the open dispute's id in ``details``; once it is closed (withdrawn,
  rejected, retracted, removed) the organisation may dispute again;
* an entry removed by any other way than a retraction (by hand, by file, with its whole list)
  closes its open disputes as ``removed`` once the removal commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.http import Http404
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from lists.hashtypes import get_signal_type
from lists.models import Entry, Hash, HashList
from lists.services import EntryInput, entry_remove
from sharing.models import Dispute
from sharing.selectors import TIER_COMMUNITY, MatchableList, catalogue_item

MAX_NOTE = 2000
# What the owner's side shows (pages, audit log) for a disputer that did not reveal itself.
ANONYMOUS_DISPUTER = "A member organisation"
# The actor of the events an owner's action writes into a disputer's audit log: never the owner's
# user, key or address, which could name the owner of an anonymous list.
LIST_OWNER = Actor(system="The list's owner")
OWNER_CLOSED = frozenset({Dispute.Status.REJECTED, Dispute.Status.RETRACTED})
# The actor of the events written when a removal closes disputes (see disputes_close_removed).
REMOVAL = Actor(system="Entry removed from the list")


# --- what each side sees ----------------------------------------------------------------------


def list_as_seen(hash_list: HashList) -> MatchableList:
    """Another organisation's list as its disputer may see it.

    The owner is named only while the list is *open*: an anonymous list never names it, and
    neither does a list made private after the dispute (it may have been anonymous before).
    """
    named = hash_list.visibility == HashList.Visibility.OPEN and hash_list.organization is not None
    return MatchableList(
        pk=hash_list.pk,
        public_id=hash_list.public_id,
        name=hash_list.name,
        category=hash_list.category,
        tier=TIER_COMMUNITY,
        contributor=hash_list.organization.name if named and hash_list.organization else None,
        anonymous=not named,
    )


def _hash_text(hash_row: Hash) -> tuple[str, str]:
    signal_type = get_signal_type(hash_row.signal_type)
    return signal_type.name, signal_type.to_text(bytes(hash_row.value))


@dataclass(frozen=True)
class RaisedDispute:
    """A dispute as the organisation that raised it sees it (pages and the API)."""

    public_id: str
    hash_list: MatchableList
    type: str
    value: str
    reason: str
    reason_display: str
    note: str
    reveal: bool
    status: str
    status_display: str
    created: dt.datetime
    created_by_label: str  # one of the disputer's own people or keys
    resolved_at: dt.datetime | None
    resolution_note: str

    @property
    def is_open(self) -> bool:
        return self.status == Dispute.Status.OPEN

    def as_dict(self) -> dict[str, Any]:
        """The dispute object of the API."""
        return {
            "id": self.public_id,
            "list": self.hash_list.as_dict(),
            "type": self.type,
            "value": self.value,
            "reason": self.reason,
            "note": self.note,
            "reveal": self.reveal,
            "status": self.status,
            "created": self.created.isoformat(),
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolution_note": self.resolution_note,
        }


def raised_view(dispute: Dispute) -> RaisedDispute:
    signal_type, value = _hash_text(dispute.hash)
    return RaisedDispute(
        public_id=dispute.public_id,
        hash_list=list_as_seen(dispute.hash_list),
        type=signal_type,
        value=value,
        reason=dispute.reason,
        reason_display=dispute.get_reason_display(),
        note=dispute.note,
        reveal=dispute.reveal,
        status=dispute.status,
        status_display=dispute.get_status_display(),
        created=dispute.created,
        created_by_label=dispute.created_by_label,
        resolved_at=dispute.resolved_at,
        resolution_note=dispute.resolution_note,
    )


@dataclass(frozen=True)
class ReceivedDispute:
    """A dispute on one of the organisation's lists, as its owner sees it.

    ``disputer`` is the disputing organisation's name only when it chose to reveal it.
    ``open_orgs`` counts the distinct organisations with an open dispute on the same entry.
    """

    public_id: str
    hash_list: HashList
    type: str
    value: str
    reason: str
    reason_display: str
    note: str
    disputer: str | None
    status: str
    status_display: str
    created: dt.datetime
    resolved_at: dt.datetime | None
    resolution_note: str
    resolved_by_label: str  # one of the owner's own people or keys
    open_orgs: int

    @property
    def is_open(self) -> bool:
        return self.status == Dispute.Status.OPEN

    @property
    def disputer_label(self) -> str:
        return self.disputer or ANONYMOUS_DISPUTER


def _open_org_counts(disputes: Sequence[Dispute]) -> dict[tuple[int, int], int]:
    """(list pk, hash id) → distinct organisations with an open dispute on it."""
    list_pks = {d.hash_list_id for d in disputes}
    hash_ids = {d.hash_id for d in disputes}
    if not disputes:
        return {}
    rows = (
        _unscoped()
        .filter(status=Dispute.Status.OPEN, hash_list_id__in=list_pks, hash_id__in=hash_ids)
        .values("hash_list_id", "hash_id")
        .annotate(orgs=Count("organization", distinct=True))
        .order_by()
    )
    return {(row["hash_list_id"], row["hash_id"]): row["orgs"] for row in rows}


def received_views(disputes: Iterable[Dispute]) -> list[ReceivedDispute]:
    disputes = list(disputes)
    counts = _open_org_counts(disputes)
    views = []
    for dispute in disputes:
        signal_type, value = _hash_text(dispute.hash)
        # Only the owner's own people close a dispute as rejected or retracted; a withdrawal is
        # closed by the disputer, whose person or key the owner must not see.
        closer = dispute.resolved_by_label if dispute.status in OWNER_CLOSED else ""
        views.append(
            ReceivedDispute(
                public_id=dispute.public_id,
                hash_list=dispute.hash_list,
                type=signal_type,
                value=value,
                reason=dispute.reason,
                reason_display=dispute.get_reason_display(),
                note=dispute.note,
                disputer=dispute.organization.name if dispute.reveal else None,
                status=dispute.status,
                status_display=dispute.get_status_display(),
                created=dispute.created,
                resolved_at=dispute.resolved_at,
                resolution_note=dispute.resolution_note,
                resolved_by_label=closer,
                open_orgs=counts.get((dispute.hash_list_id, dispute.hash_id), 0),
            )
        )
    return views


# --- selectors --------------------------------------------------------------------------------


def _check_status(status: str) -> None:
    if status and status not in Dispute.Status.values:
        raise ServiceError(
            "invalid_status",
            "status must be one of: open, rejected, retracted, removed, withdrawn.",
            {"allowed": list(Dispute.Status.values)},
        )


def _unscoped() -> QuerySet[Dispute]:
    """Every dispute, whoever raised it: callers filter by the list's owner themselves.

    django-scopes applies the scope when the queryset is made, so this stays unscoped.
    """
    with scopes_disabled():
        return Dispute.objects.all()


def disputes_raised_by(*, org: Organization, status: str = "") -> QuerySet[Dispute]:
    """The disputes ``org`` raised, newest first (map each through :func:`raised_view`).

    The rows are ``org``'s own, so this reads through the tenant scope (which must be ``org``'s).
    """
    _check_status(status)
    disputes = Dispute.objects.filter(organization=org)
    if status:
        disputes = disputes.filter(status=status)
    return disputes.select_related("hash", "hash_list__organization").order_by("-created", "-id")


def disputes_received_by(*, org: Organization, status: str = "") -> QuerySet[Dispute]:
    """Disputes on ``org``'s lists, newest first (map each through :func:`received_views`).

    The rows belong to the disputers, so the tenant scope (the disputer's) is lifted and the
    owner filter written out instead.
    """
    _check_status(status)
    disputes = _unscoped().filter(hash_list__organization=org)
    if status:
        disputes = disputes.filter(status=status)
    return disputes.select_related("hash", "hash_list", "organization").order_by("-created", "-id")


def open_counts(*, org: Organization) -> tuple[int, int]:
    """(open disputes ``org`` raised, open disputes on ``org``'s lists)."""
    raised = disputes_raised_by(org=org, status=Dispute.Status.OPEN).count()
    received = disputes_received_by(org=org, status=Dispute.Status.OPEN).count()
    return raised, received


def dispute_for_org(*, org: Organization, public_id: str) -> RaisedDispute | ReceivedDispute:
    """One dispute ``org`` raised or received on one of its lists; otherwise 404."""
    raised = disputes_raised_by(org=org).filter(public_id=public_id).first()
    if raised is not None:
        return raised_view(raised)
    received = disputes_received_by(org=org).filter(public_id=public_id).first()
    if received is not None:
        return received_views([received])[0]
    raise Http404("No such dispute.")


@dataclass(frozen=True)
class DisputeTarget:
    """A list ``org`` may dispute entries of, as it sees it."""

    hash_list: HashList
    seen: MatchableList


def dispute_target(*, org: Organization, list_public_id: str) -> DisputeTarget:
    """A community list ``org`` may dispute: one in its catalogue.

    Raises 403 ``org_not_approved``, 400 ``own_list`` or 404 ``not_found`` (a private, deleted,
    unknown list, or one whose owner is not approved: the same answer for each).
    """
    if not org.approved:
        raise ServiceError(
            "org_not_approved",
            "Your organisation must be approved by the hub's staff before it can dispute entries.",
            status=403,
        )
    if not isinstance(list_public_id, str) or not list_public_id:
        raise ServiceError("not_found", "No such list.", status=404)
    with scopes_disabled():
        own = HashList.objects.filter(
            organization=org, public_id=list_public_id, deleted_at__isnull=True
        ).exists()
    if own:
        raise ServiceError(
            "own_list",
            "This is your own list: remove the entry instead of disputing it.",
        )
    item = catalogue_item(org=org, public_id=list_public_id)
    with scopes_disabled():
        hash_list = HashList.objects.select_related("organization").get(pk=item.hash_list.pk)
    return DisputeTarget(hash_list=hash_list, seen=item.hash_list)


# --- services ---------------------------------------------------------------------------------


def _disputer_actor(dispute: Dispute, org: Organization) -> Actor:
    """Who the owner's audit log says acted: the organisation if revealed, else no one."""
    if dispute.reveal:
        return Actor(system=f"{org.name} (member organisation)"[:200])
    return Actor(system=ANONYMOUS_DISPUTER)


def _event_metadata(dispute: Dispute, signal_type: str, value: str) -> dict[str, Any]:
    return {
        "list": dispute.hash_list.public_id,
        "list_name": dispute.hash_list.name,
        "type": signal_type,
        "value": value,
        "reason": dispute.reason,
    }


def _clean_note(note: str, *, required: bool = False, what: str = "note") -> str:
    if not isinstance(note, str):
        raise ServiceError("invalid_note", f"The {what} must be text.")
    note = note.strip()
    if len(note) > MAX_NOTE:
        raise ServiceError("note_too_long", f"A {what} takes at most {MAX_NOTE} characters.")
    if required and not note:
        raise ServiceError("note_required", f"Write a {what}: the disputer will read it.")
    return note


@transaction.atomic
def dispute_create(
    *,
    org: Organization,
    list_public_id: str,
    signal_type: str,
    value: str,
    reason: str,
    note: str = "",
    reveal: bool = False,
    actor: Actor,
) -> Dispute:
    """Dispute one live entry of a community list. Audited in both organisations.

    The disputer's audit log names the actor; the owner's records the dispute with a system actor
    and names the disputing organisation only when ``reveal`` is set. Raises (see the module
    docstring) ``org_not_approved``, ``own_list``, ``not_found``, ``invalid_reason``,
    ``note_too_long``, a hash parse error (``unknown_type``, ``wrong_length``, …),
    ``entry_not_found`` or ``already_disputed``.
    """
    target = dispute_target(org=org, list_public_id=list_public_id)
    if reason not in Dispute.Reason.values:
        raise ServiceError(
            "invalid_reason",
            "reason must be one of: not_csam, wrong_category, low_quality, other.",
            {"allowed": list(Dispute.Reason.values)},
        )
    note = _clean_note(note)
    kind = get_signal_type(signal_type)
    raw = kind.parse(value)
    # Another owner's anonymous list is disputed as the disputer sees it: its published view
    # (lists.changes), so a dispute cannot tell an entry added since the last publication.
    published = target.hash_list.visibility == target.hash_list.Visibility.ANONYMOUS
    with scopes_disabled():
        # Locking the live entry makes a concurrent retraction (which tombstones it) wait for
        # this dispute, or this dispute see the entry gone: never an open dispute left behind.
        entry = (
            Entry.objects.select_for_update(of=("self",), no_key=True)
            .select_related("hash")
            .filter(
                hash_list=target.hash_list,
                hash__signal_type=kind.name,
                hash__value=raw,
                removed_seq__isnull=True,
                **({"published_seq__isnull": False} if published else {}),
            )
            .first()
        )
    if entry is None:
        raise ServiceError(
            "entry_not_found", "This hash is not in the list (or was removed).", status=404
        )
    existing = (
        _unscoped()
        .filter(
            organization=org,
            hash_list=target.hash_list,
            hash=entry.hash,
            status=Dispute.Status.OPEN,
        )
        .values_list("public_id", flat=True)
        .first()
    )
    if existing is not None:
        raise _already_disputed(existing)
    try:
        with transaction.atomic():
            dispute = Dispute.objects.create(
                organization=org,
                hash_list=target.hash_list,
                hash=entry.hash,
                entry=entry,
                reason=reason,
                note=note,
                reveal=bool(reveal),
                created_by=actor.user,
                created_by_label=actor.label[:200],
            )
    except IntegrityError:
        # Another request of the same organisation won the race (the partial unique index).
        raise _already_disputed(None) from None
    text = kind.to_text(raw)
    metadata = _event_metadata(dispute, kind.name, text)
    audit(
        actor=actor,
        action="dispute.created",
        organization=org,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata={**metadata, "reveal": dispute.reveal},
    )
    audit(
        actor=_disputer_actor(dispute, org),
        action="dispute.received",
        organization=target.hash_list.organization,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata={**metadata, "disputer": org.name if dispute.reveal else ANONYMOUS_DISPUTER},
    )
    return dispute


def _already_disputed(public_id: str | None) -> ServiceError:
    return ServiceError(
        "already_disputed",
        "Your organisation already has an open dispute on this entry.",
        {"dispute": public_id} if public_id else None,
        status=409,
    )


def _locked(disputes: QuerySet[Dispute], public_id: str) -> Dispute:
    dispute = disputes.select_for_update(of=("self",)).filter(public_id=public_id).first()
    if dispute is None:
        raise ServiceError("not_found", "No such dispute.", status=404)
    if dispute.status != Dispute.Status.OPEN:
        raise ServiceError(
            "not_open",
            f"This dispute is already closed ({dispute.get_status_display().lower()}).",
            {"status": dispute.status},
            status=409,
        )
    return dispute


def _close(dispute: Dispute, status: str, note: str, actor: Actor) -> None:
    dispute.status = status
    dispute.resolved_at = timezone.now()
    dispute.resolution_note = note
    dispute.resolved_by_label = actor.label[:200]
    dispute.save(update_fields=["status", "resolved_at", "resolution_note", "resolved_by_label"])


@transaction.atomic
def dispute_withdraw(*, org: Organization, public_id: str, actor: Actor) -> Dispute:
    """The disputer takes back its open dispute. Audited in both organisations.

    Raises 404 ``not_found`` (not a dispute ``org`` raised) or 409 ``not_open``.
    """
    dispute = _locked(disputes_raised_by(org=org), public_id)
    _close(dispute, Dispute.Status.WITHDRAWN, "", actor)
    signal_type, value = _hash_text(dispute.hash)
    metadata = _event_metadata(dispute, signal_type, value)
    audit(
        actor=actor,
        action="dispute.withdrawn",
        organization=org,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata=metadata,
    )
    audit(
        actor=_disputer_actor(dispute, org),
        action="dispute.withdrawn",
        organization=dispute.hash_list.organization,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata=metadata,
    )
    return dispute


@transaction.atomic
def dispute_reject(*, org: Organization, public_id: str, note: str, actor: Actor) -> Dispute:
    """The list's owner rejects an open dispute with a note the disputer reads. Audited in both.

    The disputer's audit event has a system actor (``LIST_OWNER``), never the owner's people.
    Raises 404 ``not_found`` (not a dispute on ``org``'s lists), 409 ``not_open``,
    400 ``note_required`` or ``note_too_long``.
    """
    note = _clean_note(note, required=True, what="resolution note")
    dispute = _locked(disputes_received_by(org=org), public_id)
    _close(dispute, Dispute.Status.REJECTED, note, actor)
    signal_type, value = _hash_text(dispute.hash)
    metadata = _event_metadata(dispute, signal_type, value)
    audit(
        actor=actor,
        action="dispute.rejected",
        organization=org,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata={**metadata, "note": note},
    )
    audit(
        actor=LIST_OWNER,
        action="dispute.rejected",
        organization=dispute.organization,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata={**metadata, "note": note},
    )
    return dispute


@transaction.atomic
def dispute_retract(*, org: Organization, public_id: str, note: str, actor: Actor) -> int:
    """The list's owner retracts the disputed entry: every open dispute on it is closed.

    Removes the hash from the owner's list with ``lists.services.entry_remove`` (a tombstone with
    the next change number, so subscribers stop matching it and their export feeds carry the
    removal), then marks every open dispute on that (list, hash) ``retracted`` with ``note``.
    Audited in the owner's organisation (the removal and the retraction) and in each disputer's
    (with a system actor). Returns how many disputes it closed. Raises 404 ``not_found``,
    409 ``not_open`` or 400 ``note_too_long``.
    """
    note = _clean_note(note, what="resolution note")
    dispute = _locked(disputes_received_by(org=org), public_id)
    hash_list = dispute.hash_list
    signal_type, value = _hash_text(dispute.hash)
    reason = f"Retracted after community dispute {dispute.public_id}" + (
        f": {note}" if note else ""
    )
    # Remove first: the tombstone waits for any dispute being created on the entry (which locks
    # it), so the disputes read next include every one that saw the entry live.
    removed = entry_remove(
        hash_list=hash_list,
        items=[EntryInput(type=signal_type, value=value)],
        reason=reason[:2000],
        actor=actor,
    )
    closing = list(
        _unscoped()
        .select_for_update(of=("self",))
        .select_related("organization", "hash_list", "hash")
        .filter(hash_list=hash_list, hash_id=dispute.hash_id, status=Dispute.Status.OPEN)
        .order_by("id")
    )
    for each in closing:
        _close(each, Dispute.Status.RETRACTED, note, actor)
    metadata = _event_metadata(dispute, signal_type, value)
    audit(
        actor=actor,
        action="dispute.retracted",
        organization=org,
        target_type="dispute",
        target_id=dispute.public_id,
        metadata={
            **metadata,
            "note": note,
            "entries_removed": removed.removed,
            "disputes_closed": [each.public_id for each in closing],
        },
    )
    for each in closing:
        audit(
            actor=LIST_OWNER,
            action="dispute.retracted",
            organization=each.organization,
            target_type="dispute",
            target_id=each.public_id,
            metadata={**_event_metadata(each, signal_type, value), "note": note},
        )
    return len(closing)


def disputes_close_removed(*, hash_list_id: int) -> int:
    """Close, as ``removed``, the open disputes on entries of the list that are no longer live.

    Called after a removal commits (sharing.receivers). Audited in the owner's organisation and
    in each disputer's, with a system actor on both sides. Returns how many it closed.
    """
    with transaction.atomic(), scopes_disabled():
        live = Entry.objects.filter(
            hash_list_id=hash_list_id, hash_id=OuterRef("hash_id"), removed_seq__isnull=True
        )
        closing = list(
            _unscoped()
            .select_for_update(of=("self",))
            .select_related("organization", "hash_list__organization", "hash")
            .filter(hash_list_id=hash_list_id, status=Dispute.Status.OPEN)
            .filter(~Exists(live))
            .order_by("id")
        )
        for dispute in closing:
            _close(dispute, Dispute.Status.REMOVED, "", REMOVAL)
            signal_type, value = _hash_text(dispute.hash)
            metadata = _event_metadata(dispute, signal_type, value)
            for organization in (dispute.hash_list.organization, dispute.organization):
                audit(
                    actor=REMOVAL,
                    action="dispute.entry_removed",
                    organization=organization,
                    target_type="dispute",
                    target_id=dispute.public_id,
                    metadata=metadata,
                )
    return len(closing)
