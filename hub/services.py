"""Every change to organisations, members, invitations and API keys, audited where it happens."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import cache

from django.conf import settings
from django.core.mail import send_mail
from django.db import connection, transaction
from django.dispatch import Signal
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from hub.errors import ServiceError
from hub.models import ApiKey, Invitation, Membership, Organization, User
from hub.permissions import ROLES_GRANTABLE_BY, Role
from hub.quotas import quota_check_api_keys

# Sent inside the transaction that created an organisation; `lists` gives it its own lists.
organization_created = Signal()
# Sent (inside the transaction) when staff approve or suspend an organisation, so that sharing can
# grant or revoke community access, which hub may not import.
organization_approval_changed = Signal()

API_KEY_PREFIX = "hh_"
# The longest a key may be created for when it is given an expiry in days (ten years).
MAX_API_KEY_DAYS = 3650


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- organisations ---------------------------------------------------------------------------


@transaction.atomic
def organization_create(
    *, name: str, slug: str = "", owner: User | None, actor: Actor, approved: bool = False
) -> Organization:
    """Create an organisation, make ``owner`` its owner, and announce it (``organization_created``).

    Raises ServiceError ``slug_taken`` or ``invalid_name``.
    """
    name = name.strip()
    if not name or len(name) > 120:
        raise ServiceError("invalid_name", "An organisation needs a name of 1 to 120 characters.")
    slug = slugify(slug or name)[:60]
    if not slug:
        raise ServiceError("invalid_slug", "The short name must contain letters or digits.")
    if Organization.objects.filter(slug=slug).exists():
        raise ServiceError("slug_taken", f"The short name “{slug}” is already taken.")
    org = Organization.objects.create(
        name=name, slug=slug, approved=approved, approved_at=timezone.now() if approved else None
    )
    if owner is not None:
        Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    audit(
        actor=actor,
        action="organization.created",
        organization=org,
        target_type="organization",
        target_id=org.slug,
        metadata={"name": name, "approved": approved},
    )
    organization_created.send(sender=Organization, organization=org, actor=actor)
    return org


@transaction.atomic
def organization_set_approved(*, org: Organization, approved: bool, actor: Actor) -> Organization:
    """Staff approve (or suspend) an organisation's access to the community and verified sources."""
    org.approved = approved
    org.approved_at = timezone.now() if approved else None
    org.save(update_fields=["approved", "approved_at"])
    audit(
        actor=actor,
        action="organization.approved" if approved else "organization.unapproved",
        organization=org,
        target_type="organization",
        target_id=org.slug,
    )
    organization_approval_changed.send(sender=Organization, organization=org, actor=actor)
    return org


@transaction.atomic
def organization_update_settings(
    *, org: Organization, name: str, require_mfa: bool, actor: Actor
) -> Organization:
    name = name.strip()
    if not name or len(name) > 120:
        raise ServiceError("invalid_name", "An organisation needs a name of 1 to 120 characters.")
    changes: dict[str, list[object]] = {}
    if name != org.name:
        changes["name"] = [org.name, name]
    if require_mfa != org.require_mfa:
        changes["require_mfa"] = [org.require_mfa, require_mfa]
    org.name = name
    org.require_mfa = require_mfa
    org.save(update_fields=["name", "require_mfa"])
    if changes:
        audit(
            actor=actor,
            action="organization.settings_changed",
            organization=org,
            target_type="organization",
            target_id=org.slug,
            metadata=changes,
        )
    return org


# --- hub staff ---------------------------------------------------------------------------------


@transaction.atomic
def user_set_staff(*, user: User, staff: bool, actor: Actor) -> User:
    """Grant or remove hub staff status; every path that changes ``is_staff`` comes through here.

    Staff status opens the staff pages (approvals, sources, entitlements, anonymous-owner
    lookups), so it is audited like any grant: ``staff.granted`` or ``staff.removed``, with no
    organisation (hub staff read it), when the status changes; nothing when it already was so.
    """
    if user.is_staff == staff:
        return user
    user.is_staff = staff
    user.save(update_fields=["is_staff"])
    audit(
        actor=actor,
        action="staff.granted" if staff else "staff.removed",
        organization=None,
        target_type="user",
        target_id=str(user.pk),
        metadata={"email": user.email},
    )
    return user


# --- members and invitations -----------------------------------------------------------------


def _check_can_grant(*, granter: Role, role: Role) -> None:
    if role not in ROLES_GRANTABLE_BY[granter]:
        raise ServiceError(
            "role_not_grantable", f"A {granter.label} cannot grant the role {role.label}."
        )


def _owners(org: Organization) -> int:
    return Membership.objects.filter(organization=org, role=Role.OWNER).count()


@transaction.atomic
def invitation_create(
    *, org: Organization, email: str, role: str, granter: Role, actor: Actor
) -> tuple[Invitation, str]:
    """Invite ``email`` with ``role``; e-mails the link and returns (invitation, token).

    Raises ServiceError ``invalid_role``, ``role_not_grantable`` or ``already_member``.
    """
    email = email.strip().lower()
    try:
        wanted = Role(role)
    except ValueError:
        raise ServiceError("invalid_role", f"“{role}” is not a role.") from None
    _check_can_grant(granter=granter, role=wanted)
    if Membership.objects.filter(organization=org, user__email__iexact=email).exists():
        raise ServiceError("already_member", f"{email} is already a member of {org.name}.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=org,
        email=email,
        role=wanted,
        token_hash=_sha256(token),
        invited_by=actor.user,
        expires_at=timezone.now() + timedelta(days=settings.HASHHUB_INVITATION_DAYS),
    )
    audit(
        actor=actor,
        action="invitation.created",
        organization=org,
        target_type="invitation",
        target_id=invitation.public_id,
        metadata={"email": email, "role": wanted},
    )
    link = f"{settings.SITE_URL}/invitations/{token}/"
    body = render_to_string(
        "hub/email/invitation.txt",
        {"org": org, "role": wanted.label, "link": link, "invitation": invitation},
    )
    transaction.on_commit(
        lambda: send_mail(
            f"[HashHub] You are invited to join {org.name}",
            body,
            settings.DEFAULT_FROM_EMAIL,
            [email],
        )
    )
    return invitation, token


def invitation_by_token(token: str) -> Invitation | None:
    """The pending invitation behind a link token, or None. Works outside any tenant scope."""
    with scopes_disabled():
        return (
            Invitation.objects.select_related("organization")
            .filter(token_hash=_sha256(token))
            .first()
        )


@transaction.atomic
def invitation_accept(*, token: str, user: User, actor: Actor) -> Membership:
    """Turn an invitation into a membership for ``user`` (whose verified e-mail must match)."""
    invitation = invitation_by_token(token)
    if invitation is None or invitation.status != "pending":
        raise ServiceError(
            "invitation_invalid", "This invitation link is invalid, used, revoked or expired."
        )
    if invitation.email.lower() != user.email.lower():
        raise ServiceError(
            "invitation_wrong_user",
            "This invitation was sent to another address; log in as that address to accept it.",
        )
    org = invitation.organization
    membership, created = Membership.objects.get_or_create(
        organization=org, user=user, defaults={"role": invitation.role}
    )
    with scopes_disabled():
        Invitation.objects.filter(pk=invitation.pk).update(
            accepted_at=timezone.now(), accepted_by=user
        )
    audit(
        actor=actor,
        action="invitation.accepted",
        organization=org,
        target_type="membership",
        target_id=membership.public_id,
        metadata={"email": user.email, "role": membership.role, "new": created},
    )
    return membership


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> None:
    if invitation.status != "pending":
        raise ServiceError("invitation_not_pending", "Only a pending invitation can be revoked.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit(
        actor=actor,
        action="invitation.revoked",
        organization=invitation.organization,
        target_type="invitation",
        target_id=invitation.public_id,
        metadata={"email": invitation.email},
    )


@transaction.atomic
def membership_change_role(
    *, membership: Membership, role: str, granter: Role, actor: Actor
) -> Membership:
    """Change a member's role. Only owners touch owners; the last owner cannot be demoted."""
    try:
        wanted = Role(role)
    except ValueError:
        raise ServiceError("invalid_role", f"“{role}” is not a role.") from None
    current = Role(membership.role)
    _check_can_grant(granter=granter, role=wanted)
    _check_can_grant(granter=granter, role=current)
    Organization.objects.select_for_update().get(pk=membership.organization_id)
    if current == Role.OWNER and wanted != Role.OWNER and _owners(membership.organization) <= 1:
        raise ServiceError("last_owner", "An organisation must keep at least one owner.")
    membership.role = wanted
    membership.save(update_fields=["role"])
    audit(
        actor=actor,
        action="membership.role_changed",
        organization=membership.organization,
        target_type="membership",
        target_id=membership.public_id,
        metadata={"email": membership.user.email, "from": current, "to": wanted},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, granter: Role, actor: Actor) -> None:
    current = Role(membership.role)
    _check_can_grant(granter=granter, role=current)
    Organization.objects.select_for_update().get(pk=membership.organization_id)
    if current == Role.OWNER and _owners(membership.organization) <= 1:
        raise ServiceError("last_owner", "An organisation must keep at least one owner.")
    audit(
        actor=actor,
        action="membership.removed",
        organization=membership.organization,
        target_type="membership",
        target_id=membership.public_id,
        metadata={"email": membership.user.email, "role": current},
    )
    membership.delete()


# --- API keys -------------------------------------------------------------------------------


def _parse_scopes(scopes: Iterable[str]) -> list[str]:
    wanted = sorted(set(scopes))
    valid = set(ApiKey.Scope.values)
    unknown = [s for s in wanted if s not in valid]
    if unknown:
        raise ServiceError(
            "invalid_scope", f"Unknown scope(s): {', '.join(unknown)}.", {"valid": sorted(valid)}
        )
    if not wanted:
        raise ServiceError(
            "invalid_scope", "A key needs at least one scope.", {"valid": sorted(valid)}
        )
    return wanted


def _expiry_sentence(expires_at: datetime) -> str:
    return f"{expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


@transaction.atomic
def api_key_create(
    *,
    org: Organization,
    name: str,
    scopes: Iterable[str],
    actor: Actor,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never retrievable again.

    ``expires_at`` (None: never) must lie in the future. Writes ``api_key.created``.
    Raises ServiceError ``invalid_name``, ``invalid_scope``, ``invalid_expiry`` or
    ``quota_exceeded`` (hub.quotas).
    """
    name = name.strip()
    if not name or len(name) > 80:
        raise ServiceError("invalid_name", "A key needs a name of 1 to 80 characters.")
    scope_list = _parse_scopes(scopes)
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError(
            "invalid_expiry",
            f"A new key must expire in the future, not at {_expiry_sentence(expires_at)}.",
        )
    quota_check_api_keys(org=org)
    prefix = secrets.token_hex(4)
    secret = f"{API_KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        organization=org,
        name=name,
        prefix=prefix,
        secret_hash=_sha256(secret),
        scopes=scope_list,
        created_by=actor.user,
        expires_at=expires_at,
    )
    audit(
        actor=actor,
        action="api_key.created",
        organization=org,
        target_type="api_key",
        target_id=key.public_id,
        metadata={
            "name": name,
            "scopes": scope_list,
            "prefix": prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return key, secret


def api_key_expiry_in(days: int | None) -> datetime | None:
    """When a key created now for ``days`` days expires (None: never), for forms and commands."""
    if days is None:
        return None
    if not 1 <= days <= MAX_API_KEY_DAYS:
        raise ServiceError(
            "invalid_expiry", f"A key expires after 1 to {MAX_API_KEY_DAYS} days, or never."
        )
    return timezone.now() + timedelta(days=days)


@transaction.atomic
def api_key_revoke(*, key: ApiKey, actor: Actor) -> ApiKey:
    if key.revoked_at is not None:
        raise ServiceError("key_revoked", "This key is already revoked.")
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    audit(
        actor=actor,
        action="api_key.revoked",
        organization=key.organization,
        target_type="api_key",
        target_id=key.public_id,
        metadata={"name": key.name, "prefix": key.prefix},
    )
    return key


@transaction.atomic
def api_key_rotate(*, key: ApiKey, actor: Actor) -> tuple[ApiKey, str]:
    """Revoke ``key`` and issue a new one with the same name, scopes and expiry.

    Returns the new key and its secret. An expired key is not rotated (its successor would be
    expired too): ServiceError ``key_expired``; a revoked one raises ``key_revoked``.
    """
    if key.revoked_at is None and key.expires_at is not None and key.expired:
        raise ServiceError(
            "key_expired",
            f"This key expired at {_expiry_sentence(key.expires_at)}; "
            "create a new key (and revoke this one) instead of rotating it.",
        )
    api_key_revoke(key=key, actor=actor)
    new_key, secret = api_key_create(
        org=key.organization,
        name=key.name,
        scopes=key.scopes,
        actor=actor,
        expires_at=key.expires_at,
    )
    audit(
        actor=actor,
        action="api_key.rotated",
        organization=key.organization,
        target_type="api_key",
        target_id=new_key.public_id,
        metadata={"replaces": key.public_id},
    )
    return new_key, secret


@cache
def _api_key_lookup_sql(also: str) -> tuple[str, list[str], list[str]]:
    key_columns = [f.column for f in ApiKey._meta.concrete_fields]
    org_columns = [f.column for f in Organization._meta.concrete_fields]
    select = ", ".join([f'k."{c}"' for c in key_columns] + [f'o."{c}"' for c in org_columns])
    if also:
        select += f", ({also})"
    # Built once per caller from the models' own column names and a constant of the caller's
    # code, never from input.
    sql = (
        f"SELECT {select} FROM {ApiKey._meta.db_table} k "  # noqa: S608
        f"JOIN {Organization._meta.db_table} o ON o.id = k.organization_id "
        "WHERE k.secret_hash = %s AND k.revoked_at IS NULL"
    )
    return (
        sql,
        [f.attname for f in ApiKey._meta.concrete_fields],
        [f.attname for f in Organization._meta.concrete_fields],
    )


def api_key_authenticate(secret: str, *, also: str = "") -> ApiKey | None:
    """The active key behind a presented secret, or None. Records when it was last used.

    An expired key raises ServiceError ``key_expired`` (status 401), saying when it expired,
    rather than reading as unknown: whoever holds its secret learns only what they could tell.

    Every API request comes through here, so the lookup is one hand-written statement (key and
    organisation together) rather than an ORM query compiled anew on each call. ``also`` is a
    scalar SQL query (a constant of the caller's code) answered in the same round trip; its value
    is set on the key as ``lookup_also`` (the match API reads the change number this way).
    """
    if not secret.startswith(API_KEY_PREFIX) or len(secret) > 200:
        return None
    sql, key_fields, org_fields = _api_key_lookup_sql(also)
    with connection.cursor() as cursor:
        cursor.execute(sql, [_sha256(secret)])
        row = cursor.fetchone()
    if row is None:
        return None
    key = ApiKey.from_db(connection.alias, key_fields, row[: len(key_fields)])
    org_end = len(key_fields) + len(org_fields)
    key.organization = Organization.from_db(
        connection.alias, org_fields, row[len(key_fields) : org_end]
    )
    key.lookup_also = row[org_end] if also else None
    now = timezone.now()
    if key.expires_at is not None and key.expires_at <= now:
        raise ServiceError(
            "key_expired",
            f"This API key expired at {_expiry_sentence(key.expires_at)}; "
            "ask an owner or admin of the organisation for a new key.",
            {"expired_at": key.expires_at.isoformat()},
            status=401,
        )
    # Write last-used at most once a minute per key, so hot keys do not write on every call.
    if (
        key.last_used_at is None
        or now - key.last_used_at > settings.HASHHUB_API_KEY_LAST_USED_RESOLUTION
    ):
        with scopes_disabled():
            ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key
