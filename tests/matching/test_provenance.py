"""Provenance in every match and in the export (issue 19): labels, when added, upstream record.

Org A owns lists; org B subscribes to them and matches. What B is shown of an entry depends on
the tier: a verified source's labels, record id and verification always; another organisation's
labels only while its owner shares them (an anonymous list's A1-B2 classification only, never a
free tag), the day an entry was added for an open list and no date at all for an anonymous one.
The owner sees everything of its own lists, to the moment. The export carries the same fields.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from lists import services as list_services
from lists.models import HashList, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Record
from sharing import services as sharing_services
from tests.conftest import login, make_key
from tests.lists.test_sources_runner import Scripted, page
from tests.lists.test_sources_runner import run as source_run

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
# When A's entries are added (a fixed moment: no test reads the wall clock).
ADDED = dt.datetime(2026, 3, 4, 10, 11, 12, tzinfo=dt.UTC)
ADDED_DAY = "2026-03-04"
A_LABELS = ["A1", "zq-case-4471"]  # the classification and a free tag that could name A
VERIFICATION = "Each hash confirmed by two trained analysts; graded A1 to B2."
PROVENANCE_KEYS = {"labels", "added", "record_id", "verification"}
ALL_SCOPES = ["match", "lists:read", "lists:write", "lists:admin", "export"]


def new_list(org: Organization, name: str, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return list_services.list_create(org=org, name=name, category=category, actor=SYSTEM)


def add(hash_list: HashList, signal_type: str, value: str, labels: list[str]) -> None:
    with (
        time_machine.travel(ADDED, tick=False),
        scope(organization=hash_list.organization_id),
    ):
        result = list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput(signal_type, value, labels=labels, note="A's note")],
            actor=SYSTEM,
        )
    assert not result.errors, result.errors


def share(hash_list: HashList, visibility: str) -> None:
    with scope(organization=hash_list.organization_id):
        sharing_services.list_visibility_set(
            hash_list=hash_list, visibility=visibility, actor=SYSTEM
        )
    if visibility == "anonymous":
        sharing_services.anonymous_publish()  # others see it from the publication on


def share_classification(hash_list: HashList, on: bool) -> None:
    sharing_services.list_share_classification_set(hash_list=hash_list, share=on, actor=SYSTEM)


def subscribe(org: Organization, hash_list: HashList) -> None:
    with scope(organization=org.pk):
        sharing_services.subscription_list_set(
            org=org, public_id=hash_list.public_id, subscribed=True, actor=SYSTEM
        )


def api(org: Organization, scopes: list[str] | None = None) -> Client:
    return Client(headers={"Authorization": f"Bearer {make_key(org, scopes or ALL_SCOPES)[1]}"})


def matches(client: Client, *pairs: tuple[str, str]) -> list[dict[str, Any]]:
    response = client.post(
        "/api/v1/match",
        {"hashes": [{"type": t, "value": v} for t, v in pairs]},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return [m for result in response.json()["results"] for m in result["matches"]]


def provenance_of(found: dict[str, Any]) -> dict[str, Any]:
    return {k: found[k] for k in PROVENANCE_KEYS}


def only_match(client: Client, signal_type: str, value: str, list_id: str) -> dict[str, Any]:
    [found] = [m for m in matches(client, (signal_type, value)) if m["list"]["id"] == list_id]
    return provenance_of(found)


def export_items(client: Client) -> list[dict[str, Any]]:
    response = client.get("/api/v1/export", {"limit": "10000"})
    assert response.status_code == 200, response.content
    return list(response.json()["items"])


@pytest.fixture
def a_open(org_a: Organization) -> HashList:
    hash_list = new_list(org_a, "A open")
    share(hash_list, "open")
    return hash_list


@pytest.fixture
def a_anonymous(org_a: Organization) -> HashList:
    return new_list(org_a, "A quiet")


@pytest.fixture
def scripted_source(monkeypatch: pytest.MonkeyPatch) -> Source:
    """A source open to every organisation, whose runs read ``Scripted.SCRIPT``."""
    monkeypatch.setattr(source_services, "adapter_class", lambda kind: Scripted)
    monkeypatch.setattr(runs, "adapter_class", lambda kind: Scripted)
    Scripted.SCRIPT = []
    with scopes_disabled():
        return source_services.source_create(
            name="Hotline", kind="feed", config={}, access="all", verification=VERIFICATION,
            actor=SYSTEM,
        )  # fmt: skip


def source_list(source: Source) -> HashList:
    with scopes_disabled():
        return source_services.source_lists(source)["csam"]


# --- own lists ----------------------------------------------------------------------------------


def test_the_owner_sees_every_label_and_the_moment_in_its_own_matches(
    org_a: Organization, a_anonymous: HashList
) -> None:
    md5 = secrets.token_hex(16)
    add(a_anonymous, "md5", md5, A_LABELS)
    share(a_anonymous, "anonymous")
    assert only_match(api(org_a), "md5", md5, a_anonymous.public_id) == {
        "labels": A_LABELS,
        "added": ADDED.isoformat(),
        "record_id": None,
        "verification": None,
    }


def test_share_classification_is_off_for_a_new_list_and_the_owner_sees_its_labels_anyway(
    org_a: Organization,
) -> None:
    hash_list = new_list(org_a, "Fresh")
    assert hash_list.share_classification is False
    md5 = secrets.token_hex(16)
    add(hash_list, "md5", md5, A_LABELS)
    assert only_match(api(org_a), "md5", md5, hash_list.public_id)["labels"] == A_LABELS


# --- community lists ----------------------------------------------------------------------------


def test_a_subscriber_sees_an_open_list_s_labels_only_while_its_owner_shares_them(
    org_b: Organization, a_open: HashList
) -> None:
    md5 = secrets.token_hex(16)
    add(a_open, "md5", md5, A_LABELS)
    subscribe(org_b, a_open)
    b = api(org_b)
    hidden: dict[str, Any] = {
        "labels": [],
        "added": ADDED_DAY,
        "record_id": None,
        "verification": None,
    }
    assert only_match(b, "md5", md5, a_open.public_id) == hidden
    share_classification(a_open, True)
    assert only_match(b, "md5", md5, a_open.public_id) == {**hidden, "labels": A_LABELS}
    share_classification(a_open, False)
    assert only_match(b, "md5", md5, a_open.public_id) == hidden


def test_an_anonymous_list_shares_its_classification_never_a_free_tag_nor_a_date(
    org_a: Organization, org_b: Organization, a_anonymous: HashList
) -> None:
    md5 = secrets.token_hex(16)
    add(a_anonymous, "md5", md5, ["b2", "A1", "zq-case-4471", "zebulon-intake"])
    share(a_anonymous, "anonymous")
    subscribe(org_b, a_anonymous)
    b = api(org_b)
    hidden: dict[str, Any] = {"labels": [], "added": None, "record_id": None, "verification": None}
    assert only_match(b, "md5", md5, a_anonymous.public_id) == hidden
    share_classification(a_anonymous, True)
    assert only_match(b, "md5", md5, a_anonymous.public_id) == {**hidden, "labels": ["B2", "A1"]}
    # The owner still sees all of it, to the moment.
    assert only_match(api(org_a), "md5", md5, a_anonymous.public_id) == {
        "labels": ["B2", "A1", "zq-case-4471", "zebulon-intake"],
        "added": ADDED.isoformat(),
        "record_id": None,
        "verification": None,
    }


def test_a_list_made_private_after_it_was_anonymous_is_exported_without_tags_or_dates(
    org_b: Organization, a_anonymous: HashList
) -> None:
    md5 = secrets.token_hex(16)
    add(a_anonymous, "md5", md5, A_LABELS)
    share(a_anonymous, "anonymous")
    share_classification(a_anonymous, True)
    subscribe(org_b, a_anonymous)
    share(a_anonymous, "private")
    sharing_services.anonymous_publish()  # the revoke reaches B with the next publication
    items = [i for i in export_items(api(org_b)) if i["list"]["id"] == a_anonymous.public_id]
    assert [i["op"] for i in items] == ["add", "remove"]
    for item in items:
        assert provenance_of(item) == {
            "labels": ["A1"],
            "added": None,
            "record_id": None,
            "verification": None,
        }


# --- verified sources ---------------------------------------------------------------------------


def test_a_verified_source_shows_its_labels_record_id_and_verification(
    org_b: Organization, scripted_source: Source
) -> None:
    keyed, unkeyed = secrets.token_hex(32), secrets.token_hex(32)
    Scripted.SCRIPT = [
        page(0, Record("p0#1", "add", (("pdq", keyed),), key="report-8812", labels=("A2",))),
        page(1, Record("p1#1", "add", (("pdq", unkeyed),), labels=("B1",))),
    ]
    with time_machine.travel(ADDED, tick=False):
        assert source_run(scripted_source).status == "succeeded"
    listed = source_list(scripted_source).public_id
    b = api(org_b)
    assert only_match(b, "pdq", keyed, listed) == {
        "labels": ["A2"],
        "added": ADDED_DAY,
        "record_id": "report-8812",
        "verification": VERIFICATION,
    }
    # A record without a key upstream has no id to give (the runner's own key is not one).
    assert only_match(b, "pdq", unkeyed, listed)["record_id"] is None
    # The source's list, as the API describes it, says how the source verifies.
    described = b.get(f"/api/v1/lists/{listed}").json()
    assert described["verification"] == VERIFICATION
    assert "share_classification" not in described


def test_a_source_that_does_not_say_how_it_verifies_gives_null(
    org_b: Organization, scripted_source: Source
) -> None:
    with scopes_disabled():
        source_services.source_update(source=scripted_source, verification="", actor=SYSTEM)
    value = secrets.token_hex(32)
    Scripted.SCRIPT = [page(0, Record("1", "add", (("pdq", value),), key="k1"))]
    assert source_run(scripted_source).status == "succeeded"
    found = only_match(api(org_b), "pdq", value, source_list(scripted_source).public_id)
    assert (found["verification"], found["record_id"], found["labels"]) == (None, "k1", [])


# --- the export ---------------------------------------------------------------------------------


def test_export_items_carry_the_same_provenance_as_matches_in_every_tier(
    org_a: Organization,
    org_b: Organization,
    a_open: HashList,
    a_anonymous: HashList,
    scripted_source: Source,
) -> None:
    values = {name: secrets.token_hex(16) for name in ("own", "open", "anonymous")}
    source_value = secrets.token_hex(32)
    with scope(organization=org_b.pk):
        b_own = HashList.objects.get(organization=org_b, category="csam", is_default=True)
    add(b_own, "md5", values["own"], ["A1", "b-tag"])
    add(a_open, "md5", values["open"], A_LABELS)
    add(a_anonymous, "md5", values["anonymous"], A_LABELS)
    share(a_anonymous, "anonymous")
    for hash_list in (a_open, a_anonymous):
        share_classification(hash_list, True)
        subscribe(org_b, hash_list)
    Scripted.SCRIPT = [page(0, Record("1", "add", (("pdq", source_value),), key="r-1"))]
    with time_machine.travel(ADDED, tick=False):
        assert source_run(scripted_source).status == "succeeded"
    b = api(org_b)
    items = export_items(b)
    wanted = [
        ("md5", values["own"], b_own.public_id),
        ("md5", values["open"], a_open.public_id),
        ("md5", values["anonymous"], a_anonymous.public_id),
        ("pdq", source_value, source_list(scripted_source).public_id),
    ]
    for signal_type, value, list_id in wanted:
        [item] = [i for i in items if i["value"] == value and i["list"]["id"] == list_id]
        assert item["op"] == "add"
        assert provenance_of(item) == only_match(b, signal_type, value, list_id), list_id
    assert {i["value"]: i["labels"] for i in items if i["value"] in values.values()} == {
        values["own"]: ["A1", "b-tag"],
        values["open"]: A_LABELS,
        values["anonymous"]: ["A1"],
    }
    # A removal says the same of the entry it removes.
    with scope(organization=org_a.pk):
        list_services.entry_remove(
            hash_list=a_open,
            items=[list_services.EntryInput("md5", values["open"])],
            reason="test",
            actor=SYSTEM,
        )
    [removed] = [i for i in export_items(b) if i["op"] == "remove"]
    assert provenance_of(removed) == {
        "labels": A_LABELS,
        "added": ADDED_DAY,
        "record_id": None,
        "verification": None,
    }


def test_every_match_and_export_item_has_the_same_four_fields(
    org_b: Organization, a_open: HashList
) -> None:
    md5 = secrets.token_hex(16)
    add(a_open, "md5", md5, [])
    subscribe(org_b, a_open)
    b = api(org_b)
    [found] = matches(b, ("md5", md5))
    assert set(found) >= PROVENANCE_KEYS
    assert all(set(item) >= PROVENANCE_KEYS for item in export_items(b))


# --- bounded cost -------------------------------------------------------------------------------


def _statements(client: Client, path: str, **kwargs: Any) -> int:
    with CaptureQueriesContext(connection) as captured:
        if path == "/api/v1/export":
            response = client.get(path, {"limit": "10000"})
        else:
            response = client.post(path, kwargs, content_type="application/json")
    assert response.status_code == 200, response.content
    return len(captured.captured_queries)


def test_provenance_costs_no_statement_per_match_or_export_item(
    org_a: Organization, org_b: Organization, scripted_source: Source
) -> None:
    """One hash, then forty, each in four lists of every tier (own, open, anonymous, verified):
    the same number of statements for a match request and for an export page. Each is measured
    after a warm-up request, so that both read an index already up to date."""
    with scope(organization=org_b.pk):
        b_own = HashList.objects.get(organization=org_b, category="csam", is_default=True)
    lists = [b_own]
    for visibility in ("open", "anonymous"):
        hash_list = new_list(org_a, f"A {visibility}")
        share(hash_list, visibility)
        share_classification(hash_list, True)
        subscribe(org_b, hash_list)
        lists.append(hash_list)
    b = api(org_b)

    def held_everywhere(values: list[str]) -> list[dict[str, Any]]:
        for value in values:
            for hash_list in lists:
                add(hash_list, "md5", value, A_LABELS)
        sharing_services.anonymous_publish()
        Scripted.SCRIPT.append(
            page(
                len(Scripted.SCRIPT),
                *(Record(v, "add", (("md5", v),), key=f"r-{v}", labels=("A1",)) for v in values),
            )
        )
        assert source_run(scripted_source).status == "succeeded"
        found = matches(b, *(("md5", v) for v in values))  # the warm-up
        assert len(found) == 4 * len(values)
        return [{"type": "md5", "value": v} for v in values]

    hashes = held_everywhere([secrets.token_hex(16)])
    one = [_statements(b, "/api/v1/match", hashes=hashes), _statements(b, "/api/v1/export")]
    hashes = held_everywhere([secrets.token_hex(16) for _ in range(40)])
    many = [_statements(b, "/api/v1/match", hashes=hashes), _statements(b, "/api/v1/export")]
    assert many == one
    exported = export_items(b)
    assert len(exported) == 4 * 41
    verified = [i for i in exported if i["list"]["tier"] == "verified"]
    assert len(verified) == 41
    assert all(i["record_id"] == f"r-{i['value']}" for i in verified)


# --- the owner's switch: API ---------------------------------------------------------------------


def test_the_owner_turns_share_classification_on_and_off_through_the_api(
    org_a: Organization, a_open: HashList
) -> None:
    client = api(org_a)
    url = f"/api/v1/lists/{a_open.public_id}"
    assert client.get(url).json()["share_classification"] is False
    response = client.patch(url, {"share_classification": True}, content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["share_classification"] is True
    with scopes_disabled():
        a_open.refresh_from_db()
        assert a_open.share_classification is True
        [event] = AuditEvent.objects.filter(action="list.share_classification_changed")
    assert (event.organization_id, event.target_id) == (org_a.pk, a_open.public_id)
    assert event.metadata["share_classification"] is True
    # The same value again changes nothing and writes nothing.
    client.patch(url, {"share_classification": True}, content_type="application/json")
    with scopes_disabled():
        assert AuditEvent.objects.filter(action="list.share_classification_changed").count() == 1


def test_share_classification_takes_the_lists_admin_scope(
    org_a: Organization, a_open: HashList
) -> None:
    writer = api(org_a, ["lists:write"])
    response = writer.patch(
        f"/api/v1/lists/{a_open.public_id}",
        {"share_classification": True},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    with scopes_disabled():
        a_open.refresh_from_db()
    assert a_open.share_classification is False


def test_a_bad_share_classification_value_is_a_400(org_a: Organization, a_open: HashList) -> None:
    response = api(org_a).patch(
        f"/api/v1/lists/{a_open.public_id}",
        {"share_classification": "perhaps"},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message"}


def test_only_the_owner_may_share_a_list_s_classification(
    org_a: Organization, org_b: Organization, a_open: HashList
) -> None:
    subscribe(org_b, a_open)
    private = new_list(org_a, "A private")
    b = api(org_b)
    body = {"share_classification": True}
    shared = b.patch(f"/api/v1/lists/{a_open.public_id}", body, content_type="application/json")
    assert shared.status_code == 403
    assert shared.json()["error"]["code"] == "not_list_owner"
    hidden = b.patch(f"/api/v1/lists/{private.public_id}", body, content_type="application/json")
    assert hidden.status_code == 404
    with scopes_disabled():
        assert not HashList.objects.filter(share_classification=True).exists()
        assert not AuditEvent.objects.filter(action="list.share_classification_changed").exists()


# --- the owner's switch: the visibility page ---------------------------------------------------


def _visibility_url(org: Organization, hash_list: HashList) -> str:
    return reverse("list_visibility", kwargs={"org_slug": org.slug, "list_id": hash_list.public_id})


def test_the_visibility_page_says_what_subscribers_see_and_switches_it(
    alice: User, org_a: Organization, a_anonymous: HashList
) -> None:
    share(a_anonymous, "anonymous")
    client = login(alice)
    url = _visibility_url(org_a, a_anonymous)
    page_text = client.get(url).content.decode()
    assert "only the classification (A1, A2, B1, B2) while it is anonymous" in page_text
    assert "subscribers see no labels" in page_text
    response = client.post(url, {"form": "share_classification", "share_classification": "on"})
    assert response.status_code == 302
    with scopes_disabled():
        a_anonymous.refresh_from_db()
        assert a_anonymous.share_classification is True
        assert AuditEvent.objects.filter(
            action="list.share_classification_changed", target_id=a_anonymous.public_id
        ).exists()
    page_text = client.get(url).content.decode()
    assert "see the labels A1, A2, B1 and B2 of an entry they match, and none" in page_text
    # An unticked box turns it off.
    client.post(url, {"form": "share_classification"})
    with scopes_disabled():
        a_anonymous.refresh_from_db()
    assert a_anonymous.share_classification is False


def test_an_open_list_s_page_says_subscribers_see_every_label(
    alice: User, org_a: Organization, a_open: HashList
) -> None:
    share_classification(a_open, True)
    page_text = login(alice).get(_visibility_url(org_a, a_open)).content.decode()
    assert "subscribers see every label of an entry they match, your own tags included" in page_text


def test_a_viewer_cannot_switch_share_classification(
    bob: User, org_a: Organization, a_open: HashList
) -> None:
    client = login(bob)
    url = _visibility_url(org_a, a_open)
    assert 'name="share_classification"' not in client.get(url).content.decode()
    response = client.post(url, {"form": "share_classification", "share_classification": "on"})
    assert response.status_code == 403
    with scopes_disabled():
        a_open.refresh_from_db()
    assert a_open.share_classification is False


# --- the staff source form ----------------------------------------------------------------------


def test_staff_write_how_a_source_verifies_on_its_form(staff_client: Client) -> None:
    config = {"url": "https://feeds.example.org/f.csv"}
    with scopes_disabled():
        source = source_services.source_create(
            name="Partner", kind="feed", config=config, actor=SYSTEM
        )
    url = reverse("staff_source", kwargs={"source_id": source.public_id})
    assert 'name="verification"' in staff_client.get(url).content.decode()
    form = {
        "enabled": "on",
        "default_category": "csam",
        "interval_minutes": "0",
        "cron": "",
        "description": "",
        "verification": VERIFICATION,
        "config": json.dumps(config),
    }
    response = staff_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    source.refresh_from_db()
    assert source.verification == VERIFICATION
    with scopes_disabled():
        event = AuditEvent.objects.filter(action="source.updated").latest("id")
    assert event.metadata["changes"]["verification"] == {"old": "", "new": VERIFICATION}
    assert VERIFICATION in staff_client.get(url).content.decode()
