"""The dashboard's chart of detections per day by tier: the figures and the SVG that draws them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_scopes import scope

from hub.models import Organization
from matching import review
from tests.matching.test_review import a_match, make_detection

# Days are calendar days from today: run them at the suite's fixed instants.
pytestmark = [pytest.mark.django_db, pytest.mark.clock]


@pytest.fixture(autouse=True)
def _the_clock_stands_still(_clock: None) -> Iterator[None]:
    """Today stays today for the whole test: begun a moment before midnight, a test would
    otherwise make its detections on one day and read the chart of the next."""
    with time_machine.travel(timezone.now(), tick=False):
        yield


def noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=timezone.get_current_timezone())


@pytest.fixture
def history(org_a: Organization, org_b: Organization) -> date:
    """Org A: 2 own today, 1 own + community 3 days ago, 3 verified 29 days ago, 1 too old."""
    today = timezone.localdate()
    make_detection(org_a, created=noon(today))
    make_detection(org_a, created=noon(today))
    make_detection(
        org_a, created=noon(today - timedelta(days=3)), found=[a_match("own"), a_match("community")]
    )
    for _ in range(3):
        make_detection(org_a, created=noon(today - timedelta(days=29)), found=[a_match("verified")])
    make_detection(org_a, created=noon(today - timedelta(days=30)))
    make_detection(org_b, created=noon(today))  # someone else's
    return today


def test_detections_per_day_is_zero_filled_and_counts_once_per_tier(
    org_a: Organization, history: date
) -> None:
    with scope(organization=org_a.pk):
        days = review.detections_per_day(org=org_a, days=30)
    assert len(days) == 30
    assert [d.day for d in days] == [history - timedelta(days=29 - n) for n in range(30)]
    by_day = {d.day: d for d in days}
    assert by_day[history] == review.DayCount(history, total=2, verified=0, own=2, community=0)
    three_ago = by_day[history - timedelta(days=3)]
    assert (three_ago.total, three_ago.own, three_ago.community) == (1, 1, 1)
    assert by_day[history - timedelta(days=29)].verified == 3
    assert sum(d.total for d in days) == 6
    assert sum(1 for d in days if d.total == 0) == 27


def test_the_chart_fragment_is_an_svg_with_one_bar_group_per_day(
    bob_client: Client, history: date
) -> None:
    response = bob_client.get("/o/org-a/detections/chart/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body  # a fragment for htmx, not a page
    assert body.count("<svg") == 1
    assert 'role="img"' in body
    assert '<title id="detections-chart-title">' in body
    assert '<desc id="detections-chart-desc">' in body
    groups = re.findall(r'<g class="day" data-day="([\d-]+)" data-total="(\d+)">', body)
    assert len(groups) == 30
    totals = {day: int(total) for day, total in groups}
    assert totals[history.isoformat()] == 2
    assert totals[(history - timedelta(days=3)).isoformat()] == 1
    assert totals[(history - timedelta(days=29)).isoformat()] == 3
    assert sum(totals.values()) == 6
    segments = re.findall(r'data-tier="(\w+)" data-count="(\d+)"', body)
    per_tier: dict[str, int] = {}
    for tier, count in segments:
        per_tier[tier] = per_tier.get(tier, 0) + int(count)
    assert per_tier == {"own": 3, "community": 1, "verified": 3}
    assert "6 detections in the period: 3 verified, 3 own, 1 community." in body
    for tier in ("Verified", "Own", "Community"):  # the legend
        assert tier in body
    assert "Detections" in body and "Day (UTC)" in body  # the axis titles


def test_stacked_segments_sit_on_each_other_and_scale_to_the_axis(
    alice_client: Client, history: date
) -> None:
    body = alice_client.get("/o/org-a/detections/chart/").content.decode()
    day = (history - timedelta(days=3)).isoformat()
    group = body.split(f'data-day="{day}"')[1].split("</g>")[0]
    rects = re.findall(r'data-tier="(\w+)".*?y="([\d.]+)" width="[\d.]+" height="([\d.]+)"', group)
    (lower, lower_y, lower_h), (upper, upper_y, upper_h) = rects
    assert (lower, upper) == ("own", "community")
    assert float(upper_y) + float(upper_h) == pytest.approx(float(lower_y), abs=0.02)
    assert float(lower_h) == pytest.approx(float(upper_h), abs=0.02)
    # The y axis reaches at least the busiest day's stack (3 detections).
    ticks = [int(t) for t in re.findall(r'text-anchor="end">(\d+)</text>', body)]
    assert ticks[0] == 0
    assert max(ticks) >= 3


def test_an_empty_chart_still_draws_thirty_empty_days(
    alice_client: Client, org_a: Organization
) -> None:
    body = alice_client.get("/o/org-a/detections/chart/").content.decode()
    assert len(re.findall(r'<g class="day"', body)) == 30
    assert 'class="segment' not in body
    assert "0 detections in the period" in body


def test_the_dashboard_loads_the_chart_with_htmx(alice_client: Client, org_a: Organization) -> None:
    body = alice_client.get("/o/org-a/").content.decode()
    assert 'hx-get="/o/org-a/detections/chart/"' in body
    assert 'hx-trigger="load"' in body


def test_charlie_gets_404_for_org_as_chart(charlie_client: Client, history: date) -> None:
    assert charlie_client.get("/o/org-a/detections/chart/").status_code == 404
    body = charlie_client.get("/o/org-b/detections/chart/").content.decode()
    totals = re.findall(r'data-total="(\d+)"', body)
    assert sum(int(t) for t in totals) == 1  # only org B's own detection
