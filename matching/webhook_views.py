"""Web pages of webhooks: the endpoints with a create form, one endpoint's delivery log, actions.

Everything here needs ``webhooks.manage`` (owners and admins). An endpoint of another
organisation is the same 404 as a missing one (``get_webhook_for_org``). A secret is
rendered once, in the response to the create or rotate POST, and never again.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from hub.audit import Actor
from hub.decorators import org_permission, reauthentication_required
from hub.errors import ServiceError
from hub.middleware import OrgRequest
from matching import webhooks as webhook_services
from matching.models import WebhookEndpoint


class WebhookForm(forms.Form):
    url = forms.URLField(
        max_length=2000,
        label="Endpoint URL",
        assume_scheme="https",
        help_text="Public https:// address of your receiver; redirects are not followed.",
    )
    description = forms.CharField(
        max_length=200, required=False, help_text="e.g. “review pipeline (prod)”"
    )


def _no_store(response: HttpResponse) -> HttpResponse:
    # These pages may carry a secret: keep them out of every cache.
    response["Cache-Control"] = "no-store"
    return response


def _render_list(
    request: OrgRequest, form: WebhookForm, status: int = 200, **extra: Any
) -> HttpResponse:
    endpoints = list(webhook_services.webhooks_of(org=request.organization))
    last = webhook_services.last_deliveries(endpoints=endpoints)
    context = {
        "form": form,
        "rows": [(endpoint, last.get(endpoint.pk)) for endpoint in endpoints],
        "tolerance": webhook_services.DEFAULT_TOLERANCE_SECONDS,
        "max_attempts": settings.HASHHUB_WEBHOOK_MAX_ATTEMPTS,
        **extra,
    }
    return _no_store(render(request, "matching/webhooks.html", context, status=status))


def _endpoint(request: OrgRequest, endpoint_id: str) -> WebhookEndpoint:
    return webhook_services.get_webhook_for_org(org=request.organization, public_id=endpoint_id)


@require_http_methods(["GET", "POST"])
@org_permission("webhooks.manage")
@reauthentication_required
def webhooks(request: OrgRequest, org_slug: str) -> HttpResponse:
    form = WebhookForm(request.POST or None)
    if request.method != "POST":
        return _render_list(request, form)
    if form.is_valid():
        try:
            endpoint, secret = webhook_services.webhook_create(
                org=request.organization,
                url=form.cleaned_data["url"],
                description=form.cleaned_data["description"],
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            form.add_error("url", error.message)
            return _render_list(request, form, status=400, error_code=error.code)
        # The secret is rendered into this one response and never shown again.
        return _render_list(
            request, WebhookForm(), status=201, new_secret=secret, new_endpoint=endpoint
        )
    return _render_list(request, form, status=400)


def _render_detail(
    request: OrgRequest, endpoint: WebhookEndpoint, status: int = 200
) -> HttpResponse:
    context = {
        "endpoint": endpoint,
        "deliveries": webhook_services.deliveries_of(endpoint=endpoint),
        "max_attempts": settings.HASHHUB_WEBHOOK_MAX_ATTEMPTS,
        "test_rate": webhook_services.ping_rate(),
    }
    return _no_store(render(request, "matching/webhook_detail.html", context, status=status))


@require_http_methods(["GET"])
@org_permission("webhooks.manage")
def webhook_detail(request: OrgRequest, org_slug: str, endpoint_id: str) -> HttpResponse:
    return _render_detail(request, _endpoint(request, endpoint_id))


@require_POST
@org_permission("webhooks.manage")
@reauthentication_required
def webhook_delete(request: OrgRequest, org_slug: str, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    webhook_services.webhook_delete(endpoint=endpoint, actor=Actor.from_request(request))
    messages.success(request, f"The webhook to {endpoint.url} was deleted; nothing more is sent.")
    return redirect("webhooks", org_slug=org_slug)


@require_POST
@org_permission("webhooks.manage")
def webhook_test(request: OrgRequest, org_slug: str, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    try:
        webhook_services.webhook_ping(endpoint=endpoint, actor=Actor.from_request(request))
    except ServiceError as error:  # rate_limited: the page again, with why and until when
        messages.error(request, error.message)
        response = _render_detail(request, endpoint, status=error.status)
        if isinstance(error.details, dict) and "retry_after" in error.details:
            response["Retry-After"] = str(error.details["retry_after"])
        return response
    messages.success(
        request, "A ping event was queued; its delivery appears below within a few seconds."
    )
    return redirect("webhook_detail", org_slug=org_slug, endpoint_id=endpoint.public_id)


@require_POST
@org_permission("webhooks.manage")
@reauthentication_required
def webhook_rotate(request: OrgRequest, org_slug: str, endpoint_id: str) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    secret = webhook_services.webhook_rotate(endpoint=endpoint, actor=Actor.from_request(request))
    return _render_list(request, WebhookForm(), status=201, new_secret=secret, rotated=endpoint)
