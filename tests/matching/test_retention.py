"""Retention purges skip what a preservation hold keeps (issue 21): detections, the submitted
hashes kept for retroactive matching, and webhook delivery logs. Once the hold is released or
past its ``until``, the next purge deletes them like anything else past its period.

Every period comes from hub.retention; every moment is set with time-machine, never the wall
clock. Org A holds; org B is the neighbour whose records go their own way.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub import retention
from hub.audit import Actor
from hub.models import AuditEvent, Organization
from matching import kept as kept_module
from matching import preservation, retroactive, review, tasks, webhooks
from matching.models import (
    Detection,
    KeptCount,
    KeptSubmission,
    PreservationHold,
    WebhookDelivery,
    WebhookEndpoint,
)
from sharing.policy import policy_set
from tests.matching.test_match_api import add, match, own_list
from tests.matching.test_review import make_detection
from tests.matching.test_webhooks import make_endpoint

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


@pytest.fixture(autouse=True)
def _periods(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.HASHHUB_DETECTION_RETENTION_DAYS = 90
    settings.HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS = 30
    settings.HASHHUB_PRESERVATION_HOLD_DAYS = 365
    settings.HASHHUB_RETROACTIVE_INDEX_DIR = tmp_path / "retroactive"
    retroactive.kept_indexes_reset()
    yield
    retroactive.kept_indexes_reset()


def hold(detection: Detection, days: int | None = None) -> PreservationHold:
    with scope(organization=detection.organization_id):
        return preservation.hold_place(detection=detection, actor=SYSTEM, days=days, reason="t")


def release(held: PreservationHold) -> None:
    with scope(organization=held.organization_id):
        preservation.hold_release(hold=held, actor=SYSTEM)


def detection_ids() -> set[int]:
    with scopes_disabled():
        return set(Detection.objects.values_list("pk", flat=True))


def events(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action).order_by("pk"))


# --- the one policy ------------------------------------------------------------------------------


def test_the_purges_read_their_periods_from_hub_retention(settings: Any) -> None:
    settings.HASHHUB_DETECTION_RETENTION_DAYS = 12
    settings.HASHHUB_WEBHOOK_DELIVERY_RETENTION_DAYS = 3
    assert retention.detections().delta == dt.timedelta(days=12)
    assert retention.webhook_deliveries().delta == dt.timedelta(days=3)
    assert [p.record for p in retention.policy()] == [
        "detections",
        "kept submitted hashes",
        "webhook delivery logs",
        "report records",
        "preservation hold",
        "audit events",
    ]


def test_the_deliveries_purge_runs_daily_from_beat() -> None:
    entry = django_settings.CELERY_BEAT_SCHEDULE["purge-old-webhook-deliveries"]
    assert entry["task"] == tasks.purge_webhook_deliveries.name


# --- detections ----------------------------------------------------------------------------------


def test_a_held_detection_survives_the_purge_until_its_hold_is_released(
    org_a: Organization, org_b: Organization
) -> None:
    with time_machine.travel(T0, tick=False):
        held = make_detection(org_a)
        loose = make_detection(org_a)
        theirs = make_detection(org_b)
        the_hold = hold(held, days=365)
    with time_machine.travel(T0 + 91 * DAY, tick=False):
        assert review.detections_purge() == 2
        assert detection_ids() == {held.pk}
        [line] = events(org_a, "detections.purged")
        assert line.metadata["purged"] == 1 and line.metadata["retention_days"] == 90
        assert events(org_b, "detections.purged")[0].metadata["purged"] == 1
        assert review.detections_purge() == 0  # still held: nothing more to do
        release(the_hold)
        assert review.detections_purge() == 1
    assert detection_ids() == set()
    assert theirs.pk not in detection_ids() and loose.pk not in detection_ids()


def test_a_hold_past_its_until_keeps_nothing(org_a: Organization) -> None:
    with time_machine.travel(T0, tick=False):
        held = make_detection(org_a)
        hold(held, days=100)
    with time_machine.travel(T0 + 99 * DAY, tick=False):
        assert review.detections_purge() == 0
        assert detection_ids() == {held.pk}
    with time_machine.travel(T0 + 100 * DAY + dt.timedelta(seconds=1), tick=False):
        assert review.detections_purge() == 1
    assert detection_ids() == set()


def test_one_active_hold_among_ended_ones_still_holds(org_a: Organization) -> None:
    with time_machine.travel(T0, tick=False):
        held = make_detection(org_a)
        release(hold(held, days=10))
        hold(held, days=200)
    with time_machine.travel(T0 + 150 * DAY, tick=False):
        assert review.detections_purge() == 0
    assert detection_ids() == {held.pk}


def test_the_detections_task_skips_held_ones_too(org_a: Organization) -> None:
    with time_machine.travel(T0, tick=False):
        held = make_detection(org_a)
        make_detection(org_a)
        hold(held)
    with time_machine.travel(T0 + 91 * DAY, tick=False):
        assert tasks.purge_detections() == 1
    assert detection_ids() == {held.pk}


# --- kept submitted hashes -----------------------------------------------------------------------


def opt_in(org: Organization, days: int) -> None:
    with scope(organization=org.pk):
        policy_set(org=org, changes={"retroactive_days": days}, actor=SYSTEM)


def kept_refs(org: Organization) -> list[tuple[str, str]]:
    with scopes_disabled():
        rows = KeptSubmission.objects.filter(organization=org).order_by("pk")
        return [(bytes(row.value).hex(), row.content_ref) for row in rows]


def kept_count(org: Organization) -> int:
    with scopes_disabled():
        return KeptCount.objects.get(organization=org).kept


def submit(client: Client, value: str, ref: str) -> None:
    response = match(client, [{"type": "md5", "value": value}], content_ref=ref)
    assert response.status_code == 200, response.content


def matched_detection(api_a: Client, org_a: Organization, listed: str, other: str) -> Detection:
    """A match request with content_ref clip-1 that found ``listed`` (``other`` missed)."""
    hashes = [{"type": "md5", "value": listed}, {"type": "md5", "value": other}]
    body = match(api_a, hashes, content_ref="clip-1").json()
    with scopes_disabled():
        return Detection.objects.get(organization=org_a, public_id=body["detection"])


def test_a_held_detections_kept_hashes_survive_expiry_and_go_once_released(
    api_a: Client, org_a: Organization
) -> None:
    listed, other, loose = (secrets.token_hex(16) for _ in range(3))
    opt_in(org_a, days=7)
    with time_machine.travel(T0, tick=False):
        add(own_list(org_a), ("md5", listed))
        detection = matched_detection(api_a, org_a, listed, other)
        assert (
            match(api_a, [{"type": "md5", "value": loose}], content_ref="clip-2").status_code == 200
        )
        # The same hash under another content_ref is another submission: the hold is not its.
        assert (
            match(api_a, [{"type": "md5", "value": other}], content_ref="clip-3").status_code == 200
        )
        the_hold = hold(detection)
    assert kept_count(org_a) == 4
    with time_machine.travel(T0 + 8 * DAY, tick=False):
        assert kept_module.kept_purge() == 2
        assert sorted(kept_refs(org_a)) == sorted([(listed, "clip-1"), (other, "clip-1")])
        assert kept_count(org_a) == 2
        release(the_hold)
        assert kept_module.kept_purge() == 2
    assert kept_refs(org_a) == []
    assert kept_count(org_a) == 0
    assert [e.metadata["purged"] for e in events(org_a, "retroactive.purged")] == [2, 2]


def test_held_kept_hashes_stay_when_the_org_turns_retroactive_matching_off(
    api_a: Client, org_a: Organization
) -> None:
    listed, other, loose = (secrets.token_hex(16) for _ in range(3))
    opt_in(org_a, days=30)
    with time_machine.travel(T0, tick=False):
        add(own_list(org_a), ("md5", listed))
        detection = matched_detection(api_a, org_a, listed, other)
        assert (
            match(api_a, [{"type": "md5", "value": loose}], content_ref="clip-2").status_code == 200
        )
        hold(detection, days=60)
    opt_in(org_a, days=0)
    with time_machine.travel(T0 + DAY, tick=False):
        assert kept_module.kept_purge() == 1
        assert sorted(kept_refs(org_a)) == sorted([(listed, "clip-1"), (other, "clip-1")])
        assert kept_count(org_a) == 2
    # Past the hold's end, the next purge takes them (retroactive matching is still off).
    with time_machine.travel(T0 + 61 * DAY, tick=False):
        assert kept_module.kept_purge() == 2
    assert kept_refs(org_a) == [] and kept_count(org_a) == 0


def test_the_kept_purge_passes_held_hashes_batch_after_batch(
    api_a: Client, org_a: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kept_module, "PURGE_BATCH", 1)
    values = [secrets.token_hex(16) for _ in range(4)]
    opt_in(org_a, days=7)
    with time_machine.travel(T0, tick=False):
        add(own_list(org_a), ("md5", values[1]))
        submit(api_a, values[0], "clip-0")
        held = matched_detection(api_a, org_a, values[1], values[2])  # kept as clip-1
        submit(api_a, values[3], "clip-3")
        hold(held)
        # The held submissions sit between the loose ones in pk order.
        assert [ref for _, ref in kept_refs(org_a)] == ["clip-0", "clip-1", "clip-1", "clip-3"]
    with time_machine.travel(T0 + 8 * DAY, tick=False):
        assert kept_module.kept_purge() == 2
    assert kept_refs(org_a) == [(values[1], "clip-1"), (values[2], "clip-1")]
    assert kept_count(org_a) == 2
    assert [e.metadata["purged"] for e in events(org_a, "retroactive.purged")] == [1, 1]


def _held_rows() -> list[KeptSubmission]:
    keys = preservation.held_submission_keys()
    return [
        row
        for row in KeptSubmission.objects.all()
        if (row.organization_id, row.signal_type, bytes(row.value), row.content_ref) in keys
    ]


def test_the_held_keys_name_the_kept_rows_of_the_held_detection(
    api_a: Client, org_a: Organization
) -> None:
    listed, other = secrets.token_hex(16), secrets.token_hex(16)
    opt_in(org_a, days=7)
    add(own_list(org_a), ("md5", listed))
    hold(matched_detection(api_a, org_a, listed, other))
    submit(api_a, other, "clip-9")
    with scopes_disabled():
        rows = _held_rows()
        assert sorted((bytes(r.value).hex(), r.content_ref) for r in rows) == sorted(
            [(listed, "clip-1"), (other, "clip-1")]
        )


def test_nothing_held_holds_no_kept_hash() -> None:
    with scopes_disabled():
        assert preservation.held_submission_keys() == set()


# --- webhook delivery logs -----------------------------------------------------------------------


def delivery(endpoint: WebhookEndpoint, detection: Detection | None, when: dt.datetime) -> int:
    with scopes_disabled():
        return WebhookDelivery.objects.create(
            organization=endpoint.organization,
            endpoint=endpoint,
            detection=detection,
            event="detection.created" if detection else "ping",
            event_id=secrets.token_hex(8),
            status=WebhookDelivery.Status.SUCCEEDED,
            created=when,
        ).pk


def delivery_ids() -> set[int]:
    with scopes_disabled():
        return set(WebhookDelivery.objects.values_list("pk", flat=True))


def test_delivery_logs_past_their_period_go_except_a_held_detections(
    org_a: Organization, org_b: Organization
) -> None:
    endpoint_a, _ = make_endpoint(org_a, "https://8.8.8.8/a")
    endpoint_b, _ = make_endpoint(org_b, "https://8.8.8.8/b")
    with time_machine.travel(T0, tick=False):
        held = make_detection(org_a)
        loose = make_detection(org_a)
        the_hold = hold(held, days=365)
        held_log = delivery(endpoint_a, held, T0)
        loose_log = delivery(endpoint_a, loose, T0)
        ping = delivery(endpoint_a, None, T0)
        fresh = delivery(endpoint_a, loose, T0 + 20 * DAY)
        theirs = delivery(endpoint_b, None, T0)
    with time_machine.travel(T0 + 31 * DAY, tick=False):
        assert webhooks.deliveries_purge() == 3
        assert delivery_ids() == {held_log, fresh}
        [line] = events(org_a, "webhooks.deliveries_purged")
        assert line.actor_type == AuditEvent.ActorType.SYSTEM
        assert line.metadata["purged"] == 2 and line.metadata["retention_days"] == 30
        assert events(org_b, "webhooks.deliveries_purged")[0].metadata["purged"] == 1
        release(the_hold)
        assert tasks.purge_webhook_deliveries() == 1
    assert delivery_ids() == {fresh}
    assert {loose_log, ping, theirs} & delivery_ids() == set()


def test_a_held_detection_keeps_its_delivery_logs_through_the_detections_purge(
    org_a: Organization,
) -> None:
    endpoint, _ = make_endpoint(org_a, "https://8.8.8.8/a")
    with time_machine.travel(T0, tick=False):
        held = make_detection(org_a)
        loose = make_detection(org_a)
        hold(held, days=200)
        held_log = delivery(endpoint, held, T0)
        delivery(endpoint, loose, T0)
    with time_machine.travel(T0 + 100 * DAY, tick=False):
        review.detections_purge()
        webhooks.deliveries_purge()
    assert delivery_ids() == {held_log}
    with time_machine.travel(T0 + 201 * DAY, tick=False):
        assert review.detections_purge() == 1
    assert delivery_ids() == set()  # gone with their detection


def test_the_deliveries_purge_works_in_batches(
    org_a: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhooks, "DELIVERIES_PURGE_BATCH", 2)
    endpoint, _ = make_endpoint(org_a, "https://8.8.8.8/a")
    with time_machine.travel(T0, tick=False):
        for _ in range(5):
            delivery(endpoint, None, T0)
    with time_machine.travel(T0 + 31 * DAY, tick=False):
        assert webhooks.deliveries_purge() == 5
    assert delivery_ids() == set()
    assert [e.metadata["purged"] for e in events(org_a, "webhooks.deliveries_purged")] == [2, 2, 1]
