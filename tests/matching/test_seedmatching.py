from __future__ import annotations

import pytest
from django.core.management import call_command
from django_scopes import scope

from hub.models import Organization
from lists.models import Entry
from matching.models import Detection

pytestmark = pytest.mark.django_db


@pytest.mark.clock
def test_it_seeds_hashes_and_a_month_of_detections_once(org_a: Organization) -> None:
    call_command("seedmatching", org=org_a.slug, days=30, once=True, verbosity=0)
    with scope(organization=org_a.pk):
        assert Entry.objects.filter(hash_list__organization=org_a).count() == 400
        detections = Detection.objects.filter(organization=org_a)
        assert detections.count() > 10
        days = {d.created.date() for d in detections}
        assert len(days) > 5
        count = detections.count()
    call_command("seedmatching", org=org_a.slug, once=True, verbosity=0)
    with scope(organization=org_a.pk):
        assert Detection.objects.filter(organization=org_a).count() == count
