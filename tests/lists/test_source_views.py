"""The staff pages of upstream sources: the list with health, a source, its runs, entitlements.

Steve is hub staff; Alice (owner of org A), Bob (viewer in org A) and Charlie (owner of org B)
are not, and get the same 404 as for a page that does not exist. Anonymous callers are sent to
the login page. Credentials are names of environment variables; their values never reach a page.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from lists.models import HashList, ImportRun, ImportRunError, Source
from lists.sources.credentials import config_for_display, credential_problems
from lists.sources.services import source_create
from sharing.models import SourceEntitlement
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
SECRET = "hunter2-Zq9-must-never-be-shown"
TOKEN_VAR = "HASHHUB_SOURCE_TEST_FEED_TOKEN"


def new_source(name: str = "Industry feed", **kwargs: Any) -> Source:
    kwargs.setdefault("kind", "feed")
    kwargs.setdefault("config", {"url": "https://feeds.example.org/hashes.csv"})
    return source_create(name=name, actor=SYSTEM, **kwargs)


def new_run(source: Source, **fields: Any) -> ImportRun:
    return ImportRun.objects.create(source=source, trigger="test", **fields)


def audit_actions(action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(action=action))


def create_form(**overrides: Any) -> dict[str, Any]:
    form = {
        "name": "Industry feed",
        "kind": "feed",
        "default_category": "csam",
        "access": "granted",
        "interval_minutes": "60",
        "description": "An industry partner's list.",
        "config": json.dumps({"url": "https://feeds.example.org/hashes.csv", "mode": "delta"}),
    }
    return form | overrides


def progress_tag(html: str) -> str:
    match = re.search(r"<progress[^>]*>", html)
    assert match, html
    return match.group(0)


@pytest.fixture
def source(db: None) -> Source:
    return new_source()


def every_page(source: Source, run: ImportRun) -> list[str]:
    return [
        reverse("staff_sources"),
        reverse("staff_source", args=[source.public_id]),
        reverse("staff_source_run", args=[source.public_id, run.public_id]),
        reverse("staff_source_run_progress", args=[source.public_id, run.public_id]),
        reverse("staff_source_entitlements", args=[source.public_id]),
    ]


# --- who may see them ---------------------------------------------------------------------------


def test_staff_see_every_source_page(staff_client: Client, source: Source) -> None:
    run = new_run(source)
    for url in every_page(source, run):
        assert staff_client.get(url).status_code == 200, url


@pytest.mark.parametrize("who", ["alice_client", "bob_client", "charlie_client"])
def test_it_is_404_to_anyone_but_staff(
    who: str, request: pytest.FixtureRequest, source: Source
) -> None:
    client: Client = request.getfixturevalue(who)
    run = new_run(source)
    posts = [
        reverse("staff_sources"),
        reverse("staff_source", args=[source.public_id]),
        reverse("staff_source_run_now", args=[source.public_id]),
        reverse("staff_source_access", args=[source.public_id]),
        reverse("staff_source_entitlement_set", args=[source.public_id, "org-a"]),
    ]
    for url in every_page(source, run):
        assert client.get(url).status_code == 404, url
    for url in posts:
        assert client.post(url, create_form(access="all", granted="1")).status_code == 404, url
    assert ImportRun.objects.count() == 1
    assert Source.objects.get().access == "granted"
    assert not SourceEntitlement.objects.exists()


def test_anonymous_callers_are_sent_to_log_in(client: Client, source: Source) -> None:
    run = new_run(source)
    for url in every_page(source, run):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/"), url
    response = client.post(reverse("staff_source_run_now", args=[source.public_id]))
    assert response.status_code == 302
    assert ImportRun.objects.count() == 1


def test_a_missing_source_or_run_is_404(staff_client: Client, source: Source) -> None:
    other = new_source("Other feed")
    run_of_other = new_run(other)
    assert staff_client.get(reverse("staff_source", args=["nope"])).status_code == 404
    url = reverse("staff_source_run", args=[source.public_id, run_of_other.public_id])
    assert staff_client.get(url).status_code == 404
    url = reverse("staff_source_run_progress", args=[source.public_id, run_of_other.public_id])
    assert staff_client.get(url).status_code == 404


def test_the_sources_link_is_shown_to_staff_only(
    staff_client: Client, alice_client: Client, org_a: Organization
) -> None:
    link = f'href="{reverse("staff_sources")}"'
    assert link in staff_client.get(reverse("staff_organizations")).content.decode()
    assert link not in alice_client.get(reverse("dashboard", args=[org_a.slug])).content.decode()


# --- the list and a new source ------------------------------------------------------------------


def test_registering_a_source_makes_its_lists_and_shows_its_page(staff_client: Client) -> None:
    response = staff_client.post(reverse("staff_sources"), create_form())
    source = Source.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("staff_source", args=[source.public_id])
    assert (source.kind, source.access, source.interval_minutes) == ("feed", "granted", 60)
    assert source.config == {"url": "https://feeds.example.org/hashes.csv", "mode": "delta"}
    with scopes_disabled():
        categories = HashList.objects.filter(source=source).values_list("category", flat=True)
    assert sorted(categories) == ["csam", "se"]
    assert [e.target_id for e in audit_actions("source.created")] == [source.public_id]
    page = staff_client.get(response["Location"]).content.decode()
    assert "Industry feed" in page
    assert "https://feeds.example.org/hashes.csv" in page


def test_the_adapter_checks_the_config(staff_client: Client) -> None:
    two_addresses = create_form(
        config=json.dumps({"url": "https://x.example/f.csv", "file": "f.csv", "mode": "delta"})
    )
    response = staff_client.post(reverse("staff_sources"), two_addresses)
    assert response.status_code == 400
    assert "only one of" in response.content.decode()
    bad_mode = create_form(config=json.dumps({"url": "https://x.example/f.csv", "mode": "both"}))
    assert staff_client.post(reverse("staff_sources"), bad_mode).status_code == 400
    assert not Source.objects.exists()


def test_a_taken_name_is_refused(staff_client: Client, source: Source) -> None:
    response = staff_client.post(reverse("staff_sources"), create_form(name=source.name))
    assert response.status_code == 400
    assert "exists already" in response.content.decode()
    assert Source.objects.count() == 1


@pytest.mark.parametrize(
    "config",
    [
        "{not json",
        "[1, 2]",
        json.dumps({"url": "https://x.example/f.csv", "token_env": "not a name!"}),
    ],
)
def test_a_config_that_is_no_json_object_or_names_no_variable_is_refused(
    staff_client: Client, config: str
) -> None:
    response = staff_client.post(reverse("staff_sources"), create_form(config=config))
    assert response.status_code == 400
    assert not Source.objects.exists()


@pytest.mark.parametrize(
    "config",
    [
        {"url": "https://x.example/f.csv", "token": SECRET},
        {"url": "https://x.example/f.csv", "password": SECRET},
        {"url": "https://x.example/f.csv", "api_key": SECRET},
        {"url": f"https://feeder:{SECRET}@x.example/f.csv"},
        {"url": f"https://x.example/f.csv?token={SECRET}"},
        {"url": "https://x.example/f.csv", "token_env": SECRET},
        {"url": "https://x.example/f.csv", "nested": {"secret": SECRET}},
    ],
)
def test_a_credential_in_the_config_is_refused_and_not_echoed(
    staff_client: Client, config: dict[str, Any]
) -> None:
    response = staff_client.post(reverse("staff_sources"), create_form(config=json.dumps(config)))
    page = response.content.decode()
    assert response.status_code == 400
    assert SECRET not in page
    assert "environment variable" in page
    assert not Source.objects.exists()


def test_credential_values_never_reach_a_page(
    staff_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VAR, SECRET)
    config = {"url": "https://x.example/f.csv", "token_env": TOKEN_VAR}
    form = create_form(config=json.dumps(config))
    assert staff_client.post(reverse("staff_sources"), form).status_code == 302
    source = Source.objects.get()
    assert source.config["token_env"] == TOKEN_VAR
    run = new_run(source, status="failed", error_code="auth_failed", error_message="Refused.")
    ImportRunError.objects.create(run=run, position="line 3", code="bad_row", message="Broken.")
    pages = [staff_client.get(url).content.decode() for url in every_page(source, run)]
    for page in pages:
        assert SECRET not in page
    detail = pages[1]
    assert TOKEN_VAR in detail
    assert "set in the web process" in detail
    monkeypatch.delenv(TOKEN_VAR)
    detail = staff_client.get(every_page(source, run)[1]).content.decode()
    assert "not set in the web process" in detail


def test_a_stored_credential_is_shown_as_hidden() -> None:
    # Configs are checked on the way in; a config written some other way is still never shown.
    rows = {row.key: row for row in config_for_display({"password": SECRET, "mode": "delta"})}
    assert rows["password"].hidden
    assert SECRET not in rows["password"].value
    assert rows["mode"].value == "delta"


def test_the_credential_check_leaves_ordinary_settings_alone() -> None:
    feed = {
        "url": "https://x.example/f.csv?format=csv",
        "hash_fields": {"md5": "MD5", "photodna": "PhotoDNA"},
        "id_field": "id",
        "columns": ["type", "value"],
        "member_ids": [1, 2],
        "token_env": "HASHHUB_SOURCE_FEED_TOKEN",
        "username_env": "HASHHUB_SOURCE_NCMEC_USER",
        "password_env": "HASHHUB_SOURCE_NCMEC_PASSWORD",
    }
    assert credential_problems(feed) == []


@pytest.mark.clock
def test_the_list_shows_health(staff_client: Client) -> None:
    healthy = new_source("Healthy feed", interval_minutes=60)
    failing = new_source("Failing feed")
    overdue = new_source("Overdue feed", interval_minutes=10, access="all")
    new_source("Quiet feed")
    now = timezone.now()
    Source.objects.filter(pk=healthy.pk).update(
        last_success_at=now - dt.timedelta(minutes=5), last_run_at=now
    )
    Source.objects.filter(pk=failing.pk).update(
        last_run_at=now, last_error="http_error: GET https://x.example/f.csv failed: HTTP 503."
    )
    Source.objects.filter(pk=overdue.pk).update(
        last_success_at=now - dt.timedelta(hours=3), last_run_at=now
    )
    with scopes_disabled():
        csam = HashList.objects.get(source=healthy, category="csam")
    csam.live_counts = {"md5": 1200, "pdq": 34}
    csam.save(update_fields=["live_counts"])
    new_run(failing, status="running", seen=50, expected=200, started_at=now)
    page = staff_client.get(reverse("staff_sources")).content.decode()
    rows = {name: row for name, row in _table_rows(page).items()}
    assert "healthy" in rows["Healthy feed"]
    assert "1,234" in rows["Healthy feed"]
    assert "5 min" in rows["Healthy feed"]  # the lag
    assert "failing" in rows["Failing feed"]
    assert "HTTP 503" in rows["Failing feed"]
    assert "25%" in rows["Failing feed"]  # the current run
    assert "overdue" in rows["Overdue feed"]
    assert "every approved organisation" in rows["Overdue feed"]
    assert "never fetched" in rows["Quiet feed"]
    assert "granted only (0 organisations)" in rows["Quiet feed"]


def _table_rows(page: str) -> dict[str, str]:
    """Each table row of the sources list, by the source name it links to."""
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        name = re.search(r'<a href="/staff/sources/[^/]+/">([^<]+)</a>', row)
        if name:
            rows[name.group(1)] = re.sub(r"\s+", " ", row)
    return rows


# --- one source ---------------------------------------------------------------------------------


def test_saving_settings_changes_the_source_and_audits_it(
    staff_client: Client, source: Source
) -> None:
    url = reverse("staff_source", args=[source.public_id])
    form = {
        "interval_minutes": "30",
        "default_category": "se",
        "description": "Now hourly-ish.",
        "config": json.dumps({"url": "https://feeds.example.org/v2.csv"}),
    }  # "enabled" unticked
    response = staff_client.post(url, form)
    assert response.status_code == 302
    source.refresh_from_db()
    assert not source.enabled
    assert source.interval_minutes == 30
    assert source.default_category == "se"
    assert source.config == {"url": "https://feeds.example.org/v2.csv"}
    (event,) = audit_actions("source.updated")
    assert event.metadata["fields"] == [
        "config",
        "default_category",
        "description",
        "enabled",
        "interval_minutes",
    ]
    assert event.metadata["changes"] == {
        "config": {
            "url": {
                "old": "https://feeds.example.org/hashes.csv",
                "new": "https://feeds.example.org/v2.csv",
            }
        },
        "default_category": {"old": "csam", "new": "se"},
        "description": {"old": "", "new": "Now hourly-ish."},
        "enabled": {"old": True, "new": False},
        "interval_minutes": {"old": 0, "new": 30},
    }


def test_settings_with_a_credential_are_refused(staff_client: Client, source: Source) -> None:
    url = reverse("staff_source", args=[source.public_id])
    form = {"enabled": "on", "interval_minutes": "0", "default_category": "csam"}
    form["config"] = json.dumps({"url": "https://x.example/f.csv", "token": SECRET})
    response = staff_client.post(url, form)
    assert response.status_code == 400
    assert SECRET not in response.content.decode()
    source.refresh_from_db()
    assert source.config == {"url": "https://feeds.example.org/hashes.csv"}


def test_run_now_queues_one_run(staff_client: Client, source: Source, steve: User) -> None:
    url = reverse("staff_source_run_now", args=[source.public_id])
    response = staff_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("staff_source", args=[source.public_id])
    run = ImportRun.objects.get(source=source)
    assert run.status == ImportRun.Status.QUEUED
    assert steve.email in run.trigger
    assert [e.metadata["run"] for e in audit_actions("source.run_requested")] == [run.public_id]
    # A second click while it waits is the same run, not another one.
    staff_client.post(url)
    assert ImportRun.objects.filter(source=source).count() == 1
    assert staff_client.get(url).status_code == 405


@pytest.mark.clock
def test_the_source_page_shows_the_current_run_and_the_history(
    staff_client: Client, source: Source
) -> None:
    now = timezone.now()
    done = new_run(
        source,
        status="succeeded",
        started_at=now - dt.timedelta(minutes=10),
        finished_at=now - dt.timedelta(minutes=7, seconds=55),
        seen=1500,
        added=1400,
        updated=7,
        removed=93,
        rejected=3,
    )
    failed = new_run(
        source, status="failed", error_code="malformed_page", error_message="Not a CSV file."
    )
    going = new_run(source, status="running", started_at=now, seen=10, expected=40)
    page = staff_client.get(reverse("staff_source", args=[source.public_id])).content.decode()
    progress = reverse("staff_source_run_progress", args=[source.public_id, going.public_id])
    assert f'hx-get="{progress}"' in page
    assert 'value="25"' in page
    for number in ("1,500", "1,400", "93"):
        assert number in page
    assert "2 min 5 s" in page  # the duration of the finished run
    assert "malformed_page" in page
    assert reverse("staff_source_run", args=[source.public_id, failed.public_id]) in page
    assert reverse("staff_source_run", args=[source.public_id, done.public_id]) in page
    assert reverse("staff_source_entitlements", args=[source.public_id]) in page


def test_the_progress_partial_shows_a_percentage(staff_client: Client, source: Source) -> None:
    run = new_run(source, status="running", started_at=timezone.now(), seen=150, expected=600)
    url = reverse("staff_source_run_progress", args=[source.public_id, run.public_id])
    html = staff_client.get(url).content.decode()
    assert 'value="25"' in progress_tag(html)
    assert f'hx-get="{url}"' in html
    assert "150" in html
    assert "600" in html
    assert "<html" not in html  # the bar alone, for htmx to swap in
    run_link = f'href="{reverse("staff_source_run", args=[source.public_id, run.public_id])}"'
    assert run_link in html
    on_run_page = staff_client.get(url, {"on": "run"}).content.decode()
    assert f'hx-get="{url}?on=run"' in on_run_page
    assert run_link not in on_run_page


def test_the_progress_partial_is_indeterminate_without_a_total(
    staff_client: Client, source: Source
) -> None:
    run = new_run(source, status="running", started_at=timezone.now(), seen=70)
    url = reverse("staff_source_run_progress", args=[source.public_id, run.public_id])
    html = staff_client.get(url).content.decode()
    assert "value=" not in progress_tag(html)
    assert f'hx-get="{url}"' in html


def test_a_finished_run_stops_polling(staff_client: Client, source: Source) -> None:
    run = new_run(source, status="succeeded", seen=70, added=70)
    url = reverse("staff_source_run_progress", args=[source.public_id, run.public_id])
    html = staff_client.get(url).content.decode()
    assert 'value="100"' in progress_tag(html)
    assert "hx-get" not in html
    failed = new_run(source, status="failed", error_code="timeout", error_message="No answer.")
    url = reverse("staff_source_run_progress", args=[source.public_id, failed.public_id])
    html = staff_client.get(url).content.decode()
    assert "hx-get" not in html
    assert "timeout" in html
    assert "No answer." in html


def test_the_run_page_lists_rejected_records_in_pages(staff_client: Client, source: Source) -> None:
    run = new_run(source, status="succeeded", seen=400, rejected=130)
    ImportRunError.objects.bulk_create(
        ImportRunError(run=run, position=f"line {n}", code="wrong_length", message=f"Row {n}.")
        for n in range(1, 131)
    )
    url = reverse("staff_source_run", args=[source.public_id, run.public_id])
    first = staff_client.get(url).content.decode()
    assert "line 1<" in first
    assert "line 100<" in first
    assert "line 101<" not in first
    assert "wrong_length" in first
    second = staff_client.get(url, {"page": 2}).content.decode()
    assert "line 101<" in second
    assert "line 130<" in second
    assert "line 100<" not in second


# --- entitlements (sharing.source_views) --------------------------------------------------------


def test_the_entitlements_page_lists_approved_organisations(
    staff_client: Client, source: Source, org_a: Organization, org_b: Organization
) -> None:
    OrganizationFactory.create(name="Pending Org", slug="pending", approved=False)
    page = staff_client.get(reverse("staff_source_entitlements", args=[source.public_id]))
    html = page.content.decode()
    assert "Org A" in html
    assert "Org B" in html
    assert "Pending Org" not in html


def test_granting_and_revoking_an_organisation(
    staff_client: Client, source: Source, org_a: Organization, org_b: Organization
) -> None:
    grant = reverse("staff_source_entitlement_set", args=[source.public_id, org_a.slug])
    back = reverse("staff_source_entitlements", args=[source.public_id])
    response = staff_client.post(grant, {"granted": "1"})
    assert response.status_code == 302
    assert response["Location"] == back
    (entitlement,) = SourceEntitlement.objects.all()
    assert (entitlement.source, entitlement.organization) == (source, org_a)
    assert entitlement.granted_by_label == "steve@example.test"
    assert [e.organization for e in audit_actions("source.access_granted")] == [org_a]
    html = staff_client.get(back).content.decode()
    assert "Revoke" in html
    listing = staff_client.get(reverse("staff_sources")).content.decode()
    assert "granted only (1 organisation)" in listing
    staff_client.post(grant, {"granted": "0"})
    assert not SourceEntitlement.objects.exists()
    assert [e.organization for e in audit_actions("source.access_revoked")] == [org_a]
    missing = reverse("staff_source_entitlement_set", args=[source.public_id, "no-such-org"])
    assert staff_client.post(missing, {"granted": "1"}).status_code == 404


def test_changing_a_sources_access(staff_client: Client, source: Source) -> None:
    url = reverse("staff_source_access", args=[source.public_id])
    assert staff_client.post(url, {"access": "all"}).status_code == 302
    source.refresh_from_db()
    assert source.access == "all"
    assert len(audit_actions("source.access_changed")) == 1
    staff_client.post(url, {"access": "everyone!"})
    source.refresh_from_db()
    assert source.access == "all"
    assert staff_client.get(url).status_code == 405
