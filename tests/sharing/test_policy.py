"""The match policy (issue 19): GET|PUT /api/v1/policy, disabled entries, and what they change.

What it turns off (sources, lists, categories, single entries) changes the export as it changes
the matches (DESIGN.md, invariant 8); thresholds, shadow mode and actions change only answers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client
from django_scopes import scopes_disabled

from hub.models import AuditEvent, Organization
from lists.models import HashList, Source
from matching.models import Detection, WebhookDelivery
from sharing import policy as policy_services
from sharing.models import EntryDisable, MatchPolicy
from sharing.policy_rules import Policy
from tests.matching.test_export import replay
from tests.matching.test_match_api import SYSTEM, add, flip, match, own_list, random_pdq
from tests.sharing.test_access import api, hits, matchable_live, new_list, share, subscribe
from tests.sharing.test_verified import add as add_to_source
from tests.sharing.test_verified import grant, source, source_list

pytestmark = pytest.mark.django_db

__all__ = ["source"]  # the fixture, imported for this module's tests

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def api_b(org_b: Organization) -> Client:
    return api(org_b)


def put(client: Client, body: Any) -> Any:
    return client.put("/api/v1/policy", body, content_type="application/json")


def disable(client: Client, **body: Any) -> Any:
    return client.post("/api/v1/policy/disabled-entries", body, content_type="application/json")


def shared_list(owner: Organization, subscriber: Organization, *values: str) -> HashList:
    shared = new_list(owner, "Shared CSAM")
    add(shared, *(("pdq", value) for value in values))
    share(shared)
    subscribe(subscriber, shared)
    return shared


def policy_row(org: Organization) -> MatchPolicy:
    return policy_services.policy_of(org=org)


def test_the_default_policy_says_what_is_matched_and_how(
    source: Source, org_b: Organization, api_b: Client
) -> None:
    grant(source, org_b)
    body = api_b.get("/api/v1/policy").json()
    assert body["thresholds"] == {"pdq": 31, "phash": 10}
    assert body["server_max_distance"] == {"pdq": 31, "phash": 10}
    assert body["default_action"] == "review"
    assert body["retroactive_days"] == 0 and body["dihedral_default"] is False
    assert body["sources"] == [
        {"id": source.public_id, "name": "Hotline Feed", "enabled": True, "shadow": False}
    ]
    assert body["categories"] == {"csam": {"enabled": True}, "se": {"enabled": True}}
    tiers = {(item["tier"], item["enabled"]) for item in body["lists"]}
    assert tiers == {("own", True), ("verified", True)}
    assert body["disabled_entries"] == []


def test_a_lower_threshold_stops_farther_matches_and_a_request_may_lower_it_further(
    org_b: Organization, api_b: Client
) -> None:
    stored = random_pdq()
    add(own_list(org_b), ("pdq", stored))
    assert hits(api_b, flip(stored, 25))
    response = put(api_b, {"thresholds": {"pdq": 20}})
    assert response.status_code == 200, response.content
    assert response.json()["thresholds"]["pdq"] == 20
    assert hits(api_b, flip(stored, 25)) == []
    assert hits(api_b, flip(stored, 15))
    lowered = match(api_b, [{"type": "pdq", "value": flip(stored, 15)}], max_distance={"pdq": 10})
    assert lowered.json()["results"][0]["matches"] == []


def test_a_list_threshold_applies_to_that_list_only(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    stored = random_pdq()
    add(own_list(org_b), ("pdq", stored))
    shared = shared_list(org_a, org_b, stored)
    response = put(api_b, {"lists": [{"id": shared.public_id, "thresholds": {"pdq": 5}}]})
    assert response.status_code == 200, response.content
    near, far = hits(api_b, flip(stored, 4)), hits(api_b, flip(stored, 12))
    assert {m["list"]["tier"] for m in near} == {"own", "community"}
    assert {m["list"]["tier"] for m in far} == {"own"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"thresholds": {"pdq": 32}}, "threshold_too_large"),
        ({"thresholds": {"md5": 1}}, "invalid_thresholds"),
        ({"thresholds": {"pdq": -1}}, "invalid_thresholds"),
        ({"thresholds": "31"}, "invalid_thresholds"),
        ({"lists": [{"id": "nope", "enabled": False}]}, "unknown_list"),
        ({"sources": [{"id": "nope", "enabled": False}]}, "unknown_source"),
        ({"action_rules": [{"action": "delete"}]}, "invalid_action_rules"),
        ({"action_rules": [{"action": "block", "tier": "friends"}]}, "invalid_action_rules"),
        ({"default_action": "explode"}, "invalid_default_action"),
        ({"retroactive_days": 366}, "invalid_retroactive_days"),
        ({"link_template": "javascript:alert(1)"}, "invalid_link_template"),
        ({"link_template": "https://mod.example/item"}, "invalid_link_template"),
        ({"categories": {"other": {"enabled": False}}}, "invalid_categories"),
        ({"colour": "blue"}, "unknown_policy_field"),
        ([1, 2], "invalid_policy"),
    ],
)
def test_bad_policy_input_is_a_400_with_a_code_and_changes_nothing(
    org_b: Organization, api_b: Client, body: Any, code: str
) -> None:
    # A valid part sent with a bad one is not applied either.
    if isinstance(body, dict):
        body = {"retroactive_days": 7, **body} if "retroactive_days" not in body else body
    response = put(api_b, body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert policy_row(org_b).pk is None
    with scopes_disabled():
        assert not AuditEvent.objects.filter(action="policy.updated").exists()


def test_the_threshold_ceiling_is_a_setting(
    settings: Any, org_b: Organization, api_b: Client
) -> None:
    settings.HASHHUB_MAX_DISTANCE = {"pdq": 20, "phash": 10}
    stored = random_pdq()
    add(own_list(org_b), ("pdq", stored))
    assert hits(api_b, flip(stored, 25)) == []
    assert api_b.get("/api/v1/hashtypes").status_code == 200
    too_far = match(api_b, [{"type": "pdq", "value": stored}], max_distance={"pdq": 25})
    assert too_far.json()["error"]["code"] == "max_distance_too_large"
    assert put(api_b, {"thresholds": {"pdq": 24}}).json()["error"]["code"] == (
        "threshold_too_large"
    )


def test_another_organisations_private_list_is_unknown(org_a: Organization, api_b: Client) -> None:
    private = own_list(org_a)
    response = put(api_b, {"lists": [{"id": private.public_id, "shadow": True}]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_list"
    # The same answer as for an id that names nothing: no oracle of what exists.
    made_up = "x" * len(private.public_id)
    nothing = put(api_b, {"lists": [{"id": made_up, "shadow": True}]})
    assert nothing.content.decode().replace(made_up, "ID") == response.content.decode().replace(
        private.public_id, "ID"
    )


def test_own_lists_cannot_be_turned_off(org_b: Organization, api_b: Client) -> None:
    response = put(api_b, {"lists": [{"id": own_list(org_b).public_id, "enabled": False}]})
    assert response.json()["error"]["code"] == "own_list_always_matched"


def test_changing_the_policy_needs_the_admin_scope_and_reading_it_the_match_scope(
    org_b: Organization,
) -> None:
    matcher = api(org_b, ["match"])
    assert matcher.get("/api/v1/policy").status_code == 200
    assert put(matcher, {"thresholds": {"pdq": 20}}).status_code == 403
    exporter = api(org_b, ["export"])
    assert exporter.get("/api/v1/policy").status_code == 403


def test_turning_a_source_off_stops_its_matches_and_the_export_removes_it_then_adds_it_back(
    source: Source, org_b: Organization, api_b: Client
) -> None:
    grant(source, org_b)
    value = random_pdq()
    add_to_source(source_list(source), "pdq", value)
    assert hits(api_b, value)
    live, cursor = replay(api_b)
    assert (source_list(source).public_id, "pdq", value) in live
    response = put(api_b, {"sources": [{"id": source.public_id, "enabled": False}]})
    assert response.status_code == 200, response.content
    assert response.json()["sources"][0]["enabled"] is False
    assert hits(api_b, value) == []
    live, cursor = replay(api_b, cursor, start=live)
    assert live == matchable_live(org_b)
    assert (source_list(source).public_id, "pdq", value) not in live
    put(api_b, {"sources": [{"id": source.public_id, "enabled": True}]})
    assert hits(api_b, value)
    live, _ = replay(api_b, cursor, start=live)
    assert live == matchable_live(org_b)
    with scopes_disabled():
        event = AuditEvent.objects.filter(action="policy.updated").first()
    assert event is not None and event.metadata["turned"]


def test_turning_a_community_list_or_its_category_off_works_like_unsubscribing(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    value = random_pdq()
    shared = shared_list(org_a, org_b, value)
    assert hits(api_b, value)
    put(api_b, {"lists": [{"id": shared.public_id, "enabled": False}]})
    assert hits(api_b, value) == []
    # Still in the policy, switched off, so it can be turned on again.
    listed = {item["id"]: item for item in api_b.get("/api/v1/policy").json()["lists"]}
    assert listed[shared.public_id]["enabled"] is False
    put(api_b, {"lists": [{"id": shared.public_id, "enabled": True}]})
    assert hits(api_b, value)
    put(api_b, {"categories": {"csam": {"enabled": False}}})
    assert hits(api_b, value) == []
    live, _ = replay(api_b)
    assert live == matchable_live(org_b)
    assert all(list_id != shared.public_id for list_id, _, _ in live)


def test_shadow_matches_are_recorded_apart_and_never_returned_or_sent(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    value = random_pdq()
    shared = shared_list(org_a, org_b, value)
    add(own_list(org_b), ("pdq", value))
    put(api_b, {"lists": [{"id": shared.public_id, "shadow": True}]})
    response = match(api_b, [{"type": "pdq", "value": value}])
    result = response.json()["results"][0]
    assert [m["list"]["tier"] for m in result["matches"]] == ["own"]
    assert result["match_count"] == 1
    with scopes_disabled():
        detections = list(Detection.objects.filter(organization=org_b).order_by("id"))
    assert [d.shadow for d in detections] == [False, True]
    shadow = detections[1]
    assert shadow.tiers == ["community"]
    assert response.json()["detection"] == detections[0].public_id
    with scopes_disabled():
        assert not WebhookDelivery.objects.filter(detection=shadow).exists()


def test_a_shadow_only_match_answers_like_a_miss(
    source: Source, org_b: Organization, api_b: Client
) -> None:
    grant(source, org_b)
    value = random_pdq()
    add_to_source(source_list(source), "pdq", value)
    put(api_b, {"sources": [{"id": source.public_id, "shadow": True}]})
    body = match(api_b, [{"type": "pdq", "value": value}]).json()
    assert body["results"][0]["matches"] == [] and body["detection"] is None
    with scopes_disabled():
        assert Detection.objects.get(organization=org_b).shadow is True


def test_recommended_actions_follow_the_first_rule_that_fits(
    source: Source, org_b: Organization, api_b: Client
) -> None:
    grant(source, org_b)
    value = random_pdq()
    add_to_source(source_list(source), "pdq", value)  # labelled A1
    add(own_list(org_b), ("pdq", value))
    rules = [
        {"action": "block", "tier": "verified", "label": "A1", "max_distance": 10},
        {"action": "none", "tier": "own", "category": "se"},
    ]
    assert put(api_b, {"action_rules": rules, "default_action": "review"}).status_code == 200
    actions = {m["list"]["tier"]: m["action"] for m in hits(api_b, value)}
    assert actions == {"verified": "block", "own": "review"}
    far = {m["list"]["tier"]: m["action"] for m in hits(api_b, flip(value, 20))}
    assert far == {"verified": "review", "own": "review"}
    with scopes_disabled():
        recorded = list(
            Detection.objects.filter(organization=org_b)
            .order_by("id")
            .values_list("action", flat=True)
        )
    assert recorded == ["block", "review"]


def test_a_held_match_is_never_blocked() -> None:
    policy = Policy(action_rules=({"action": "block"},))
    assert policy.action_for({"list": {}, "distance": 0}, signal_type="pdq") == "block"
    held = {"list": {}, "distance": 0, "held": True}
    assert policy.action_for(held, signal_type="pdq") == "review"


def test_a_disabled_entry_stops_matching_until_its_date_and_the_export_follows(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    value, other = random_pdq(), random_pdq()
    shared = shared_list(org_a, org_b, value, other)
    with time_machine.travel(NOW, tick=False):
        live, cursor = replay(api_b)
        until = NOW + dt.timedelta(days=7)
        response = disable(
            api_b,
            list=shared.public_id,
            type="pdq",
            value=value,
            until=until.isoformat(),
            note="Not for us: a benign meme here.",
        )
        assert response.status_code == 201, response.content
        assert hits(api_b, value) == []
        assert hits(api_b, other)
        live, cursor = replay(api_b, cursor, start=live)
        assert (shared.public_id, "pdq", value) not in live
        assert live == matchable_live(org_b) - {(shared.public_id, "pdq", value)}
        listed = api_b.get("/api/v1/policy").json()["disabled_entries"]
        assert [(d["list"], d["value"]) for d in listed] == [(shared.public_id, value)]
        assert policy_services.disables_end_due() == 0
    with time_machine.travel(NOW + dt.timedelta(days=7, minutes=1), tick=False):
        assert policy_services.disables_end_due() == 1
        assert hits(api_b, value)
        live, _ = replay(api_b, cursor, start=live)
        assert live == matchable_live(org_b)
    with scopes_disabled():
        actions = list(
            AuditEvent.objects.filter(action__startswith="policy.entry_").values_list(
                "action", flat=True
            )
        )
    assert sorted(actions) == ["policy.entry_disabled", "policy.entry_enabled"]


def test_the_owner_removing_a_disabled_entry_meanwhile_is_not_added_back(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    from tests.matching.test_match_api import remove

    value = random_pdq()
    shared = shared_list(org_a, org_b, value)
    with time_machine.travel(NOW, tick=False):
        until = (NOW + dt.timedelta(days=1)).isoformat()
        assert disable(api_b, list=shared.public_id, type="pdq", value=value, until=until)
        remove(shared, ("pdq", value))
    with time_machine.travel(NOW + dt.timedelta(days=2), tick=False):
        policy_services.disables_end_due()
        live, _ = replay(api_b)
        assert live == matchable_live(org_b)
        assert (shared.public_id, "pdq", value) not in live


def test_enabling_an_entry_again_by_hand(org_b: Organization, api_b: Client) -> None:
    value = random_pdq()
    add(own_list(org_b), ("pdq", value))
    with time_machine.travel(NOW, tick=False):
        until = (NOW + dt.timedelta(days=3)).isoformat()
        created = disable(
            api_b, list=own_list(org_b).public_id, type="pdq", value=value, until=until
        )
        assert hits(api_b, value) == []
        gone = api_b.delete(f"/api/v1/policy/disabled-entries/{created.json()['id']}")
        assert gone.status_code == 200
        assert hits(api_b, value)
        again = api_b.delete(f"/api/v1/policy/disabled-entries/{created.json()['id']}")
        assert again.status_code == 404


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"until": "2026-12-01T00:00:00+00:00"}, "until_in_past"),
        ({"until": "2035-01-01T00:00:00+00:00"}, "until_too_far"),
        ({"until": "next week"}, "invalid_until"),
        ({"until": "2026-12-24T00:00:00"}, "invalid_until"),
        ({"value": "ab"}, "wrong_length"),
        ({"list": "nope"}, "unknown_list"),
        ({"value": "0" * 63 + "1"}, "not_in_list"),
        ({"note": 5}, "invalid_request"),
    ],
)
def test_bad_disables_are_400s_and_change_nothing(
    org_b: Organization, api_b: Client, change: dict[str, Any], code: str
) -> None:
    value = random_pdq()
    add(own_list(org_b), ("pdq", value))
    body = {
        "list": own_list(org_b).public_id,
        "type": "pdq",
        "value": value,
        "until": (NOW + dt.timedelta(days=3)).isoformat(),
        **change,
    }
    with time_machine.travel(NOW, tick=False):
        response = disable(api_b, **body)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    with scopes_disabled():
        assert not EntryDisable.objects.exists()


def test_another_organisations_disable_cannot_be_ended(
    org_a: Organization, org_b: Organization, api_b: Client, api_a: Client
) -> None:
    value = random_pdq()
    add(own_list(org_a), ("pdq", value))
    with time_machine.travel(NOW, tick=False):
        until = (NOW + dt.timedelta(days=3)).isoformat()
        created = disable(
            api_a, list=own_list(org_a).public_id, type="pdq", value=value, until=until
        )
        assert created.status_code == 201, created.content
        response = api_b.delete(f"/api/v1/policy/disabled-entries/{created.json()['id']}")
    assert response.status_code == 404
    with scopes_disabled():
        assert EntryDisable.objects.get().ended_seq is None


def test_the_dihedral_default_comes_from_the_policy(org_b: Organization) -> None:
    from matching.services import _clean_dihedral

    assert _clean_dihedral(None, org_b) is False
    policy_services.policy_set(org=org_b, changes={"dihedral_default": True}, actor=SYSTEM)
    assert _clean_dihedral(None, org_b) is True
    assert _clean_dihedral("false", org_b) is False


def test_a_turned_off_list_made_private_is_no_longer_named(
    org_a: Organization, org_b: Organization, api_b: Client
) -> None:
    shared = shared_list(org_a, org_b, random_pdq())
    put(api_b, {"lists": [{"id": shared.public_id, "enabled": False}]})
    assert shared.public_id in api_b.get("/api/v1/policy").content.decode()
    share(shared, "private")
    assert shared.public_id not in api_b.get("/api/v1/policy").content.decode()
    again = put(api_b, {"lists": [{"id": shared.public_id, "enabled": True}]})
    assert again.json()["error"]["code"] == "unknown_list"
