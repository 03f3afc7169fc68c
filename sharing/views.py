"""Web pages of community sharing: the catalogue, a community list, subscriptions, visibility,
impact, and the staff lookup with its audited "reveal owner" action.

Reading takes ``org.read``; subscribing, preferences and visibility take ``sharing.manage``. A list
that is not in the organisation's catalogue (private, unapproved owner, missing) and is not its
own is the same 404 as a missing one. Pages another organisation sees show a list's contributor
only as sharing.selectors describes it: an anonymous list is "Anonymous member", and nothing of
its owner (names, who added an entry, notes, labels) is ever put in the page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.decorators import org_permission, staff_required
from hub.errors import ServiceError
from hub.lib.charts import BarPlot
from hub.lib.charts import tick_step as tick_step  # re-exported: tests import it from here
from hub.middleware import OrgRequest
from lists import selectors as list_selectors
from lists.hashtypes import get_signal_type
from lists.models import HashList
from sharing import selectors, services
from sharing.forms import (
    CatalogueFilterForm,
    CategorySubscriptionForm,
    CommunityEntryFilterForm,
    PreferencesForm,
    RevealForm,
    ShareClassificationForm,
    StaffListLookupForm,
    SubscriptionForm,
    VisibilityForm,
)

IMPACT_WEEKS = 12
ANONYMOUS_MEMBER = "Anonymous member"


def _back(request: OrgRequest, default: str) -> HttpResponseRedirect:
    """Redirect to the form's ``next`` when it is a page of this organisation, else ``default``."""
    target = str(request.POST.get("next", ""))
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if safe and target.startswith(f"/o/{request.organization.slug}/"):
        return redirect(target)
    return redirect(default)


def _invalid(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def _first_error(form: Any) -> str:
    field, errors = next(iter(form.errors.items()))
    if field not in form.fields:
        return str(errors[0])
    name = form.fields[field].label or field.replace("_", " ").capitalize()
    return f"{name}: {errors[0]}"


# --- the catalogue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryChoice:
    value: str
    short: str  # "CSAM", "SE"
    label: str
    subscribed: bool


@require_GET
@org_permission("org.read")
def community(request: OrgRequest, org_slug: str) -> HttpResponse:
    org = request.organization
    filters = CatalogueFilterForm(request.GET)
    valid = filters.is_valid()
    category = filters.cleaned_data.get("category", "") if valid else ""
    state = selectors.subscription_state(org=org)
    context = {
        "filters": filters,
        "items": selectors.catalogue(org=org, category=category) if valid else [],
        "category": category,
        "categories": [
            CategoryChoice(value, value.upper(), label, value in state.categories)
            for value, label in HashList.Category.choices
        ],
        "preferences_form": PreferencesForm(
            initial={"ignore_disputed": selectors.ignores_disputed(org=org)}
        ),
    }
    return render(request, "sharing/catalogue.html", context, status=200 if valid else 400)


@require_POST
@org_permission("sharing.manage")
def community_subscription(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    org = request.organization
    item = _catalogue_item(request, list_id)
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return _invalid(request, _first_error(form))
    subscribed = form.cleaned_data["subscribed"]
    try:
        changed = services.subscription_list_set(
            org=org, public_id=list_id, subscribed=subscribed, actor=Actor.from_request(request)
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        name = item.hash_list.name
        if not changed:
            messages.info(request, f"Nothing changed for “{name}”.")
        elif subscribed:
            messages.success(request, f"Subscribed to “{name}”: it is matched from now on.")
        else:
            messages.success(request, f"Unsubscribed from “{name}”: it is no longer matched.")
    return _back(request, reverse("community", kwargs={"org_slug": org_slug}))


@require_POST
@org_permission("sharing.manage")
def community_category_subscription(request: OrgRequest, org_slug: str) -> HttpResponse:
    form = CategorySubscriptionForm(request.POST)
    if not form.is_valid():
        return _invalid(request, _first_error(form))
    category = form.cleaned_data["category"]
    subscribed = form.cleaned_data["subscribed"]
    label = category.upper()
    try:
        changed = services.subscription_category_set(
            org=request.organization,
            category=category,
            subscribed=subscribed,
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        if not changed:
            messages.info(request, "Nothing changed.")
        elif subscribed:
            messages.success(
                request,
                f"Subscribed to every shared {label} list, including lists shared later.",
            )
        else:
            messages.success(
                request,
                f"No longer subscribed to every shared {label} list; lists you subscribed to "
                "one by one stay subscribed.",
            )
    return _back(request, reverse("community", kwargs={"org_slug": org_slug}))


@require_POST
@org_permission("sharing.manage")
def community_preferences(request: OrgRequest, org_slug: str) -> HttpResponse:
    form = PreferencesForm(request.POST)
    if not form.is_valid():
        return _invalid(request, _first_error(form))
    ignore = form.cleaned_data["ignore_disputed"]
    services.preferences_set(
        org=request.organization, ignore_disputed=ignore, actor=Actor.from_request(request)
    )
    if ignore:
        messages.success(request, "Disputed community entries are left out of your matches.")
    else:
        messages.success(request, "Disputed community entries are matched (and marked disputed).")
    return redirect("community", org_slug=org_slug)


# --- one community list ---------------------------------------------------------------------------


def _catalogue_item(request: OrgRequest, list_id: str) -> selectors.CatalogueItem:
    try:
        return selectors.catalogue_item(org=request.organization, public_id=list_id)
    except ServiceError:
        raise Http404("No such list.") from None


@dataclass(frozen=True)
class CommunityListSummary:
    """A list as the community page shows it; ``contributor`` None means an anonymous member."""

    public_id: str
    name: str
    category: str
    category_label: str
    description: str
    size: int
    size_by_type: dict[str, int]
    last_change: dt.datetime | None
    contributor: str | None
    subscribers: int
    subscribed: bool
    via_category: bool
    own: bool
    visibility: str

    @property
    def contributor_shown(self) -> str:
        return self.contributor or ANONYMOUS_MEMBER


def _summary_of_item(item: selectors.CatalogueItem) -> CommunityListSummary:
    described = item.hash_list
    return CommunityListSummary(
        public_id=described.public_id,
        name=described.name,
        category=described.category,
        category_label=HashList.Category(described.category).label,
        description=item.description,
        size=item.size,
        size_by_type=item.size_by_type,
        last_change=item.last_change,
        contributor=described.contributor,
        subscribers=item.subscribers,
        subscribed=item.subscribed,
        via_category=item.via_category,
        own=False,
        # A community list is shared; whether openly shows in ``contributor``, nothing else.
        visibility="shared",
    )


def _subscriber_counts(lists: list[HashList]) -> dict[int, int]:
    """How many other organisations match each of the owner's lists now (the owner's pages)."""
    counts = dict.fromkeys((hash_list.pk for hash_list in lists), 0)
    if counts:
        for _, list_pk in selectors.access_pairs(lists=list(counts)):
            counts[list_pk] += 1
    return counts


def _summary_of_own(hash_list: HashList) -> CommunityListSummary:
    """The organisation's own list as other organisations would see it (a preview)."""
    by_type = {name: int(count) for name, count in hash_list.live_counts.items() if count}
    anonymous = hash_list.visibility == HashList.Visibility.ANONYMOUS
    owner = hash_list.organization
    return CommunityListSummary(
        public_id=hash_list.public_id,
        name=hash_list.name,
        category=hash_list.category,
        category_label=hash_list.get_category_display(),
        description=hash_list.description,
        size=sum(by_type.values()),
        size_by_type=by_type,
        last_change=selectors.community_day(hash_list.last_change_at),
        contributor=None if anonymous or owner is None else owner.name,
        # The catalogue's count, as other organisations see it (the owner's own category
        # subscription included: see sharing.selectors.subscriber_counts).
        subscribers=selectors.subscriber_counts([hash_list.pk])[hash_list.pk],
        subscribed=False,
        via_category=False,
        own=True,
        visibility=hash_list.visibility,
    )


@dataclass(frozen=True)
class CommunityEntryRow:
    """What another organisation may see of an entry: never who added it, labels or notes."""

    type: str
    value: str
    added_at: dt.datetime
    dispute_url: str | None


def _dispute_base(org_slug: str, list_id: str) -> str | None:
    # Disputes live in their own module (sharing.dispute_urls); without them, no dispute link.
    try:
        return reverse("dispute_new", kwargs={"org_slug": org_slug, "list_id": list_id})
    except NoReverseMatch:
        return None


@require_GET
@org_permission("org.read")
def community_list(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    org = request.organization
    try:
        item = selectors.catalogue_item(org=org, public_id=list_id)
    except ServiceError:
        # Not in the catalogue: the organisation's own list (a preview), or the same 404.
        summary = _summary_of_own(list_selectors.get_list_for_org(org=org, public_id=list_id))
    else:
        summary = _summary_of_item(item)
    filters = CommunityEntryFilterForm(request.GET)
    context: dict[str, Any] = {"summary": summary, "filters": filters, "rows": []}
    if not filters.is_valid():
        return render(request, "sharing/list.html", context, status=400)
    data = filters.cleaned_data
    # Another organisation's entries, read by the selector inside their owner's scope, for a
    # list this organisation may read (its own, or one of its catalogue as checked above).
    _, page = selectors.entries_readable_by(
        org=org,
        public_id=list_id,
        cursor=data["cursor"],
        signal_type=data["type"],
        prefix=data["prefix"],
    )
    dispute_base = None if summary.own else _dispute_base(org_slug, list_id)
    rows = []
    for entry in page.entries:
        signal_type = get_signal_type(entry.hash.signal_type)
        value = signal_type.to_text(bytes(entry.hash.value))
        dispute_url = (
            f"{dispute_base}?{urlencode({'type': signal_type.name, 'value': value})}"
            if dispute_base
            else None
        )
        # Others see the day an entry was added, never the time (see community_day).
        added = entry.added_at if summary.own else selectors.day_of(entry.added_at)
        rows.append(CommunityEntryRow(signal_type.name, value, added, dispute_url))
    context["rows"] = rows
    context["filtered"] = bool(filters.filters())
    context["query"] = urlencode(filters.filters())
    if page.next_cursor:
        context["next_query"] = urlencode({**filters.filters(), "cursor": page.next_cursor})
    return render(request, "sharing/list.html", context)


# --- own lists: visibility, impact, the overview ----------------------------------------------


def _own_list(request: OrgRequest, list_id: str) -> HashList:
    return list_selectors.get_list_for_org(org=request.organization, public_id=list_id)


@require_http_methods(["GET", "POST"])
@org_permission("org.read")
def list_visibility(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _own_list(request, list_id)
    if request.method == "POST" and request.POST.get("form") == "share_classification":
        return _share_classification_change(request, org_slug, hash_list)
    if request.method == "POST":
        return _visibility_change(request, org_slug, hash_list)
    form = VisibilityForm(initial={"visibility": hash_list.visibility})
    return _render_visibility(request, hash_list, form)


@org_permission("sharing.manage")
def _share_classification_change(
    request: OrgRequest, org_slug: str, hash_list: HashList
) -> HttpResponse:
    form = ShareClassificationForm(request.POST)
    if not form.is_valid():  # a checkbox: never, but the form says so rather than the view
        return _invalid(request, _first_error(form))
    share = form.cleaned_data["share_classification"]
    try:
        changed = services.list_share_classification_set(
            hash_list=hash_list, share=share, actor=Actor.from_request(request)
        )
    except ServiceError as error:
        return _invalid(request, error.message, error.status)
    if not changed:
        messages.info(request, "Nothing changed.")
    elif share:
        messages.success(request, f"“{hash_list.name}” now shares its entries' classification.")
    else:
        messages.success(request, f"“{hash_list.name}” no longer shares its entries' labels.")
    return redirect("list_visibility", org_slug=org_slug, list_id=hash_list.public_id)


@org_permission("sharing.manage")
def _visibility_change(request: OrgRequest, org_slug: str, hash_list: HashList) -> HttpResponse:
    form = VisibilityForm(request.POST)
    status = 400
    if form.is_valid():
        previous = hash_list.visibility
        try:
            services.list_visibility_set(
                hash_list=hash_list,
                visibility=form.cleaned_data["visibility"],
                actor=Actor.from_request(request),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
            status = error.status
        else:
            label = hash_list.get_visibility_display().lower()
            if hash_list.visibility == previous:
                messages.info(request, f"“{hash_list.name}” was already {label}.")
            else:
                messages.success(request, f"“{hash_list.name}” is now {label}.")
            return redirect("list_detail", org_slug=org_slug, list_id=hash_list.public_id)
    return _render_visibility(request, hash_list, form, status=status)


def _render_visibility(
    request: OrgRequest, hash_list: HashList, form: VisibilityForm, status: int = 200
) -> HttpResponse:
    explained = services.VISIBILITY_EXPLAINED
    choices = [
        (radio, explained[HashList.Visibility(radio.data["value"])]) for radio in form["visibility"]
    ]
    context = {
        "hash_list": hash_list,
        "form": form,
        "choices": choices,
        "current_explained": explained[HashList.Visibility(hash_list.visibility)],
        "subscribers": _subscriber_counts([hash_list])[hash_list.pk],
        "was_open": hash_list.visibility != HashList.Visibility.ANONYMOUS
        and selectors.list_was_open(hash_list=hash_list),
        "share_form": ShareClassificationForm(
            initial={"share_classification": hash_list.share_classification}
        ),
        "share_explained": services.SHARE_CLASSIFICATION_EXPLAINED,
        "share_now": services.share_classification_now(hash_list),
    }
    return render(request, "sharing/visibility.html", context, status=status)


@dataclass(frozen=True)
class WeekBar:
    week: dt.date
    matches: int
    x: float
    y: float
    width: float
    height: float
    label: str  # the x-axis label, on some weeks only

    @property
    def centre(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass(frozen=True, kw_only=True)
class ImpactChart(BarPlot):
    """A bar chart of matches per week, a single series (SVG, no JS needed)."""

    weeks: list[tuple[dt.date, int]]
    height: int = 240

    @classmethod
    def of(cls, weeks: list[tuple[dt.date, int]]) -> ImpactChart:
        peak = max((matches for _, matches in weeks), default=0)
        return cls(weeks=weeks, bands=len(weeks), peak=peak)

    @cached_property
    def bars(self) -> list[WeekBar]:
        bars = []
        for index, (week, matches) in enumerate(self.weeks):
            height = round(self.span(matches), 2)
            # Every other week is labelled, counted back from this week so that it always is.
            labelled = (len(self.weeks) - 1 - index) % 2 == 0
            bars.append(
                WeekBar(
                    week=week,
                    matches=matches,
                    x=self.bar_x(index),
                    y=round(self.baseline - height, 2),
                    width=self.bar_width,
                    height=height,
                    label=f"{week.day} {week:%b}" if labelled else "",
                )
            )
        return bars

    @property
    def total(self) -> int:
        return sum(matches for _, matches in self.weeks)

    @property
    def first(self) -> WeekBar:
        return self.bars[0]

    @property
    def last(self) -> WeekBar:
        return self.bars[-1]

    @property
    def busiest(self) -> WeekBar:
        return max(self.bars, key=lambda bar: (bar.matches, bar.week))


@require_GET
@org_permission("org.read")
def list_impact(request: OrgRequest, org_slug: str, list_id: str) -> HttpResponse:
    hash_list = _own_list(request, list_id)
    weeks = selectors.impact_weeks(hash_list=hash_list, weeks=IMPACT_WEEKS)
    context = {
        "hash_list": hash_list,
        "chart": ImpactChart.of(weeks),
        "weeks": weeks,
        "subscribers": _subscriber_counts([hash_list])[hash_list.pk],
    }
    return render(request, "sharing/impact.html", context)


@dataclass(frozen=True)
class SharedListRow:
    hash_list: HashList
    size: int
    subscribers: int
    matches: int  # for other organisations, in the last IMPACT_WEEKS weeks


@require_GET
@org_permission("org.read")
def community_shared(request: OrgRequest, org_slug: str) -> HttpResponse:
    lists = list(list_selectors.lists_of(org=request.organization))
    subscribers = _subscriber_counts(lists)
    rows = [
        SharedListRow(
            hash_list=hash_list,
            size=sum(int(count) for count in hash_list.live_counts.values()),
            subscribers=subscribers[hash_list.pk],
            matches=sum(
                matches
                for _, matches in selectors.impact_weeks(hash_list=hash_list, weeks=IMPACT_WEEKS)
            ),
        )
        for hash_list in lists
    ]
    # Shared lists first: they are what this page is about; private ones follow, to be shared.
    rows.sort(key=lambda row: row.hash_list.visibility == HashList.Visibility.PRIVATE)
    context = {"rows": rows, "weeks": IMPACT_WEEKS}
    return render(request, "sharing/shared.html", context)


# --- staff: look a list up, reveal its owner ----------------------------------------------------


@dataclass(frozen=True)
class StaffListRow:
    hash_list: HashList
    size: int

    @property
    def owner_public(self) -> bool:
        """An open list names its owner to every member anyway; any other needs a reveal."""
        return self.hash_list.visibility == HashList.Visibility.OPEN


def _staff_row(hash_list: HashList) -> StaffListRow:
    return StaffListRow(hash_list, sum(int(count) for count in hash_list.live_counts.values()))


def _staff_list(public_id: str) -> HashList | None:
    # Staff belong to no organisation: lists are looked up across every tenant on purpose.
    with scopes_disabled():
        return (
            HashList.objects.select_related("organization")
            .filter(public_id=public_id, organization__isnull=False)
            .first()
        )


def _render_staff_lists(
    request: HttpRequest,
    lookup: StaffListLookupForm,
    found: HashList | None = None,
    reveal_form: RevealForm | None = None,
    revealed: bool = False,
    status: int = 200,
) -> HttpResponse:
    with scopes_disabled():
        shared = list(
            HashList.objects.select_related("organization")
            .filter(
                organization__isnull=False,
                deleted_at__isnull=True,
                visibility__in=[HashList.Visibility.OPEN, HashList.Visibility.ANONYMOUS],
            )
            .order_by("category", "name", "public_id")
        )
    context = {
        "lookup": lookup,
        "found": _staff_row(found) if found else None,
        "reveal_form": reveal_form or RevealForm(),
        "revealed": revealed,
        "shared": [_staff_row(hash_list) for hash_list in shared],
    }
    response = render(request, "sharing/staff_lists.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@staff_required
@require_GET
def staff_lists(request: HttpRequest) -> HttpResponse:
    if "list" not in request.GET:
        return _render_staff_lists(request, StaffListLookupForm())
    lookup = StaffListLookupForm(request.GET)
    if not lookup.is_valid():
        return _render_staff_lists(request, lookup, status=400)
    found = _staff_list(lookup.cleaned_data["list"])
    if found is None:
        lookup.add_error("list", "No organisation's list has this id.")
        return _render_staff_lists(request, lookup, status=404)
    return _render_staff_lists(request, lookup, found)


@staff_required
@require_POST
def staff_list_reveal(request: HttpRequest, list_id: str) -> HttpResponse:
    hash_list = _staff_list(list_id)
    if hash_list is None:
        raise Http404("No such list.")
    lookup = StaffListLookupForm({"list": list_id})
    lookup.is_valid()
    form = RevealForm(request.POST)
    if not form.is_valid():
        return _render_staff_lists(request, lookup, hash_list, form, status=400)
    try:
        services.list_owner_reveal(
            hash_list=hash_list,
            reason=form.cleaned_data["reason"],
            actor=Actor.from_request(request),
        )
    except ServiceError as error:
        form.add_error(None, error.message)
        return _render_staff_lists(request, lookup, hash_list, form, status=error.status)
    # The owner is shown in this response only; reloading the lookup does not show it again.
    return _render_staff_lists(request, lookup, hash_list, revealed=True)
