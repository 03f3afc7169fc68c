"""Web pages of the hub: dashboard, members, invitations, API keys, audit log, staff approval."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from hub import activity, offboarding, quotas, retention, selectors, services
from hub.audit import Actor
from hub.decorators import (
    member_may,
    org_permission,
    reauthentication_required,
    staff_required,
)
from hub.errors import ServiceError
from hub.forms import (
    ApiKeyForm,
    AuditFilterForm,
    InvitationForm,
    OrganizationForm,
    OrganizationQuotaForm,
    OrganizationSettingsForm,
    RoleForm,
)
from hub.middleware import LAST_ORG_SESSION_KEY, OrgRequest
from hub.models import Organization
from hub.permissions import Role

logger = logging.getLogger(__name__)


def _role(request: OrgRequest) -> Role:
    return Role(request.membership.role)


# --- health ---------------------------------------------------------------------------------


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check(probe: Callable[[], bool]) -> str:
    try:
        return "ok" if probe() else "unavailable"
    except Exception:  # Any failure means "not ready"; the detail is logged, not shown.
        logger.warning("readiness probe %s failed", probe.__name__, exc_info=True)
        return "unavailable"


def _database_answers() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        return cursor.fetchone() == (1,)


def _cache_answers() -> bool:
    cache.set("readyz", "1", 5)
    return cache.get("readyz") == "1"


def _broker_answers() -> bool:
    from django.conf import settings

    from hub.celery import app

    with app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        return bool(conn.connected)


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Ready when the database, the cache (Redis) and the Celery broker all answer."""
    checks = {
        "database": _check(_database_answers),
        "cache": _check(_cache_answers),
        "broker": _check(_broker_answers),
    }
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


# --- landing and organisations ------------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("account_login")
    memberships = list(selectors.memberships_of(user=request.user))
    if not memberships:
        return redirect("org_create")
    last = request.session.get(LAST_ORG_SESSION_KEY)
    chosen = next((m for m in memberships if m.organization.slug == last), memberships[0])
    return redirect("dashboard", org_slug=chosen.organization.slug)


@login_required
def mfa_required(request: HttpRequest) -> HttpResponse:
    return render(request, "hub/mfa_required.html")


@login_required
def org_create(request: HttpRequest) -> HttpResponse:
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(
                name=form.cleaned_data["name"],
                slug=form.cleaned_data["slug"],
                owner=request.user,  # type: ignore[arg-type]
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                f"{org.name} was created. Hub staff will review it before it can see shared lists.",
            )
            return redirect("dashboard", org_slug=org.slug)
    return render(
        request, "hub/org_create.html", {"form": form}, status=400 if form.errors else 200
    )


@org_permission("org.read")
def dashboard(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    context = {
        "counts": selectors.dashboard_counts(org=org),
        "recent_events": activity.recent_activity(
            org=org, events=selectors.audit_events_of(org=org).select_related("actor_user")[:8]
        )
        if member_may(request, "audit.read")
        else [],
    }
    return render(request, "hub/dashboard.html", context)


def _turns_required_mfa_off(request: HttpRequest) -> bool:
    """Whether this POST switches the organisation's two-factor requirement off."""
    org = request.organization  # type: ignore[attr-defined]
    field = OrganizationSettingsForm.base_fields["require_mfa"]
    return bool(org.require_mfa) and not field.widget.value_from_datadict(
        request.POST, request.FILES, "require_mfa"
    )


@org_permission("org.settings")
@reauthentication_required(when=_turns_required_mfa_off)
def org_settings(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    form = OrganizationSettingsForm(
        request.POST or None, initial={"name": org.name, "require_mfa": org.require_mfa}
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.organization_update_settings(
                org=org,
                name=form.cleaned_data["name"],
                require_mfa=form.cleaned_data["require_mfa"],
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, "Settings saved.")
            return redirect("org_settings", org_slug=org.slug)
    context = {
        "form": form,
        "quotas": quotas.quota_usage(org=org),
        "grace_days": settings.HASHHUB_ORG_DELETION_GRACE_DAYS,
        "retention": retention.policy(),
    }
    return render(request, "hub/org_settings.html", context, status=400 if form.errors else 200)


@require_POST
@org_permission("org.settings")
@reauthentication_required
def org_delete(request: OrgRequest, org_slug: str) -> HttpResponse:
    """An owner deletes the organisation (hub.offboarding), typing its short name to confirm."""
    try:
        org = offboarding.organization_delete(
            org=request.organization,
            confirm=request.POST.get("confirm", ""),
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("org_settings", org_slug=org_slug)
    messages.success(
        request,
        f"{org.name} was deleted. Hub staff can restore it until "
        f"{org.purge_after:%Y-%m-%d}; then its data is purged.",
    )
    return redirect("home")


# --- members and invitations ---------------------------------------------------------------------


@org_permission(
    "org.read", post="members.manage", denied="Only owners and admins may invite members."
)
def members(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    form = InvitationForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.invitation_create(
                    org=org,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                    granter=_role(request),
                    actor=Actor.from_request(request),
                )
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("members", org_slug=org.slug)
        status = 400
    context = {
        "form": form,
        "members": selectors.members_of(org=org),
        "invitations": selectors.invitations_pending(org=org),
        "roles": Role.choices,
    }
    return render(request, "hub/members.html", context, status=status)


@require_POST
@org_permission("members.manage")
@reauthentication_required
def member_role(request: OrgRequest, org_slug: str, member_id: str) -> HttpResponse:
    membership = selectors.get_membership(org=request.organization, public_id=member_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the listed roles.")
        return redirect("members", org_slug=org_slug)
    try:
        services.membership_change_role(
            membership=membership,
            role=form.cleaned_data["role"],
            granter=_role(request),
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"{membership.user.email} is now {membership.get_role_display()}."
        )
    return redirect("members", org_slug=org_slug)


@require_POST
@org_permission("members.manage")
@reauthentication_required
def member_remove(request: OrgRequest, org_slug: str, member_id: str) -> HttpResponse:
    membership = selectors.get_membership(org=request.organization, public_id=member_id)
    try:
        services.membership_remove(
            membership=membership, granter=_role(request), actor=Actor.from_request(request)
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{membership.user.email} was removed.")
    if membership.user_id == request.user.pk:
        return redirect("home")
    return redirect("members", org_slug=org_slug)


@require_POST
@org_permission("org.read")
def member_leave(request: OrgRequest, org_slug: str) -> HttpResponse:
    """The member leaves the organisation (the last owner may not)."""
    try:
        offboarding.organization_leave(
            membership=request.membership, actor=Actor.from_request(request)
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("members", org_slug=org_slug)
    messages.success(request, f"You left {request.organization.name}.")
    return redirect("home")


@require_POST
@org_permission("members.manage")
def invitation_revoke(request: OrgRequest, org_slug: str, invitation_id: str) -> HttpResponse:
    invitation = selectors.get_invitation(org=request.organization, public_id=invitation_id)
    try:
        services.invitation_revoke(invitation=invitation, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The invitation to {invitation.email} was revoked.")
    return redirect("members", org_slug=org_slug)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Show an invitation; a logged-in user with the invited e-mail accepts it with a POST."""
    invitation = services.invitation_by_token(token)
    if invitation is None:
        return render(request, "hub/invitation.html", {"invalid": True}, status=404)
    if not request.user.is_authenticated:
        return render(
            request, "hub/invitation.html", {"invitation": invitation, "needs_login": True}
        )
    error = None
    if request.method == "POST":
        try:
            membership = services.invitation_accept(
                token=token,
                user=request.user,
                actor=Actor.from_request(request),
            )
        except ServiceError as exc:
            error = exc.message
        else:
            messages.success(request, f"Welcome to {membership.organization.name}.")
            return redirect("dashboard", org_slug=membership.organization.slug)
    return render(
        request,
        "hub/invitation.html",
        {"invitation": invitation, "error": error},
        status=400 if error else 200,
    )


# --- API keys ----------------------------------------------------------------------------------


@org_permission("keys.manage")
@reauthentication_required
def api_keys(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    form = ApiKeyForm(request.POST or None)
    new_secret = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                _key, new_secret = services.api_key_create(
                    org=org,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    actor=Actor.from_request(request),
                    expires_at=services.api_key_expiry_in(form.cleaned_data["expires_days"]),
                )
            except ServiceError as error:
                form.add_error(None, error.message)
                status = 400
            else:
                # The secret is rendered into this one response and never stored or shown again.
                form = ApiKeyForm()
                status = 201
        else:
            status = 400
    context = {"form": form, "keys": selectors.api_keys_of(org=org), "new_secret": new_secret}
    response = render(request, "hub/api_keys.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@org_permission("keys.manage")
@reauthentication_required
def api_key_revoke(request: OrgRequest, org_slug: str, key_id: str) -> HttpResponse:
    key = selectors.get_api_key(org=request.organization, public_id=key_id)
    try:
        services.api_key_revoke(key=key, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"The key “{key.name}” was revoked; calls with it now fail.")
    return redirect("api_keys", org_slug=org_slug)


@require_POST
@org_permission("keys.manage")
@reauthentication_required
def api_key_rotate(request: OrgRequest, org_slug: str, key_id: str) -> HttpResponse:
    org = request.organization
    key = selectors.get_api_key(org=org, public_id=key_id)
    try:
        _new_key, secret = services.api_key_rotate(key=key, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect("api_keys", org_slug=org_slug)
    context = {
        "form": ApiKeyForm(),
        "keys": selectors.api_keys_of(org=org),
        "new_secret": secret,
        "rotated": key,
    }
    response = render(request, "hub/api_keys.html", context, status=201)
    response["Cache-Control"] = "no-store"
    return response


# --- audit log ----------------------------------------------------------------------------------


def _day_start(day: date | None) -> datetime | None:
    if day is None:
        return None
    return timezone.make_aware(datetime.combine(day, time.min))


@org_permission("audit.read")
def audit_log(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    form = AuditFilterForm(request.GET or None)
    events = selectors.audit_events_of(org=org)
    if form.is_bound and form.is_valid():
        until = _day_start(form.cleaned_data["until"])
        events = selectors.audit_events_of(
            org=org,
            action=form.cleaned_data["action"],
            actor=form.cleaned_data["actor"],
            since=_day_start(form.cleaned_data["since"]),
            until=until + timedelta(days=1) if until else None,
        )
    elif form.is_bound:
        return render(request, "hub/audit.html", {"form": form, "page": None}, status=400)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "actions": selectors.audit_actions_of(org=org)}
    template = "hub/_audit_rows.html" if request.htmx else "hub/audit.html"
    return render(request, template, context)


# --- staff ------------------------------------------------------------------------------------


@staff_required
def staff_organizations(request: HttpRequest) -> HttpResponse:
    pending_only = request.GET.get("pending") == "1"
    return render(
        request,
        "hub/staff_orgs.html",
        {
            "orgs": selectors.organizations_for_staff(pending_only=pending_only),
            "pending_only": pending_only,
        },
    )


@staff_required
@require_POST
def staff_organization_approve(request: HttpRequest, slug: str) -> HttpResponse:
    org = get_object_or_404(Organization, slug=slug)
    approve = request.POST.get("approved", "1") == "1"
    if org.deleted_at is not None:
        messages.error(request, f"{org.name} is deleted: restore it before approving it.")
        return redirect("staff_organizations")
    services.organization_set_approved(org=org, approved=approve, actor=Actor.from_request(request))
    messages.success(request, f"{org.name} is now {'approved' if approve else 'suspended'}.")
    return redirect("staff_organizations")


@staff_required
@require_POST
def staff_organization_delete(request: HttpRequest, slug: str) -> HttpResponse:
    """Staff delete a suspended organisation (hub.offboarding), typing its short name."""
    org = get_object_or_404(Organization, slug=slug, purged_at__isnull=True)
    try:
        offboarding.organization_delete(
            org=org,
            confirm=request.POST.get("confirm", ""),
            actor=Actor.from_request(request),
            by_staff=True,
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{org.name} was deleted; it is purged after the grace period.")
    return redirect("staff_organizations")


@staff_required
@require_POST
def staff_organization_restore(request: HttpRequest, slug: str) -> HttpResponse:
    """Staff restore a deleted organisation within its grace period (it stays suspended)."""
    org = get_object_or_404(Organization, slug=slug, purged_at__isnull=True)
    try:
        offboarding.organization_restore(org=org, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"{org.name} was restored; it stays suspended until approved.")
    return redirect("staff_organizations")


@staff_required
def staff_organization_quotas(request: HttpRequest, slug: str) -> HttpResponse:
    """One organisation's quotas: usage, limits and staff's overrides (audited when changed)."""
    org = get_object_or_404(Organization, slug=slug)
    overrides = quotas.quota_overrides(org=org)
    initial = {name: getattr(overrides, name) for name in quotas.QUOTA_NAMES} if overrides else {}
    # Bound on any POST: one with every field empty puts every quota back to its default.
    data = request.POST if request.method == "POST" else None
    form = OrganizationQuotaForm(data, initial=initial, defaults=quotas.quota_defaults())
    if request.method == "POST" and form.is_valid():
        try:
            quotas.quota_set(
                org=org, overrides=form.cleaned_data, actor=Actor.from_request(request)
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, f"The quotas of {org.name} were saved.")
            return redirect("staff_organization_quotas", slug=org.slug)
    context = {"org": org, "form": form, "lines": quotas.quota_usage(org=org)}
    return render(request, "hub/staff_org_quotas.html", context, status=400 if form.errors else 200)
