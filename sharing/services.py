"""Writes of community sharing: visibility, subscriptions, the access log, impact, preferences.

Every change that can alter who matches a list ends with :func:`access_sync`, which compares
"who has access now" (sharing.selectors.access_pairs) with the access log and appends a numbered
grant or revoke for each difference. Matching reads the live answer on every request, so effects
are immediate; the export feed replays the log, so a platform matching locally is told too.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import Organization
from lists.changes import publication_restart, publish_pending, sequence_allocate
from lists.models import HashList, Source
from lists.services import audit_list
from sharing.models import (
    AccessEvent,
    ListImpact,
    SharingPreferences,
    SourceEntitlement,
    Subscription,
)
from sharing.selectors import access_pairs, catalogue_item, list_was_open, week_start

VISIBILITY_EXPLAINED = {
    HashList.Visibility.PRIVATE: (
        "Only your organisation sees this list and matches against it. Subscribers stop "
        "matching it at once, and platforms matching locally receive removals for its hashes."
    ),
    HashList.Visibility.OPEN: (
        "Every approved member organisation can see this list's name, category, size and "
        "hashes, with your organisation named as the contributor, subscribe to it and match "
        "against it. They never see who on your team added a hash, your notes or your labels."
    ),
    HashList.Visibility.ANONYMOUS: (
        "Every approved member organisation can see this list's name, category, size and "
        "hashes, subscribe to it and match against it, shown as from an anonymous member: "
        "nothing they can reach names your organisation, your people or your API keys. Hub "
        "staff can look the owner up only through an audited action that you will see. Its "
        "changes reach others in batches every few minutes, with ids and dates of their own, "
        "so their timing cannot be paired with your other lists. A list that has been open "
        "cannot become anonymous: others have seen it with your name."
    ),
}


def _recorded_access(
    *, orgs: list[int] | None, lists: list[int] | None, owners: list[int] | None
) -> set[tuple[int, int]]:
    """(org, list) pairs whose latest access event is a grant, with the same filters."""
    sql = """
        SELECT org_id, list_id FROM (
            SELECT DISTINCT ON (a.organization_id, a.hash_list_id)
                   a.organization_id AS org_id, a.hash_list_id AS list_id, a.granted
              FROM sharing_accessevent a JOIN lists_hashlist l ON l.id = a.hash_list_id
             WHERE (%(orgs)s::bigint[] IS NULL OR a.organization_id = ANY(%(orgs)s::bigint[]))
               AND (%(lists)s::bigint[] IS NULL OR a.hash_list_id = ANY(%(lists)s::bigint[]))
               AND (%(owners)s::bigint[] IS NULL
                    OR l.organization_id = ANY(%(owners)s::bigint[]))
             ORDER BY a.organization_id, a.hash_list_id, a.seq DESC
        ) AS latest WHERE granted
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"orgs": orgs, "lists": lists, "owners": owners})
        return {(org_id, list_id) for org_id, list_id in cursor.fetchall()}


@dataclass(frozen=True)
class AccessDrift:
    """Where the access log differs from the access rules: pairs to grant and to revoke."""

    grants: list[tuple[int, int]]
    revokes: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.grants) + len(self.revokes)


def _anonymous_now(list_pks: Iterable[int]) -> set[int]:
    wanted = sorted(set(list_pks))
    if not wanted:
        return set()
    with scopes_disabled():
        return set(
            HashList.objects.filter(
                pk__in=wanted, visibility=HashList.Visibility.ANONYMOUS
            ).values_list("pk", flat=True)
        )


def access_drift(
    *,
    orgs: Iterable[int] | None = None,
    lists: Iterable[int] | None = None,
    owners: Iterable[int] | None = None,
    anonymous: bool = False,
) -> AccessDrift:
    """The (org pk, list pk) pairs whose latest access event disagrees with the rules now.

    A read only; :func:`access_sync` appends the events that remove the difference. Pairs of
    anonymous lists count only with ``anonymous``: otherwise they wait for the next publication
    (:func:`anonymous_publish`) and are not drift.
    """
    filters = {
        "orgs": None if orgs is None else list(orgs),
        "lists": None if lists is None else list(lists),
        "owners": None if owners is None else list(owners),
    }
    now = access_pairs(**filters)
    recorded = _recorded_access(**filters)
    grants, revokes = now - recorded, recorded - now
    if not anonymous:
        held = _anonymous_now(pk for _, pk in grants | revokes)
        grants = {pair for pair in grants if pair[1] not in held}
        revokes = {pair for pair in revokes if pair[1] not in held}
    return AccessDrift(grants=sorted(grants), revokes=sorted(revokes))


@transaction.atomic
def access_sync(
    *,
    orgs: Iterable[int] | None = None,
    lists: Iterable[int] | None = None,
    owners: Iterable[int] | None = None,
    anonymous: bool = False,
) -> AccessDrift:
    """Append grant and revoke events where the access log differs from the access rules.

    Access to anonymous lists changes here only with ``anonymous`` (a subscriber's own choice,
    which says nothing of the owner, or a publication); a change their owner caused (sharing,
    unsharing, deleting, approval, suspension) waits for the next publication, so that its
    events are not numbered next to the same change on the owner's open lists.

    The one place that compares the rules with the log: every write that can change who matches
    what calls it in its own transaction (directly, or through a signal from ``hub``/``lists``),
    and the reconciler calls it over all pairs. The filters limit the pairs looked at (subscriber
    orgs, lists, list owners). Takes the change sequence's lock first, so concurrent syncs and
    entry writes are ordered and no pair gets two grants. Returns the drift it repaired.
    """
    # Take the sequence lock (numbering nothing yet) before reading, so what we compare is what
    # the numbers we take below will follow.
    sequence_allocate(0)
    drift = access_drift(orgs=orgs, lists=lists, owners=owners, anonymous=anonymous)
    changes = [(pair, True) for pair in drift.grants] + [(pair, False) for pair in drift.revokes]
    if not changes:
        return drift
    if anonymous:
        # A publication's access events, like its entries, in random order: sorted, they would
        # follow the lists' row numbers, which tell which lists were made together.
        secrets.SystemRandom().shuffle(changes)
    first = sequence_allocate(len(changes))
    with scopes_disabled():
        AccessEvent.objects.bulk_create(
            AccessEvent(
                organization_id=org_id, hash_list_id=list_id, seq=first + i, granted=granted
            )
            for i, ((org_id, list_id), granted) in enumerate(changes)
        )
    return drift


@transaction.atomic
def list_visibility_set(*, hash_list: HashList, visibility: str, actor: Actor) -> HashList:
    """Make a self-managed list private, open or anonymous. Audited; access follows at once.

    Only an approved organisation may share (``org_not_approved``). The caller checks the role
    (``sharing.manage``, or the API scope ``lists:admin``).
    """
    if visibility not in HashList.Visibility.values:
        raise ServiceError(
            "invalid_visibility",
            "visibility must be one of: private, open, anonymous.",
            {"allowed": list(HashList.Visibility.values)},
        )
    if hash_list.deleted_at is not None:
        raise ServiceError("list_deleted", "This list has been deleted.", status=404)
    org = hash_list.organization
    if org is None:
        raise ServiceError("not_shareable", "Only an organisation's own lists can be shared.")
    if visibility != HashList.Visibility.PRIVATE and not org.approved:
        raise ServiceError(
            "org_not_approved",
            "Your organisation must be approved by the hub's staff before it can share lists.",
            status=403,
        )
    previous = hash_list.visibility
    if previous == visibility:
        return hash_list
    if visibility == HashList.Visibility.ANONYMOUS and list_was_open(hash_list=hash_list):
        raise ServiceError(
            "was_open",
            f"“{hash_list.name}” has been open, so other organisations have seen it with your "
            "name: made anonymous, it would keep its id, name, subscribers and entries, and "
            "they would still know it is yours. Create a new list and make it anonymous "
            "instead; it starts empty, because the same entries would name you too.",
            {"create": "/api/v1/lists"},
            status=409,
        )
    hash_list.visibility = visibility
    hash_list.save(update_fields=["visibility"])
    if visibility == HashList.Visibility.ANONYMOUS:
        # Others see it, and its entries, from the next publication on.
        publication_restart(list_pks=[hash_list.pk])
    audit_list(
        actor=actor,
        action="list.visibility_changed",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "from": previous, "to": visibility},
    )
    access_sync(lists=[hash_list.pk])
    return hash_list


SHARE_CLASSIFICATION_EXPLAINED = (
    "When on, organisations that match this list see the labels of its entries with each match "
    "and in their export: all of them while the list is open; only the classification (A1, "
    "A2, B1, B2) while it is anonymous, never your own tags, which could name you. When off, "
    "they see no labels. Either way they never see who added an entry, your notes or exact "
    "times (the day an entry was added, and nothing of when for an anonymous list)."
)


def share_classification_now(hash_list: HashList) -> str:
    """What organisations that match ``hash_list`` see of its entries' labels now, in a
    sentence for its owner (the rule itself: sharing.selectors.entry_provenance)."""
    if hash_list.visibility == HashList.Visibility.PRIVATE:
        then = (
            "Once it is shared they will see them as described above."
            if hash_list.share_classification
            else "Once it is shared they will see none, unless you turn this on."
        )
        return (
            f"Now: no other organisation matches this list, so nobody else sees its labels. {then}"
        )
    if not hash_list.share_classification:
        return (
            "Now: subscribers see no labels with their matches of this list; they see the day "
            "an entry was added"
            + (
                " only for an open list; for this anonymous list, no date at all."
                if hash_list.visibility == HashList.Visibility.ANONYMOUS
                else "."
            )
        )
    if hash_list.visibility == HashList.Visibility.ANONYMOUS:
        return (
            "Now: subscribers see the labels A1, A2, B1 and B2 of an entry they match, and none "
            "of your own tags; no date for this anonymous list."
        )
    return (
        "Now: subscribers see every label of an entry they match, your own tags included "
        "(for example “A1, escalated”), and the day it was added."
    )


@transaction.atomic
def list_share_classification_set(*, hash_list: HashList, share: bool, actor: Actor) -> bool:
    """Turn on or off whether subscribers see the labels of this list's entries in matches and
    the export (sharing.selectors.entry_provenance). Audited
    (``list.share_classification_changed``) when it changes; returns whether it did.

    Any of the organisation's own lists, shared or not (it takes effect while it is shared).
    The caller checks the role (``sharing.manage``, or the API scope ``lists:admin``).
    """
    if hash_list.deleted_at is not None:
        raise ServiceError("list_deleted", "This list has been deleted.", status=404)
    if hash_list.organization is None:
        raise ServiceError("not_shareable", "Only an organisation's own lists can be shared.")
    if hash_list.share_classification == share:
        return False
    hash_list.share_classification = share
    hash_list.save(update_fields=["share_classification"])
    audit_list(
        actor=actor,
        action="list.share_classification_changed",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "share_classification": share},
    )
    return True


def _audit_subscription(
    org: Organization, actor: Actor, action: str, target_type: str, target_id: str
) -> None:
    # The subscriber's own audit log; the owner's never learns who subscribed.
    audit(
        actor=actor,
        action=action,
        organization=org,
        target_type=target_type,
        target_id=target_id,
    )


def _require_approved(org: Organization) -> None:
    if not org.approved:
        raise ServiceError(
            "org_not_approved",
            "Your organisation must be approved by the hub's staff before it can use shared lists.",
            status=403,
        )


@transaction.atomic
def subscription_list_set(
    *, org: Organization, public_id: str, subscribed: bool, actor: Actor
) -> bool:
    """Subscribe ``org`` to one catalogue list, or unsubscribe it. Audited; effective at once.

    Unsubscribing a list that a category subscription covers records an opt-out, so the list
    stays off. Raises 404 ``not_found`` for a list not in the org's catalogue. Returns whether
    anything changed.
    """
    _require_approved(org)
    item = catalogue_item(org=org, public_id=public_id)
    list_pk = item.hash_list.pk
    if subscribed == item.subscribed:
        return False
    covered = item.hash_list.category in _categories(org)
    # An opt-out row (when subscribing) or a subscription row (when leaving) goes either way.
    Subscription.objects.filter(organization=org, hash_list_id=list_pk).delete()
    if subscribed != covered:
        Subscription.objects.create(
            organization=org,
            hash_list_id=list_pk,
            excluded=not subscribed,
            created_by_label=actor.label[:200],
        )
    action = "subscription.added" if subscribed else "subscription.removed"
    _audit_subscription(org, actor, action, "list", item.hash_list.public_id)
    access_sync(orgs=[org.pk], lists=[list_pk], anonymous=True)
    return True


def _categories(org: Organization) -> set[str]:
    return set(
        Subscription.objects.filter(organization=org, hash_list__isnull=True).values_list(
            "category", flat=True
        )
    )


@transaction.atomic
def subscription_category_set(
    *, org: Organization, category: str, subscribed: bool, actor: Actor
) -> bool:
    """Subscribe ``org`` to every shared list of a category, now and later, or stop. Audited.

    Subscribing to a category clears earlier opt-outs of its lists (the choice is "all of them");
    unsubscribing keeps lists subscribed one by one. Returns whether anything changed.
    """
    _require_approved(org)
    if category not in HashList.Category.values:
        raise ServiceError(
            "invalid_category",
            "category must be one of: csam, se.",
            {"allowed": list(HashList.Category.values)},
        )
    current = Subscription.objects.filter(
        organization=org, hash_list__isnull=True, category=category
    )
    opt_outs = Subscription.objects.filter(
        organization=org, hash_list__category=category, excluded=True
    )
    if subscribed == current.exists():
        return False
    opt_outs.delete()
    if subscribed:
        Subscription.objects.create(
            organization=org, category=category, created_by_label=actor.label[:200]
        )
    else:
        current.delete()
    action = "subscription.category_added" if subscribed else "subscription.category_removed"
    _audit_subscription(org, actor, action, "category", category)
    access_sync(orgs=[org.pk], anonymous=True)
    return True


def impact_record(*, list_pks: Iterable[int]) -> None:
    """Count community matches against shared lists for this week (one per list per match)."""
    counts = Counter(list_pks)
    if not counts:
        return
    week = week_start(timezone.now().date())
    for list_pk, count in sorted(counts.items()):
        updated = ListImpact.objects.filter(hash_list_id=list_pk, week=week).update(
            matches=F("matches") + count
        )
        if not updated:
            with connection.cursor() as cursor:
                # Two requests may both find no row: the constraint decides, and adds instead.
                cursor.execute(
                    "INSERT INTO sharing_listimpact (hash_list_id, week, matches)"
                    " VALUES (%s, %s, %s) ON CONFLICT (hash_list_id, week)"
                    " DO UPDATE SET matches = sharing_listimpact.matches + EXCLUDED.matches",
                    [list_pk, week, count],
                )


@transaction.atomic
def preferences_set(*, org: Organization, ignore_disputed: bool, actor: Actor) -> None:
    """Whether ``org``'s matches leave out community entries marked disputed. Audited."""
    prefs, _ = SharingPreferences.objects.get_or_create(organization=org)
    if prefs.ignore_disputed == ignore_disputed:
        return
    prefs.ignore_disputed = ignore_disputed
    prefs.save(update_fields=["ignore_disputed"])
    audit(
        actor=actor,
        action="sharing.preferences_changed",
        organization=org,
        target_type="organization",
        target_id=org.slug,
        metadata={"ignore_disputed": ignore_disputed},
    )


@transaction.atomic
def list_owner_reveal(*, hash_list: HashList, reason: str, actor: Actor) -> Organization:
    """Staff only: who owns a (possibly anonymous) list. The owner's audit log records it.

    ``reason`` is required and kept with the event; the staff check is the caller's.
    """
    reason = reason.strip()
    if not reason:
        raise ServiceError("reason_required", "Say why you need to know who owns this list.")
    owner = hash_list.organization
    if owner is None:
        raise ServiceError("not_found", "No such list.", status=404)
    audit_list(
        actor=actor,
        action="list.owner_revealed",
        hash_list=hash_list,
        metadata={"name": hash_list.name, "visibility": hash_list.visibility, "reason": reason},
    )
    return owner


def _source_list_pks(source: Source) -> list[int]:
    return list(HashList.objects.filter(source=source).values_list("pk", flat=True))


@transaction.atomic
def entitlement_set(*, source: Source, org: Organization, granted: bool, actor: Actor) -> bool:
    """Staff grant (or withdraw) an organisation's access to a gated source. Audited in the
    organisation's log; matching and the export feed follow at once. Returns whether it changed.
    """
    existing = SourceEntitlement.objects.filter(source=source, organization=org)
    if granted == existing.exists():
        return False
    if granted:
        SourceEntitlement.objects.create(
            source=source, organization=org, granted_by_label=actor.label[:200]
        )
    else:
        existing.delete()
    audit(
        actor=actor,
        action="source.access_granted" if granted else "source.access_revoked",
        organization=org,
        target_type="source",
        target_id=source.public_id,
        metadata={"source": source.name},
    )
    with scopes_disabled():
        access_sync(orgs=[org.pk], lists=_source_list_pks(source))
    return True


@transaction.atomic
def source_access_set(*, source: Source, access: str, actor: Actor) -> Source:
    """Open a source to every approved organisation, or to granted ones only. Audited."""
    if access not in Source.Access.values:
        raise ServiceError("invalid_access", "access must be one of: all, granted.")
    if source.access == access:
        return source
    previous = source.access
    source.access = access
    source.save(update_fields=["access"])
    audit(
        actor=actor,
        action="source.access_changed",
        organization=None,
        target_type="source",
        target_id=source.public_id,
        metadata={"source": source.name, "from": previous, "to": access},
    )
    with scopes_disabled():
        access_sync(lists=_source_list_pks(source))
    return source


@dataclass(frozen=True)
class AnonymousPublication:
    """One batch: the entry changes published and the access changes released with them."""

    changes: int
    access: AccessDrift


@transaction.atomic
def anonymous_publish() -> AnonymousPublication:
    """Publish the due changes of anonymous lists to other organisations, as one batch.

    Run on a fixed clock (``HASHHUB_ANONYMOUS_PUBLISH_MINUTES``, the beat task
    ``sharing.publish_anonymous``): entry adds and removals first (lists.changes, in random
    order), then the grants and revokes of anonymous lists that their owners' changes caused,
    numbered after them so a grant takes in the entries just published. Whose change it was,
    and when, is not in the numbers.
    """
    published = publish_pending()
    # Every pair whose change waited (only anonymous lists' do: all else syncs at once).
    drift = access_sync(anonymous=True)
    return AnonymousPublication(changes=published, access=drift)
