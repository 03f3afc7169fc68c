"""The report-to-listing loop: a reported hash that a verified source lists later.

Org A confirms a detection as CSAM (its hashes go into A's own CSAM list), reports it and files
the report; later a verified source's fetch brings one of the hashes. The loop then records the
listing once, A's entry shows "now in <source> since <date>" to A only, the report page shows
it, and the dashboard charts the days from filing to listing per source. Org B subscribes to A's
list when A shares it and must never see a report id; org C may not match the source and must
never learn that it listed the hash.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from lists import annotations as entry_annotations
from lists import services as list_services
from lists.models import HashList, ImportRun, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Page, Record
from reports import listings, services
from reports.models import ListingCursor, Report, ReportListing
from tests.conftest import login
from tests.lists.test_sources_runner import Scripted
from tests.reports.conftest import confirmed_detection
from tests.sharing.test_access import ALL_SCOPES, api, share, subscribe

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Iterator[Source]:
    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    monkeypatch.setattr(runs, "adapter_class", lambda kind: Scripted)
    Scripted.SCRIPT = []
    yield source_services.source_create(
        name="Hotline Feed", kind="feed", config={}, access="all", actor=SYSTEM
    )
    Scripted.SCRIPT = []


def fetch(source: Source, *hashes: tuple[str, str]) -> ImportRun:
    """A run of the source whose next page brings ``hashes`` (a real run of the runner; the
    scripted adapter serves pages from the source's checkpoint on)."""
    with scopes_disabled():
        start = int(Source.objects.get(pk=source.pk).checkpoint.get("page", 0))
    records = [Record(f"r{n}", "add", (pair,), key=f"k:{pair[1]}") for n, pair in enumerate(hashes)]
    Scripted.SCRIPT = [Page(records=[], checkpoint={"page": n + 1}) for n in range(start)]
    Scripted.SCRIPT.append(Page(records=records, checkpoint={"page": start + 1}))
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    done = runs.run_execute(run_id=queued.pk)
    Scripted.SCRIPT = []
    assert done.status == ImportRun.Status.SUCCEEDED, done
    return done


def report_filed(org: Organization, *, at: dt.datetime, content_ref: str = "upload-1") -> Report:
    """A report of ``org`` about a fresh CSAM detection, opened and filed at ``at``."""
    with time_machine.travel(at, tick=False):
        detection = confirmed_detection(org, content_ref=content_ref)
        with scope(organization=org.pk):
            report = services.report_open(detection=detection, actor=SYSTEM)
            return services.report_file(
                report=report, actor=SYSTEM, hotline_report_id=f"CT-{secrets.token_hex(3)}"
            )


def md5_of(report: Report) -> str:
    return next(h["value"] for h in report.package["detection"]["submitted"] if h["type"] == "md5")


def own_csam(org: Organization) -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category="csam", is_default=True)


def listings_of(report: Report) -> list[ReportListing]:
    with scopes_disabled():
        return list(ReportListing.objects.filter(reported_entry__report=report).order_by("pk"))


def entries_api(client: Client, hash_list: HashList) -> list[dict[str, Any]]:
    response = client.get(f"/api/v1/lists/{hash_list.public_id}/entries")
    assert response.status_code == 200, response.content
    return response.json()["entries"]


# --- the flip -----------------------------------------------------------------------------------


def test_a_source_fetch_after_the_report_shows_now_in_source_on_the_owners_entry(
    org_a: Organization, alice: User, source: Source
) -> None:
    report = report_filed(org_a, at=T0)
    md5 = md5_of(report)
    with time_machine.travel(T0 + dt.timedelta(days=12), tick=False):
        assert fetch(source, ("md5", md5)).status == ImportRun.Status.SUCCEEDED
        assert listings.listings_run() == 1
    [listing] = listings_of(report)
    assert listing.listed_at == T0 + dt.timedelta(days=12)
    assert listing.before_report is False

    client = login(alice)
    page = client.get(reverse("list_detail", args=[org_a.slug, own_csam(org_a).public_id]))
    text = page.content.decode()
    assert (
        f'Reported: <a href="{reverse("report_detail", args=[org_a.slug, report.public_id])}">'
        in text
    )
    assert "now in Hotline Feed since 16 May 2026" in text
    detail = client.get(reverse("report_detail", args=[org_a.slug, report.public_id]))
    assert "now in <strong>Hotline Feed</strong> since" in detail.content.decode()
    with scopes_disabled():
        [line] = AuditEvent.objects.filter(organization=org_a, action="report.listed")
    assert line.target_id == report.public_id
    assert line.metadata["source"] == "Hotline Feed"
    assert line.actor_label == "report listings"

    # Once per (reported entry, source list): another run, or the same hash again, adds nothing.
    with time_machine.travel(T0 + dt.timedelta(days=13), tick=False):
        fetch(source, ("md5", md5))
        assert listings.listings_run() == 0
    with scopes_disabled():
        ListingCursor.objects.filter(pk=1).update(after=0)  # read the whole feed again
    assert listings.listings_run() == 0
    assert len(listings_of(report)) == 1


def test_a_hash_the_source_listed_before_the_report_is_no_lag(
    org_a: Organization, source: Source
) -> None:
    detection = confirmed_detection(org_a)
    md5 = next(h["value"] for h in detection.submitted if h["type"] == "md5")
    with time_machine.travel(T0, tick=False):
        fetch(source, ("md5", md5))
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False), scope(organization=org_a.pk):
        report = services.report_open(detection=detection, actor=SYSTEM)
        services.report_file(report=report, actor=SYSTEM, hotline_report_id="CT-1")
    listings.listings_run()
    [listing] = listings_of(report)
    assert listing.before_report is True
    assert listings.listing_lag(org=org_a) == []


def test_own_and_community_lists_are_not_sources(org_a: Organization, org_b: Organization) -> None:
    report = report_filed(org_a, at=T0)
    md5 = md5_of(report)
    with scope(organization=org_b.pk):
        theirs = HashList.objects.get(organization=org_b, category="csam", is_default=True)
        list_services.entry_add(
            hash_list=theirs, items=[list_services.EntryInput("md5", md5)], actor=SYSTEM
        )
    share(theirs, "open")
    assert listings.listings_run() == 0
    assert listings_of(report) == []


def test_an_organisation_not_entitled_to_the_source_never_learns_it_listed_the_hash(
    alice: User, org_a: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    monkeypatch.setattr(runs, "adapter_class", lambda kind: Scripted)
    gated = source_services.source_create(
        name="Gated Feed", kind="feed", config={}, access="granted", actor=SYSTEM
    )
    report = report_filed(org_a, at=T0)
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        fetch(gated, ("md5", md5_of(report)))
    listings.listings_run()
    assert len(listings_of(report)) == 1  # recorded: shown once access is granted
    client = login(alice)
    for url in (
        reverse("list_detail", args=[org_a.slug, own_csam(org_a).public_id]),
        reverse("report_detail", args=[org_a.slug, report.public_id]),
        reverse("reports_lag_chart", args=[org_a.slug]),
    ):
        assert "Gated Feed" not in client.get(url).content.decode(), url
    assert listings.listing_lag(org=org_a) == []
    with scopes_disabled():
        assert not AuditEvent.objects.filter(organization=org_a, action="report.listed").exists()
    # Granted access, the listing shows.
    from sharing import services as sharing_services

    sharing_services.entitlement_set(source=gated, org=org_a, granted=True, actor=SYSTEM)
    page = client.get(reverse("report_detail", args=[org_a.slug, report.public_id]))
    assert "now in <strong>Gated Feed</strong>" in page.content.decode()


# --- only the owner sees report ids -------------------------------------------------------------


def test_a_subscriber_of_the_shared_list_never_sees_the_report_id(
    org_a: Organization, org_b: Organization, charlie: User, source: Source
) -> None:
    report = report_filed(org_a, at=T0)
    with time_machine.travel(T0 + dt.timedelta(days=5), tick=False):
        fetch(source, ("md5", md5_of(report)))
    listings.listings_run()
    own = own_csam(org_a)
    share(own, "open")
    subscribe(org_b, own)

    # The owner's API, with the reports scope, shows the report and the listing on the entry.
    mine = entries_api(api(org_a, [*ALL_SCOPES, "reports"]), own)
    reported = [e for e in mine if e.get("report")]
    assert {e["report"]["id"] for e in reported} == {report.public_id}
    assert {e["value"] for e in reported} == {
        h["value"] for h in report.package["detection"]["submitted"]
    }
    md5_entry = next(e for e in reported if e["type"] == "md5")
    assert md5_entry["report"]["listed"] == [
        {"source": "Hotline Feed", "listed_at": (T0 + dt.timedelta(days=5)).isoformat()}
    ]
    # Without the reports scope, not even the owner's key gets it.
    assert all("report" not in e for e in entries_api(api(org_a, ["lists:read"]), own))

    # The subscriber reads the same list: no report field, no report id anywhere.
    response = api(org_b, [*ALL_SCOPES, "reports"]).get(f"/api/v1/lists/{own.public_id}/entries")
    assert response.status_code == 200
    assert all("report" not in e for e in response.json()["entries"])
    assert report.public_id not in response.content.decode()
    page = login(charlie).get(reverse("community_list", args=[org_b.slug, own.public_id]))
    assert page.status_code == 200
    assert report.public_id not in page.content.decode()
    assert "now in" not in page.content.decode()


def test_annotations_are_asked_for_the_owners_entries_only(
    org_a: Organization, org_b: Organization
) -> None:
    report = report_filed(org_a, at=T0)
    from lists.models import Entry

    with scopes_disabled():
        entries = list(Entry.objects.filter(hash_list=own_csam(org_a)))
    said = entry_annotations.annotations_for(org=org_a, entries=entries)
    assert {value["report"] for value in said.values()} == {report.public_id}
    assert entry_annotations.annotations_for(org=org_b, entries=entries) == {}


# --- the lag ------------------------------------------------------------------------------------


def test_the_lag_per_source_is_the_median_and_90th_percentile_of_filed_reports(
    org_a: Organization, alice: User, source: Source
) -> None:
    lags = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    reports = [report_filed(org_a, at=T0 + dt.timedelta(hours=n)) for n in range(len(lags))]
    # A draft listed by the source says nothing of the lag from filing.
    with time_machine.travel(T0, tick=False):
        draft_detection = confirmed_detection(org_a)
        with scope(organization=org_a.pk):
            draft = services.report_open(detection=draft_detection, actor=SYSTEM)
    # The loop reads after each run (a later run of this feed may drop what the last one brought).
    for report, days in zip(reports, lags, strict=True):
        assert report.filed_at is not None
        with time_machine.travel(report.filed_at + dt.timedelta(days=days), tick=False):
            fetch(source, ("md5", md5_of(report)))
            assert listings.listings_run() == 1
    with time_machine.travel(T0 + dt.timedelta(days=4), tick=False):
        fetch(source, ("md5", md5_of(draft)))
        listings.listings_run()

    [row] = listings.listing_lag(org=org_a)
    assert (row.source, row.n) == ("Hotline Feed", 10)
    assert row.median_days == 5.5
    assert row.p90_days == 9.1
    assert row.max_days == 10.0

    chart = login(alice).get(reverse("reports_lag_chart", args=[org_a.slug])).content.decode()
    assert 'data-source="Hotline Feed"' in chart
    assert '<td class="num">5.5</td>' in chart and '<td class="num">9.1</td>' in chart
    assert 'data-kind="p90" data-days="9.1"' in chart


def test_the_dashboard_loads_the_lag_for_those_who_may_read_reports(
    org_a: Organization, alice: User, bob: User
) -> None:
    url = reverse("reports_lag_chart", args=[org_a.slug])
    dashboard = reverse("dashboard", args=[org_a.slug])
    assert f'hx-get="{url}"' in login(alice).get(dashboard).content.decode()
    assert f'hx-get="{url}"' not in login(bob).get(dashboard).content.decode()
    empty = login(alice).get(url).content.decode()
    assert "No reported hash has been listed by a verified source yet." in empty
    assert login(bob).get(url).status_code == 403


def test_percentiles_interpolate_between_ranks() -> None:
    assert listings.percentile([4.0], 0.9) == 4.0
    assert listings.percentile([1.0, 3.0], 0.5) == 2.0
    assert listings.percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert listings.percentile([0.0, 10.0], 0.9) == 9.0
    with pytest.raises(ValueError, match="no values"):
        listings.percentile([], 0.5)


# --- the hook -----------------------------------------------------------------------------------


def test_an_add_queues_a_run_after_commit_only_while_a_report_names_an_entry(
    org_a: Organization, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(listings.app, "send_task", lambda name, **_: sent.append(name))

    def add_one() -> None:
        with django_capture_on_commit_callbacks(execute=True), scope(organization=org_a.pk):
            list_services.entry_add(
                hash_list=own_csam(org_a),
                items=[list_services.EntryInput("md5", secrets.token_hex(16))],
                actor=SYSTEM,
            )

    add_one()
    assert sent == []  # nothing is reported: no task per add
    report_filed(org_a, at=T0)
    from django.core.cache import cache

    cache.delete("reports:listings-queued")
    add_one()
    assert sent == [listings.RUN_TASK]
