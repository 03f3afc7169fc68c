"""Quotas per organisation (issue 18): each one refused at its limit on every path, raised by staff.

The limits are made small through the settings (``HASHHUB_QUOTA_*``, the defaults) or through the
staff page (an override for one organisation). Alice owns org A, Bob is a viewer in it, Charlie
owns org B, Steve is hub staff.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import ApiKey, AuditEvent, Organization
from lists.models import Entry, HashList, ImportJob
from matching.models import WebhookEndpoint
from tests.conftest import make_key
from tests.lists.test_hashtypes_compute import encode, synthetic_image

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="quota test")


def _md5s(count: int) -> list[str]:
    return [secrets.token_hex(16) for _ in range(count)]


def _entries(values: list[str]) -> dict[str, Any]:
    return {"entries": [{"type": "md5", "value": value} for value in values]}


def _own_list(org: Organization, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


def _live(hash_list: HashList) -> int:
    with scope(organization=hash_list.organization_id):
        return Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True).count()


def _lists_of(org: Organization) -> int:
    with scope(organization=org.pk):
        return HashList.objects.filter(organization=org, deleted_at__isnull=True).count()


def _audit(org: Organization, action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(organization=org, action=action))


def _refusal(response: Any, quota: str) -> dict[str, Any]:
    """The error of a quota refusal through the API: 409 quota_exceeded, naming its quota."""
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["quota"] == quota
    assert "hub staff" in error["message"]
    return dict(error)


def _post_entries(api: Client, hash_list: HashList, values: list[str]) -> Any:
    return api.post(
        f"/api/v1/lists/{hash_list.public_id}/entries",
        _entries(values),
        content_type="application/json",
    )


# --- lists ------------------------------------------------------------------------------------


def test_a_list_past_the_lists_quota_is_refused_through_the_api(
    api_a: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_LISTS = 3  # the own CSAM and SE lists, and one more
    made = api_a.post(
        "/api/v1/lists", {"name": "Incidents", "category": "csam"}, content_type="application/json"
    )
    assert made.status_code == 201
    refused = api_a.post(
        "/api/v1/lists", {"name": "More", "category": "se"}, content_type="application/json"
    )
    error = _refusal(refused, "lists")
    assert error["details"]["limit"] == 3 and error["details"]["used"] == 3
    assert "3 lists" in error["message"]
    assert _lists_of(org_a) == 3


def test_a_list_past_the_lists_quota_is_refused_in_the_web_form(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_LISTS = 2
    response = alice_client.post("/o/org-a/lists/", {"name": "Incidents", "category": "csam"})
    assert response.status_code == 400
    assert "its quota is 2" in response.content.decode()
    assert _lists_of(org_a) == 2


def test_a_new_organisation_always_gets_its_own_two_lists(settings: Any) -> None:
    from hub.services import organization_create

    settings.HASHHUB_QUOTA_LISTS = 0
    org = organization_create(name="Tiny", slug="tiny", owner=None, actor=SYSTEM)
    assert _lists_of(org) == 2


# --- entries ----------------------------------------------------------------------------------


def test_an_add_past_the_entries_per_list_quota_is_refused_whole_through_the_api(
    api_a: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_ENTRIES_PER_LIST = 3
    csam = _own_list(org_a)
    first = _md5s(2)
    assert _post_entries(api_a, csam, first).json()["added"] == 2
    # Two new ones would make four: neither is added.
    error = _refusal(_post_entries(api_a, csam, _md5s(2)), "entries_per_list")
    assert error["details"]["limit"] == 3
    assert "“CSAM”" in error["message"] and "3 entries" in error["message"]
    assert _live(csam) == 2
    # Up to the limit, and re-sending hashes already there, is fine.
    assert _post_entries(api_a, csam, [*first, *_md5s(1)]).json() == {
        "added": 1,
        "already_present": 2,
        "errors": [],
    }
    assert _post_entries(api_a, csam, first).status_code == 200
    _refusal(_post_entries(api_a, csam, _md5s(1)), "entries_per_list")
    assert _live(csam) == 3
    # Another list of the organisation has its own room.
    assert _post_entries(api_a, _own_list(org_a, "se"), _md5s(3)).json()["added"] == 3


def test_an_add_past_the_entries_total_quota_is_refused_through_the_api(
    api_a: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_ENTRIES_TOTAL = 4
    csam, se = _own_list(org_a), _own_list(org_a, "se")
    held = _md5s(3)
    assert _post_entries(api_a, csam, held).json()["added"] == 3
    error = _refusal(_post_entries(api_a, se, _md5s(2)), "entries_total")
    assert error["details"] == {"quota": "entries_total", "limit": 4, "used": 3}
    assert "own lists may hold 4 entries together" in error["message"]
    assert _live(se) == 0
    # Removing is always allowed, and frees room.
    removed = api_a.post(
        f"/api/v1/lists/{csam.public_id}/entries/remove",
        _entries(held[:1]),
        content_type="application/json",
    )
    assert removed.json()["removed"] == 1
    assert _post_entries(api_a, se, _md5s(2)).json()["added"] == 2


def test_an_add_past_the_quota_is_refused_in_the_web_form(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_ENTRIES_PER_LIST = 0
    csam = _own_list(org_a)
    response = alice_client.post(
        f"/o/org-a/lists/{csam.public_id}/", {"type": "md5", "value": _md5s(1)[0]}
    )
    assert response.status_code == 400
    assert "may hold 0 entries" in response.content.decode()
    assert _live(csam) == 0


def test_importhashes_stops_at_the_quota_and_exits_non_zero(
    tmp_path: Path, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_ENTRIES_PER_LIST = 3
    path = tmp_path / "hashes.csv"
    path.write_text("\n".join(f"md5,{value}" for value in _md5s(5)) + "\n")
    with pytest.raises(CommandError, match="quota_exceeded: The import stopped at line 1"):
        call_command(
            "importhashes", "--org", "org-a", "--list", "CSAM", str(path),
            stdout=StringIO(), stderr=StringIO(),
        )  # fmt: skip
    assert _live(_own_list(org_a)) == 0


def test_an_import_keeps_the_chunks_before_the_quota_and_says_where_it_stopped(
    org_a: Organization, settings: Any
) -> None:
    from hub.errors import ServiceError
    from lists.importing import import_lines

    settings.HASHHUB_QUOTA_ENTRIES_PER_LIST = 3
    csam = _own_list(org_a)
    lines = [f"md5,{value}" for value in _md5s(6)]
    with scope(organization=org_a.pk), pytest.raises(ServiceError) as stopped:
        import_lines(
            hash_list=csam, lines=lines, default_type="", actor=SYSTEM, label="t", chunk_size=2
        )
    assert stopped.value.code == "quota_exceeded" and stopped.value.status == 409
    assert stopped.value.details["line"] == 3 and stopped.value.details["added"] == 2
    assert "stopped at line 3" in stopped.value.message
    assert _live(csam) == 2  # lines 1 and 2; the chunk of lines 3 and 4 was refused whole
    [event] = _audit(org_a, "entries.imported")
    assert event.metadata["added"] == 2
    assert event.metadata["stopped"] == "quota_exceeded"
    assert event.metadata["stopped_at_line"] == 3


def test_an_uploaded_file_fails_its_job_at_the_quota(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    from lists.importing import import_job_run

    settings.HASHHUB_QUOTA_ENTRIES_TOTAL = 2
    csam = _own_list(org_a)
    upload = SimpleUploadedFile("h.txt", "\n".join(_md5s(3)).encode())
    response = alice_client.post(
        f"/o/org-a/lists/{csam.public_id}/upload/", {"file": upload, "default_type": "md5"}
    )
    assert response.status_code == 302
    with scope(organization=org_a.pk):
        job = ImportJob.objects.get(hash_list=csam)
        done = import_job_run(job_id=job.pk)  # what the Celery worker runs
    assert done.status == ImportJob.Status.FAILED
    assert "quota" in done.error and "2 entries" in done.error
    assert _live(csam) == 0
    page = alice_client.get(f"/o/org-a/lists/imports/{job.public_id}/")
    assert "The import failed" in page.content.decode()


def test_lists_of_upstream_sources_have_no_quota(settings: Any) -> None:
    from hub.quotas import quota_check_entries

    settings.HASHHUB_QUOTA_ENTRIES_PER_LIST = 0
    settings.HASHHUB_QUOTA_ENTRIES_TOTAL = 0
    quota_check_entries(org=None, list_name="NCMEC CSAM", list_entries=10**7, added=10**7)


# --- API keys ---------------------------------------------------------------------------------


def test_a_key_past_the_api_keys_quota_is_refused_in_the_web_form(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_API_KEYS = 1
    key, _secret = make_key(org_a, name="pipeline")
    response = alice_client.post("/o/org-a/keys/", {"name": "another", "scopes": ["match"]})
    assert response.status_code == 400
    assert "1 active API keys and its quota is 1" in response.content.decode()
    assert "new_secret" not in response.context or not response.context["new_secret"]
    # A revoked key no longer counts.
    alice_client.post(f"/o/org-a/keys/{key.public_id}/revoke/")
    again = alice_client.post("/o/org-a/keys/", {"name": "another", "scopes": ["match"]})
    assert again.status_code == 201


def test_createapikey_refuses_a_key_past_the_quota(org_a: Organization, settings: Any) -> None:
    settings.HASHHUB_QUOTA_API_KEYS = 0
    out = StringIO()
    with pytest.raises(CommandError, match="quota_exceeded: This organisation has 0 active"):
        call_command(
            "createapikey", "--org", "org-a", "--name", "ci", stdout=out, stderr=StringIO()
        )
    assert out.getvalue() == ""
    with scopes_disabled():
        assert not ApiKey.objects.filter(organization=org_a).exists()


def test_rotating_a_key_at_the_quota_still_works(org_a: Organization, settings: Any) -> None:
    from hub.services import api_key_rotate

    settings.HASHHUB_QUOTA_API_KEYS = 1
    key, _secret = make_key(org_a)
    with scope(organization=org_a.pk):
        new_key, _new_secret = api_key_rotate(key=key, actor=SYSTEM)
    assert new_key.active


# --- webhooks ---------------------------------------------------------------------------------


def test_a_webhook_past_the_webhooks_quota_is_refused_in_the_web_form(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_WEBHOOKS = 1
    first = alice_client.post("/o/org-a/webhooks/", {"url": "https://8.8.8.8/one"})
    assert first.status_code == 201
    refused = alice_client.post("/o/org-a/webhooks/", {"url": "https://8.8.8.8/two"})
    assert refused.status_code == 400
    assert refused.context["error_code"] == "quota_exceeded"
    assert "1 webhook endpoints and its quota is 1" in refused.content.decode()
    with scope(organization=org_a.pk):
        assert WebhookEndpoint.objects.filter(organization=org_a).count() == 1


# --- image matches per minute -------------------------------------------------------------------


@pytest.fixture
def a_fixed_minute() -> Iterator[time_machine.Traveller]:
    """The clock stands 20 seconds into a minute, so the window and Retry-After are known."""
    with time_machine.travel(dt.datetime(2026, 3, 18, 16, 30, 20, tzinfo=dt.UTC), tick=False) as t:
        yield t


def _match_image(api: Client, png: bytes) -> Any:
    return api.post("/api/v1/match/image", {"image": SimpleUploadedFile("u.png", png)})


def test_image_matches_past_the_rate_are_429_rate_limited_per_organisation(
    org_a: Organization,
    org_b: Organization,
    settings: Any,
    a_fixed_minute: time_machine.Traveller,
) -> None:
    settings.HASHHUB_QUOTA_IMAGE_MATCHES_PER_MINUTE = 2
    png = encode(synthetic_image(seed=5, size=(64, 64)))
    first = Client(headers={"Authorization": f"Bearer {make_key(org_a, name='one')[1]}"})
    second = Client(headers={"Authorization": f"Bearer {make_key(org_a, name='two')[1]}"})
    other = Client(headers={"Authorization": f"Bearer {make_key(org_b)[1]}"})
    assert [_match_image(first, png).status_code for _ in range(2)] == [200, 200]
    refused = _match_image(first, png)
    assert refused.status_code == 429
    assert refused["Retry-After"] == "40"
    error = refused.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"]["retry_after_seconds"] == 40 and error["details"]["limit"] == 2
    assert "2 images a minute" in error["message"] and "hub staff" in error["message"]
    # Every key of the organisation shares its budget; another organisation has its own.
    assert _match_image(second, png).status_code == 429
    assert _match_image(other, png).status_code == 200
    # Hash matches are not image matches.
    hashes = first.post(
        "/api/v1/match",
        {"hashes": [{"type": "md5", "value": _md5s(1)[0]}]},
        content_type="application/json",
    )
    assert hashes.status_code == 200
    a_fixed_minute.shift(40)  # the next minute
    assert _match_image(first, png).status_code == 200


# --- staff overrides --------------------------------------------------------------------------


def test_staff_raise_a_quota_and_the_change_is_audited(
    staff_client: Client, api_a: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_LISTS = 2
    body = {"name": "Incidents", "category": "csam"}
    refused = api_a.post("/api/v1/lists", body, content_type="application/json")
    _refusal(refused, "lists")

    page = staff_client.get("/staff/organizations/org-a/quotas/")
    assert page.status_code == 200
    assert "Quotas of Org A" in page.content.decode()
    saved = staff_client.post("/staff/organizations/org-a/quotas/", {"lists": "5"})
    assert saved.status_code == 302
    assert saved["Location"] == "/staff/organizations/org-a/quotas/"

    made = api_a.post("/api/v1/lists", body, content_type="application/json")
    assert made.status_code == 201
    [event] = _audit(org_a, "organization.quotas_changed")
    assert event.metadata == {"lists": [None, 5]}
    assert event.actor_label == "steve@example.test"
    # Saving the same values again changes nothing and audits nothing.
    staff_client.post("/staff/organizations/org-a/quotas/", {"lists": "5"})
    assert len(_audit(org_a, "organization.quotas_changed")) == 1
    # An empty field puts the default back.
    staff_client.post("/staff/organizations/org-a/quotas/", {"lists": ""})
    assert _audit(org_a, "organization.quotas_changed")[0].metadata == {"lists": [5, None]}


def test_an_override_is_for_one_organisation_only(
    org_a: Organization, org_b: Organization, settings: Any
) -> None:
    from hub.quotas import quota_for, quota_set

    settings.HASHHUB_QUOTA_WEBHOOKS = 20
    quota_set(org=org_a, overrides={"webhooks": 3, "entries_total": 10}, actor=SYSTEM)
    assert (quota_for(org=org_a).webhooks, quota_for(org=org_a).entries_total) == (3, 10)
    assert quota_for(org=org_a).lists == settings.HASHHUB_QUOTA_LISTS
    assert quota_for(org=org_b).webhooks == 20


def test_staff_cannot_set_a_negative_quota(staff_client: Client, org_a: Organization) -> None:
    response = staff_client.post("/staff/organizations/org-a/quotas/", {"lists": "-1"})
    assert response.status_code == 400
    assert not _audit(org_a, "organization.quotas_changed")


@pytest.mark.parametrize("who", ["alice", "bob", "charlie"])
def test_members_cannot_see_or_change_quotas(
    who: str, request: pytest.FixtureRequest, org_a: Organization
) -> None:
    client: Client = request.getfixturevalue(f"{who}_client")
    assert client.get("/staff/organizations/org-a/quotas/").status_code == 404
    assert client.post("/staff/organizations/org-a/quotas/", {"lists": "500"}).status_code == 404
    assert not _audit(org_a, "organization.quotas_changed")


def test_anonymous_visitors_are_sent_to_log_in(client: Client, org_a: Organization) -> None:
    response = client.post("/staff/organizations/org-a/quotas/", {"lists": "500"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert not _audit(org_a, "organization.quotas_changed")


# --- the quota line ---------------------------------------------------------------------------


def test_the_settings_page_shows_usage_and_limit_of_each_quota(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_QUOTA_LISTS = 7
    make_key(org_a)
    with scope(organization=org_a.pk):
        from lists.services import EntryInput, entry_add

        entry_add(
            hash_list=_own_list(org_a), items=[EntryInput("md5", v) for v in _md5s(3)], actor=SYSTEM
        )
    page = alice_client.get("/o/org-a/settings/")
    assert page.status_code == 200
    html = " ".join(page.content.decode().split())
    assert "Quotas" in html
    assert "Lists</td> <td> 2 / 7" in html
    assert "Entries per list</td> <td> 3 / 1,000,000" in html
    assert "Entries in all own lists</td> <td> 3 / 5,000,000" in html
    assert "Active API keys</td> <td> 1 / 50" in html
    assert "Webhook endpoints</td> <td> 0 / 20" in html
    assert "Image matches per minute</td> <td> 0 / 60" in html
