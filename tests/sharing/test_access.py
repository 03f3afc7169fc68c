"""Community access: who matches what, at once, and what the export feed tells a platform.

Org A shares lists; org B (Charlie's) subscribes and matches through its API key; org C is a third
member for corroboration and dispute counts.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from hub.services import organization_set_approved
from lists import services as list_services
from lists.models import Entry, Hash, HashList
from sharing import services
from sharing.models import AccessEvent, Dispute, ListImpact
from sharing.selectors import lists_matchable_by
from tests.conftest import make_key
from tests.factories import OrganizationFactory
from tests.matching.test_export import replay
from tests.matching.test_match_api import add, flip, match, own_list, random_pdq, remove

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
ALL_SCOPES = ["match", "lists:read", "lists:write", "lists:admin", "export"]


def api(org: Organization, scopes: list[str] | None = None) -> Client:
    _, secret = make_key(org, scopes or ALL_SCOPES, name=f"{org.slug} key")
    return Client(headers={"Authorization": f"Bearer {secret}"})


def share(hash_list: HashList, visibility: str = "open") -> None:
    """Share the list; an anonymous one as others see it after the next publication."""
    with scope(organization=hash_list.organization_id):
        services.list_visibility_set(hash_list=hash_list, visibility=visibility, actor=SYSTEM)
    if visibility == "anonymous":
        publish()


def publish() -> None:
    """The next batch of anonymous lists' changes (beat's ``sharing.publish_anonymous``)."""
    services.anonymous_publish()


def new_list(org: Organization, name: str, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return list_services.list_create(
            org=org, name=name, category=category, description="", actor=SYSTEM
        )


def subscribe(org: Organization, hash_list: HashList, subscribed: bool = True) -> bool:
    with scope(organization=org.pk):
        return services.subscription_list_set(
            org=org, public_id=hash_list.public_id, subscribed=subscribed, actor=SYSTEM
        )


def subscribe_category(org: Organization, category: str, subscribed: bool = True) -> bool:
    with scope(organization=org.pk):
        return services.subscription_category_set(
            org=org, category=category, subscribed=subscribed, actor=SYSTEM
        )


def hits(client: Client, value: str, signal_type: str = "pdq") -> list[dict[str, Any]]:
    response = match(client, [{"type": signal_type, "value": value}])
    assert response.status_code == 200, response.content
    return response.json()["results"][0]["matches"]


def matchable_live(org: Organization) -> set[tuple[str, str, str]]:
    """(list id, type, value) of every live entry in the lists ``org`` matches now."""
    lists = lists_matchable_by(org=org)
    with scopes_disabled():
        return {
            (e.hash_list.public_id, e.hash.signal_type, bytes(e.hash.value).hex())
            for e in Entry.objects.filter(
                hash_list_id__in=list(lists), removed_seq__isnull=True
            ).select_related("hash", "hash_list")
        }


@pytest.fixture
def api_b(org_b: Organization) -> Client:
    return api(org_b)


def test_a_subscribed_open_list_matches_as_community_with_its_contributor(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Shared CSAM")
    value = random_pdq()
    add(shared, ("pdq", value))
    share(shared, "open")
    assert hits(api_b, value) == []  # shared, but B has not subscribed
    subscribe(org_b, shared)
    [hit] = hits(api_b, flip(value, 5))
    assert hit["list"] == {
        "id": shared.public_id,
        "name": "Shared CSAM",
        "category": "csam",
        "tier": "community",
        "contributor": "Org A",
        "anonymous": False,
    }
    assert hit["distance"] == 5
    assert hit["corroboration"] == 1
    assert hit["disputed"] is False


def test_an_anonymous_list_matches_without_naming_its_owner(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Quiet list")
    value = random_pdq()
    add(shared, ("pdq", value))
    share(shared, "anonymous")
    subscribe(org_b, shared)
    response = match(api_b, [{"type": "pdq", "value": value}])
    [hit] = response.json()["results"][0]["matches"]
    assert hit["list"]["contributor"] is None
    assert hit["list"]["anonymous"] is True
    assert "Org A" not in response.content.decode()
    assert org_a.slug not in response.content.decode()


def test_a_category_subscription_picks_up_a_list_shared_later(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    subscribe_category(org_b, "se")
    later = new_list(org_a, "Later SE", category="se")
    csam = new_list(org_a, "Later CSAM", category="csam")
    value, other = random_pdq(), random_pdq()
    add(later, ("pdq", value))
    add(csam, ("pdq", other))
    assert hits(api_b, value) == []  # not shared yet
    share(later, "anonymous")
    share(csam, "open")
    assert [h["list"]["id"] for h in hits(api_b, value)] == [later.public_id]
    assert hits(api_b, other) == []  # a CSAM list: not in B's SE subscription


def test_unsubscribing_one_list_of_a_subscribed_category_sticks(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    first, second = new_list(org_a, "One"), new_list(org_a, "Two")
    v1, v2 = random_pdq(), random_pdq()
    add(first, ("pdq", v1))
    add(second, ("pdq", v2))
    share(first)
    share(second)
    subscribe_category(org_b, "csam")
    assert hits(api_b, v1) and hits(api_b, v2)
    assert subscribe(org_b, first, subscribed=False) is True
    assert hits(api_b, v1) == []
    assert hits(api_b, v2)
    assert subscribe(org_b, first, subscribed=False) is False  # already off: no change
    subscribe(org_b, first)
    assert hits(api_b, v1)


def test_making_a_list_private_stops_matches_at_once_and_sends_removes(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Will go private")
    values = [random_pdq() for _ in range(3)]
    add(shared, *[("pdq", v) for v in values])
    share(shared)
    subscribe(org_b, shared)
    live, cursor = replay(api_b)
    assert {v for _, _, v in live} == set(values)
    share(shared, "private")
    assert hits(api_b, values[0]) == []
    response = api_b.get("/api/v1/export", {"cursor": cursor})
    items = response.json()["items"]
    assert sorted((i["op"], i["value"]) for i in items) == sorted(("remove", v) for v in values)
    live, _ = replay(api_b)
    assert live == matchable_live(org_b) == set()


def test_owner_retraction_reaches_subscribers_matches_and_exports(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Retracting")
    keep, drop = random_pdq(), random_pdq()
    add(shared, ("pdq", keep), ("pdq", drop))
    share(shared, "anonymous")
    subscribe(org_b, shared)
    _, cursor = replay(api_b)
    remove(shared, ("pdq", drop))
    # An anonymous list's removal reaches others with the next publication, not before.
    assert hits(api_b, drop)
    assert api_b.get("/api/v1/export", {"cursor": cursor}).json()["items"] == []
    publish()
    assert hits(api_b, drop) == []
    assert hits(api_b, keep)
    items = api_b.get("/api/v1/export", {"cursor": cursor}).json()["items"]
    assert [(i["op"], i["value"], i["list"]["anonymous"]) for i in items] == [
        ("remove", drop, True)
    ]


def test_the_feed_replays_to_the_matchable_set_through_every_access_change(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    """Subscribe, change, unsubscribe, resubscribe, unshare, reshare; a stale cursor each time."""
    shared = new_list(org_a, "Churn")
    anon = new_list(org_a, "Churn anon", category="se")
    values = [random_pdq() for _ in range(8)]
    add(shared, *[("pdq", v) for v in values[:3]])
    add(anon, ("pdq", values[3]))
    add(own_list(org_b), ("md5", "cd" * 16))
    share(shared)
    share(anon, "anonymous")
    steps = [
        lambda: subscribe(org_b, shared),
        lambda: add(shared, ("pdq", values[4])),
        lambda: subscribe_category(org_b, "se"),
        lambda: remove(shared, ("pdq", values[0])),
        lambda: subscribe(org_b, shared, subscribed=False),
        lambda: add(shared, ("pdq", values[5])),  # while B is not subscribed
        lambda: subscribe(org_b, shared),
        lambda: share(anon, "private"),
        lambda: add(anon, ("pdq", values[6])),
        lambda: share(anon, "open"),
        lambda: organization_set_approved(org=org_a, approved=False, actor=SYSTEM),
        lambda: organization_set_approved(org=org_a, approved=True, actor=SYSTEM),
        lambda: remove(shared, ("pdq", values[1])),
    ]
    checkpoints: list[tuple[set[tuple[str, str, str]], str]] = []
    for step in steps:
        checkpoints.append(replay(api_b, limit=2))
        step()
        live, _ = replay(api_b, limit=2)
        assert live == matchable_live(org_b)
    # A platform that stopped at any earlier cursor and resumes lands on the same set.
    for live_then, cursor in checkpoints:
        resumed = set(live_then)
        while True:
            page = api_b.get("/api/v1/export", {"cursor": cursor, "limit": "3"}).json()
            for item in page["items"]:
                key = (item["list"]["id"], item["type"], item["value"])
                if item["op"] == "add":
                    resumed.add(key)
                else:
                    resumed.discard(key)
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        assert resumed == matchable_live(org_b)
    assert matchable_live(org_b) >= {(shared.public_id, "pdq", values[5])}


def test_resuming_from_a_cursor_inside_a_grant_continues_where_it_stopped(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Big")
    values = [random_pdq() for _ in range(7)]
    add(shared, *[("pdq", v) for v in values])
    share(shared)
    subscribe(org_b, shared)
    seen = []
    cursor = ""
    while True:
        page = api_b.get("/api/v1/export", {"cursor": cursor, "limit": "2"}).json()
        seen += [i["value"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert sorted(seen) == sorted(values)  # each once, none lost at page edges
    assert len({i for i in seen}) == len(seen)


BAD_CURSORS = ["czk5OTk5OTk5OTk5OTk5OTk5OTk5", "c9mh2aI", "cy0x"]
"""Base64 of "s" and 20 nines, "s" and Arabic-Indic 12, and "s-1": none is a cursor we give out."""


def test_a_bad_cursor_is_a_400_with_a_code(api_b: Client, org_b: Organization) -> None:
    # A superscript digit and numbers past a bigint answered 500; other scripts' digits and a
    # sign were read as numbers. BAD_CURSORS holds the encoded ones.
    for cursor in [
        "not-a-cursor", "czE.x", "czE.-3", "czE.\u00b2", "czE." + "9" * 30,
        *BAD_CURSORS,
    ]:  # fmt: skip
        response = api_b.get("/api/v1/export", {"cursor": cursor})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "bad_cursor"


def test_corroboration_counts_distinct_holders_among_the_lists_the_caller_matches(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    org_c = OrganizationFactory.create(name="Org C", slug="org-c")
    value = random_pdq()
    shared = new_list(org_a, "Corroborated")
    add(shared, ("pdq", value))
    add(own_list(org_b), ("pdq", value))
    share(shared)
    subscribe(org_b, shared)
    # B's own list is B's own judgement: only A's shared list counts, for both matches.
    assert {h["list"]["tier"]: h["corroboration"] for h in hits(api_b, value)} == {
        "own": 1,
        "community": 1,
    }
    second = new_list(org_a, "Corroborated too")
    add(second, ("pdq", value))
    share(second)
    subscribe(org_b, second)  # a second list of A: still one organisation
    assert {h["corroboration"] for h in hits(api_b, value)} == {1}
    c_list = new_list(org_c, "C shares")
    add(c_list, ("pdq", value))
    add(own_list(org_c), ("pdq", value))  # a private list of C never counts (invariant 7)
    assert {h["corroboration"] for h in hits(api_b, value)} == {1}
    share(c_list)
    subscribe(org_b, c_list)
    assert {h["corroboration"] for h in hits(api_b, value)} == {2}
    remove(shared, ("pdq", value))
    remove(second, ("pdq", value))
    assert {h["corroboration"] for h in hits(api_b, value)} == {1}


def _dispute(org: Organization, hash_list: HashList, value: str, status: str = "open") -> Dispute:
    with scopes_disabled():
        return Dispute.objects.create(
            organization=org,
            hash_list=hash_list,
            hash=Hash.objects.get(signal_type="pdq", value=bytes.fromhex(value)),
            reason="not_csam",
            created_by_label="test",
            status=status,
        )


def test_disputed_flips_at_the_threshold_and_can_be_ignored(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    org_c = OrganizationFactory.create(name="Org C", slug="org-c")
    value = random_pdq()
    shared = new_list(org_a, "Disputed")
    add(shared, ("pdq", value))
    share(shared)
    subscribe(org_b, shared)
    first = _dispute(org_b, shared, value)
    assert [h["disputed"] for h in hits(api_b, value)] == [False]  # one org: below 2
    _dispute(org_c, shared, value, status="rejected")
    assert [h["disputed"] for h in hits(api_b, value)] == [False]  # a closed one does not count
    _dispute(org_c, shared, value)
    assert [h["disputed"] for h in hits(api_b, value)] == [True]
    with scope(organization=org_b.pk):
        services.preferences_set(org=org_b, ignore_disputed=True, actor=SYSTEM)
    assert hits(api_b, value) == []
    first.status = "withdrawn"
    first.save()
    assert [h["disputed"] for h in hits(api_b, value)] == [False]


def test_community_matches_count_toward_the_owners_impact_never_own_ones(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    value = random_pdq()
    shared = new_list(org_a, "Impactful")
    add(shared, ("pdq", value))
    share(shared)
    subscribe(org_b, shared)
    hits(api_b, value)
    hits(api_b, flip(value, 3))
    hits(api(org_a), value)  # the owner's own match: not impact
    with scopes_disabled():
        assert [r.matches for r in ListImpact.objects.filter(hash_list=shared)] == [2]


def test_an_unapproved_organisation_neither_shares_nor_subscribes(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Shared")
    value = random_pdq()
    add(shared, ("pdq", value))
    share(shared)
    subscribe(org_b, shared)
    organization_set_approved(org=org_b, approved=False, actor=SYSTEM)
    assert hits(api_b, value) == []  # suspended: no community matches
    assert api_b.get("/api/v1/lists", {"tier": "community"}).json()["lists"] == []
    response = api_b.put(f"/api/v1/lists/{shared.public_id}/subscription")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "org_not_approved"
    response = api_b.patch(
        f"/api/v1/lists/{own_list(org_b).public_id}",
        {"visibility": "open"},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "org_not_approved"
    organization_set_approved(org=org_b, approved=True, actor=SYSTEM)
    assert hits(api_b, value)  # the subscription was kept


def test_the_access_log_has_one_event_per_change(org_a: Organization, org_b: Organization) -> None:
    shared = new_list(org_a, "Logged")
    share(shared, "anonymous")
    subscribe(org_b, shared)
    share(shared, "anonymous")  # unchanged: no access change
    share(shared, "private")
    with scopes_disabled():
        events = list(
            AccessEvent.objects.filter(hash_list=shared).values_list("organization", "granted")
        )
    assert events == [(org_b.pk, True), (org_b.pk, False)]


# --- the lists API ---------------------------------------------------------------------------


def test_the_lists_api_shows_own_lists_and_the_catalogue(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared, anon, private = (
        new_list(org_a, "Open one"),
        new_list(org_a, "Anon one"),
        new_list(org_a, "Private one"),
    )
    add(shared, ("pdq", random_pdq()), ("md5", "ab" * 16))
    share(shared, "open")
    share(anon, "anonymous")
    subscribe(org_b, anon)
    body = api_b.get("/api/v1/lists").json()["lists"]
    by_name = {item["name"]: item for item in body}
    assert "Private one" not in by_name
    assert by_name["Open one"]["tier"] == "community"
    assert by_name["Open one"]["contributor"] == "Org A"
    assert by_name["Open one"]["size"] == 2
    assert by_name["Open one"]["size_by_type"] == {"pdq": 1, "md5": 1}
    assert by_name["Open one"]["subscribed"] is False
    assert by_name["Anon one"]["contributor"] is None
    assert by_name["Anon one"]["subscribed"] is True
    assert by_name["Anon one"]["subscribers"] == 1
    assert {i["tier"] for i in body if i["name"] not in ("Open one", "Anon one")} == {"own"}
    detail = api_b.get(f"/api/v1/lists/{anon.public_id}")
    assert detail.status_code == 200
    assert "Org A" not in detail.content.decode()
    assert api_b.get(f"/api/v1/lists/{private.public_id}").status_code == 404
    assert api_b.get(f"/api/v1/lists/{private.public_id}/entries").status_code == 404


def test_a_community_lists_entries_omit_the_owners_labels_notes_and_people(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = new_list(org_a, "Annotated")
    with scope(organization=org_a.pk):
        list_services.entry_add(
            hash_list=shared,
            items=[list_services.EntryInput("md5", "ef" * 16, ("org-a-label",), "A's note")],
            actor=Actor(system="alice@org-a.example"),
        )
    share(shared, "anonymous")
    response = api_b.get(f"/api/v1/lists/{shared.public_id}/entries")
    assert response.status_code == 200
    [entry] = response.json()["entries"]
    assert set(entry) == {"id", "type", "value", "added_at"}
    text = response.content.decode()
    assert "org-a-label" not in text and "A's note" not in text and "alice" not in text
    # Reading is not writing: B cannot add to or rename A's list.
    response = api_b.post(
        f"/api/v1/lists/{shared.public_id}/entries",
        {"entries": [{"type": "md5", "value": "12" * 16}]},
        content_type="application/json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_list_owner"
    response = api_b.patch(
        f"/api/v1/lists/{shared.public_id}", {"name": "Mine now"}, content_type="application/json"
    )
    assert response.status_code == 403


def test_visibility_needs_the_admin_scope_and_is_audited(
    org_a: Organization, org_b: Organization
) -> None:
    writer = api(org_a, ["lists:write"])
    admin = api(org_a, ["lists:admin"])
    url = f"/api/v1/lists/{own_list(org_a).public_id}"
    response = writer.patch(url, {"visibility": "open"}, content_type="application/json")
    assert response.status_code == 403
    response = admin.patch(url, {"visibility": "bogus"}, content_type="application/json")
    assert response.status_code == 400
    response = admin.patch(url, {"visibility": "anonymous"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["visibility"] == "anonymous"
    response = admin.patch(
        url, {"visibility": "open", "name": "Renamed"}, content_type="application/json"
    )
    assert response.status_code == 403  # renaming also needs lists:write
    with scope(organization=org_a.pk):
        event = AuditEvent.objects.filter(action="list.visibility_changed").get()
    assert event.metadata["from"] == "private" and event.metadata["to"] == "anonymous"
    assert event.actor_type == "api_key"


def test_subscription_endpoints(org_a: Organization, org_b: Organization, api_b: Client) -> None:
    shared = new_list(org_a, "Subscribable")
    value = random_pdq()
    add(shared, ("pdq", value))
    share(shared)
    url = f"/api/v1/lists/{shared.public_id}/subscription"
    response = api_b.put(url)
    assert response.status_code == 200
    assert response.json()["changed"] is True and response.json()["list"]["subscribed"] is True
    assert api_b.put(url).json()["changed"] is False
    assert hits(api_b, value)
    response = api_b.delete(url)
    assert response.json()["list"]["subscribed"] is False
    assert hits(api_b, value) == []
    response = api_b.put("/api/v1/subscriptions/categories/csam")
    assert response.json() == {"category": "csam", "subscribed": True, "changed": True}
    assert hits(api_b, value)  # the category covers it
    assert api_b.put("/api/v1/subscriptions/categories/csam").json()["changed"] is False
    assert api_b.put(url).json()["changed"] is False  # already subscribed, by category
    assert api_b.delete(url).json()["list"]["subscribed"] is False  # an opt-out
    assert hits(api_b, value) == []
    api_b.delete("/api/v1/subscriptions/categories/csam")
    api_b.put("/api/v1/subscriptions/categories/csam")  # "all of them" again clears opt-outs
    assert hits(api_b, value)
    assert api_b.put("/api/v1/subscriptions/categories/nope").status_code == 400
    # Subscribing to one's own or a private or unknown list: 404, the same for each.
    private = new_list(org_a, "Hidden")
    for list_id in [private.public_id, own_list(org_b).public_id, "no-such-list"]:
        response = api_b.put(f"/api/v1/lists/{list_id}/subscription")
        assert response.status_code == 404, list_id
        assert response.json()["error"]["code"] == "not_found"
    key_only_match = api(org_b, ["match"])
    assert key_only_match.put(url).status_code == 403
    with scope(organization=org_b.pk):
        actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"subscription.added", "subscription.removed", "subscription.category_added"} <= actions
    with scope(organization=org_a.pk):
        owner_actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert not any(a.startswith("subscription.") for a in owner_actions)


def test_another_orgs_key_cannot_remove_from_a_private_list(
    org_a: Organization, api_b: Client
) -> None:
    value = "ab" * 16
    add(own_list(org_a), ("md5", value))
    response = api_b.post(
        f"/api/v1/lists/{own_list(org_a).public_id}/entries/remove",
        {"entries": [{"type": "md5", "value": value}]},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert hits(api(org_a), value, "md5")  # still there
