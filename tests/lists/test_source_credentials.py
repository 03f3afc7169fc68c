"""A source's credentials: only HASHHUB_SOURCE_* variables, or a value stored encrypted.

Steve (hub staff) registers sources; the hub's own secrets (DJANGO_SECRET_KEY, DATABASE_URL...)
must never be named by a source, whether through the service, the staff form, ``addsource``, or
a config stored before the rule (refused when it is fetched, before any request). A credential
stored on the source's page is encrypted with HASHHUB_CREDENTIAL_KEYS (MultiFernet: the newest
key encrypts, older ones still decrypt, ``rotatecredentials`` moves everything to the newest),
used by the adapter in place of the variable, never shown back, and audited by name only.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import AuditEvent
from lists.models import ImportRun, Source, SourceCredential
from lists.sources.credentials import config_for_display
from lists.sources.runs import run_execute
from lists.sources.services import source_create, source_update
from lists.sources.stored_credentials import credential_set
from tests.lists.feed_fixtures import Reply, Upstream, random_md5, serve_upstream

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
SECRET = "s3cr3t-Qx8-must-never-be-shown-or-sent"
HUB_SECRETS = ["DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "HASHHUB_CREDENTIAL_KEYS"]
FEED_VAR = "HASHHUB_SOURCE_TEST_FEED_TOKEN"
OLD_KEY, NEW_KEY = Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture(autouse=True)
def _quick_http(settings: Any) -> None:
    settings.HASHHUB_SOURCE_HTTP_ATTEMPTS = 1
    settings.HASHHUB_SOURCE_HTTP_BACKOFF = 0
    settings.HASHHUB_SOURCE_HTTP_TIMEOUT = 5


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


def guarded_feed(upstream: Upstream, expected_token: str) -> str:
    """Serve one random MD5 at /hashes.csv to the bearer of ``expected_token``; its value."""
    value = random_md5()
    upstream.routes["/hashes.csv"] = lambda request: (
        Reply(f"type,value\nmd5,{value}\n")
        if request.headers.get("authorization") == f"Bearer {expected_token}"
        else Reply("no", 401)
    )
    return value


def feed_source(upstream: Upstream, **config: Any) -> Source:
    return source_create(
        name="Partner feed",
        kind="feed",
        config={"url": f"{upstream.url}/hashes.csv", **config},
        actor=SYSTEM,
    )


def fetch(source: Source) -> ImportRun:
    return run_execute(run_id=ImportRun.objects.create(source=source, trigger="test").pk)


def audited(action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(action=action))


def everything_said(error: ServiceError | CommandError) -> str:
    details = json.dumps(getattr(error, "details", None))
    return f"{error} {getattr(error, 'message', '')} {details}"


# --- *_env names must start with HASHHUB_SOURCE_ENV_PREFIX ----------------------------------------


@pytest.mark.parametrize("variable", HUB_SECRETS)
def test_the_service_refuses_a_variable_outside_the_prefix(variable: str) -> None:
    config = {"url": "https://feeds.example.org/f.csv", "token_env": variable}
    with pytest.raises(ServiceError) as raised:
        source_create(name="Leaky", kind="feed", config=config, actor=SYSTEM)
    assert raised.value.code == "credential_in_config"
    assert "must name an environment variable starting with HASHHUB_SOURCE_" in (
        raised.value.message
    )
    assert variable not in everything_said(raised.value)  # it could be a pasted secret
    assert not Source.objects.exists()


def test_source_update_refuses_a_variable_outside_the_prefix_and_keeps_the_old_one() -> None:
    clean = {"url": "https://feeds.example.org/f.csv", "token_env": FEED_VAR}
    source = source_create(name="Partner feed", kind="feed", config=clean, actor=SYSTEM)
    with pytest.raises(ServiceError) as raised:
        source_update(
            source=source, config={**clean, "token_env": "DJANGO_SECRET_KEY"}, actor=SYSTEM
        )
    assert raised.value.code == "credential_in_config"
    source.refresh_from_db()
    assert source.config == clean


def test_the_prefix_is_a_setting(settings: Any) -> None:
    settings.HASHHUB_SOURCE_ENV_PREFIX = "FEEDS_"
    config = {"url": "https://feeds.example.org/f.csv", "token_env": "FEEDS_PARTNER"}
    assert source_create(name="Partner", kind="feed", config=config, actor=SYSTEM)
    with pytest.raises(ServiceError):
        source_create(
            name="Other", kind="feed", config={**config, "token_env": FEED_VAR}, actor=SYSTEM
        )


def test_the_staff_form_refuses_a_variable_outside_the_prefix(staff_client: Client) -> None:
    form = {
        "name": "Leaky",
        "kind": "ncmec",
        "default_category": "csam",
        "access": "granted",
        "interval_minutes": "0",
        "config": json.dumps(
            {
                "url": "https://report.cybertip.org/hashsharing",
                "username_env": "HASHHUB_SOURCE_NCMEC_USER",
                "password_env": "DATABASE_URL",
            }
        ),
    }
    response = staff_client.post(reverse("staff_sources"), form)
    page = response.content.decode()
    assert response.status_code == 400
    assert "password_env must name an environment variable starting with HASHHUB_SOURCE_" in page
    assert "DATABASE_URL" not in page
    assert not Source.objects.exists()


def test_addsource_refuses_a_variable_outside_the_prefix() -> None:
    with pytest.raises(CommandError, match="env_not_allowed") as raised:
        call_command(
            "addsource", "--name", "Leaky", "--kind", "feed",
            "--url", "https://feeds.example.org/f.csv", "--token-env", "DJANGO_SECRET_KEY",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert "HASHHUB_SOURCE_" in str(raised.value)
    with pytest.raises(CommandError, match="credential_in_config"):
        call_command(
            "addsource", "--name", "Leaky", "--kind", "feed",
            "--url", "https://feeds.example.org/f.csv",
            "--config-json", json.dumps({"token_env": "DATABASE_URL"}),
            stdout=io.StringIO(),
        )  # fmt: skip
    assert not Source.objects.exists()


def test_a_config_stored_before_the_rule_is_refused_when_fetched_before_any_request(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DJANGO_SECRET_KEY", SECRET)
    guarded_feed(upstream, SECRET)
    source = feed_source(upstream)
    # Written as an older hub let it be, past today's checks.
    Source.objects.filter(pk=source.pk).update(
        config={"url": f"{upstream.url}/hashes.csv", "token_env": "DJANGO_SECRET_KEY"}
    )
    source.refresh_from_db()
    run = fetch(source)
    assert (run.status, run.error_code) == ("failed", "env_not_allowed")
    assert upstream.requests == []
    assert SECRET not in run.error_message
    assert "DJANGO_SECRET_KEY" not in run.error_message
    (row,) = [r for r in config_for_display(source.config) if r.key == "token_env"]
    assert (row.env_refused, row.env_set, row.value) == (True, False, "(hidden)")


def test_a_source_page_does_not_show_a_refused_variable(
    staff_client: Client, upstream: Upstream
) -> None:
    source = feed_source(upstream)
    Source.objects.filter(pk=source.pk).update(
        config={"url": f"{upstream.url}/hashes.csv", "token_env": "DATABASE_URL"}
    )
    page = staff_client.get(reverse("staff_source", args=[source.public_id])).content.decode()
    assert "outside the allowed prefix" in page
    assert "DATABASE_URL" not in page


# --- stored, encrypted credentials ----------------------------------------------------------------


def store(client: Client, source: Source, name: str, value: str = "", clear: bool = False) -> Any:
    data = {"form": "credential", "name": name, "value": value}
    if clear:
        data["clear"] = "on"
    return client.post(reverse("staff_source", args=[source.public_id]), data)


def test_staff_store_a_credential_which_is_encrypted_never_shown_and_used_by_the_run(
    staff_client: Client, upstream: Upstream
) -> None:
    value = guarded_feed(upstream, SECRET)
    source = feed_source(upstream)
    response = store(staff_client, source, "token", SECRET)
    assert response.status_code == 302
    (stored,) = SourceCredential.objects.filter(source=source)
    assert stored.name == "token"
    assert SECRET not in stored.token
    assert stored.set_by == "steve@example.test"
    page = staff_client.get(response["Location"]).content.decode()
    assert SECRET not in page
    assert "stored" in page
    run = fetch(source)
    assert (run.status, run.added) == ("succeeded", 1)
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"
    assert value
    (event,) = audited("source.credential_set")
    assert event.metadata["credential"] == "token"
    assert SECRET not in json.dumps(event.metadata)


def test_a_stored_credential_is_used_in_place_of_the_variable(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FEED_VAR, "the-variables-value")
    guarded_feed(upstream, SECRET)
    source = feed_source(upstream, token_env=FEED_VAR)
    credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    assert fetch(source).status == "succeeded"
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


def test_clearing_a_credential_is_audited_and_the_run_then_lacks_it(
    staff_client: Client, upstream: Upstream
) -> None:
    guarded_feed(upstream, SECRET)
    source = feed_source(upstream)
    credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    assert store(staff_client, source, "token", clear=True).status_code == 302
    assert not SourceCredential.objects.exists()
    (event,) = audited("source.credential_cleared")
    assert event.metadata["credential"] == "token"
    # Without a token the feed is fetched anonymously, and the upstream says no.
    run = fetch(source)
    assert (run.status, run.error_code) == ("failed", "auth_failed")


def test_a_refused_credential_form_never_sends_the_value_back(
    staff_client: Client, upstream: Upstream
) -> None:
    source = feed_source(upstream)
    response = store(staff_client, source, "password", SECRET)  # a feed has no password
    page = response.content.decode()
    assert response.status_code == 400
    assert SECRET not in page
    assert not SourceCredential.objects.exists()
    assert not audited("source.credential_set")


def test_each_kind_stores_the_credentials_its_adapter_asks_for() -> None:
    source = source_create(
        name="NCMEC",
        kind="ncmec",
        config={"url": "https://report.cybertip.org/hashsharing"},
        actor=SYSTEM,
    )
    credential_set(source=source, name="username", value="member-42", actor=SYSTEM)
    credential_set(source=source, name="password", value=SECRET, actor=SYSTEM)
    with pytest.raises(ServiceError) as raised:
        credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    assert raised.value.code == "invalid_credential"
    assert sorted(SourceCredential.objects.values_list("name", flat=True)) == [
        "password",
        "username",
    ]


def test_a_credential_is_refused_for_a_plain_http_url_the_allow_list_does_not_name() -> None:
    source = source_create(
        name="Plain feed", kind="feed", config={"url": "http://feeds.example.org/f.csv"},
        actor=SYSTEM,
    )  # fmt: skip
    with pytest.raises(ServiceError) as raised:
        credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    assert raised.value.code == "insecure_credentials"
    assert SECRET not in everything_said(raised.value)
    assert not SourceCredential.objects.exists()
    # Nor can a config naming a variable send it over plain http.
    with pytest.raises(ServiceError) as named:
        source_update(
            source=source,
            config={"url": "http://feeds.example.org/f.csv", "token_env": FEED_VAR},
            actor=SYSTEM,
        )
    assert named.value.code == "insecure_credentials"


def test_a_source_with_a_stored_credential_cannot_move_to_plain_http() -> None:
    source = source_create(
        name="Partner feed", kind="feed", config={"url": "https://feeds.example.org/f.csv"},
        actor=SYSTEM,
    )  # fmt: skip
    credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    with pytest.raises(ServiceError) as raised:
        source_update(source=source, config={"url": "http://feeds.example.org/f.csv"}, actor=SYSTEM)
    assert raised.value.code == "insecure_credentials"


# --- keys: missing, rotated -----------------------------------------------------------------------


def test_without_keys_storing_and_running_fail_clearly(settings: Any, upstream: Upstream) -> None:
    source = feed_source(upstream)
    credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    settings.HASHHUB_CREDENTIAL_KEYS = []
    with pytest.raises(ServiceError) as raised:
        credential_set(source=source, name="token", value="another", actor=SYSTEM)
    assert raised.value.code == "credential_keys_missing"
    assert "HASHHUB_CREDENTIAL_KEYS" in raised.value.message
    run = fetch(source)
    assert (run.status, run.error_code) == ("failed", "credential_keys_missing")
    assert upstream.requests == []


def test_a_source_without_stored_credentials_needs_no_keys(
    settings: Any, upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.HASHHUB_CREDENTIAL_KEYS = []
    monkeypatch.setenv(FEED_VAR, SECRET)
    guarded_feed(upstream, SECRET)
    assert fetch(feed_source(upstream, token_env=FEED_VAR)).status == "succeeded"


def test_keys_rotate_new_first_old_still_decrypts_and_rotatecredentials_moves_to_the_new(
    settings: Any, upstream: Upstream
) -> None:
    guarded_feed(upstream, SECRET)
    source = feed_source(upstream)
    settings.HASHHUB_CREDENTIAL_KEYS = [OLD_KEY]
    credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    before = SourceCredential.objects.get().token
    # A new key first: what the old key encrypted still decrypts.
    settings.HASHHUB_CREDENTIAL_KEYS = [NEW_KEY, OLD_KEY]
    assert fetch(source).status == "succeeded"
    out = io.StringIO()
    call_command("rotatecredentials", stdout=out)
    assert "Re-encrypted 1 stored credential" in out.getvalue()
    after = SourceCredential.objects.get().token
    assert after != before
    assert Fernet(NEW_KEY.encode()).decrypt(after.encode()).decode() == SECRET
    (event,) = audited("source.credentials_rotated")
    assert event.metadata["credentials"] == ["token"]
    # The old key can go now.
    settings.HASHHUB_CREDENTIAL_KEYS = [NEW_KEY]
    assert fetch(source).status == "succeeded"


def test_a_credential_no_key_opens_fails_the_run_and_the_rotation_names_it(
    settings: Any, upstream: Upstream
) -> None:
    source = feed_source(upstream)
    settings.HASHHUB_CREDENTIAL_KEYS = [OLD_KEY]
    credential_set(source=source, name="token", value=SECRET, actor=SYSTEM)
    settings.HASHHUB_CREDENTIAL_KEYS = [NEW_KEY]  # the old key dropped too early
    run = fetch(source)
    assert (run.status, run.error_code) == ("failed", "credential_unreadable")
    assert upstream.requests == []
    with pytest.raises(CommandError, match=r"credential_unreadable: .*Partner feed: token"):
        call_command("rotatecredentials", stdout=io.StringIO())


def test_the_embedded_hub_keeps_a_generated_key_beside_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hub.settings as hub_settings

    monkeypatch.delenv("HASHHUB_CREDENTIAL_KEYS", raising=False)
    monkeypatch.setattr(hub_settings, "VAR_DIR", tmp_path)
    monkeypatch.setattr(hub_settings, "EMBEDDED", True)
    (key,) = hub_settings._credential_keys()
    assert Fernet(key.encode())  # a usable Fernet key
    assert (tmp_path / "credential_key").stat().st_mode & 0o777 == 0o600
    assert hub_settings._credential_keys() == [key]  # kept, not made anew
    monkeypatch.setattr(hub_settings, "EMBEDDED", False)
    assert hub_settings._credential_keys() == []  # production assumes none
    monkeypatch.setenv("HASHHUB_CREDENTIAL_KEYS", f"{NEW_KEY}, {OLD_KEY}")
    assert hub_settings._credential_keys() == [NEW_KEY, OLD_KEY]
