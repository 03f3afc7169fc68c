"""Retroactive matching: submissions kept on opt-in, matched again when a hash enters a list.

Org A (Alice's) opts in and submits hashes that match nothing; later a hash enters a list it
matches (its own, a community list, a verified source's) and one retroactive detection appears,
with a webhook naming the original request's time and content_ref. Org B shares lists; org C
(Charlie's) may match nothing of them and must get nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import time_machine
from django.test import Client
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists import changes
from lists import services as list_services
from lists.models import HashList, Source
from lists.sources import services as source_services
from matching import kept as kept_module
from matching import retroactive, webhooks
from matching.models import (
    AllowedHash,
    Detection,
    KeptCount,
    KeptSubmission,
    RetroactiveCheck,
    RetroactiveCursor,
)
from sharing import services as sharing_services
from sharing.policy import policy_set
from tests.factories import OrganizationFactory
from tests.lists.test_hashtypes_compute import encode, synthetic_image
from tests.matching.test_match_api import add, flip, match, own_list, random_pdq
from tests.matching.test_match_image import upload
from tests.matching.test_webhooks import (  # noqa: F401 (fixtures)
    Receiver,
    allow_loopback,
    make_endpoint,
    receiver,
)
from tests.sharing.test_access import api, new_list, publish, share, subscribe

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
T0 = dt.datetime(2026, 5, 4, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _kept_index_dir(settings: Any, tmp_path: Path) -> Iterator[None]:
    settings.HASHHUB_RETROACTIVE_INDEX_DIR = tmp_path / "retroactive"
    retroactive.kept_indexes_reset()
    yield
    retroactive.kept_indexes_reset()


def opt_in(org: Organization, days: int = 30) -> None:
    with scope(organization=org.pk):
        policy_set(org=org, changes={"retroactive_days": days}, actor=SYSTEM)


def run(capture: Callable[..., Any]) -> list[Any]:
    """One matcher run (as beat's task does); returns the after-commit callbacks it queued."""
    with capture(execute=False) as callbacks:
        retroactive.retroactive_run()
    return list(callbacks)


def retroactive_detections(org: Organization) -> list[Detection]:
    with scopes_disabled():
        return list(Detection.objects.filter(organization=org, retroactive=True))


def kept(org: Organization) -> list[KeptSubmission]:
    with scopes_disabled():
        return list(KeptSubmission.objects.filter(organization=org).order_by("pk"))


def submit(client: Client, signal_type: str, value: str, ref: str = "upload-7") -> Any:
    response = match(client, [{"type": signal_type, "value": value}], content_ref=ref)
    assert response.status_code == 200, response.content
    assert response.json()["results"][0]["matches"] == []
    return response.json()


# --- keeping ----------------------------------------------------------------------------------


def test_nothing_is_kept_and_nothing_raised_without_opting_in(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    md5 = secrets.token_hex(16)
    submit(api_a, "md5", md5)
    assert kept(org_a) == []
    add(own_list(org_a), ("md5", md5))
    run(django_capture_on_commit_callbacks)
    assert retroactive_detections(org_a) == []


def test_valid_submissions_are_kept_once_with_their_content_ref_and_expiry(
    api_a: Client, org_a: Organization
) -> None:
    opt_in(org_a, days=30)
    pdq, md5 = random_pdq(), secrets.token_hex(16)
    items = [
        {"type": "pdq", "value": pdq},
        {"type": "md5", "value": md5.upper()},
        {"type": "md5", "value": "not hex"},
    ]
    with time_machine.travel(T0, tick=False):
        assert match(api_a, items, content_ref="post-1").status_code == 200
    with time_machine.travel(T0 + dt.timedelta(days=2), tick=False):
        assert match(api_a, items, content_ref="post-1").status_code == 200

    rows = kept(org_a)
    assert sorted((r.signal_type, bytes(r.value).hex()) for r in rows) == sorted(
        [("pdq", pdq), ("md5", md5)]
    )
    # Submitting again refreshed them: the latest request's time, expiry from it.
    later = T0 + dt.timedelta(days=2)
    assert {(r.content_ref, r.requested_at, r.expires_at) for r in rows} == {
        ("post-1", later, later + dt.timedelta(days=30))
    }
    with scopes_disabled():
        assert KeptCount.objects.get(organization=org_a).kept == 2


def test_an_image_keeps_its_computed_hashes_but_not_their_rotations(
    api_a: Client, org_a: Organization
) -> None:
    opt_in(org_a)
    png = encode(synthetic_image(seed=3))
    response = upload(api_a, png, dihedral="true", content_ref="img-1")
    assert response.status_code == 200, response.content
    hashes = response.json()["hashes"]
    rows = kept(org_a)
    assert sorted((r.signal_type, bytes(r.value).hex()) for r in rows) == sorted(
        (name, value["value"]) for name, value in hashes.items()
    )
    assert {r.content_ref for r in rows} == {"img-1"}


def test_a_full_quota_keeps_no_more_and_the_match_goes_on(
    api_a: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_RETROACTIVE_MAX_KEPT = 2
    opt_in(org_a)
    values = [secrets.token_hex(16) for _ in range(3)]
    held = values[2]
    add(own_list(org_a), ("md5", held))
    response = match(api_a, [{"type": "md5", "value": v} for v in values])
    assert response.status_code == 200
    assert [len(r["matches"]) for r in response.json()["results"]] == [0, 0, 1]
    assert sorted(bytes(r.value).hex() for r in kept(org_a)) == sorted(values[:2])
    # One already kept is refreshed even when the quota is full.
    assert match(api_a, [{"type": "md5", "value": values[0]}]).status_code == 200
    assert len(kept(org_a)) == 2


@pytest.mark.parametrize("days", [366, -1, "30", True, None])
def test_retroactive_days_out_of_range_is_a_clear_400(
    api_a: Client, org_a: Organization, days: Any
) -> None:
    response = api_a.put(
        "/api/v1/policy", {"retroactive_days": days}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"]
    assert response.json()["error"]["message"]


# --- raising retroactive detections ---------------------------------------------------------------


def test_an_exact_hash_added_later_to_an_own_list_raises_one_retroactive_detection(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    endpoint, _ = make_endpoint(org_a, "https://8.8.8.8/hook")
    md5 = secrets.token_hex(16)
    with time_machine.travel(T0, tick=False):
        submit(api_a, "md5", md5, ref="upload-7")
    with time_machine.travel(T0 + dt.timedelta(days=3), tick=False):
        add(own_list(org_a), ("md5", md5))
        queued = run(django_capture_on_commit_callbacks)

    [detection] = retroactive_detections(org_a)
    assert detection.requested_at == T0
    assert detection.created == T0 + dt.timedelta(days=3)
    assert detection.content_ref == "upload-7"
    assert detection.shadow is False
    [result] = detection.matches
    [hit] = result["matches"]
    assert (hit["list"]["id"], hit["list"]["tier"], hit["matched_value"]) == (
        own_list(org_a).public_id,
        "own",
        md5,
    )
    # The webhook event is queued for the org's endpoint and says what it is.
    [delivery] = [c.keywords["kwargs"] for c in queued]
    assert (delivery["endpoint_id"], delivery["detection_id"]) == (endpoint.pk, detection.pk)
    body = json.loads(
        webhooks.webhook_payload(
            event="detection.created",
            event_id="evt",
            organization=org_a,
            detection=detection,
            created=detection.created,
        )
    )
    assert body["detection"]["retroactive"] is True
    assert body["detection"]["requested_at"] == T0.isoformat()
    assert body["detection"]["content_ref"] == "upload-7"
    with scopes_disabled():
        [line] = AuditEvent.objects.filter(
            organization=org_a, action="detection.created", target_id=detection.public_id
        )
    assert line.metadata["retroactive"] is True
    assert line.actor_label == "retroactive matching"


def test_the_webhook_reaches_a_real_receiver_with_the_original_time_and_content_ref(
    api_a: Client,
    org_a: Organization,
    receiver: Receiver,  # noqa: F811
    allow_loopback: None,  # noqa: F811
    django_capture_on_commit_callbacks: Any,
) -> None:
    opt_in(org_a)
    _, secret = make_endpoint(org_a, receiver.url)
    sha1 = secrets.token_hex(20)
    with time_machine.travel(T0, tick=False):
        submit(api_a, "sha1", sha1, ref="photo-99")
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        add(own_list(org_a), ("sha1", sha1))
        [queued] = run(django_capture_on_commit_callbacks)

    kwargs = queued.keywords["kwargs"]
    with scope(organization=org_a.pk):
        assert webhooks.webhook_attempt(
            endpoint_id=kwargs["endpoint_id"],
            detection_id=kwargs["detection_id"],
            event=kwargs["event"],
            event_id=kwargs["event_id"],
            attempt=1,
        )
    [request] = receiver.requests
    assert receiver.signed_ok(secret, request)
    payload = json.loads(request.body)["detection"]
    assert (payload["retroactive"], payload["requested_at"], payload["content_ref"]) == (
        True,
        T0.isoformat(),
        "photo-99",
    )


def test_a_rerun_or_a_second_add_never_raises_twice(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    md5 = secrets.token_hex(16)
    submit(api_a, "md5", md5)
    add(own_list(org_a), ("md5", md5))
    run(django_capture_on_commit_callbacks)
    # The cursor read again from the start: the same (kept, list, hash) is not raised again.
    with scopes_disabled():
        RetroactiveCursor.objects.filter(pk=1).update(after=0)
    run(django_capture_on_commit_callbacks)
    assert len(retroactive_detections(org_a)) == 1
    with scopes_disabled():
        assert RetroactiveCheck.objects.count() == 1


def test_a_hash_already_listed_when_submitted_is_not_raised_again(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    md5 = secrets.token_hex(16)
    with scopes_disabled():
        RetroactiveCursor.objects.update_or_create(pk=1, defaults={"after": 0})
    add(own_list(org_a), ("md5", md5))
    assert len(match(api_a, [{"type": "md5", "value": md5}]).json()["results"][0]["matches"]) == 1
    run(django_capture_on_commit_callbacks)
    assert retroactive_detections(org_a) == []


def test_pdq_is_matched_within_the_threshold_and_not_beyond(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    listed = random_pdq()
    near, far = flip(listed, 20), flip(listed, 40)
    submit(api_a, "pdq", near, ref="near")
    submit(api_a, "pdq", far, ref="far")
    add(own_list(org_a), ("pdq", listed))
    run(django_capture_on_commit_callbacks)
    [detection] = retroactive_detections(org_a)
    assert detection.content_ref == "near"
    [hit] = detection.matches[0]["matches"]
    assert (hit["distance"], hit["matched_value"]) == (20, listed)


def test_the_organisations_own_lower_threshold_applies(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    with scope(organization=org_a.pk):
        policy_set(org=org_a, changes={"thresholds": {"pdq": 10}}, actor=SYSTEM)
    listed = random_pdq()
    submit(api_a, "pdq", flip(listed, 8), ref="close")
    submit(api_a, "pdq", flip(listed, 20), ref="too far for org a")
    add(own_list(org_a), ("pdq", listed))
    run(django_capture_on_commit_callbacks)
    assert [d.content_ref for d in retroactive_detections(org_a)] == ["close"]


def test_phash_is_matched_within_10_bits_and_not_beyond(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    listed = secrets.token_hex(8)
    submit(api_a, "phash", flip(listed, 10), ref="ten")
    submit(api_a, "phash", flip(listed, 11), ref="eleven")
    add(own_list(org_a, "se"), ("phash", listed))
    run(django_capture_on_commit_callbacks)
    assert [d.content_ref for d in retroactive_detections(org_a)] == ["ten"]


def test_an_allow_listed_submission_is_not_raised(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    md5 = secrets.token_hex(16)
    with scope(organization=org_a.pk):
        AllowedHash.objects.create(
            organization=org_a, signal_type="md5", value=bytes.fromhex(md5), added_by_label="t"
        )
    submit(api_a, "md5", md5)
    add(own_list(org_a), ("md5", md5))
    run(django_capture_on_commit_callbacks)
    assert retroactive_detections(org_a) == []
    with scopes_disabled():
        [check] = RetroactiveCheck.objects.all()
    assert check.detection_id is None


def test_a_shadow_list_raises_a_shadow_retroactive_detection_and_no_webhook(
    api_a: Client,
    org_a: Organization,
    org_b: Organization,
    django_capture_on_commit_callbacks: Any,
) -> None:
    opt_in(org_a)
    make_endpoint(org_a, "https://8.8.8.8/hook")
    shared = new_list(org_b, "B shared")
    share(shared)
    subscribe(org_a, shared)
    with scope(organization=org_a.pk):
        policy_set(
            org=org_a,
            changes={"lists": [{"id": shared.public_id, "shadow": True}]},
            actor=SYSTEM,
        )
    md5 = secrets.token_hex(16)
    submit(api_a, "md5", md5)
    add(shared, ("md5", md5))
    queued = run(django_capture_on_commit_callbacks)
    [detection] = retroactive_detections(org_a)
    assert detection.shadow is True
    assert queued == []


# --- who may learn of it -----------------------------------------------------------------------


@pytest.fixture
def org_c(db: None) -> Organization:
    return OrganizationFactory.create(name="Org C", slug="org-c")


def test_an_add_to_a_subscribed_open_list_raises_it_and_not_for_others(
    api_a: Client,
    org_a: Organization,
    org_b: Organization,
    org_c: Organization,
    django_capture_on_commit_callbacks: Any,
) -> None:
    opt_in(org_a)
    opt_in(org_c)
    shared = new_list(org_b, "B open")
    share(shared)
    subscribe(org_a, shared)
    md5 = secrets.token_hex(16)
    submit(api_a, "md5", md5, ref="a-post")
    submit(api(org_c), "md5", md5, ref="c-post")  # org C does not subscribe
    add(shared, ("md5", md5))
    run(django_capture_on_commit_callbacks)
    [detection] = retroactive_detections(org_a)
    assert detection.matches[0]["matches"][0]["list"]["tier"] == "community"
    assert retroactive_detections(org_c) == []
    assert retroactive_detections(org_b) == []


def test_an_anonymous_list_reaches_subscribers_only_once_published(
    api_a: Client,
    org_a: Organization,
    org_b: Organization,
    django_capture_on_commit_callbacks: Any,
) -> None:
    opt_in(org_a)
    opt_in(org_b)
    hidden = new_list(org_b, "B anonymous")
    share(hidden, "anonymous")
    subscribe(org_a, hidden)
    pdq = random_pdq()
    submit(api_a, "pdq", flip(pdq, 3), ref="a-post")
    submit(api(org_b), "pdq", flip(pdq, 5), ref="b-post")
    add(hidden, ("pdq", pdq))
    run(django_capture_on_commit_callbacks)
    # The owner matches its own list at once; others only after the next publication.
    assert [d.content_ref for d in retroactive_detections(org_b)] == ["b-post"]
    assert retroactive_detections(org_a) == []

    publish()
    run(django_capture_on_commit_callbacks)
    [detection] = retroactive_detections(org_a)
    [hit] = detection.matches[0]["matches"]
    assert hit["list"]["anonymous"] is True
    assert hit["list"]["contributor"] is None
    assert len(retroactive_detections(org_b)) == 1


@pytest.fixture
def source(monkeypatch: pytest.MonkeyPatch) -> Source:
    from tests.lists.test_sources_runner import Scripted

    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    return source_services.source_create(
        name="Hotline Feed", kind="feed", config={}, access="granted", actor=SYSTEM
    )


def test_a_verified_sources_new_hash_raises_it_for_entitled_organisations_only(
    api_a: Client,
    org_a: Organization,
    org_c: Organization,
    source: Source,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sharing_services.entitlement_set(source=source, org=org_a, granted=True, actor=SYSTEM)
    opt_in(org_a)
    opt_in(org_c)
    sha256 = secrets.token_hex(32)
    submit(api_a, "sha256", sha256, ref="a-1")
    submit(api(org_c), "sha256", sha256, ref="c-1")
    hash_list: HashList = source_services.source_lists(source)["csam"]
    with scopes_disabled():
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput("sha256", sha256, ("A1",))],
            actor=SYSTEM,
        )
    run(django_capture_on_commit_callbacks)
    [detection] = retroactive_detections(org_a)
    assert detection.tiers == ["verified"]
    assert retroactive_detections(org_c) == []


# --- expiry and the purge -----------------------------------------------------------------------


def test_an_expired_submission_is_not_matched_and_the_purge_removes_it(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a, days=7)
    pdq, md5 = random_pdq(), secrets.token_hex(16)
    with time_machine.travel(T0, tick=False):
        submit(api_a, "pdq", pdq)
        submit(api_a, "md5", md5)
    with time_machine.travel(T0 + dt.timedelta(days=7, seconds=1), tick=False):
        add(own_list(org_a), ("pdq", pdq), ("md5", md5))
        run(django_capture_on_commit_callbacks)
        assert retroactive_detections(org_a) == []
        assert kept_module.kept_purge() == 2
    assert kept(org_a) == []
    with scopes_disabled():
        assert KeptCount.objects.get(organization=org_a).kept == 0
        [line] = AuditEvent.objects.filter(organization=org_a, action="retroactive.purged")
    assert line.metadata["purged"] == 2


def test_the_purge_keeps_what_has_not_expired_and_drops_all_of_an_org_that_opted_out(
    api_a: Client, org_a: Organization, org_b: Organization
) -> None:
    opt_in(org_a)
    opt_in(org_b)
    submit(api_a, "md5", secrets.token_hex(16))
    submit(api(org_b), "md5", secrets.token_hex(16))
    opt_in(org_b, days=0)
    assert kept_module.kept_purge() == 1
    assert len(kept(org_a)) == 1
    assert kept(org_b) == []


# --- the hook and the index ---------------------------------------------------------------------


def test_an_add_queues_a_run_after_commit_only_while_something_is_kept(
    api_a: Client,
    org_a: Organization,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(retroactive.app, "send_task", lambda name, **_: sent.append(name))
    with django_capture_on_commit_callbacks(execute=True):
        add(own_list(org_a), ("md5", secrets.token_hex(16)))
    assert sent == []
    opt_in(org_a)
    submit(api_a, "md5", secrets.token_hex(16))
    with django_capture_on_commit_callbacks(execute=True):
        add(own_list(org_a), ("md5", secrets.token_hex(16)))
    assert sent == [retroactive.RUN_TASK]


def test_entries_entered_since_reads_adds_and_publications_in_change_order(
    org_a: Organization, org_b: Organization
) -> None:
    start = changes.sequence_last()
    mine = own_list(org_a)
    hidden = new_list(org_b, "B anonymous")
    share(hidden, "anonymous")
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    add(mine, ("md5", first))
    add(hidden, ("md5", second))
    entered, upto = changes.entries_entered_since(after=start, limit=10)
    assert [(e.list_pk, e.value.hex(), e.published) for e in entered] == [
        (mine.pk, first, False),
        (hidden.pk, second, False),
    ]
    assert upto == changes.sequence_last()
    publish()
    more, _ = changes.entries_entered_since(after=upto, limit=10)
    assert [(e.list_pk, e.value.hex(), e.published) for e in more] == [(hidden.pk, second, True)]
    # A limit cuts the answer at its last row; the rest follows from there.
    one, cut = changes.entries_entered_since(after=start, limit=1)
    assert (len(one), cut) == (1, one[0].seq)


def test_the_kept_index_is_saved_and_caught_up_from_disk(
    api_a: Client, org_a: Organization, settings: Any
) -> None:
    opt_in(org_a)
    first = random_pdq()
    submit(api_a, "pdq", first)
    index = retroactive.kept_index("pdq")
    index.save()
    second = random_pdq()
    submit(api_a, "pdq", second)

    retroactive.kept_indexes_reset()
    loaded = retroactive.kept_index("pdq")  # loaded from disk, then caught up by id
    assert len(loaded) == 2
    now = dt.datetime.now(dt.UTC)
    codes = np.frombuffer(bytes.fromhex(first + second), dtype=np.uint8).reshape(2, 32)
    by_id = {k.pk: bytes(k.value).hex() for k in kept(org_a)}
    hits = loaded.search(codes, now=now)
    assert [[by_id[i] for i, _ in found] for found in hits] == [[first], [second]]
    # Past their expiry they weigh nothing: an expired row is never a candidate.
    assert loaded.search(codes, now=now + dt.timedelta(days=31)) == [[], []]


def test_a_snapshot_ahead_of_the_database_is_built_again_from_the_rows(
    api_a: Client, org_a: Organization
) -> None:
    opt_in(org_a)
    submit(api_a, "pdq", random_pdq())
    index = retroactive.kept_index("pdq")
    index.max_id += 1000  # as if saved from a database that had gone further
    index.save()
    retroactive.kept_indexes_reset()
    submit(api_a, "pdq", random_pdq())
    assert len(retroactive.kept_index("pdq")) == 2


def test_an_organisation_being_deleted_is_told_of_nothing_new(
    api_a: Client, org_a: Organization, django_capture_on_commit_callbacks: Any
) -> None:
    opt_in(org_a)
    md5 = secrets.token_hex(16)
    with time_machine.travel(T0, tick=False):
        submit(api_a, "md5", md5, ref="upload-9")
    with time_machine.travel(T0 + dt.timedelta(days=1), tick=False):
        # Deleted by its owner (hub.offboarding), within the grace period: not purged yet.
        Organization.objects.filter(pk=org_a.pk).update(deleted_at=timezone.now())
        add(own_list(org_a), ("md5", md5))
        run(django_capture_on_commit_callbacks)
    assert retroactive_detections(org_a) == []
