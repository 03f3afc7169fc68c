"""Staff page of a source's entitlements: who may match it, and its access mode.

Under ``/staff/sources/<source_id>/entitlements/`` next to lists' staff pages of sources; it lives
in sharing because entitlements are sharing's (DESIGN.md: sharing -> lists, never back). Hub staff
only (``staff_required``: the login page for anonymous callers, 404 for everyone else). Each
change goes through sharing.services, which audits it and makes matching and the export feed
follow at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import messages
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from hub.audit import Actor
from hub.decorators import staff_required
from hub.errors import ServiceError
from hub.models import Organization
from lists.models import Source
from sharing import services
from sharing.models import SourceEntitlement


@dataclass(frozen=True)
class EntitlementRow:
    org: Organization
    grant: SourceEntitlement | None


def _source(source_id: str) -> Source:
    return get_object_or_404(Source, public_id=source_id)


def _back(source: Source) -> HttpResponse:
    return redirect("staff_source_entitlements", source_id=source.public_id)


@staff_required
@require_GET
def source_entitlements(request: HttpRequest, source_id: str) -> HttpResponse:
    source = _source(source_id)
    grants = {
        grant.organization_id: grant for grant in SourceEntitlement.objects.filter(source=source)
    }
    # Approved organisations, and any other that holds a grant (so it can be withdrawn).
    orgs = Organization.objects.filter(Q(approved=True) | Q(pk__in=list(grants))).order_by(
        "name", "slug"
    )
    rows = [EntitlementRow(org, grants.get(org.pk)) for org in orgs]
    context = {
        "source": source,
        "rows": rows,
        "granted": len(grants),
        "access_choices": Source.Access.choices,
    }
    return render(request, "lists/sources/entitlements.html", context)


@staff_required
@require_POST
def source_entitlement_set(request: HttpRequest, source_id: str, slug: str) -> HttpResponse:
    source = _source(source_id)
    org = get_object_or_404(Organization, slug=slug)
    granted = request.POST.get("granted", "1") == "1"
    changed = services.entitlement_set(
        source=source, org=org, granted=granted, actor=Actor.from_request(request)
    )
    if not changed:
        messages.info(request, f"Nothing changed for {org.name}.")
    elif granted:
        messages.success(request, f"{org.name} may now match {source.name}.")
    else:
        messages.success(request, f"{org.name} no longer matches {source.name}.")
    return _back(source)


@staff_required
@require_POST
def source_access(request: HttpRequest, source_id: str) -> HttpResponse:
    source = _source(source_id)
    try:
        services.source_access_set(
            source=source,
            access=str(request.POST.get("access", "")),
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Access to {source.name}: {source.get_access_display()}.")
    return _back(source)
