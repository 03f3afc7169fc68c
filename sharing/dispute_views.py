"""Web pages of disputes, under ``/o/<org_slug>/disputes/`` (see hub.urls).

Reading takes ``org.read``; raising, withdrawing, rejecting and retracting take
``sharing.manage``. A dispute the organisation neither raised nor received on one of its lists is
the same 404 as a missing one. The rules, and what each side may see, live in sharing.disputes:
these views translate forms to calls and hand templates the side's own view of a dispute.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from hub.audit import Actor
from hub.decorators import org_permission
from hub.errors import ServiceError
from hub.middleware import OrgRequest
from lists.hashtypes import all_signal_types
from sharing import disputes
from sharing.models import Dispute

PAGE_SIZE = 50
TABS = ("raised", "received")
# Service error codes that belong to one field of the dispute form.
FIELD_OF_CODE = {
    "invalid_reason": "reason",
    "note_too_long": "note",
    "invalid_note": "note",
    "unknown_type": "type",
    "not_a_string": "value",
    "empty_value": "value",
    "bad_characters": "value",
    "wrong_length": "value",
    "entry_not_found": "value",
}


def _type_choices() -> list[tuple[str, str]]:
    return [(t.name, t.name) for t in all_signal_types()]


class DisputeForm(forms.Form):
    type = forms.ChoiceField(choices=_type_choices)
    value = forms.CharField(max_length=1000, widget=forms.TextInput(attrs={"class": "mono"}))
    reason = forms.ChoiceField(choices=Dispute.Reason.choices, widget=forms.RadioSelect)
    note = forms.CharField(
        required=False,
        max_length=disputes.MAX_NOTE,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What the owner should know. They read it as written.",
    )
    reveal = forms.BooleanField(
        required=False,
        label="Show our organisation's name to the list's owner",
        help_text="Otherwise the owner sees “A member organisation”.",
    )


class StatusFilterForm(forms.Form):
    tab = forms.ChoiceField(choices=[(t, t) for t in TABS], required=False)
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Dispute.Status.choices], required=False
    )


# --- the index --------------------------------------------------------------------------------


@require_GET
@org_permission("org.read")
def disputes_index(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    filters = StatusFilterForm(request.GET)
    open_raised, open_received = disputes.open_counts(org=org)
    context: dict[str, Any] = {
        "filters": filters,
        "open_raised": open_raised,
        "open_received": open_received,
        "tab": "raised",
        "page": None,
        "rows": [],
    }
    if not filters.is_valid():
        return render(request, "sharing/disputes/index.html", context, status=400)
    tab = filters.cleaned_data["tab"] or "raised"
    status = filters.cleaned_data["status"]
    context["tab"] = tab
    context["status"] = status
    if tab == "raised":
        page = Paginator(disputes.disputes_raised_by(org=org, status=status), PAGE_SIZE).get_page(
            request.GET.get("page")
        )
        context["rows"] = [disputes.raised_view(d) for d in page]
    else:
        page = Paginator(disputes.disputes_received_by(org=org, status=status), PAGE_SIZE).get_page(
            request.GET.get("page")
        )
        context["rows"] = disputes.received_views(page)
    context["page"] = page
    return render(request, "sharing/disputes/index.html", context)


# --- raising one ------------------------------------------------------------------------------


def _render_new(
    request: OrgRequest,
    target: disputes.DisputeTarget | None,
    form: DisputeForm | None,
    *,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {"target": target, "form": form, "error": error}
    return render(request, "sharing/disputes/new.html", context, status=status)


@require_http_methods(["GET", "POST"])
@org_permission("sharing.manage")
def dispute_new(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    org = request.organization
    try:
        target = disputes.dispute_target(org=org, list_public_id=list_id)
    except ServiceError as refused:
        if refused.status == 404:
            raise Http404("No such list.") from None
        return _render_new(request, None, None, error=refused.message, status=refused.status)
    if request.method == "GET":
        initial = {k: request.GET[k] for k in ("type", "value") if request.GET.get(k)}
        return _render_new(request, target, DisputeForm(initial=initial))
    form = DisputeForm(request.POST)
    if not form.is_valid():
        return _render_new(request, target, form, status=400)
    data = form.cleaned_data
    try:
        dispute = disputes.dispute_create(
            org=org,
            list_public_id=list_id,
            signal_type=data["type"],
            value=data["value"],
            reason=data["reason"],
            note=data["note"],
            reveal=data["reveal"],
            actor=Actor.from_request(request),
        )
    except ServiceError as refused:
        if refused.code == "not_found":
            raise Http404("No such list.") from None
        form.add_error(FIELD_OF_CODE.get(refused.code), refused.message)
        return _render_new(request, target, form, status=refused.status)
    messages.success(request, "Your dispute was sent to the list's owner.")
    return redirect("dispute_detail", org_slug=org_slug, dispute_id=dispute.public_id)


# --- one dispute ------------------------------------------------------------------------------


def _render_detail(
    request: OrgRequest, dispute_id: str, *, error: str = "", status: int = 200
) -> HttpResponse:
    shown = disputes.dispute_for_org(org=request.organization, public_id=dispute_id)
    raised = isinstance(shown, disputes.RaisedDispute)
    template = "sharing/disputes/raised.html" if raised else "sharing/disputes/received.html"
    return render(request, template, {"dispute": shown, "error": error}, status=status)


@require_GET
@org_permission("org.read")
def dispute_detail(request: OrgRequest, org_slug: str, dispute_id: str) -> HttpResponse:
    return _render_detail(request, dispute_id)


@require_POST
@org_permission("sharing.manage")
def dispute_withdraw(request: OrgRequest, org_slug: str, dispute_id: str) -> HttpResponse:
    try:
        disputes.dispute_withdraw(
            org=request.organization, public_id=dispute_id, actor=Actor.from_request(request)
        )
    except ServiceError as refused:
        return _refused(request, dispute_id, refused)
    messages.success(request, "Your dispute was withdrawn.")
    return redirect("dispute_detail", org_slug=org_slug, dispute_id=dispute_id)


@require_POST
@org_permission("sharing.manage")
def dispute_reject(request: OrgRequest, org_slug: str, dispute_id: str) -> HttpResponse:
    # The service checks the note (required to reject, at most MAX_NOTE characters).
    note = request.POST.get("note", "")
    try:
        disputes.dispute_reject(
            org=request.organization,
            public_id=dispute_id,
            note=note,
            actor=Actor.from_request(request),
        )
    except ServiceError as refused:
        return _refused(request, dispute_id, refused)
    messages.success(request, "The dispute was rejected; the disputer will see your note.")
    return redirect("dispute_detail", org_slug=org_slug, dispute_id=dispute_id)


@require_POST
@org_permission("sharing.manage")
def dispute_retract(request: OrgRequest, org_slug: str, dispute_id: str) -> HttpResponse:
    # The service checks the note (required to reject, at most MAX_NOTE characters).
    note = request.POST.get("note", "")
    try:
        closed = disputes.dispute_retract(
            org=request.organization,
            public_id=dispute_id,
            note=note,
            actor=Actor.from_request(request),
        )
    except ServiceError as refused:
        return _refused(request, dispute_id, refused)
    messages.success(
        request,
        f"The entry was removed from your list and {closed} open "
        f"dispute{'s' if closed != 1 else ''} on it closed.",
    )
    return redirect("dispute_detail", org_slug=org_slug, dispute_id=dispute_id)


def _refused(request: OrgRequest, dispute_id: str, refused: ServiceError) -> HttpResponse:
    if refused.code == "not_found":
        raise Http404("No such dispute.")
    return _render_detail(request, dispute_id, error=refused.message, status=refused.status)
