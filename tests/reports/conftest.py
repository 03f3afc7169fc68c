"""Shared fixtures of the reports tests: org A (approved, see tests/conftest.py) with a detection
confirmed as CSAM and one confirmed as SE, each through matching.review.detection_confirm (so
their hashes are in org A's own lists, as a real confirmation leaves them). Every hash is random.

``confirmed_detection`` and ``open_report`` are plain functions too, for tests that need more
(tests/test_permissions.py makes org A's and org B's reports with them).
"""

from __future__ import annotations

import secrets

import pytest
from django_scopes import scope

from hub.audit import Actor
from hub.models import Organization
from matching import review
from matching.models import Detection
from reports import services
from reports.models import Report

TEST = Actor(system="test")


def confirmed_detection(
    org: Organization, category: str = "csam", *, content_ref: str = "upload-1"
) -> Detection:
    """A detection of ``org`` (a PDQ and an MD5 submitted, the PDQ matched a verified list),
    confirmed into ``org``'s own ``category`` list."""
    value = secrets.token_hex(32)
    match = {
        "list": {
            "id": secrets.token_urlsafe(12),
            "name": "Trusted Source CSAM",
            "category": category,
            "tier": "verified",
            "contributor": "Trusted Source",
            "anonymous": False,
        },
        "distance": 4,
        "matched_value": secrets.token_hex(32),
        "labels": ["A1"],
        "record_id": "rec-1",
    }
    with scope(organization=org.pk):
        detection = Detection.objects.create(
            organization=org,
            source_label="API key test (hh_test)",
            content_ref=content_ref,
            submitted=[
                {"type": "pdq", "value": value},
                {"type": "md5", "value": secrets.token_hex(16)},
            ],
            matches=[{"type": "pdq", "value": value, "matches": [match]}],
            match_count=1,
            match_total=1,
            tiers=["verified"],
            categories=[category],
        )
        review.detection_confirm(detection=detection, category=category, actor=TEST)
        return Detection.objects.select_related("organization").get(pk=detection.pk)


def open_report(org: Organization, **fields: object) -> Report:
    """A draft report of ``org`` about a fresh detection confirmed as CSAM."""
    detection = confirmed_detection(org)
    with scope(organization=org.pk):
        return services.report_open(detection=detection, actor=TEST, **fields)  # type: ignore[arg-type]


@pytest.fixture
def csam_detection(org_a: Organization) -> Detection:
    return confirmed_detection(org_a, "csam")


@pytest.fixture
def se_detection(org_a: Organization) -> Detection:
    return confirmed_detection(org_a, "se")
