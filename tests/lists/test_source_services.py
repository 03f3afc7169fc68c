"""The source services hold their rules whoever calls them, not only behind the staff forms.

A source's config names environment variables; a credential itself is refused by source_create
and source_update (the API, a management command or a script gets what the staff form gets),
and the refusal never repeats it. A run is stale after one stretch of silence, the same for the
runner (which then queues another beside it) and the staff page (which marks it).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent
from lists.models import ImportRun, Source
from lists.sources import runs
from lists.sources.services import source_create, source_update

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
SECRET = "hunter2-Zq9-must-never-be-kept"
CLEAN = {"url": "https://feeds.example.org/hashes.csv", "token_env": "HASHHUB_SOURCE_FEED_TOKEN"}
WITH_A_CREDENTIAL = [
    {"url": "https://x.example/f.csv", "password": SECRET},
    {"url": "https://x.example/f.csv", "api_key": SECRET},
    {"url": f"https://reader:{SECRET}@x.example/f.csv"},
    {"url": f"https://x.example/f.csv?token={SECRET}"},
    {"url": "https://x.example/f.csv", "token_env": SECRET},
    {"url": "https://x.example/f.csv", "nested": {"secret": SECRET}},
]


def audited(action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(action=action))


def shown(error: ServiceError) -> str:
    """Everything a caller could show of the error."""
    return f"{error} {error.message} {json.dumps(error.details)} {error!r}"


@pytest.mark.parametrize("config", WITH_A_CREDENTIAL)
def test_source_create_refuses_a_credential_in_the_config_without_repeating_it(
    config: dict[str, Any],
) -> None:
    with pytest.raises(ServiceError) as raised:
        source_create(name="Industry feed", kind="feed", config=config, actor=SYSTEM)
    assert raised.value.code == "credential_in_config"
    assert "environment variable" in raised.value.message
    assert SECRET not in shown(raised.value)
    assert not Source.objects.exists()
    assert not audited("source.created")


@pytest.mark.parametrize("config", WITH_A_CREDENTIAL)
def test_source_update_refuses_a_credential_in_the_config_and_keeps_the_old_one(
    config: dict[str, Any],
) -> None:
    source = source_create(name="Industry feed", kind="feed", config=CLEAN, actor=SYSTEM)
    kept = dict(source.config)
    with pytest.raises(ServiceError) as raised:
        source_update(source=source, config=config, actor=SYSTEM)
    assert raised.value.code == "credential_in_config"
    assert SECRET not in shown(raised.value)
    assert source.config == kept
    source.refresh_from_db()
    assert source.config == kept
    assert SECRET not in json.dumps(source.config)
    assert not audited("source.updated")


def test_names_of_environment_variables_are_kept() -> None:
    source = source_create(name="Industry feed", kind="feed", config=CLEAN, actor=SYSTEM)
    assert source.config["token_env"] == "HASHHUB_SOURCE_FEED_TOKEN"
    config = {**CLEAN, "token_env": "HASHHUB_SOURCE_OTHER_FEED_TOKEN"}
    source_update(source=source, config=config, actor=SYSTEM)
    source.refresh_from_db()
    assert source.config["token_env"] == "HASHHUB_SOURCE_OTHER_FEED_TOKEN"


@pytest.mark.parametrize(
    ("silent_for", "stale"),
    [
        (runs.HEARTBEAT_STALE - dt.timedelta(minutes=1), False),
        (runs.HEARTBEAT_STALE + dt.timedelta(minutes=1), True),
    ],
)
def test_the_runner_and_the_staff_page_agree_when_a_run_is_stale(
    staff_client: Client, silent_for: dt.timedelta, stale: bool
) -> None:
    source = source_create(name="Industry feed", kind="feed", config=CLEAN, actor=SYSTEM)
    last_word = timezone.now() - silent_for
    run = ImportRun.objects.create(
        source=source,
        trigger="test",
        status=ImportRun.Status.RUNNING,
        started_at=last_word,
        heartbeat_at=last_word,
    )
    assert runs._is_stale(run) is stale
    url = reverse("staff_source_run_progress", args=[source.public_id, run.public_id])
    html = staff_client.get(url).content.decode()
    assert ("no word from the worker" in html) is stale


def test_a_queued_run_is_sent_to_the_worker_by_task_name_after_commit(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    from hub.celery import app

    sent: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(app, "send_task", lambda name, **options: sent.append((name, options)))
    source = source_create(name="Industry feed", kind="feed", config=CLEAN, actor=SYSTEM)
    with django_capture_on_commit_callbacks(execute=True):
        run = runs.run_create(source=source, trigger="test")
        assert sent == []  # not before the run's row is committed
    assert sent == [("lists.source_run", {"args": (run.pk,)})]


def test_a_settings_change_is_audited_with_old_and_new_values_never_a_secret() -> None:
    source = source_create(name="Industry feed", kind="feed", config=CLEAN, actor=SYSTEM)
    # A credential-looking key, as an older hub may have kept it: its value is never audited.
    Source.objects.filter(pk=source.pk).update(config={**CLEAN, "password": SECRET})
    source.refresh_from_db()
    new_config = {
        "url": "https://feeds.example.org/v2.csv",
        "token_env": "HASHHUB_SOURCE_OTHER_FEED_TOKEN",
        "mode": "delta",
    }
    source_update(
        source=source,
        config=new_config,
        interval_minutes=30,
        description="Now half-hourly.",
        enabled=True,  # unchanged: not audited as a change
        actor=SYSTEM,
    )
    (event,) = audited("source.updated")
    assert event.metadata["fields"] == ["config", "description", "interval_minutes"]
    assert event.metadata["changes"] == {
        "config": {
            "mode": {"old": "(none)", "new": "delta"},
            "password": {"old": "(hidden)", "new": "(none)"},
            "token_env": {
                "old": "HASHHUB_SOURCE_FEED_TOKEN",
                "new": "HASHHUB_SOURCE_OTHER_FEED_TOKEN",
            },
            "url": {
                "old": "https://feeds.example.org/hashes.csv",
                "new": "https://feeds.example.org/v2.csv",
            },
        },
        "description": {"old": "", "new": "Now half-hourly."},
        "interval_minutes": {"old": 0, "new": 30},
    }
    assert SECRET not in json.dumps(event.metadata)
