"""The match policy page, /o/<slug>/policy/: members read it, owners and admins change it."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import time_machine
from django.test import Client
from django_scopes import scopes_disabled

from hub.models import AuditEvent, Organization
from sharing import policy as policy_services
from sharing.models import EntryDisable
from tests.matching.test_match_api import add, own_list, random_pdq

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 7, 9, 0, tzinfo=dt.UTC)


def change(client: Client, **data: str) -> Any:
    return client.post("/o/org-a/policy/change/", data, follow=True)


def test_a_member_reads_the_policy_and_cannot_change_it(bob_client: Client) -> None:
    page = bob_client.get("/o/org-a/policy/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Match policy" in text and "PDQ threshold" in text
    assert ">Save</button>" not in text and "Add rule" not in text
    refused = bob_client.post("/o/org-a/policy/change/", {"part": "settings"})
    assert refused.status_code == 403


def test_the_owner_saves_thresholds_and_defaults(alice_client: Client, org_a: Organization) -> None:
    response = change(
        alice_client,
        part="settings",
        threshold_pdq="24",
        threshold_phash="8",
        default_action="block",
        dihedral_default="on",
        retroactive_days="30",
        link_template="https://mod.example/item/{content_ref}",
    )
    assert "Match settings saved." in response.content.decode()
    row = policy_services.policy_of(org=org_a)
    assert row.thresholds == {"pdq": 24, "phash": 8}
    assert (row.default_action, row.dihedral_default, row.retroactive_days) == ("block", True, 30)
    with scopes_disabled():
        assert AuditEvent.objects.filter(action="policy.updated", organization=org_a).exists()


def test_a_bad_value_is_explained_and_changes_nothing(
    alice_client: Client, org_a: Organization
) -> None:
    response = change(alice_client, part="settings", threshold_pdq="99", default_action="review")
    assert "at most 31 bits" in response.content.decode()
    assert policy_services.policy_of(org=org_a).pk is None


def test_rules_are_added_in_order_and_removed(alice_client: Client, org_a: Organization) -> None:
    change(alice_client, part="rule_add", action="block", tier="verified", label="A1")
    change(alice_client, part="rule_add", action="none", category="se", max_distance="5")
    rules = policy_services.policy_of(org=org_a).action_rules
    assert rules == [
        {"action": "block", "tier": "verified", "label": "A1"},
        {"action": "none", "category": "se", "max_distance": 5},
    ]
    change(alice_client, part="rule_remove", index="0")
    assert policy_services.policy_of(org=org_a).action_rules == [rules[1]]


def test_an_entry_is_disabled_until_a_day_and_enabled_again(
    alice_client: Client, org_a: Organization
) -> None:
    value = random_pdq()
    add(own_list(org_a), ("pdq", value))
    with time_machine.travel(NOW, tick=False):
        change(
            alice_client,
            part="disable",
            list=own_list(org_a).public_id,
            type="pdq",
            value=value,
            until="2026-12-20",
            note="benign",
        )
        page = alice_client.get("/o/org-a/policy/").content.decode()
        assert value[:17] in page and "2026-12-20 00:00" in page
        with scopes_disabled():
            disable = EntryDisable.objects.get()
        change(alice_client, part="enable", id=disable.public_id)
    with scopes_disabled():
        disable.refresh_from_db()
    assert disable.ended_seq is not None


def test_own_lists_show_no_switch_to_turn_them_off(
    alice_client: Client, org_a: Organization
) -> None:
    response = change(alice_client, part="list", id=own_list(org_a).public_id, field="enabled")
    assert "always matched" in response.content.decode()


def test_a_category_is_switched_off_and_on_from_the_page(
    alice_client: Client, org_a: Organization
) -> None:
    page = alice_client.get("/o/org-a/policy/").content.decode()
    assert "Turn off" in page
    change(alice_client, part="category", id="se", value="off")
    assert policy_services.policy_view(org=org_a)["categories"]["se"] == {"enabled": False}
    change(alice_client, part="category", id="se", value="on")
    assert policy_services.policy_view(org=org_a)["categories"]["se"] == {"enabled": True}
