"""Web pages of detections: the review queue, one detection and its review, the allow list, and
the detections-per-day chart the dashboard loads.

Reading takes ``org.read``, reviewing ``detections.review``; a detection or allow-list row of
another organisation is the same 404 as a missing one (matching.review's selectors). The rules
live in matching.review: these views translate forms to calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from hub.audit import Actor
from hub.decorators import org_permission
from hub.errors import ServiceError
from hub.lib.charts import BarPlot
from hub.middleware import OrgRequest
from lists.hashtypes import get_signal_type
from lists.models import HashList
from matching import preservation, review, review_links
from matching.models import AllowedHash, Detection

PAGE_SIZE = 50
CHART_DAYS = 30
TIER_CHOICES = [("", "Any tier")] + [(tier, tier.title()) for tier in review.TIERS]


class DetectionFilterForm(forms.Form):
    status = forms.ChoiceField(
        choices=[("", "Any status"), *Detection.Status.choices], required=False
    )
    tier = forms.ChoiceField(choices=TIER_CHOICES, required=False)
    category = forms.ChoiceField(
        choices=[("", "Any category"), *HashList.Category.choices], required=False
    )
    retracted = forms.ChoiceField(
        choices=[("", "Retracted or not"), ("yes", "Retracted"), ("no", "Not retracted")],
        required=False,
    )
    retroactive = forms.ChoiceField(
        choices=[("", "Retroactive or not"), ("yes", "Retroactive"), ("no", "Not retroactive")],
        required=False,
    )
    shadow = forms.BooleanField(required=False, label="Shadow detections only")

    def selection(self) -> dict[str, Any]:
        """The cleaned filters as matching.review.detections_of's arguments."""
        data = self.cleaned_data
        flags = {"yes": True, "no": False, "": None}
        return {
            "status": data["status"],
            "tier": data["tier"],
            "category": data["category"],
            "shadow": bool(data["shadow"]),
            "retracted": flags[data["retracted"]],
            "retroactive": flags[data["retroactive"]],
        }

    def query(self) -> dict[str, str]:
        """The filters that are set, as query parameters."""
        return {
            name: ("true" if value is True else str(value))
            for name, value in self.cleaned_data.items()
            if value
        }


class BulkReviewForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in review.REVIEW_ACTIONS])
    category = forms.ChoiceField(choices=[("", ""), *HashList.Category.choices], required=False)
    note = forms.CharField(required=False, max_length=review.MAX_NOTE)
    query = forms.CharField(required=False, max_length=1000)


class LinkTemplateForm(forms.Form):
    link_template = forms.CharField(
        required=False,
        max_length=review_links.MAX_TEMPLATE,
        label="Link template",
        help_text="An https:// (or http://) address with {content_ref} where the reference goes, "
        "e.g. https://moderation.example/item/{content_ref}. Leave empty for no links.",
    )


@dataclass(frozen=True)
class QueueRow:
    """A detection as a row of the queue: its closest distance, its content link, and whether
    a preservation hold keeps it."""

    detection: Detection
    closest: int | None
    link: str | None
    preserved: bool = False


def _closest(detection: Detection) -> int | None:
    distances = [
        match["distance"]
        for result in detection.matches or []
        for match in result.get("matches") or []
        if isinstance(match.get("distance"), int)
    ]
    return min(distances, default=None)


class HoldForm(forms.Form):
    days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=preservation.MAX_HOLD_DAYS,
        label="Hold for (days)",
        help_text="Left empty: the hub's default preservation period.",
    )
    reason = forms.CharField(
        required=False, max_length=preservation.MAX_REASON, label="Reason (kept with the hold)"
    )


class ReviewForm(forms.Form):
    action = forms.ChoiceField(
        choices=[
            ("confirm", "Confirm"),
            ("false_positive", "False positive"),
            ("dismiss", "Dismiss"),
        ]
    )
    category = forms.ChoiceField(choices=[("", ""), *HashList.Category.choices], required=False)
    note = forms.CharField(required=False, max_length=review.MAX_NOTE)


# --- the queue --------------------------------------------------------------------------------


def _partial(request: OrgRequest) -> bool:
    """An htmx swap of the results, not a full page (a history restore wants the full page)."""
    return bool(request.htmx) and not request.htmx.history_restore_request


@require_GET
@org_permission("org.read")
def detections(request: OrgRequest, org_slug: str) -> HttpResponse:
    filters = DetectionFilterForm(request.GET)
    context: dict[str, Any] = {"filters": filters, "page": None}
    if not filters.is_valid():
        return render(request, "matching/detections.html", context, status=400)
    chosen = filters.query()
    queue = review.detections_of(org=request.organization, **filters.selection())
    context["page"] = Paginator(queue, PAGE_SIZE).get_page(request.GET.get("page"))
    template_text = review_links.link_template_of(org=request.organization)
    held = preservation.preservation_states(detections=context["page"])
    context["rows"] = [
        QueueRow(
            d, _closest(d), review_links.content_link(template_text, d.content_ref), d.pk in held
        )
        for d in context["page"]
    ]
    context["filtered"] = bool(chosen)
    context["query"] = urlencode(chosen)
    context["categories"] = HashList.Category.choices
    template = "matching/_detection_rows.html" if _partial(request) else "matching/detections.html"
    response = render(request, template, context)
    patch_vary_headers(response, ("HX-Request",))
    return response


# --- one detection ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchRow:
    type: str
    submitted: str
    list: dict[str, Any]
    distance: int | None
    matched_value: str

    @property
    def contributor(self) -> str:
        if self.list.get("anonymous") or not self.list.get("contributor"):
            return "Anonymous member"
        return str(self.list["contributor"])


def _match_rows(detection: Detection) -> list[MatchRow]:
    return [
        MatchRow(
            type=str(result.get("type", "")),
            submitted=str(result.get("value", "")),
            list=match.get("list") or {},
            distance=match.get("distance"),
            matched_value=str(match.get("matched_value", "")),
        )
        for result in detection.matches or []
        for match in result.get("matches") or []
    ]


def _report_open_url(org_slug: str, detection: Detection) -> str | None:
    """Where "Open a report" posts, once the reports app offers it (matching never imports
    reports: it sits above matching)."""
    try:
        return reverse("report_open", args=[org_slug, detection.public_id])
    except NoReverseMatch:
        return None


def _render_detail(
    request: OrgRequest,
    detection: Detection,
    form: ReviewForm | None = None,
    status: int = 200,
    *,
    hold_form: HoldForm | None = None,
) -> HttpResponse:
    categories = sorted(set(detection.categories))
    newer, older = review.detection_neighbours(detection=detection)
    template_text = review_links.link_template_of(org=request.organization)
    now = timezone.now()
    holds = preservation.holds_of(detection=detection)
    context = {
        "holds": [(hold, hold.active_at(now)) for hold in holds],
        "held": any(hold.active_at(now) for hold in holds),
        "hold_form": hold_form or HoldForm(initial={"days": preservation.hold_days_default()}),
        "hold_days_default": preservation.hold_days_default(),
        "report_open_url": _report_open_url(request.organization.slug, detection),
        "newer": newer,
        "older": older,
        "content_link": review_links.content_link(template_text, detection.content_ref),
        "closest": _closest(detection),
        "detection": detection,
        "submitted": review.submitted_hashes(detection),
        "match_rows": _match_rows(detection),
        "form": form,
        "categories": HashList.Category.choices,
        "suggested_category": categories[0] if len(categories) == 1 else "",
    }
    return render(request, "matching/detection_detail.html", context, status=status)


@require_GET
@org_permission("org.read")
def detection_detail(request: OrgRequest, org_slug: str, detection_id: str) -> HttpResponse:
    detection = review.get_detection_for_org(org=request.organization, public_id=detection_id)
    return _render_detail(request, detection)


@require_POST
@org_permission("detections.review")
def detection_review(request: OrgRequest, org_slug: str, detection_id: str) -> HttpResponse:
    detection = review.get_detection_for_org(org=request.organization, public_id=detection_id)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, detection, form, status=400)
    data, actor = form.cleaned_data, Actor.from_request(request)
    try:
        if data["action"] == "confirm":
            result = review.detection_confirm(
                detection=detection, category=data["category"], note=data["note"], actor=actor
            )
            messages.success(
                request,
                f"Confirmed: {result.added} hash{'es' if result.added != 1 else ''} added to "
                f"“{result.hash_list.name}”, {result.already_present} already there.",
            )
            for refused in result.refused:
                messages.warning(
                    request,
                    f"Not added: {refused['type']} {refused['value'][:16]}…: {refused['message']}",
                )
        elif data["action"] == "false_positive":
            allowed = review.detection_mark_false_positive(
                detection=detection, note=data["note"], actor=actor
            )
            messages.success(
                request,
                f"Marked as a false positive: {allowed} hash{'es' if allowed != 1 else ''} "
                "added to the allow list.",
            )
        else:
            review.detection_dismiss(detection=detection, note=data["note"], actor=actor)
            messages.success(request, "Dismissed.")
    except ServiceError as error:
        form.add_error(None, error.message)
        return _render_detail(request, detection, form, status=error.status)
    return redirect("detection_detail", org_slug=org_slug, detection_id=detection.public_id)


@require_POST
@org_permission("detections.review")
def detection_hold_place(request: OrgRequest, org_slug: str, detection_id: str) -> HttpResponse:
    """Place a preservation hold by hand (matching.preservation audits it)."""
    detection = review.get_detection_for_org(org=request.organization, public_id=detection_id)
    form = HoldForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, detection, hold_form=form, status=400)
    try:
        hold = preservation.hold_place(
            detection=detection,
            actor=Actor.from_request(request),
            days=form.cleaned_data["days"],
            reason=form.cleaned_data["reason"],
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _render_detail(request, detection, hold_form=form, status=error.status)
    messages.success(
        request, f"Held for preservation until {hold.until:%d %b %Y}: no purge deletes it."
    )
    return redirect("detection_detail", org_slug=org_slug, detection_id=detection.public_id)


@require_POST
@org_permission("detections.review")
def detection_hold_release(
    request: OrgRequest, org_slug: str, detection_id: str, preservation_id: str
) -> HttpResponse:
    """Release a preservation hold now (matching.preservation audits it)."""
    detection = review.get_detection_for_org(org=request.organization, public_id=detection_id)
    hold = preservation.get_hold_for_org(org=request.organization, public_id=preservation_id)
    if hold.detection_id != detection.pk:
        raise Http404("No such hold.")
    try:
        preservation.hold_release(hold=hold, actor=Actor.from_request(request))
    except ServiceError as error:
        messages.error(request, error.message)
        return _render_detail(request, detection, status=error.status)
    messages.success(request, "Hold released: the retention purges may delete it again.")
    return redirect("detection_detail", org_slug=org_slug, detection_id=detection.public_id)


def _queue_url(org_slug: str, query: str) -> str:
    """The queue with the filters of ``query``, rebuilt from the valid ones only."""
    filters = DetectionFilterForm(QueryDict(query))
    kept = urlencode(filters.query()) if filters.is_valid() else ""
    url = reverse("detections", kwargs={"org_slug": org_slug})
    return f"{url}?{kept}" if kept else url


@require_POST
@org_permission("detections.review")
def detections_bulk_review(request: OrgRequest, org_slug: str) -> HttpResponse:
    """Review the detections ticked in the queue alike (each audited as a single review)."""
    form = BulkReviewForm(request.POST)
    back = _queue_url(org_slug, request.POST.get("query", ""))
    if not form.is_valid():
        messages.error(request, "Choose what to do with the selected detections.")
        return redirect(back)
    data = form.cleaned_data
    try:
        reviewed = review.detections_review_bulk(
            org=request.organization,
            public_ids=request.POST.getlist("detection"),
            action=data["action"],
            category=data["category"],
            note=data["note"],
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        messages.error(request, error.message)
        return redirect(back)
    done = {
        "confirm": "Confirmed",
        "false_positive": "Marked as false positives:",
        "dismiss": "Dismissed",
    }
    count = len(reviewed)
    messages.success(request, f"{done[data['action']]} {count} detection{pluralize(count)}.")
    return redirect(back)


@org_permission("org.read", post="sharing.manage")
def detections_settings(request: OrgRequest, org_slug: str) -> HttpResponse:
    """The review queue's settings: the link template (owners and admins change it)."""
    org = request.organization
    form = LinkTemplateForm(
        request.POST or None, initial={"link_template": review_links.link_template_of(org=org)}
    )
    if request.method == "POST" and form.is_valid():
        try:
            review_links.link_template_set(
                org=org,
                template=form.cleaned_data["link_template"],
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            form.add_error("link_template", error.message)
        else:
            messages.success(request, "The link template is saved.")
            return redirect("detections_settings", org_slug=org_slug)
    context = {
        "form": form,
        "example": review_links.content_link(
            review_links.link_template_of(org=org), "example-ref/42"
        ),
    }
    return render(
        request, "matching/detections_settings.html", context, status=400 if form.errors else 200
    )


@require_GET
@org_permission("org.read")
def detections_summary(request: OrgRequest, org_slug: str) -> HttpResponse:
    """The dashboard's detection figures (loaded into it: hub does not read matching)."""
    counts = review.detection_counts(org=request.organization)
    return render(request, "matching/detections_summary.html", {"counts": counts})


# --- the allow list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowedRow:
    allowed: AllowedHash
    value: str


def _allowed_row(allowed: AllowedHash) -> AllowedRow:
    return AllowedRow(allowed, get_signal_type(allowed.signal_type).to_text(bytes(allowed.value)))


@require_GET
@org_permission("org.read")
def allow_list(request: OrgRequest, org_slug: str) -> HttpResponse:
    page = Paginator(review.allow_list_of(org=request.organization), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    rows = [_allowed_row(allowed) for allowed in page]
    return render(request, "matching/allow_list.html", {"page": page, "rows": rows})


@require_POST
@org_permission("detections.review")
def allow_list_remove(request: OrgRequest, org_slug: str, allowed_id: str) -> HttpResponse:
    allowed = review.get_allowed_for_org(org=request.organization, public_id=allowed_id)
    shown = _allowed_row(allowed).value
    review.allowed_hash_remove(allowed=allowed, actor=Actor.from_request(request))
    messages.success(request, f"{allowed.signal_type} {shown} is no longer on the allow list.")
    return redirect("allow_list", org_slug=org_slug)


# --- the chart --------------------------------------------------------------------------------


@require_GET
@org_permission("org.read")
def detections_chart(request: OrgRequest, org_slug: str) -> HttpResponse:
    days = review.detections_per_day(org=request.organization, days=CHART_DAYS)
    return render(request, "matching/_chart.html", {"chart": DetectionChart.of(days)})


# Colours of the tiers in the chart and its legend (the stylesheet repeats them as classes).
TIER_COLOURS = {"verified": "#b3261e", "own": "#1f5fbf", "community": "#e08a00"}


@dataclass(frozen=True)
class Segment:
    tier: str
    count: int
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class Bar:
    day: review.DayCount
    x: float
    width: float
    segments: list[Segment]
    label: str  # the x-axis label, on some days only

    @property
    def centre(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True, kw_only=True)
class DetectionChart(BarPlot):
    """A stacked bar chart of detections per day, one segment per tier, with its legend."""

    days: list[review.DayCount]

    @classmethod
    def of(cls, days: list[review.DayCount]) -> DetectionChart:
        # A detection with matches in two tiers is a segment in each: the bars stack segments.
        peak = max((sum(day.by_tier().values()) for day in days), default=0)
        return cls(days=days, bands=len(days), peak=peak)

    @cached_property
    def bars(self) -> list[Bar]:
        bars = []
        for index, day in enumerate(self.days):
            y = float(self.baseline)
            segments = []
            for tier in review.TIERS:
                count = day.by_tier()[tier]
                if count:
                    height = self.span(count)
                    y -= height
                    segments.append(
                        Segment(tier, count, round(y, 2), round(height, 2), TIER_COLOURS[tier])
                    )
            last = index == len(self.days) - 1
            label = f"{day.day.day} {day.day:%b}" if index % 5 == 0 or last else ""
            bars.append(Bar(day, self.bar_x(index), self.bar_width, segments, label))
        return bars

    @cached_property
    def legend(self) -> list[tuple[str, str, int]]:
        """(tier, colour, total in the period) for each tier."""
        return [
            (tier, TIER_COLOURS[tier], sum(day.by_tier()[tier] for day in self.days))
            for tier in review.TIERS
        ]

    @property
    def total(self) -> int:
        return sum(day.total for day in self.days)

    @property
    def first(self) -> review.DayCount:
        return self.bars[0].day

    @property
    def last(self) -> review.DayCount:
        return self.bars[-1].day

    @property
    def busiest(self) -> review.DayCount:
        return max((bar.day for bar in self.bars), key=lambda d: (d.total, d.day))
