"""The reconciler: it recomputes derived state from the rules, reports drift, and repairs it.

Drift is made here the only way it can arise, behind the services' backs (a raw write, a lost
event), and the reconciler must find exactly it.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
from types import SimpleNamespace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from lists import services as list_services
from lists.models import HashList
from matching import engine
from matching.models import Reconciliation
from matching.reconcile import reconcile
from matching.tasks import reconcile_state
from sharing.models import AccessEvent, Subscription
from tests.conftest import login
from tests.matching.test_export import replay
from tests.matching.test_match_api import random_pdq
from tests.sharing.test_access import api, new_list, share

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


def run_command(*args: str) -> tuple[str, str | None]:
    """reconcile's output, and the CommandError it ended with (None: exit 0)."""
    out = io.StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), str(error)
    return out.getvalue(), None


def add(hash_list: HashList, *pairs: tuple[str, str]) -> None:
    with scopes_disabled():
        list_services.entry_add(
            hash_list=hash_list,
            items=[list_services.EntryInput(t, v) for t, v in pairs],
            actor=SYSTEM,
        )


@pytest.fixture
def shared(org_a: Organization) -> HashList:
    hash_list = new_list(org_a, "Shared CSAM")
    add(hash_list, ("md5", secrets.token_hex(16)), ("pdq", random_pdq()))
    share(hash_list, "open")
    return hash_list


def sneak_subscription(org: Organization, hash_list: HashList) -> None:
    """A subscription written behind the services' backs: the access log does not know it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sharing_subscription (organization_id, hash_list_id, category, excluded,"
            " created_by_label, created) VALUES (%s, %s, '', false, 'raw', now())",
            [org.pk, hash_list.pk],
        )


def test_a_hub_in_step_has_no_drift_and_the_run_is_recorded_and_audited(
    org_a: Organization, shared: HashList
) -> None:
    out, error = run_command("--dry-run")
    assert error is None
    assert "drift: 0" in out
    run = Reconciliation.objects.get()
    assert (run.dry_run, run.drift) == (True, 0)
    assert "reconcile" in run.trigger
    with scopes_disabled():
        event = AuditEvent.objects.get(action="hub.reconciled")
    assert event.organization is None
    assert event.metadata["dry_run"] is True
    assert event.metadata["access_grants"] == 0


def test_a_missing_grant_is_reported_by_a_dry_run_and_repaired_into_the_export(
    org_a: Organization, org_b: Organization, shared: HashList, caplog: pytest.LogCaptureFixture
) -> None:
    sneak_subscription(org_b, shared)
    client_b = api(org_b)
    before, _ = replay(client_b)
    assert before == set()

    with caplog.at_level(logging.ERROR, logger="matching.reconcile"):
        out, error = run_command("--dry-run")
    assert error is not None and "1 drift" in error
    assert "1 missing grants" in out
    assert any("reconciler found drift" in r.getMessage() for r in caplog.records)
    with scopes_disabled():
        assert not AccessEvent.objects.filter(organization=org_b).exists()  # report only
    run = Reconciliation.objects.get()
    assert run.details["access_grants"] == [{"org": org_b.pk, "list": shared.pk}]

    out, error = run_command()
    assert error is None
    assert "1 missing grants" in out
    after, _ = replay(client_b)
    assert {item[0] for item in after} == {shared.public_id}
    assert len(after) == 2
    out, error = run_command("--dry-run")
    assert (error, "drift: 0" in out) == (None, True)


def test_a_grant_the_rules_no_longer_give_is_revoked(
    org_a: Organization, org_b: Organization, shared: HashList
) -> None:
    with scope(organization=org_b.pk):
        from sharing.services import subscription_list_set

        subscription_list_set(org=org_b, public_id=shared.public_id, subscribed=True, actor=SYSTEM)
    with scopes_disabled():
        Subscription.objects.filter(organization=org_b).delete()  # behind the services' backs
    run = reconcile(dry_run=False, actor=SYSTEM, trigger="test")
    assert (run.access_grants, run.access_revokes) == (0, 1)
    live, _ = replay(api(org_b))
    assert live == set()


def test_drifted_list_counters_are_reported_and_set_right(
    org_a: Organization, shared: HashList
) -> None:
    with scopes_disabled():
        HashList.objects.filter(pk=shared.pk).update(live_counts={"md5": 7, "sha1": 2})
    run = reconcile(dry_run=True, actor=SYSTEM, trigger="test")
    assert run.counter_drift == 1
    assert run.details["counters"] == [
        {
            "list": shared.public_id,
            "counts": "live_counts",
            "stored": {"md5": 7, "sha1": 2},
            "actual": {"md5": 1, "pdq": 1},
        }
    ]
    shared.refresh_from_db()
    assert shared.live_counts == {"md5": 7, "sha1": 2}  # a dry run changes nothing

    run = reconcile(dry_run=False, actor=SYSTEM, trigger="test")
    assert run.counter_drift == 1
    shared.refresh_from_db()
    assert shared.live_counts == {"md5": 1, "pdq": 1}
    assert reconcile(dry_run=True, actor=SYSTEM, trigger="test").drift == 0


def test_an_anonymous_lists_published_counts_are_checked_against_its_published_view(
    org_a: Organization,
) -> None:
    quiet = new_list(org_a, "Quiet")
    add(quiet, ("md5", secrets.token_hex(16)))
    share(quiet, "anonymous")  # publishes: one md5 in the published view
    add(quiet, ("md5", secrets.token_hex(16)))  # not published: not in the published counts
    assert reconcile(dry_run=True, actor=SYSTEM, trigger="test").drift == 0
    with scopes_disabled():
        HashList.objects.filter(pk=quiet.pk).update(published_counts={"md5": 5})
    run = reconcile(dry_run=False, actor=SYSTEM, trigger="test")
    assert run.details["counters"] == [
        {
            "list": quiet.public_id,
            "counts": "published_counts",
            "stored": {"md5": 5},
            "actual": {"md5": 1},
        }
    ]
    quiet.refresh_from_db()
    assert (quiet.published_counts, quiet.live_counts) == ({"md5": 1}, {"md5": 2})


def test_every_process_index_is_checked_against_the_database_at_its_change_number(
    org_a: Organization, shared: HashList
) -> None:
    version = engine.get_engine().sync()
    # A process that reported the right size at this number, and one that lost a hash.
    engine.report_publish(engine.IndexReport("web-1:100", version, {"pdq": 1, "phash": 0}))
    engine.report_publish(engine.IndexReport("web-2:200", version, {"pdq": 0, "phash": 0}))
    # A process still at an older number, when the list held nothing: right for its time.
    engine.report_publish(engine.IndexReport("web-3:300", 0, {"pdq": 0, "phash": 0}))
    out, error = run_command("--dry-run")
    assert error is not None
    run = Reconciliation.objects.get()
    assert run.index_drift == 1
    assert [d["process"] for d in run.details["index_drift"]] == ["web-2:200"]
    assert run.details["index_drift"][0]["expected"] == {"pdq": 1, "phash": 0}
    processes = {r["process"] for r in run.details["indexes"]}
    assert {"web-1:100", "web-2:200", "web-3:300"} <= processes
    assert "web-2:200" in out
    # The index cannot be repaired from here: a repair run still says so and exits non-zero.
    _, error = run_command()
    assert error is not None and "restart" in error


def test_a_search_publishes_the_processes_index_figures(org_a: Organization) -> None:
    engine.get_engine().sync()
    [mine] = [r for r in engine.reports_read() if r.process.endswith(f":{os.getpid()}")]
    assert set(mine.sizes) == {"pdq", "phash"}


def test_the_daily_task_repairs_and_returns_the_drift(
    org_a: Organization, org_b: Organization, shared: HashList
) -> None:
    sneak_subscription(org_b, shared)
    assert reconcile_state() == 1
    assert Reconciliation.objects.get().dry_run is False
    assert reconcile_state(dry_run=True) == 0


def test_the_staff_health_page_shows_the_latest_result(
    org_a: Organization, org_b: Organization, shared: HashList, steve: User, alice_client: Client
) -> None:
    staff = login(steve)
    assert "has not run yet" in staff.get("/staff/health/").content.decode()
    sneak_subscription(org_b, shared)
    engine.report_publish(engine.IndexReport("web-9:900", 0, {"pdq": 5, "phash": 0}))
    reconcile(dry_run=True, actor=SYSTEM, trigger="test run")
    page = staff.get("/staff/health/").content.decode()
    assert "1 missing grant," in page
    assert "web-9:900" in page and "pdq 5, phash 0" in page
    assert "drifted" in page
    assert alice_client.get("/staff/health/").status_code == 404


def test_the_health_page_queues_a_check_after_commit(
    steve: User, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = login(steve)
    queued: list[dict[str, Any]] = []
    monkeypatch.setattr(reconcile_state, "delay", lambda **kwargs: queued.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post("/staff/health/check/", {"mode": "repair"})
    assert response.status_code == 302
    assert [q["dry_run"] for q in queued] == [False]
    with django_capture_on_commit_callbacks(execute=True):
        staff.post("/staff/health/check/", {"mode": "check"})
    assert [q["dry_run"] for q in queued] == [False, True]


def test_the_migration_appends_the_grants_older_hubs_never_wrote(
    org_a: Organization, org_b: Organization, shared: HashList
) -> None:
    import importlib

    catch_up = importlib.import_module("sharing.migrations.0004_access_log_catches_up").catch_up
    sneak_subscription(org_b, shared)
    catch_up(None, SimpleNamespace(connection=connection))
    with scopes_disabled():
        assert AccessEvent.objects.filter(organization=org_b, hash_list=shared, granted=True)
    assert reconcile(dry_run=True, actor=SYSTEM, trigger="test").drift == 0
