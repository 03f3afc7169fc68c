"""Disputes: raising one (page and API), withdrawing it, the owner's reject and retract, the
threshold that marks an entry disputed, and what each side may (never) learn of the other.

Alice owns org A, which shares a list; Bob is a viewer in A. Charlie owns org B and disputes A's
entries; Dana owns org C, a second disputer and, for B's disputes, an outsider who must see
nothing. Every hash is random.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent, Organization, User
from hub.permissions import Role
from lists import services as list_services
from lists.models import Entry, HashList
from sharing import disputes, services
from sharing.models import Dispute
from sharing.selectors import disputed_entries
from tests.conftest import _member, login, make_key
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

TEST = Actor(system="test")
# Org A's identifying strings: none may reach B or C while A's list is anonymous.
A_NAME = "Quillfeather Trust Desk"
A_SLUG = "org-a"


def md5() -> str:
    return secrets.token_hex(16)


def api(org: Organization, scopes: list[str] | None = None) -> Client:
    _, secret = make_key(org, scopes or ["match", "lists:write"], name=f"{org.slug} dispute key")
    return Client(headers={"Authorization": f"Bearer {secret}"})


@pytest.fixture
def org_a(org_a: Organization) -> Organization:
    org_a.name = A_NAME
    org_a.save(update_fields=["name"])
    return org_a


@pytest.fixture
def org_c(db: None) -> Organization:
    return OrganizationFactory.create(name="Org C", slug="org-c")


@pytest.fixture
def dana(org_c: Organization) -> User:
    return _member(org_c, "dana@example.test", Role.OWNER)


@pytest.fixture
def dana_client(dana: User) -> Client:
    return login(dana)


@pytest.fixture
def hashes() -> list[str]:
    return [md5() for _ in range(3)]


@pytest.fixture
def shared(org_a: Organization, hashes: list[str]) -> HashList:
    """Org A's anonymous list holding ``hashes``."""
    with scope(organization=org_a.pk):
        hash_list = list_services.list_create(
            org=org_a, name="Escalations", category="csam", actor=TEST
        )
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput("md5", h) for h in hashes],
            actor=TEST,
        )
        services.list_visibility_set(hash_list=hash_list, visibility="anonymous", actor=TEST)
    services.anonymous_publish()  # as others see it from the next publication on
    return hash_list


def dispute(
    org: Organization,
    hash_list: HashList,
    value: str,
    *,
    reason: str = "not_csam",
    note: str = "",
    reveal: bool = False,
    actor: Actor = TEST,
) -> Dispute:
    with scope(organization=org.pk):
        return disputes.dispute_create(
            org=org,
            list_public_id=hash_list.public_id,
            signal_type="md5",
            value=value,
            reason=reason,
            note=note,
            reveal=reveal,
            actor=actor,
        )


def fresh(d: Dispute) -> Dispute:
    with scopes_disabled():
        return Dispute.objects.get(pk=d.pk)


def live(hash_list: HashList, value: str) -> bool:
    with scopes_disabled():
        return Entry.objects.filter(
            hash_list=hash_list, hash__value=bytes.fromhex(value), removed_seq__isnull=True
        ).exists()


def events(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action).order_by("id"))


def post_json(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, data=json.dumps(body), content_type="application/json")


def page(client: Client, name: str, org: Organization, **kwargs: str) -> str:
    response = client.get(reverse(name, kwargs={"org_slug": org.slug, **kwargs}))
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def assert_nothing_of(text: str, *strings: str) -> None:
    for string in strings:
        assert string.lower() not in text.lower(), f"{string!r} leaked"


# --- raising a dispute ------------------------------------------------------------------------


def test_a_subscriber_disputes_an_entry_through_the_page(
    charlie_client: Client, org_a: Organization, org_b: Organization, shared: HashList,
    hashes: list[str], alice: User,
) -> None:  # fmt: skip
    url = reverse("dispute_new", args=[org_b.slug, shared.public_id])
    form = charlie_client.get(url, {"type": "md5", "value": hashes[0]})
    assert form.status_code == 200
    assert hashes[0] in form.content.decode()
    assert "Anonymous member" in form.content.decode()

    response = charlie_client.post(
        url,
        {
            "type": "md5",
            "value": hashes[0].upper(),
            "reason": "wrong_category",
            "note": "SE, not CSAM",
        },
    )

    with scopes_disabled():
        made = Dispute.objects.get(organization=org_b)
    assert response.status_code == 302
    assert response["Location"] == reverse("dispute_detail", args=[org_b.slug, made.public_id])
    assert (made.hash_list_id, made.reason, made.note, made.status, made.reveal) == (
        shared.pk, "wrong_category", "SE, not CSAM", "open", False,
    )  # fmt: skip
    assert made.entry is not None and made.entry.live
    assert made.created_by_label == "charlie@example.test"
    detail = page(charlie_client, "dispute_detail", org_b, dispute_id=made.public_id)
    assert "Wrong category" in detail and "SE, not CSAM" in detail and hashes[0] in detail
    assert_nothing_of(detail, A_NAME, A_SLUG, alice.email)


def test_creating_is_audited_in_both_organisations_without_naming_the_disputer(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str], charlie: User
) -> None:
    made = dispute(org_b, shared, hashes[0], actor=Actor(user=charlie, ip="203.0.113.9"))

    [mine] = events(org_b, "dispute.created")
    assert (mine.actor_user, mine.target_id, mine.metadata["reason"]) == (
        charlie, made.public_id, "not_csam",
    )  # fmt: skip
    [theirs] = events(org_a, "dispute.received")
    assert theirs.target_id == made.public_id
    assert theirs.actor_user is None and theirs.actor_api_key is None and theirs.ip is None
    assert theirs.actor_label == "A member organisation"
    assert theirs.metadata["value"] == hashes[0]
    assert_nothing_of(
        json.dumps(theirs.metadata) + theirs.actor_label, "Org B", "org-b", charlie.email,
        "203.0.113.9",
    )  # fmt: skip


def test_a_revealed_dispute_names_the_organisation_to_the_owner(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str], charlie: User,
    alice_client: Client,
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0], reveal=True, actor=Actor(user=charlie))

    [theirs] = events(org_a, "dispute.received")
    assert theirs.metadata["disputer"] == "Org B"
    assert theirs.actor_user is None
    detail = page(alice_client, "dispute_detail", org_a, dispute_id=made.public_id)
    index = (
        page(alice_client, "disputes", org_a)
        + alice_client.get(
            reverse("disputes", args=[org_a.slug]), {"tab": "received"}
        ).content.decode()
    )
    for text in (detail, index):
        assert "Org B" in text
        assert_nothing_of(text, charlie.email)  # the organisation, never the person


def test_the_api_creates_a_dispute_and_lists_the_callers_own(
    org_a: Organization, org_b: Organization, org_c: Organization, shared: HashList,
    hashes: list[str],
) -> None:  # fmt: skip
    b = api(org_b)
    response = post_json(
        b,
        reverse("api_disputes"),
        {"list": shared.public_id, "type": "md5", "value": hashes[1], "reason": "low_quality",
         "note": "blurry thumbnail", "reveal": False},
    )  # fmt: skip
    dispute(org_c, shared, hashes[1])  # Someone else's: never in B's listing.

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["list"] == {
        "id": shared.public_id, "name": "Escalations", "category": "csam",
        "tier": "community", "contributor": None, "anonymous": True,
    }  # fmt: skip
    assert (body["type"], body["value"], body["reason"], body["note"], body["status"]) == (
        "md5", hashes[1], "low_quality", "blurry thumbnail", "open",
    )  # fmt: skip
    assert body["resolution_note"] == "" and body["resolved_at"] is None
    listed = b.get(reverse("api_disputes")).json()
    assert [d["id"] for d in listed["disputes"]] == [body["id"]]
    assert listed["next_cursor"] is None
    assert b.get(reverse("api_disputes"), {"status": "rejected"}).json()["disputes"] == []
    assert_nothing_of(response.content.decode() + json.dumps(listed), A_NAME, A_SLUG)


def test_the_api_pages_with_a_cursor(
    org_b: Organization, shared: HashList, hashes: list[str]
) -> None:
    made = [dispute(org_b, shared, h).public_id for h in hashes]
    b = api(org_b)

    first = b.get(reverse("api_disputes"), {"limit": 2}).json()
    second = b.get(reverse("api_disputes"), {"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [d["id"] for d in first["disputes"] + second["disputes"]] == made[::-1]
    assert second["next_cursor"] is None
    bad = b.get(reverse("api_disputes"), {"cursor": "nope"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "bad_cursor")


def test_creating_through_the_api_needs_the_lists_write_scope(
    org_b: Organization, shared: HashList, hashes: list[str]
) -> None:
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "other"}

    response = post_json(api(org_b, ["match"]), reverse("api_disputes"), body)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    with scopes_disabled():
        assert not Dispute.objects.exists()
    assert api(org_b, ["match"]).get(reverse("api_disputes")).status_code == 200


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"reason": "offensive"}, 400, "invalid_reason"),
        ({"value": "abc"}, 400, "wrong_length"),
        ({"value": "zz" * 16}, 400, "bad_characters"),
        ({"type": "sha512"}, 400, "unknown_type"),
        ({"list": "no-such-list"}, 404, "not_found"),
        ({"value": "absent"}, 404, "entry_not_found"),
        ({"note": "x" * 2001}, 400, "note_too_long"),
        ({"reveal": "yes"}, 400, "invalid_body"),
        ({"reason": None}, 400, "invalid_body"),
    ],
)
def test_the_api_refuses_bad_disputes_with_a_code(
    org_b: Organization, shared: HashList, hashes: list[str], change: dict[str, Any],
    status: int, code: str,
) -> None:  # fmt: skip
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "not_csam"}
    body |= change
    if body["value"] == "absent":
        body["value"] = md5()

    response = post_json(api(org_b), reverse("api_disputes"), body)

    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    with scopes_disabled():
        assert not Dispute.objects.exists()


def test_an_organisation_cannot_dispute_its_own_list(
    org_a: Organization, shared: HashList, hashes: list[str], alice_client: Client
) -> None:
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "other"}

    response = post_json(api(org_a), reverse("api_disputes"), body)
    form = alice_client.get(reverse("dispute_new", args=[org_a.slug, shared.public_id]))

    assert (response.status_code, response.json()["error"]["code"]) == (400, "own_list")
    assert form.status_code == 400
    assert "your own list" in form.content.decode()


@pytest.mark.parametrize("how", ["private", "deleted", "owner_unapproved"])
def test_a_list_outside_the_catalogue_is_not_found(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str],
    charlie_client: Client, how: str,
) -> None:  # fmt: skip
    with scope(organization=org_a.pk):
        if how == "private":
            services.list_visibility_set(hash_list=shared, visibility="private", actor=TEST)
        elif how == "deleted":
            list_services.list_delete(hash_list=shared, reason="done", actor=TEST)
        else:
            org_a.approved = False
            org_a.save(update_fields=["approved"])
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "other"}

    response = post_json(api(org_b), reverse("api_disputes"), body)
    form = charlie_client.get(reverse("dispute_new", args=[org_b.slug, shared.public_id]))

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert form.status_code == 404
    assert_nothing_of(response.content.decode() + form.content.decode(), A_NAME, "Escalations")


def test_an_unapproved_organisation_cannot_dispute(
    org_b: Organization, shared: HashList, hashes: list[str]
) -> None:
    org_b.approved = False
    org_b.save(update_fields=["approved"])
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "other"}

    response = post_json(api(org_b), reverse("api_disputes"), body)

    assert (response.status_code, response.json()["error"]["code"]) == (403, "org_not_approved")


def test_a_removed_entry_cannot_be_disputed(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str]
) -> None:
    with scope(organization=org_a.pk):
        list_services.entry_remove(
            hash_list=shared, items=[list_services.EntryInput("md5", hashes[0])], reason="old",
            actor=TEST,
        )  # fmt: skip
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "other"}

    response = post_json(api(org_b), reverse("api_disputes"), body)

    assert (response.status_code, response.json()["error"]["code"]) == (404, "entry_not_found")


def test_the_page_shows_service_errors_on_the_form(
    charlie_client: Client, org_b: Organization, shared: HashList
) -> None:
    url = reverse("dispute_new", args=[org_b.slug, shared.public_id])

    response = charlie_client.post(url, {"type": "md5", "value": md5(), "reason": "other"})

    assert response.status_code == 404
    assert "not in the list" in response.content.decode()
    bad = charlie_client.post(url, {"type": "md5", "value": "abc", "reason": "nonsense"})
    assert bad.status_code == 400
    with scopes_disabled():
        assert not Dispute.objects.exists()


def test_a_second_open_dispute_on_the_same_entry_is_a_conflict(
    org_b: Organization, shared: HashList, hashes: list[str]
) -> None:
    first = dispute(org_b, shared, hashes[0])
    body = {"list": shared.public_id, "type": "md5", "value": hashes[0], "reason": "other"}

    again = post_json(api(org_b), reverse("api_disputes"), body)

    assert again.status_code == 409
    assert again.json()["error"]["code"] == "already_disputed"
    assert again.json()["error"]["details"] == {"dispute": first.public_id}
    # Once the first is closed, the organisation may dispute the entry again.
    with scope(organization=org_b.pk):
        disputes.dispute_withdraw(org=org_b, public_id=first.public_id, actor=TEST)
    assert post_json(api(org_b), reverse("api_disputes"), body).status_code == 201


def test_a_viewer_cannot_raise_or_withdraw_disputes(
    bob_client: Client, org_a: Organization, org_b: Organization, hashes: list[str]
) -> None:
    with scope(organization=org_b.pk):
        theirs = list_services.list_create(org=org_b, name="B's", category="se", actor=TEST)
        list_services.entry_add(
            hash_list=theirs, items=[list_services.EntryInput("md5", hashes[0])], actor=TEST
        )
        services.list_visibility_set(hash_list=theirs, visibility="open", actor=TEST)
    url = reverse("dispute_new", args=[org_a.slug, theirs.public_id])

    assert bob_client.get(url).status_code == 403
    assert (
        bob_client.post(url, {"type": "md5", "value": hashes[0], "reason": "other"}).status_code
        == 403
    )
    assert bob_client.get(reverse("disputes", args=[org_a.slug])).status_code == 200


# --- withdrawing ------------------------------------------------------------------------------


def test_the_disputer_withdraws_its_open_dispute(
    charlie_client: Client, alice_client: Client, org_a: Organization, org_b: Organization,
    shared: HashList, hashes: list[str], charlie: User,
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0], actor=Actor(user=charlie))
    url = reverse("dispute_withdraw", args=[org_b.slug, made.public_id])

    response = charlie_client.post(url)

    assert response.status_code == 302
    assert fresh(made).status == "withdrawn"
    assert charlie_client.post(url).status_code == 409  # Already closed.
    assert [e.actor_user for e in events(org_b, "dispute.withdrawn")] == [charlie]
    [owner_event] = events(org_a, "dispute.withdrawn")
    assert owner_event.actor_label == "A member organisation" and owner_event.actor_user is None
    # The owner sees it was withdrawn, never by whom.
    detail = page(alice_client, "dispute_detail", org_a, dispute_id=made.public_id)
    assert "Withdrawn" in detail
    assert_nothing_of(detail, charlie.email, "Org B", "org-b")


def test_the_owner_cannot_withdraw_and_the_disputer_cannot_resolve(
    alice_client: Client, charlie_client: Client, org_a: Organization, org_b: Organization,
    shared: HashList, hashes: list[str],
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0])

    assert (
        alice_client.post(
            reverse("dispute_withdraw", args=[org_a.slug, made.public_id])
        ).status_code
        == 404
    )
    for name in ("dispute_reject", "dispute_retract"):
        url = reverse(name, args=[org_b.slug, made.public_id])
        assert charlie_client.post(url, {"note": "mine now"}).status_code == 404
    assert fresh(made).status == "open"


# --- the owner's side -------------------------------------------------------------------------


def test_the_owner_sees_disputes_without_the_disputers_identity(
    alice_client: Client, bob_client: Client, org_a: Organization, org_b: Organization,
    org_c: Organization, shared: HashList, hashes: list[str], charlie: User, dana: User,
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0], note="looks like a meme", actor=Actor(user=charlie))
    dispute(org_c, shared, hashes[0], reason="low_quality", actor=Actor(user=dana))

    index = alice_client.get(reverse("disputes", args=[org_a.slug]), {"tab": "received"})
    detail = page(alice_client, "dispute_detail", org_a, dispute_id=made.public_id)
    viewer = page(bob_client, "dispute_detail", org_a, dispute_id=made.public_id)

    text = index.content.decode()
    assert index.status_code == 200
    assert "looks like a meme" in text and "Not CSAM" in text and "Low-quality hash" in text
    assert text.count("A member organisation") == 2
    [row] = [v for v in index.context["rows"] if v.public_id == made.public_id]
    assert row.open_orgs == 2 and row.disputer is None
    for shown in (text, detail, viewer):
        assert_nothing_of(shown, "Org B", "org-b", "Org C", "org-c", charlie.email, dana.email)
    assert "Retract the entry" in detail and "Reject the dispute" in detail
    assert "Retract the entry" not in viewer  # A viewer reads, never resolves.


def test_the_owner_rejects_with_a_note_the_disputer_reads(
    alice_client: Client, charlie_client: Client, bob_client: Client, org_a: Organization,
    org_b: Organization, shared: HashList, hashes: list[str], alice: User,
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0])
    url = reverse("dispute_reject", args=[org_a.slug, made.public_id])

    assert bob_client.post(url, {"note": "no"}).status_code == 403
    needs_note = alice_client.post(url, {"note": "  "})
    assert needs_note.status_code == 400
    assert fresh(made).status == "open"
    response = alice_client.post(url, {"note": "Confirmed by two analysts."})

    assert response.status_code == 302
    closed = fresh(made)
    assert (closed.status, closed.resolution_note) == ("rejected", "Confirmed by two analysts.")
    assert closed.resolved_at is not None
    assert live(shared, hashes[0])  # Rejecting keeps the entry.
    seen = page(charlie_client, "dispute_detail", org_b, dispute_id=made.public_id)
    assert "Confirmed by two analysts." in seen and "Rejected by the owner" in seen
    listed = api(org_b).get(reverse("api_disputes")).json()["disputes"][0]
    assert (listed["status"], listed["resolution_note"]) == (
        "rejected", "Confirmed by two analysts.",
    )  # fmt: skip
    assert [e.actor_user for e in events(org_a, "dispute.rejected")] == [alice]
    [theirs] = events(org_b, "dispute.rejected")
    assert theirs.actor_user is None and theirs.actor_label == "The list's owner"
    assert_nothing_of(
        seen + json.dumps(listed) + theirs.actor_label + json.dumps(theirs.metadata),
        A_NAME, A_SLUG, alice.email,
    )  # fmt: skip
    assert alice_client.post(url, {"note": "again"}).status_code == 409


def test_the_owner_retracts_the_entry_and_closes_every_open_dispute_on_it(
    alice_client: Client, charlie_client: Client, org_a: Organization, org_b: Organization,
    org_c: Organization, shared: HashList, hashes: list[str], alice: User,
) -> None:  # fmt: skip
    from_b = dispute(org_b, shared, hashes[0])
    from_c = dispute(org_c, shared, hashes[0], reason="other")
    withdrawn = dispute(org_c, shared, hashes[1])
    other_entry = dispute(org_b, shared, hashes[1])
    with scope(organization=org_c.pk):
        disputes.dispute_withdraw(org=org_c, public_id=withdrawn.public_id, actor=TEST)

    response = alice_client.post(
        reverse("dispute_retract", args=[org_a.slug, from_b.public_id]),
        {"note": "Miscategorised on import."},
    )

    assert response.status_code == 302
    assert not live(shared, hashes[0])
    with scopes_disabled():
        tombstone = Entry.objects.get(hash_list=shared, hash__value=bytes.fromhex(hashes[0]))
    assert tombstone.removed_seq is not None
    assert from_b.public_id in tombstone.removed_reason
    assert tombstone.removed_by_user == alice
    assert [fresh(d).status for d in (from_b, from_c, withdrawn, other_entry)] == [
        "retracted", "retracted", "withdrawn", "open",
    ]  # fmt: skip
    assert fresh(from_c).resolution_note == "Miscategorised on import."
    assert live(shared, hashes[1])
    [owner_event] = events(org_a, "dispute.retracted")
    assert set(owner_event.metadata["disputes_closed"]) == {from_b.public_id, from_c.public_id}
    assert events(org_a, "entries.removed")
    for org, d in ((org_b, from_b), (org_c, from_c)):
        [e] = events(org, "dispute.retracted")
        assert (e.target_id, e.actor_user, e.actor_label) == (d.public_id, None, "The list's owner")
    seen = page(charlie_client, "dispute_detail", org_b, dispute_id=from_b.public_id)
    assert "Entry retracted by the owner" in seen and "Miscategorised on import." in seen
    assert_nothing_of(seen, A_NAME, A_SLUG, alice.email)


def test_a_closed_dispute_cannot_be_retracted(
    alice_client: Client, org_a: Organization, org_b: Organization, shared: HashList,
    hashes: list[str],
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0])
    with scope(organization=org_b.pk):
        disputes.dispute_withdraw(org=org_b, public_id=made.public_id, actor=TEST)

    response = alice_client.post(reverse("dispute_retract", args=[org_a.slug, made.public_id]))

    assert response.status_code == 409
    assert live(shared, hashes[0])


def remove(hash_list: HashList, *values: str) -> None:
    with scope(organization=hash_list.organization_id):
        list_services.entry_remove(
            hash_list=hash_list,
            items=[list_services.EntryInput("md5", v) for v in values],
            reason="cleaning up",
            actor=TEST,
        )


def test_removing_a_disputed_entry_closes_its_open_disputes_once_committed(
    charlie_client: Client, org_a: Organization, org_b: Organization, org_c: Organization,
    shared: HashList, hashes: list[str], alice: User,
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    from_b = dispute(org_b, shared, hashes[0])
    from_c = dispute(org_c, shared, hashes[0])
    elsewhere = dispute(org_b, shared, hashes[1])

    with django_capture_on_commit_callbacks(execute=True):
        remove(shared, hashes[0])

    assert [fresh(d).status for d in (from_b, from_c, elsewhere)] == ["removed", "removed", "open"]
    assert fresh(from_b).resolved_at is not None
    owner_events = events(org_a, "dispute.entry_removed")
    assert {e.target_id for e in owner_events} == {from_b.public_id, from_c.public_id}
    for org, d in ((org_b, from_b), (org_c, from_c)):
        [e] = events(org, "dispute.entry_removed")
        assert (e.target_id, e.actor_user, e.actor_label) == (
            d.public_id, None, "Entry removed from the list",
        )  # fmt: skip
    seen = page(charlie_client, "dispute_detail", org_b, dispute_id=from_b.public_id)
    assert "Entry removed by the owner" in seen
    assert_nothing_of(seen, A_NAME, A_SLUG, alice.email)
    # The disputer may raise a new one if the entry comes back.
    with scope(organization=org_a.pk):
        list_services.entry_add(
            hash_list=shared, items=[list_services.EntryInput("md5", hashes[0])], actor=TEST
        )
    # ...once others see it again: with the next publication of the anonymous list.
    with pytest.raises(ServiceError) as unpublished:
        dispute(org_b, shared, hashes[0])
    assert unpublished.value.code == "entry_not_found"
    services.anonymous_publish()
    assert dispute(org_b, shared, hashes[0]).status == "open"


def test_deleting_a_shared_list_closes_the_open_disputes_on_it(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    made = [dispute(org_b, shared, value) for value in hashes]
    with scope(organization=org_a.pk), django_capture_on_commit_callbacks(execute=True):
        list_services.list_delete(hash_list=shared, reason="retired", actor=TEST)

    assert [fresh(d).status for d in made] == ["removed"] * 3


def test_a_retraction_keeps_its_outcome_and_a_re_add_keeps_disputes_open(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str],
    django_capture_on_commit_callbacks: Any,
) -> None:  # fmt: skip
    retracted = dispute(org_b, shared, hashes[0])
    kept = dispute(org_b, shared, hashes[1])
    with scope(organization=org_a.pk), django_capture_on_commit_callbacks(execute=True):
        disputes.dispute_retract(org=org_a, public_id=retracted.public_id, note="", actor=TEST)
    # Removed and added back in one transaction: the entry is live when the removal commits.
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        remove(shared, hashes[1])
        with scope(organization=org_a.pk):
            list_services.entry_add(
                hash_list=shared, items=[list_services.EntryInput("md5", hashes[1])], actor=TEST
            )

    assert (fresh(retracted).status, fresh(kept).status) == ("retracted", "open")
    assert not events(org_b, "dispute.entry_removed")


# --- who sees what ----------------------------------------------------------------------------


def test_a_third_organisation_gets_404_for_someone_elses_dispute(
    dana_client: Client, org_b: Organization, org_c: Organization, shared: HashList,
    hashes: list[str],
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0])

    assert (
        dana_client.get(reverse("dispute_detail", args=[org_c.slug, made.public_id])).status_code
        == 404
    )
    for name in ("dispute_withdraw", "dispute_reject", "dispute_retract"):
        url = reverse(name, args=[org_c.slug, made.public_id])
        assert dana_client.post(url, {"note": "x"}).status_code == 404
    # Nor through the disputer's URL: Dana is no member of org B.
    assert (
        dana_client.get(reverse("dispute_detail", args=[org_b.slug, made.public_id])).status_code
        == 404
    )
    assert api(org_c).get(reverse("api_disputes")).json()["disputes"] == []
    assert fresh(made).status == "open"


def test_the_disputers_pages_never_name_an_anonymous_lists_owner(
    charlie_client: Client, org_a: Organization, org_b: Organization, shared: HashList,
    hashes: list[str], alice: User,
) -> None:  # fmt: skip
    made = dispute(org_b, shared, hashes[0])
    with scope(organization=org_a.pk):
        # Made private after the dispute: the disputer must still not learn who owned it.
        services.list_visibility_set(hash_list=shared, visibility="private", actor=TEST)

    texts = [
        page(charlie_client, "disputes", org_b),
        page(charlie_client, "dispute_detail", org_b, dispute_id=made.public_id),
        api(org_b).get(reverse("api_disputes")).content.decode(),
    ]

    for text in texts:
        assert "Escalations" in text
        assert_nothing_of(text, A_NAME, A_SLUG, alice.email)


def test_an_open_list_names_its_owner_to_the_disputer(
    org_a: Organization, org_b: Organization, shared: HashList, hashes: list[str]
) -> None:
    with scope(organization=org_a.pk):
        services.list_visibility_set(hash_list=shared, visibility="open", actor=TEST)
    made = dispute(org_b, shared, hashes[0])

    with scope(organization=org_b.pk):
        shown = disputes.dispute_for_org(org=org_b, public_id=made.public_id)

    assert isinstance(shown, disputes.RaisedDispute)
    assert (shown.hash_list.contributor, shown.hash_list.anonymous) == (A_NAME, False)


# --- the threshold ----------------------------------------------------------------------------


def test_an_entry_is_disputed_once_enough_organisations_hold_open_disputes(
    settings: Any, org_a: Organization, org_b: Organization, org_c: Organization,
    shared: HashList, hashes: list[str],
) -> None:  # fmt: skip
    settings.HASHHUB_DISPUTE_THRESHOLD = 2
    with scopes_disabled():
        entry = Entry.objects.get(hash_list=shared, hash__value=bytes.fromhex(hashes[0]))
    pair = (shared.pk, entry.hash_id)

    from_b = dispute(org_b, shared, hashes[0])
    assert disputed_entries([pair]) == set()
    from_c = dispute(org_c, shared, hashes[0])
    assert disputed_entries([pair]) == {pair}

    with scope(organization=org_a.pk):
        disputes.dispute_reject(org=org_a, public_id=from_c.public_id, note="No.", actor=TEST)
    assert disputed_entries([pair]) == set()
    again = dispute(org_c, shared, hashes[0])
    assert disputed_entries([pair]) == {pair}
    with scope(organization=org_b.pk):
        disputes.dispute_withdraw(org=org_b, public_id=from_b.public_id, actor=TEST)
    assert disputed_entries([pair]) == set()
    assert fresh(again).status == "open"
