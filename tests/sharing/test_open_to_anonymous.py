"""A list others have seen open, with its owner's name, never becomes anonymous (issue 17).

Made anonymous, it would keep its id, name, subscribers and entries, so everyone who saw it open
would still know who owns it. The hub refuses, on every path, and offers a new list instead.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.models import AuditEvent, Organization
from hub.services import organization_set_approved
from lists.models import HashList
from sharing.models import AccessEvent
from tests.sharing.test_access import SYSTEM, api, new_list, share, subscribe

pytestmark = pytest.mark.django_db


def _refused(hash_list: HashList, client: Client) -> dict[str, object]:
    response = client.patch(
        f"/api/v1/lists/{hash_list.public_id}",
        {"visibility": "anonymous"},
        content_type="application/json",
    )
    assert response.status_code == 409, response.content
    return response.json()["error"]


def test_an_open_list_is_refused_anonymity_and_nothing_changes(
    org_a: Organization, org_b: Organization
) -> None:
    shared = new_list(org_a, "Seen with our name")
    share(shared, "open")
    subscribe(org_b, shared)
    client = api(org_a)
    with scopes_disabled():
        events, audits = AccessEvent.objects.count(), AuditEvent.objects.count()
    error = _refused(shared, client)
    assert error["code"] == "was_open"
    assert "Create a new list" in str(error["message"])
    with scopes_disabled():
        shared.refresh_from_db()
        assert shared.visibility == "open"
        assert (AccessEvent.objects.count(), AuditEvent.objects.count()) == (events, audits)


def test_a_list_once_open_then_private_is_still_refused(org_a: Organization) -> None:
    shared = new_list(org_a, "Briefly open")
    share(shared, "open")
    share(shared, "private")
    assert _refused(shared, api(org_a))["code"] == "was_open"


def test_a_list_never_open_may_become_anonymous_and_back(org_a: Organization) -> None:
    quiet = new_list(org_a, "Never named")
    share(quiet, "anonymous")
    share(quiet, "private")
    share(quiet, "anonymous")
    with scope(organization=org_a.pk):
        quiet.refresh_from_db()
    assert quiet.visibility == "anonymous"


def test_another_organisations_open_list_does_not_count(
    org_a: Organization, org_b: Organization
) -> None:
    """The check reads the list's own history, not one of a list with the same name elsewhere."""
    share(new_list(org_b, "Same name"), "open")
    mine = new_list(org_a, "Same name")
    share(mine, "anonymous")
    with scope(organization=org_a.pk):
        mine.refresh_from_db()
    assert mine.visibility == "anonymous"


def test_the_visibility_page_says_why_and_offers_a_new_list(
    org_a: Organization, alice_client: Client
) -> None:
    organization_set_approved(org=org_a, approved=True, actor=SYSTEM)
    shared = new_list(org_a, "Seen with our name")
    share(shared, "open")
    url = f"/o/{org_a.slug}/community/lists/{shared.public_id}/visibility/"
    page = alice_client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="was-open"' in text
    assert f"/o/{org_a.slug}/lists/#new-list" in text
    refused = alice_client.post(url, {"visibility": "anonymous", "confirm": "on"})
    assert refused.status_code == 409
    assert "has been open" in refused.content.decode()
    with scope(organization=org_a.pk):
        shared.refresh_from_db()
    assert shared.visibility == "open"
