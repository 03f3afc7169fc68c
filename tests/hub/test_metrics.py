"""/metrics: Prometheus text for hub staff and the metrics token, 404 for everyone else.

Scraped through the test client as Prometheus would; values are read back with
prometheus_client's own parser. Multiprocess mode is shown with real processes writing to one
directory, which a scrape adds up.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from hub.metrics import MULTIPROC_ENV, exposition
from hub.models import Organization, User
from lists.models import ImportRun, Source
from lists.sources import services as source_services
from tests.conftest import login, make_staff
from tests.matching.test_match_api import SYSTEM, add, match, own_list

pytestmark = pytest.mark.django_db

TOKEN = "metrics-" + "x" * 32
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.HASHHUB_METRICS_TOKEN = TOKEN


def scrape(client: Client | None = None, token: str | None = TOKEN) -> str:
    client = client or Client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, for every sample of the exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


def test_the_token_gets_every_family_in_prometheus_text(org_a: Organization) -> None:
    source_services.source_create(name="Upstream feed", kind="feed", config={}, actor=SYSTEM)
    text = scrape()
    assert {
        "hashhub_http_request_duration_seconds",
        "hashhub_matches",
        "hashhub_detections",
        "hashhub_webhook_failures",
        "hashhub_celery_queue_length",
        "hashhub_change_sequence",
        "hashhub_index_size",
        "hashhub_index_version_lag",
        "hashhub_source_import_runs",
        "hashhub_source_record_errors",
        "hashhub_source_lag_seconds",
        "hashhub_source_incident_open",
    } <= families(text)
    # Every Celery queue has a depth, read from Redis at the scrape.
    assert ("hashhub_celery_queue_length", (("queue", "celery"),)) in samples(text)
    assert ("hashhub_celery_queue_length", (("queue", "webhooks"),)) in samples(text)
    assert value(text, "hashhub_source_incident_open", source="Upstream feed", kind="failing") == 0


def test_hub_staff_may_scrape_with_their_session(steve: User) -> None:
    assert "hashhub_matches_total" in scrape(login(steve), token=None)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "],
)
def test_anyone_else_gets_404(header: str | None, alice: User) -> None:
    headers = {"Authorization": header} if header else {}
    assert Client().get("/metrics", headers=headers).status_code == 404
    assert login(alice).get("/metrics", headers=headers).status_code == 404


def test_no_token_is_accepted_when_none_is_set(settings: Any) -> None:
    settings.HASHHUB_METRICS_TOKEN = ""
    for header in ("Bearer ", "Bearer  ", "Bearer"):
        assert Client().get("/metrics", headers={"Authorization": header}).status_code == 404


def test_staff_without_two_factor_get_404_when_staff_need_it(settings: Any) -> None:
    staff = make_staff("nomfa@example.test", mfa=False)
    assert login(staff).get("/metrics").status_code == 404
    settings.HASHHUB_STAFF_REQUIRE_MFA = False
    assert login(staff).get("/metrics").status_code == 200


def test_a_match_moves_the_counters_and_the_index_figures(
    api_a: Client, org_a: Organization
) -> None:
    pdq, md5 = secrets.token_hex(32), secrets.token_hex(16)
    add(own_list(org_a), ("pdq", pdq), ("md5", md5))
    before = scrape()
    response = match(api_a, [{"type": "pdq", "value": pdq}, {"type": "md5", "value": md5}])
    assert response.status_code == 200
    after = scrape()
    moved = {
        name: value(after, name, **labels) - value(before, name, **labels)
        for name, labels in [
            ("hashhub_matches_total", {"tier": "own", "mode": "live"}),
            ("hashhub_detections_total", {"tier": "own", "mode": "live"}),
            (
                "hashhub_http_request_duration_seconds_count",
                {"endpoint": "api_match", "method": "POST", "status": "2xx"},
            ),
        ]
    }
    assert moved == {
        "hashhub_matches_total": 2,
        "hashhub_detections_total": 1,
        "hashhub_http_request_duration_seconds_count": 1,
    }
    # This process searched its PDQ index, and reported it: size, version, no lag.
    process = f"{socket.gethostname()}:{os.getpid()}"
    assert value(after, "hashhub_index_size", process=process, type="pdq") >= 1
    head = value(after, "hashhub_change_sequence")
    assert value(after, "hashhub_index_version", process=process) == head
    assert value(after, "hashhub_index_version_lag", process=process) == 0


def test_labels_carry_no_organisation_list_hash_key_or_path(
    api_a: Client, key_a: tuple[Any, str], org_a: Organization, alice: User
) -> None:
    pdq = secrets.token_hex(32)
    hash_list = own_list(org_a)
    add(hash_list, ("pdq", pdq))
    match(api_a, [{"type": "pdq", "value": pdq}])
    login(alice).get(f"/o/{org_a.slug}/lists/{hash_list.public_id}/")
    api_a.get(f"/api/v1/lists/{hash_list.public_id}")
    text = scrape()
    for secret in (org_a.name, org_a.slug, hash_list.name, hash_list.public_id, pdq, key_a[1]):
        assert secret not in text, secret
    # Pages and API calls are named by their URL pattern.
    endpoints = {
        dict(labels).get("endpoint")
        for name, labels in samples(text)
        if name == "hashhub_http_request_duration_seconds_count"
    }
    assert {"list_detail", "api_list", "api_match"} <= endpoints, endpoints


def test_source_figures_come_from_the_database(org_a: Organization) -> None:
    source = source_services.source_create(name="NCMEC-style", kind="feed", config={}, actor=SYSTEM)
    ImportRun.objects.create(source=source, status=ImportRun.Status.FAILED, rejected=3)
    ImportRun.objects.create(source=source, status=ImportRun.Status.SUCCEEDED, rejected=2)
    Source.objects.filter(pk=source.pk).update(last_success_at=source.created)
    text = scrape()
    assert value(text, "hashhub_source_import_runs_total", source="NCMEC-style", status="failed")
    assert value(text, "hashhub_source_record_errors_total", source="NCMEC-style") == 5
    assert value(text, "hashhub_source_lag_seconds", source="NCMEC-style") >= 0
    assert ("hashhub_source_lag_seconds", (("source", "NCMEC-style"),)) in samples(text)


def _count_in_child(directory: Path, times: int) -> None:
    """A separate process (as a gunicorn or Celery worker is) counts webhook failures."""
    code = (
        "import django; django.setup()\n"
        "from matching import metrics\n"
        f"for _ in range({times}):\n"
        "    metrics.webhook_failed(target='organisation', outcome='failed')\n"
    )
    env = {**os.environ, MULTIPROC_ENV: str(directory), "DJANGO_SETTINGS_MODULE": "hub.settings"}
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120)


def test_several_processes_are_added_up_in_multiprocess_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _count_in_child(tmp_path, 2)
    _count_in_child(tmp_path, 3)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    text = exposition().decode()
    assert (
        value(text, "hashhub_webhook_failures_total", target="organisation", outcome="failed") == 5
    )
    # Scrape-time figures are there too, whichever process answers.
    assert "hashhub_change_sequence" in families(text)
