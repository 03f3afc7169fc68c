"""Resolve the organisation named in the URL, check membership, open its tenant scope."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.contrib.auth.views import redirect_to_login
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve
from django_scopes import scope

from hub.models import Membership, Organization, User
from hub.selectors import membership_for, user_has_mfa

if TYPE_CHECKING:
    from django_htmx.middleware import HtmxDetails


class OrgRequest(HttpRequest):
    """The request a view under ``/o/<org_slug>/`` receives (for type checking only)."""

    user: User
    organization: Organization
    membership: Membership
    htmx: HtmxDetails


ORG_KWARG = "org_slug"
ORG_URL_PREFIX = "/o/"
"""Every URL naming an organisation lives under this prefix (a test checks the URLconf), so other
requests, the API's above all, are spared resolving their path a second time here."""
LAST_ORG_SESSION_KEY = "hashhub_last_org"


class OrganizationMiddleware:
    """For every URL under ``/o/<org_slug>/``:

    * anonymous visitors are sent to log in;
    * a user who is not a member gets 404 (not 403), the same as for an org that does not exist;
    * members of an org that requires MFA but who have none are sent to set it up;
    * ``request.organization`` and ``request.membership`` are set, and the view runs inside
      ``scope(organization=…)`` so any tenant-owned query is confined to this organisation.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.organization = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        if not request.path_info.startswith(ORG_URL_PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        slug = match.kwargs.get(ORG_KWARG)
        if slug is None:
            return self.get_response(request)
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        membership = membership_for(user=request.user, org_slug=slug)
        if membership is None:
            raise Http404("No such organisation.")
        org = membership.organization
        if org.require_mfa and not user_has_mfa(request.user):
            return redirect("mfa_required")
        request.organization = org  # type: ignore[attr-defined]
        request.membership = membership  # type: ignore[attr-defined]
        if request.session.get(LAST_ORG_SESSION_KEY) != org.slug:
            # Assigning marks the session modified, which costs a database write per request.
            request.session[LAST_ORG_SESSION_KEY] = org.slug
        with scope(organization=org.pk):
            return self.get_response(request)


class InvalidFormStatusMiddleware:
    """Answer 400, not 200, when a POSTed form comes back with errors (invariant 6).

    allauth's views (and any class-based form view) re-render an invalid form with status 200;
    clients and tests should see that the input was refused. Works on TemplateResponses only.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_template_response(
        self, request: HttpRequest, response: TemplateResponse
    ) -> TemplateResponse:
        if request.method != "POST" or response.status_code != 200:
            return response
        context = response.context_data or {}
        forms = [value for value in context.values() if isinstance(value, BaseForm)]
        if any(form.is_bound and form.errors for form in forms):
            response.status_code = 400
        return response


class RequestSizeLimitMiddleware:
    """Refuse a body larger than any upload the hub accepts before anything reads it.

    Must run before CsrfViewMiddleware, which parses POST bodies (and so would hold the whole
    upload in memory) before any view could look at the declared size. Views apply their own,
    tighter limits (images, hash files) with their own messages.
    """

    SLACK = 64 * 1024  # multipart boundaries and form fields around the file

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.conf import settings

        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE + self.SLACK
        if length > limit:
            message = f"The request is larger than this hub accepts ({limit // 2**20} MB)."
            if request.path.startswith("/api/"):
                return JsonResponse(
                    {"error": {"code": "request_too_large", "message": message, "details": None}},
                    status=413,
                )
            return render(request, "error.html", {"status": 413, "message": message}, status=413)
        return self.get_response(request)
