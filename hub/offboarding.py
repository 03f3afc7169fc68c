"""Organisation offboarding: a member leaves; an owner, or staff for a suspended organisation,
deletes it; staff restore it within the grace period; beat purges it afterwards.

Deleting (:func:`organization_delete`) acts at once and keeps the data for the grace period
(``HASHHUB_ORG_DELETION_GRACE_DAYS``):

* the organisation is marked deleted and no longer approved, and ``organization_approval_changed``
  is sent, so sharing applies the access rules it applies to a suspension: every subscriber stops
  matching its shared lists at once, and the export of each gets the removals (open lists at once,
  anonymous lists with the next publication, as for any change their owner causes);
* its API keys are revoked, its pending invitations revoked, its webhooks disabled;
* its members lose it: every page under ``/o/<slug>/`` answers 404 (hub.selectors).

Restoring (:func:`organization_restore`, staff, within the grace period) brings back the
organisation, its members, lists, entries, subscriptions (its own and other organisations' to its
lists) and settings, still suspended: staff approve it again to resume sharing, which grants the
subscribers' access again through the same rules. Revoked keys and invitations stay revoked and
webhooks stay disabled: owners issue new keys and turn webhooks back on.

Purging (:func:`organization_purge`, beat, once the grace period is over) asks the higher apps
(``organization_purging``) to delete its lists (every entry tombstoned, so every process's match
index drops them and every export carries the removal) and deletes every row that belongs to the
organisation through a cascading foreign key: members, invitations, detections, kept
submissions, allow list, webhooks and deliveries, disputes it raised, subscriptions, match policy,
quotas. A day later (:func:`organization_erase`, ``organization_erasing``) the tombstoned entries
themselves are erased: not at once, so that every process has read the tombstones first. The
entries of a list no other organisation ever had access to are deleted; those of a list that was
shared keep a bare tombstone (list, hash, change numbers; no labels, notes or provenance), so
that a platform whose export was told of the additions is still told of the removals.

What stays: the audit log, which is append-only (the database refuses to change or delete its
rows, migrations 0002 and 0004); the ``Organization`` row its lines point to, renamed to a
tombstone; its API key rows (revoked, referenced by audit lines); its list rows, renamed, which
other organisations' detections and access log point to.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.db import models, transaction
from django.dispatch import Signal
from django.utils import timezone
from django_scopes import scopes_disabled

from hub import services
from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import ApiKey, Invitation, Membership, Organization
from hub.permissions import Role

# Sent inside the purge's transaction: the higher apps delete the organisation's lists (their
# entries tombstoned). ``hub`` may not import them (DESIGN.md).
organization_purging = Signal()
# Sent inside the erase's transaction, a day after the purge: the tombstoned entries go.
organization_erasing = Signal()

# How long after the purge the tombstoned entries are erased: every process reads the change
# sequence on its next request, so by then each has dropped them from its index.
ERASE_AFTER = timedelta(days=1)

# Rows that point to an organisation through a cascading foreign key and stay when it is purged:
# its API keys (audit lines and entries' provenance point to them; revoked at deletion). Its
# lists and audit lines protect the organisation row and are never cascaded anyway.
KEPT_ON_PURGE = frozenset({ApiKey._meta.label_lower})

DELETED_NAME = "Deleted organisation"


def _grace() -> timedelta:
    return timedelta(days=settings.HASHHUB_ORG_DELETION_GRACE_DAYS)


def _locked(org: Organization) -> Organization:
    """The organisation's row, locked for the rest of the transaction, as it is now."""
    return Organization.objects.select_for_update().get(pk=org.pk)


def _audit(org: Organization, actor: Actor, action: str, metadata: dict[str, Any]) -> None:
    audit(
        actor=actor,
        action=action,
        organization=org,
        target_type="organization",
        target_id=org.slug,
        metadata=metadata,
    )


# --- leaving ----------------------------------------------------------------------------------


@transaction.atomic
def organization_leave(*, membership: Membership, actor: Actor) -> None:
    """The member of ``membership`` leaves its organisation (any role may).

    The last owner may not (ServiceError ``last_owner``): an organisation always keeps an owner,
    who can make another member owner first, or delete the organisation. Audits
    ``membership.left``.
    """
    org = _locked(membership.organization)
    if membership.role == Role.OWNER:
        owners = Membership.objects.filter(organization=org, role=Role.OWNER).count()
        if owners <= 1:
            raise ServiceError(
                "last_owner",
                "You are this organisation's only owner: make another member an owner before "
                "you leave, or delete the organisation.",
            )
    audit(
        actor=actor,
        action="membership.left",
        organization=org,
        target_type="membership",
        target_id=membership.public_id,
        metadata={"email": membership.user.email, "role": membership.role},
    )
    membership.delete()


# --- deleting and restoring -------------------------------------------------------------------


def _disable_webhooks(org: Organization) -> int:
    # The webhooks belong to ``matching``, which hub may not import: the model is looked up by
    # name, and only its ``enabled`` flag is written.
    endpoint = apps.get_model("matching", "WebhookEndpoint")
    return int(endpoint._base_manager.filter(organization=org, enabled=True).update(enabled=False))


@transaction.atomic
def organization_delete(
    *, org: Organization, confirm: str, actor: Actor, by_staff: bool = False
) -> Organization:
    """Delete ``org``: hidden and cut off at once, its data purged after the grace period.

    ``confirm`` must be the organisation's short name, typed (ServiceError ``confirm_mismatch``).
    Staff (``by_staff``) delete only a suspended organisation (``organization_not_suspended``):
    an approved one is either suspended first or deleted by its owner. Side effects: its keys and
    pending invitations revoked and its webhooks disabled (each key and invitation audited), the
    access rules applied as for a suspension (``organization_approval_changed``), and the audit
    event ``organization.deleted`` with the day it will be purged.
    """
    org = _locked(org)
    if org.deleted_at is not None:
        raise ServiceError("organization_deleted", f"{org.name} is already deleted.")
    if confirm.strip() != org.slug:
        raise ServiceError(
            "confirm_mismatch",
            f"Type the organisation's short name, “{org.slug}”, to confirm the deletion.",
        )
    if by_staff and org.approved:
        raise ServiceError(
            "organization_not_suspended",
            f"{org.name} is approved: staff delete only a suspended organisation. Suspend it "
            "first, or ask its owner to delete it.",
        )
    now = timezone.now()
    was_approved = org.approved
    org.deleted_at = now
    org.purge_after = now + _grace()
    org.approved = False
    org.approved_at = None
    org.save(update_fields=["deleted_at", "purge_after", "approved", "approved_at"])
    with scopes_disabled():
        keys = list(ApiKey.objects.filter(organization=org, revoked_at__isnull=True))
        invitations = list(
            Invitation.objects.filter(
                organization=org, accepted_at__isnull=True, revoked_at__isnull=True
            )
        )
    for key in keys:
        key.organization = org
        services.api_key_revoke(key=key, actor=actor)
    for invitation in invitations:
        invitation.organization = org
        if invitation.status == "pending":
            services.invitation_revoke(invitation=invitation, actor=actor)
    webhooks = _disable_webhooks(org)
    _audit(
        org,
        actor,
        "organization.deleted",
        {
            "name": org.name,
            "by_staff": by_staff,
            "was_approved": was_approved,
            "purge_after": org.purge_after.isoformat(),
            "keys_revoked": len(keys),
            "webhooks_disabled": webhooks,
        },
    )
    # Sharing applies the access rules (sharing.receivers.follow_approval): subscribers lose
    # its lists, and it loses what it subscribed to, with revoke events in every export.
    services.organization_approval_changed.send(sender=Organization, organization=org, actor=actor)
    return org


@transaction.atomic
def organization_restore(*, org: Organization, actor: Actor) -> Organization:
    """Staff bring a deleted organisation back within its grace period, still suspended.

    ServiceError ``organization_not_deleted`` or ``grace_over`` (purged, or due to be). Audits
    ``organization.restored``; approving it again is the staff's separate, audited step.
    """
    org = _locked(org)
    if org.deleted_at is None:
        raise ServiceError("organization_not_deleted", f"{org.name} is not deleted.")
    if org.purged_at is not None or (org.purge_after and org.purge_after <= timezone.now()):
        raise ServiceError(
            "grace_over",
            f"{org.name}'s grace period is over: its data is purged or being purged.",
        )
    deleted_at = org.deleted_at
    org.deleted_at = None
    org.purge_after = None
    org.save(update_fields=["deleted_at", "purge_after"])
    _audit(org, actor, "organization.restored", {"deleted_at": deleted_at.isoformat()})
    return org


# --- purging ----------------------------------------------------------------------------------


def _cascading_rows(org: Organization) -> list[tuple[str, models.QuerySet[Any]]]:
    """Every model's rows that point to ``org`` through a cascading foreign key (and would go
    if the organisation were deleted), but those kept (KEPT_ON_PURGE)."""
    found = []
    for model in apps.get_models():
        if model._meta.label_lower in KEPT_ON_PURGE:
            continue
        for field in model._meta.concrete_fields:
            if (
                field.is_relation
                and field.related_model is Organization
                and field.remote_field is not None
                and field.remote_field.on_delete is models.CASCADE
            ):
                found.append(
                    (model._meta.label_lower, model._base_manager.filter(**{field.name: org}))
                )
    return found


@transaction.atomic
def organization_purge(*, org: Organization, actor: Actor) -> dict[str, int]:
    """Purge a deleted organisation whose grace period is over; returns rows deleted per model.

    Sends ``organization_purging`` (its lists deleted, entries tombstoned), deletes its tenant
    rows, renames the row to a tombstone (its short name freed) and audits
    ``organization.purged``. ServiceError ``not_due`` before the grace period ends.
    """
    org = _locked(org)
    now = timezone.now()
    if org.deleted_at is None or org.purged_at is not None or not org.purge_after:
        raise ServiceError("not_due", f"{org.name} is not waiting to be purged.")
    if org.purge_after > now:
        raise ServiceError("not_due", f"{org.name} is purged after {org.purge_after:%Y-%m-%d}.")
    deleted: dict[str, int] = {}
    with scopes_disabled():
        organization_purging.send(sender=Organization, organization=org, actor=actor)
        for _model, rows in _cascading_rows(org):
            _, per_model = rows.delete()
            for model_label, count in per_model.items():
                if count:
                    deleted[model_label.lower()] = deleted.get(model_label.lower(), 0) + count
    slug = org.slug
    org.name = DELETED_NAME
    org.slug = f"deleted-{secrets.token_hex(6)}"
    org.require_mfa = False
    org.purged_at = now
    org.save(update_fields=["name", "slug", "require_mfa", "purged_at"])
    audit(
        actor=actor,
        action="organization.purged",
        organization=org,
        target_type="organization",
        target_id=slug,
        metadata={"deleted": dict(sorted(deleted.items()))},
    )
    return deleted


@transaction.atomic
def organization_erase(*, org: Organization, actor: Actor) -> None:
    """Erase a purged organisation's tombstoned entries (``organization_erasing``), a day or more
    after the purge. Audits ``organization.erased``. ServiceError ``not_due`` otherwise."""
    org = _locked(org)
    if org.purged_at is None or org.erased_at is not None:
        raise ServiceError("not_due", "This organisation is not waiting to be erased.")
    if org.purged_at > timezone.now() - ERASE_AFTER:
        raise ServiceError("not_due", "Its entries are erased a day after the purge.")
    with scopes_disabled():
        organization_erasing.send(sender=Organization, organization=org, actor=actor)
    org.erased_at = timezone.now()
    org.save(update_fields=["erased_at"])
    _audit(org, actor, "organization.erased", {})


def organizations_purge_due() -> dict[str, int]:
    """Purge every deleted organisation whose grace period is over, and erase the entries of
    every one purged a day or more ago; each in its own transaction (beat). Returns how many."""
    now = timezone.now()
    actor = Actor(system="organisation purge")
    purged = erased = 0
    for org in Organization.objects.filter(
        deleted_at__isnull=False, purged_at__isnull=True, purge_after__lte=now
    ).order_by("pk"):
        organization_purge(org=org, actor=actor)
        purged += 1
    for org in Organization.objects.filter(
        purged_at__lte=now - ERASE_AFTER, erased_at__isnull=True
    ).order_by("pk"):
        organization_erase(org=org, actor=actor)
        erased += 1
    return {"purged": purged, "erased": erased}
