"""Reads of organisations, members, invitations, keys and audit events."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from hub.models import ApiKey, AuditEvent, Invitation, Membership, Organization, User


def memberships_of(*, user: User) -> QuerySet[Membership]:
    """Every organisation the user belongs to (for the org switcher), by name."""
    return (
        Membership.objects.filter(user=user, organization__deleted_at__isnull=True)
        .select_related("organization")
        .order_by("organization__name")
    )


def membership_for(*, user: User, org_slug: str) -> Membership | None:
    """The user's membership of the organisation, or None: also for a deleted organisation
    (hub.offboarding), which its members no longer reach."""
    return (
        Membership.objects.filter(
            user=user, organization__slug=org_slug, organization__deleted_at__isnull=True
        )
        .select_related("organization")
        .first()
    )


def user_has_mfa(user: User) -> bool:
    from allauth.mfa.adapter import get_adapter

    return bool(get_adapter().is_mfa_enabled(user))


def members_of(*, org: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=org).select_related("user").order_by("user__email")
    )


def get_membership(*, org: Organization, public_id: str) -> Membership:
    """One member of ``org``; 404 for a missing id and for another org's member alike."""
    return get_object_or_404(
        Membership.objects.select_related("user", "organization"),
        organization=org,
        public_id=public_id,
    )


def invitations_pending(*, org: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(
        organization=org,
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def get_invitation(*, org: Organization, public_id: str) -> Invitation:
    return get_object_or_404(
        Invitation.objects.select_related("organization"), organization=org, public_id=public_id
    )


def api_keys_of(*, org: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=org).select_related("created_by")


def get_api_key(*, org: Organization, public_id: str) -> ApiKey:
    return get_object_or_404(
        ApiKey.objects.select_related("organization"), organization=org, public_id=public_id
    )


def audit_events_of(
    *,
    org: Organization,
    action: str = "",
    actor: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.filter(organization=org)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if since:
        events = events.filter(created__gte=since)
    if until:
        events = events.filter(created__lt=until)
    return events.order_by("-created", "-id")


def audit_actions_of(*, org: Organization) -> list[str]:
    return list(
        AuditEvent.objects.filter(organization=org)
        .order_by("action")
        .values_list("action", flat=True)
        .distinct()
    )


def dashboard_counts(*, org: Organization) -> dict[str, int]:
    now = timezone.now()
    week_ago = now - timedelta(days=7)
    # Active: neither revoked nor expired (an expired key is refused like a revoked one).
    active = ApiKey.objects.filter(organization=org, revoked_at__isnull=True).exclude(
        expires_at__lte=now
    )
    return {
        "members": Membership.objects.filter(organization=org).count(),
        "pending_invitations": invitations_pending(org=org).count(),
        "active_keys": active.count(),
        "keys_used_this_week": active.filter(last_used_at__gte=week_ago).count(),
        "audit_events_this_week": AuditEvent.objects.filter(
            organization=org, created__gte=week_ago
        ).count(),
    }


def organizations_for_staff(*, pending_only: bool = False) -> QuerySet[Organization]:
    """Every organisation but the purged ones (tombstones kept for the audit log)."""
    orgs = Organization.objects.filter(purged_at__isnull=True).order_by("approved", "-created")
    if pending_only:
        orgs = orgs.filter(approved=False)
    return orgs
