"""Retractions reach past detections (issue 19): a detection whose every matched entry has left
the lists (removed by its owner, deleted upstream, retracted for an upheld dispute; for another
owner's anonymous list, once the removal is published) is flagged retracted, audited, counted,
and sent to webhooks as ``detection.retracted``, once.

Org A matches (its own lists, org B's shared lists, a verified source); org B owns the shared
lists. Every hash is random; detections come from real match requests, so they record what they
matched through.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists.models import HashList, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Record
from matching import retractions, webhooks
from matching.models import Detection, DetectionHit
from sharing import disputes
from sharing import services as sharing_services
from tests.lists.test_sources_runner import Scripted, page
from tests.matching.test_match_api import add, remove
from tests.matching.test_webhooks import make_endpoint
from tests.sharing.test_access import api, new_list, publish, share, subscribe

pytestmark = pytest.mark.django_db

TEST = Actor(system="test")


def md5() -> str:
    return secrets.token_hex(16)


def detect(client: Client, value: str, signal_type: str = "md5") -> Detection:
    """Match ``value``; the detection it raised (it must raise one)."""
    response = client.post(
        "/api/v1/match",
        {"hashes": [{"type": signal_type, "value": value}], "content_ref": "item-1"},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    public_id = response.json()["detection"]
    assert public_id, response.json()
    with scopes_disabled():
        return Detection.objects.get(public_id=public_id)


def fresh(detection: Detection) -> Detection:
    with scopes_disabled():
        return Detection.objects.get(pk=detection.pk)


def retracted_events(org: Organization) -> list[str]:
    with scopes_disabled():
        return list(
            AuditEvent.objects.filter(organization=org, action="detection.retracted").values_list(
                "target_id", flat=True
            )
        )


def retracted_sent(callbacks: list[Any]) -> list[tuple[int, int]]:
    """(endpoint, detection) of each detection.retracted delivery queued."""
    return [
        (cb.keywords["kwargs"]["endpoint_id"], cb.keywords["kwargs"]["detection_id"])
        for cb in callbacks
        if getattr(cb, "keywords", None)
        and cb.keywords.get("kwargs", {}).get("event") == webhooks.EVENT_RETRACTED
    ]


def own_list(org: Organization) -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category="csam", is_default=True)


# --- the owner removes --------------------------------------------------------------------------


def test_a_removal_by_the_owner_retracts_the_detection_once_with_one_webhook(
    org_a: Organization, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    endpoint, _ = make_endpoint(org_a, "https://8.8.8.8/hook")
    hash_list, value = own_list(org_a), md5()
    add(hash_list, ("md5", value))
    detection = detect(api(org_a), value)
    with scopes_disabled():
        assert list(
            DetectionHit.objects.filter(detection=detection).values_list(
                "hash_list_id", "published_view"
            )
        ) == [(hash_list.pk, False)]
    assert retractions.retractions_run() == 0
    assert fresh(detection).retracted_at is None

    remove(hash_list, ("md5", value))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert retractions.retractions_run() == 1
    with django_capture_on_commit_callbacks(execute=False) as again:
        assert retractions.retractions_run() == 0

    assert fresh(detection).retracted_at is not None
    assert fresh(detection).status == Detection.Status.NEW  # still the analyst's to review
    assert retracted_events(org_a) == [detection.public_id]
    assert retracted_sent(callbacks) == [(endpoint.pk, detection.pk)]
    assert retracted_sent(again) == []


def test_the_webhook_body_says_when_it_was_retracted(org_a: Organization) -> None:
    hash_list, value = own_list(org_a), md5()
    add(hash_list, ("md5", value))
    detection = detect(api(org_a), value)
    remove(hash_list, ("md5", value))
    retractions.retractions_run()
    detection = fresh(detection)
    body = webhooks.webhook_payload(
        event=webhooks.EVENT_RETRACTED,
        event_id="evt",
        organization=org_a,
        detection=detection,
        created=detection.retracted_at,  # type: ignore[arg-type]
    )
    assert b'"event":"detection.retracted"' in body
    assert detection.retracted_at is not None
    assert detection.retracted_at.isoformat().encode() in body


def test_a_detection_with_another_live_hit_is_not_flagged(org_a: Organization) -> None:
    first, second = own_list(org_a), new_list(org_a, "Second")
    value = md5()
    add(first, ("md5", value))
    add(second, ("md5", value))
    detection = detect(api(org_a), value)

    remove(first, ("md5", value))
    assert retractions.retractions_run() == 0
    assert fresh(detection).retracted_at is None

    remove(second, ("md5", value))
    assert retractions.retractions_run() == 1
    assert fresh(detection).retracted_at is not None


def test_a_detection_whose_hash_came_back_is_not_flagged(org_a: Organization) -> None:
    hash_list, value = own_list(org_a), md5()
    add(hash_list, ("md5", value))
    detection = detect(api(org_a), value)
    remove(hash_list, ("md5", value))
    add(hash_list, ("md5", value))
    assert retractions.retractions_run() == 0
    assert fresh(detection).retracted_at is None


def test_a_run_reads_at_most_its_limit_and_the_next_goes_on(org_a: Organization) -> None:
    hash_list = own_list(org_a)
    values = [md5() for _ in range(3)]
    add(hash_list, *(("md5", v) for v in values))
    found = [detect(api(org_a), v) for v in values]
    remove(hash_list, *(("md5", v) for v in values))

    assert retractions.retractions_run(limit=2) == 2
    assert retractions.retractions_run(limit=2) == 1
    assert retractions.retractions_run(limit=2) == 0
    assert all(fresh(d).retracted_at is not None for d in found)


def test_a_removal_queues_one_run_after_commit(
    org_a: Organization,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(retractions.app, "send_task", lambda name, **kw: sent.append(name))
    hash_list = own_list(org_a)
    first, second = md5(), md5()
    add(hash_list, ("md5", first), ("md5", second))

    with django_capture_on_commit_callbacks(execute=True):
        remove(hash_list, ("md5", first))
    with django_capture_on_commit_callbacks(execute=True):
        remove(hash_list, ("md5", second))
    assert sent == [retractions.RUN_TASK]  # the second waits for the queued run

    retractions.retractions_run_queued()
    with django_capture_on_commit_callbacks(execute=True):
        add(hash_list, ("md5", first))
        remove(hash_list, ("md5", first))
    assert sent == [retractions.RUN_TASK, retractions.RUN_TASK]


# --- upstream, disputes, anonymous lists --------------------------------------------------------


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Source:
    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    monkeypatch.setattr(runs, "adapter_class", lambda kind: Scripted)
    Scripted.SCRIPT = []
    return source_services.source_create(
        name="Hotline Feed", kind="feed", config={}, access="granted", actor=TEST
    )


def test_a_deletion_upstream_retracts_through_a_source_import(
    org_a: Organization, org_b: Organization, source: Source
) -> None:
    sharing_services.entitlement_set(source=source, org=org_a, granted=True, actor=TEST)
    value = md5()
    Scripted.SCRIPT = [page(0, Record("1", "add", (("md5", value),), key="r1", labels=("A1",)))]
    done = runs.run_execute(run_id=runs.run_create(source=source, trigger="t", enqueue=False).pk)
    assert done.status == "succeeded", done.error_message
    detection = detect(api(org_a), value)
    assert detection.tiers == ["verified"]

    Scripted.SCRIPT.append(page(1, Record("2", "remove", key="r1")))
    done = runs.run_execute(run_id=runs.run_create(source=source, trigger="t", enqueue=False).pk)
    assert done.removed == 1

    assert retractions.retractions_run() == 1
    assert fresh(detection).retracted_at is not None
    assert retracted_events(org_b) == []


def test_an_upheld_dispute_retracts_the_subscribers_detection(
    org_a: Organization, org_b: Organization
) -> None:
    shared, value = new_list(org_b, "Shared"), md5()
    add(shared, ("md5", value))
    share(shared, "open")
    subscribe(org_a, shared)
    detection = detect(api(org_a), value)
    assert detection.tiers == ["community"]
    with scope(organization=org_a.pk):
        raised = disputes.dispute_create(
            org=org_a,
            list_public_id=shared.public_id,
            signal_type="md5",
            value=value,
            reason="not_csam",
            note="",
            reveal=False,
            actor=TEST,
        )
    assert retractions.retractions_run() == 0

    with scope(organization=org_b.pk):
        disputes.dispute_retract(org=org_b, public_id=raised.public_id, note="Upheld.", actor=TEST)

    assert retractions.retractions_run() == 1
    assert fresh(detection).retracted_at is not None
    assert retracted_events(org_a) == [detection.public_id]


def test_a_subscriber_sees_an_anonymous_removal_only_once_published(
    org_a: Organization, org_b: Organization
) -> None:
    quiet, value = new_list(org_b, "Quiet"), md5()
    share(quiet, "anonymous")
    subscribe(org_a, quiet)
    add(quiet, ("md5", value))
    publish()
    theirs = detect(api(org_a), value)  # through the published view
    owners = detect(api(org_b), value)  # the owner's own view
    with scopes_disabled():
        assert DetectionHit.objects.get(detection=theirs).published_view is True
        assert DetectionHit.objects.get(detection=owners).published_view is False

    remove(quiet, ("md5", value))
    assert retractions.retractions_run() == 1
    assert fresh(owners).retracted_at is not None  # the owner at once
    assert fresh(theirs).retracted_at is None  # the subscriber still sees the entry

    publish()
    assert retractions.retractions_run() == 1
    assert fresh(theirs).retracted_at is not None
    [event] = retracted_events(org_a)
    assert event == theirs.public_id


def test_retracted_detections_are_flagged_in_the_queue_and_counted(
    org_a: Organization, alice_client: Client
) -> None:
    hash_list, value = own_list(org_a), md5()
    add(hash_list, ("md5", value))
    detection = detect(api(org_a), value)
    remove(hash_list, ("md5", value))
    retractions.retractions_run()

    queue = alice_client.get("/o/org-a/detections/?retracted=yes").content.decode()
    assert f'data-detection="{detection.public_id}"' in queue
    assert "flag-retracted" in queue
    summary = alice_client.get("/o/org-a/detections/summary/").content.decode()
    assert 'data-count="retracted">1<' in summary
