"""seedreports: the demo's reports (`make run` runs it after seedmatching), once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django_scopes import scope

from hub.models import Organization
from matching.models import Detection
from reports.models import Report

pytestmark = pytest.mark.django_db


@pytest.mark.clock
def test_it_reports_two_confirmed_csam_detections_once(org_a: Organization) -> None:
    call_command("seedmatching", org=org_a.slug, days=30, once=True, verbosity=0)
    out = StringIO()
    call_command("seedreports", org=org_a.slug, once=True, stdout=out)
    assert "Seeded 2 reports" in out.getvalue()
    with scope(organization=org_a.pk):
        reports = {r.state: r for r in Report.objects.filter(organization=org_a)}
        assert sorted(reports) == ["draft", "filed"]
        assert reports["filed"].hotline_report_id == "CT-DEMO-0001"
        for report in reports.values():
            detection = Detection.objects.get(pk=report.detection_id or 0)
            assert (detection.status, detection.confirmed_category) == ("confirmed", "csam")
            assert report.entries.exists()  # linked to the entries of the own CSAM list
        assert reports["filed"].detection.holds.exists()  # type: ignore[union-attr]
    again = StringIO()
    call_command("seedreports", org=org_a.slug, once=True, stdout=again)
    assert "already present" in again.getvalue()
    with scope(organization=org_a.pk):
        assert Report.objects.filter(organization=org_a).count() == 2


def test_without_csam_detections_it_reports_nothing(org_a: Organization) -> None:
    out = StringIO()
    call_command("seedreports", org=org_a.slug, once=True, stdout=out)
    assert "nothing to do" in out.getvalue()
    with scope(organization=org_a.pk):
        assert not Report.objects.filter(organization=org_a).exists()
