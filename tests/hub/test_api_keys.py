from __future__ import annotations

import datetime as dt
import hashlib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import time_machine
from django.conf import settings as django_settings
from django.test import Client
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIRequestFactory

from hub import api_auth
from hub import selectors as hub_selectors
from hub.api_base import OrgAPIView
from hub.models import ApiKey, AuditEvent, Organization, User
from tests.conftest import login, make_key

pytestmark = pytest.mark.django_db


def _bearer(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})


def test_a_new_key_is_shown_once_and_stored_only_as_a_hash(
    alice_client: Client, org_a: Organization
) -> None:
    response = alice_client.post(
        "/o/org-a/keys/", {"name": "pipeline", "scopes": ["match", "export"]}
    )
    assert response.status_code == 201
    secret = response.context["new_secret"]
    assert secret.startswith("hh_")
    assert secret in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    with scopes_disabled():
        key = ApiKey.objects.get(organization=org_a, name="pipeline")
    assert key.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {key.prefix, key.secret_hash, key.name}
    assert secret.startswith(f"hh_{key.prefix}_")
    assert sorted(key.scopes) == ["export", "match"]
    # The list page never shows the secret again.
    again = alice_client.get("/o/org-a/keys/")
    assert secret not in again.content.decode()
    assert key.prefix in again.content.decode()


def test_the_key_authenticates_as_its_organisation_and_records_last_use(
    org_a: Organization,
) -> None:
    key, secret = make_key(org_a, ["match"])
    assert key.last_used_at is None
    response = _bearer(secret).get("/api/v1/me")
    assert response.status_code == 200
    body = response.json()
    assert body["organization"]["slug"] == "org-a"
    assert body["key"] == {
        "id": key.public_id,
        "name": key.name,
        "prefix": key.prefix,
        "scopes": ["match"],
        "expires_at": None,
    }
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_a_revoked_key_is_rejected_with_401(alice_client: Client, org_a: Organization) -> None:
    key, secret = make_key(org_a)
    assert _bearer(secret).get("/api/v1/me").status_code == 200
    response = alice_client.post(f"/o/org-a/keys/{key.public_id}/revoke/")
    assert response.status_code == 302
    rejected = _bearer(secret).get("/api/v1/me")
    assert rejected.status_code == 401
    assert rejected.json()["error"]["code"] == "authentication_failed"
    assert rejected.json()["error"]["message"] == "The API key is unknown or revoked."
    with scopes_disabled():
        assert AuditEvent.objects.filter(action="api_key.revoked", target_id=key.public_id).exists()


def test_rotation_revokes_the_old_secret_and_shows_a_new_one_once(
    alice_client: Client, org_a: Organization
) -> None:
    key, old_secret = make_key(org_a, ["match", "export"], name="rotating")
    response = alice_client.post(f"/o/org-a/keys/{key.public_id}/rotate/")
    assert response.status_code == 201
    new_secret = response.context["new_secret"]
    assert new_secret != old_secret
    assert _bearer(old_secret).get("/api/v1/me").status_code == 401
    me = _bearer(new_secret).get("/api/v1/me").json()
    assert me["key"]["name"] == "rotating"
    assert me["key"]["scopes"] == ["export", "match"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer hh_nothing_here", "The API key is unknown or revoked."),
        ("Bearer not-even-our-format", "The API key is unknown or revoked."),
        ("Token abc", "Send the key as 'Authorization: Bearer <api key>'."),
        ("Bearer two words", "Send the key as 'Authorization: Bearer <api key>'."),
    ],
)
def test_bad_authorization_headers_get_401_with_a_reason(header: str, message: str) -> None:
    response = Client(headers={"Authorization": header}).get("/api/v1/me")
    assert response.status_code == 401
    assert response.json() == {
        "error": {"code": "authentication_failed", "message": message, "details": None}
    }
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_no_key_gets_401_not_authenticated() -> None:
    response = Client().get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


class _ExportOnlyView(OrgAPIView):
    required_scope = "export"

    def get(self, request: object) -> object:
        from rest_framework.response import Response

        return Response({"ok": True})


def test_a_view_refuses_a_key_without_its_declared_scope(org_a: Organization) -> None:
    _key, match_only = make_key(org_a, ["match"])
    _key2, with_export = make_key(org_a, ["export"], name="exporter")
    view = _ExportOnlyView.as_view()
    factory = APIRequestFactory()
    refused = view(factory.get("/x", HTTP_AUTHORIZATION=f"Bearer {match_only}"))
    assert refused.status_code == 403
    assert refused.data["error"]["code"] == "permission_denied"
    assert "export" in refused.data["error"]["message"]
    allowed = view(factory.get("/x", HTTP_AUTHORIZATION=f"Bearer {with_export}"))
    assert allowed.status_code == 200


def test_api_views_run_inside_the_keys_organisation_scope(
    org_a: Organization, org_b: Organization
) -> None:
    make_key(org_b, ["match"], name="B's key")
    _key, secret = make_key(org_a, ["match"], name="A's key")

    class _ListKeys(OrgAPIView):
        def get(self, request: object) -> object:
            from rest_framework.response import Response

            # No explicit org filter: the scope opened from the key must confine the query.
            return Response(sorted(ApiKey.objects.values_list("name", flat=True)))

    response = _ListKeys.as_view()(
        APIRequestFactory().get("/x", HTTP_AUTHORIZATION=f"Bearer {secret}")
    )
    assert response.data == ["A's key"]


@pytest.mark.clock
def test_keys_are_throttled_per_key_with_a_clear_429(org_a: Organization, settings: object) -> None:
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    original = SimpleRateThrottle.THROTTLE_RATES
    rates: dict[str, str | None] = dict(api_settings.DEFAULT_THROTTLE_RATES)  # type: ignore[arg-type]
    rates["api_key"] = "3/min"
    SimpleRateThrottle.THROTTLE_RATES = rates
    try:
        _k1, first = make_key(org_a, name="busy")
        _k2, second = make_key(org_a, name="quiet")
        codes = [_bearer(first).get("/api/v1/me").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        throttled = _bearer(first).get("/api/v1/me")
        assert throttled.json()["error"]["code"] == "throttled"
        assert throttled.json()["error"]["details"]["retry_after_seconds"] > 0
        # Another key of the same organisation has its own budget.
        assert _bearer(second).get("/api/v1/me").status_code == 200
    finally:
        SimpleRateThrottle.THROTTLE_RATES = original


@pytest.fixture
def api_rate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set the per-key API rate for one test (DRF reads it when each throttle is made)."""
    from rest_framework.settings import api_settings
    from rest_framework.throttling import SimpleRateThrottle

    def set_rate(rate: str) -> None:
        rates: dict[str, str | None] = dict(api_settings.DEFAULT_THROTTLE_RATES)  # type: ignore[arg-type]
        rates["api_key"] = rate
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)

    yield set_rate


@dataclass
class _BusyKey:
    """A key whose throttle runs on a frozen clock, with every addition it makes to Redis."""

    key: ApiKey
    client: Client
    clock: list[float]
    added: list[int]  # how many requests each addition to Redis carried, in order

    def _counter(self, windows_back: int = 0) -> str:
        prefix = django_settings.CACHES["default"]["KEY_PREFIX"]
        return f"{prefix}:throttle:key:{self.key.pk}:{int(self.clock[0] // 60) - windows_back}"

    def redis_count(self, windows_back: int = 0) -> int:
        return int(_redis().get(self._counter(windows_back)) or 0)

    def others_add(self, requests: int) -> None:
        """Other processes serving the same key add their requests to Redis."""
        _redis().incrby(self._counter(), requests)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(django_settings.CACHES["default"]["LOCATION"])


def _busy_key(
    org: Organization, monkeypatch: pytest.MonkeyPatch, api_rate: Callable[[str], None], rate: str
) -> _BusyKey:
    api_rate(rate)
    real = api_auth._count_script()
    added: list[int] = []

    def counted(*, keys: list[str], args: list[int]) -> Any:
        added.append(args[1] + args[2])
        return real(keys=keys, args=args)

    monkeypatch.setattr(api_auth, "_count_script", lambda: counted)
    clock = [1_000_000.0]  # inside one window
    monkeypatch.setattr(api_auth.ApiKeyThrottle, "timer", lambda self: clock[0])
    key, secret = make_key(org, name=f"busy at {rate}")
    return _BusyKey(key, _bearer(secret), clock, added)


def test_far_below_its_limit_a_busy_key_reaches_redis_in_batches_and_loses_no_count(
    org_a: Organization, api_rate: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = _busy_key(org_a, monkeypatch, api_rate, "100000/min")
    assert all(busy.client.get("/api/v1/me").status_code == 200 for _ in range(50))
    assert busy.added == [1]  # the first request, then counted here (within 0.1 s and 1,000)
    busy.clock[0] += 2 * api_auth.SYNC_SECONDS
    assert busy.client.get("/api/v1/me").status_code == 200
    assert busy.added == [1, 50]  # the 49 counted here and this one
    assert busy.redis_count() == 51
    # Counted here at the end of a window: added to it once the next one has begun.
    for _ in range(20):
        assert busy.client.get("/api/v1/me").status_code == 200
    busy.clock[0] += 60
    assert busy.client.get("/api/v1/me").status_code == 200
    assert (busy.redis_count(windows_back=1), busy.redis_count()) == (71, 1)


def test_near_its_limit_every_request_is_checked_against_every_process_count(
    org_a: Organization, api_rate: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = _busy_key(org_a, monkeypatch, api_rate, "1000/min")
    for _ in range(800):
        assert busy.client.get("/api/v1/me").status_code == 200
    assert len(busy.added) < 100  # batches of up to 10 (1 % of the rate)
    busy.others_add(200)
    codes = [busy.client.get("/api/v1/me").status_code for _ in range(12)]
    # This process had counted up to 9 of its own that Redis had not seen: once it adds them,
    # the key is over 1,000 and is refused.
    assert 429 in codes
    assert codes.index(429) <= 10
    assert all(code == 429 for code in codes[codes.index(429) :])


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "", "scopes": ["match"]}, "name"),
        ({"name": "x" * 81, "scopes": ["match"]}, "name"),
        ({"name": "ok"}, "scopes"),
        ({"name": "ok", "scopes": ["delete-everything"]}, "scopes"),
    ],
)
def test_the_key_form_rejects_bad_input_with_400(
    alice_client: Client, org_a: Organization, data: dict[str, object], error: str
) -> None:
    response = alice_client.post("/o/org-a/keys/", data)
    assert response.status_code == 400
    assert error in response.context["form"].errors
    with scopes_disabled():
        assert not ApiKey.objects.filter(organization=org_a).exists()


def test_a_viewer_cannot_manage_keys(bob_client: Client, org_a: Organization) -> None:
    assert bob_client.get("/o/org-a/keys/").status_code == 403
    assert bob_client.post("/o/org-a/keys/", {"name": "x", "scopes": ["match"]}).status_code == 403


def test_createapikey_prints_the_secret_once_and_rejects_bad_scopes(
    org_a: Organization, alice: User
) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command(
        "createapikey",
        "--org",
        "org-a",
        "--name",
        "cli",
        "--scopes",
        "match,export",
        stdout=out,
        stderr=StringIO(),
    )
    secret = out.getvalue().strip()
    assert _bearer(secret).get("/api/v1/me").json()["key"]["scopes"] == ["export", "match"]
    with pytest.raises(CommandError, match="invalid_scope"):
        call_command(
            "createapikey", "--org", "org-a", "--name", "bad", "--scopes", "match,root", stdout=out
        )
    with pytest.raises(CommandError, match="No organisation"):
        call_command("createapikey", "--org", "nope", "--name", "bad", stdout=out)


# --- lists:read and expiry (issue 17) -----------------------------------------------------------


def _key(org: Organization, name: str) -> ApiKey:
    with scopes_disabled():
        return ApiKey.objects.get(organization=org, name=name)


def _created_event(key: ApiKey) -> AuditEvent:
    with scopes_disabled():
        return AuditEvent.objects.get(action="api_key.created", target_id=key.public_id)


def test_the_key_form_offers_the_lists_read_scope(
    alice_client: Client, org_a: Organization
) -> None:
    page = alice_client.get("/o/org-a/keys/")
    assert 'value="lists:read"' in page.content.decode()
    created = alice_client.post("/o/org-a/keys/", {"name": "reader", "scopes": ["lists:read"]})
    assert created.status_code == 201
    assert _key(org_a, "reader").scopes == ["lists:read"]


@pytest.mark.clock
def test_a_key_created_with_an_expiry_works_until_then_and_is_refused_after_saying_when(
    alice: User, org_a: Organization
) -> None:
    with time_machine.travel(dt.datetime(2026, 3, 18, 9, 15, tzinfo=dt.UTC), tick=False):
        response = login(alice).post(
            "/o/org-a/keys/", {"name": "short-lived", "scopes": ["match"], "expires_days": "30"}
        )
        assert response.status_code == 201
        secret = response.context["new_secret"]
    key = _key(org_a, "short-lived")
    assert key.expires_at == dt.datetime(2026, 4, 17, 9, 15, tzinfo=dt.UTC)
    assert _created_event(key).metadata["expires_at"] == "2026-04-17T09:15:00+00:00"
    with time_machine.travel(dt.datetime(2026, 4, 17, 9, 14, 59, tzinfo=dt.UTC), tick=False):
        me = _bearer(secret).get("/api/v1/me")
        assert me.status_code == 200
        assert me.json()["key"]["expires_at"] == "2026-04-17T09:15:00+00:00"
        with scope(organization=org_a.pk):
            assert hub_selectors.dashboard_counts(org=org_a)["active_keys"] == 1
    with (
        time_machine.travel(dt.datetime(2026, 4, 17, 9, 15, tzinfo=dt.UTC), tick=False),
        scope(organization=org_a.pk),
    ):
        assert hub_selectors.dashboard_counts(org=org_a)["active_keys"] == 0  # expired
    key.refresh_from_db()
    last_used = key.last_used_at
    with time_machine.travel(dt.datetime(2026, 4, 17, 9, 15, tzinfo=dt.UTC), tick=False):
        refused = _bearer(secret).get("/api/v1/me")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert refused.json() == {
        "error": {
            "code": "key_expired",
            "message": "This API key expired at 2026-04-17 09:15 UTC; "
            "ask an owner or admin of the organisation for a new key.",
            "details": {"expired_at": "2026-04-17T09:15:00+00:00"},
        }
    }
    key.refresh_from_db()
    assert key.last_used_at == last_used  # a refused call is not a use


@pytest.mark.clock
def test_the_key_list_shows_the_expiry_and_marks_expired_keys(
    alice: User, org_a: Organization
) -> None:
    with time_machine.travel(dt.datetime(2026, 3, 18, 9, 15, tzinfo=dt.UTC), tick=False):
        make_key(org_a, ["match"], name="forever")
        login(alice).post(
            "/o/org-a/keys/", {"name": "weekly", "scopes": ["match"], "expires_days": "7"}
        )
    key = _key(org_a, "weekly")
    rotate = f"/o/org-a/keys/{key.public_id}/rotate/"
    with time_machine.travel(dt.datetime(2026, 3, 20, tzinfo=dt.UTC), tick=False):
        page = login(alice).get("/o/org-a/keys/").content.decode()
    assert "2026-03-25 09:15 UTC" in page
    assert "never" in page
    assert 'badge warn">expired' not in page
    assert rotate in page
    with time_machine.travel(dt.datetime(2026, 3, 26, tzinfo=dt.UTC), tick=False):
        page = login(alice).get("/o/org-a/keys/").content.decode()
    assert '<span class="badge warn">expired</span>' in page
    assert page.count('<span class="badge ok">active</span>') == 1  # "forever"
    assert rotate not in page  # an expired key is replaced, not rotated
    assert f"/o/org-a/keys/{key.public_id}/revoke/" in page


@pytest.mark.clock
def test_rotation_keeps_the_expiry_and_an_expired_key_is_not_rotated(
    alice: User, org_a: Organization
) -> None:
    with time_machine.travel(dt.datetime(2026, 3, 18, 9, 15, tzinfo=dt.UTC), tick=False):
        client = login(alice)
        client.post(
            "/o/org-a/keys/", {"name": "rotating", "scopes": ["export"], "expires_days": "10"}
        )
        old = _key(org_a, "rotating")
        response = client.post(f"/o/org-a/keys/{old.public_id}/rotate/")
        assert response.status_code == 201
    with scopes_disabled():
        new = ApiKey.objects.get(organization=org_a, name="rotating", revoked_at__isnull=True)
    assert new.pk != old.pk
    assert new.expires_at == old.expires_at == dt.datetime(2026, 3, 28, 9, 15, tzinfo=dt.UTC)
    assert _created_event(new).metadata["expires_at"] == "2026-03-28T09:15:00+00:00"
    with time_machine.travel(dt.datetime(2026, 3, 29, tzinfo=dt.UTC), tick=False):
        # Logged in again on that day: rotating asks for a recent login.
        refused = login(alice).post(f"/o/org-a/keys/{new.public_id}/rotate/", follow=True)
    assert "expired at 2026-03-28 09:15 UTC" in refused.content.decode()
    new.refresh_from_db()
    assert new.revoked_at is None
    with scopes_disabled():
        assert ApiKey.objects.filter(organization=org_a, name="rotating").count() == 2


@pytest.mark.parametrize("days", ["0", "-1", "3651", "soon"])
def test_the_key_form_rejects_a_bad_expiry_with_400(
    alice_client: Client, org_a: Organization, days: str
) -> None:
    response = alice_client.post(
        "/o/org-a/keys/", {"name": "bad", "scopes": ["match"], "expires_days": days}
    )
    assert response.status_code == 400
    assert "expires_days" in response.context["form"].errors
    with scopes_disabled():
        assert not ApiKey.objects.filter(organization=org_a).exists()


def test_the_service_refuses_an_expiry_in_the_past(org_a: Organization) -> None:
    from django.utils import timezone

    from hub.audit import SYSTEM
    from hub.errors import ServiceError
    from hub.services import api_key_create

    with pytest.raises(ServiceError) as refused:
        api_key_create(
            org=org_a,
            name="late",
            scopes=["match"],
            actor=SYSTEM,
            expires_at=timezone.now() - dt.timedelta(seconds=1),
        )
    assert refused.value.code == "invalid_expiry"


@pytest.mark.clock
def test_createapikey_sets_an_expiry_in_days(org_a: Organization) -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    out, err = StringIO(), StringIO()
    with time_machine.travel(dt.datetime(2026, 3, 18, 9, 15, tzinfo=dt.UTC), tick=False):
        call_command(
            "createapikey", "--org", "org-a", "--name", "cli", "--scopes", "lists:read",
            "--expires-days", "90", stdout=out, stderr=err,
        )  # fmt: skip
    key = _key(org_a, "cli")
    assert key.expires_at == dt.datetime(2026, 6, 16, 9, 15, tzinfo=dt.UTC)
    assert key.scopes == ["lists:read"]
    assert "expires 2026-06-16 09:15 UTC" in err.getvalue()
    assert _created_event(key).metadata["expires_at"] == "2026-06-16T09:15:00+00:00"
    with pytest.raises(CommandError, match="invalid_expiry"):
        call_command(
            "createapikey", "--org", "org-a", "--name", "bad", "--expires-days", "0", stdout=out
        )
    call_command("createapikey", "--org", "org-a", "--name", "plain", stdout=out, stderr=err)
    assert _key(org_a, "plain").expires_at is None
    assert _created_event(_key(org_a, "plain")).metadata["expires_at"] is None


# --- the migration that brings lists:read to keys that could already read entries ----------------

MIGRATION = "0003_apikey_lists_read_and_expiry"


def _migration_apps() -> Any:
    """The models as they stand after the migration (the historical ones, plain managers)."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    return MigrationLoader(connection).project_state(("hub", MIGRATION)).apps


def test_the_migration_grants_lists_read_to_keys_with_lists_write_or_export(
    org_a: Organization, org_b: Organization
) -> None:
    migration = importlib.import_module(f"hub.migrations.{MIGRATION}")
    writer, _ = make_key(org_a, ["match", "lists:write"], name="writer")
    exporter, _ = make_key(org_b, ["export"], name="exporter")
    matcher, _ = make_key(org_a, ["match"], name="matcher")
    admin, _ = make_key(org_a, ["lists:admin"], name="admin")
    reader, _ = make_key(org_a, ["export", "lists:read"], name="reader")
    migration.grant_lists_read(_migration_apps(), None)
    scopes = {}
    for key in (writer, exporter, matcher, admin, reader):
        key.refresh_from_db()
        scopes[key.name] = key.scopes
    assert scopes == {
        "writer": ["lists:read", "lists:write", "match"],
        "exporter": ["export", "lists:read"],
        "matcher": ["match"],  # match-only keys lose entry reading
        "admin": ["lists:admin"],
        "reader": ["export", "lists:read"],
    }
    with scopes_disabled():
        events = AuditEvent.objects.filter(action="api_key.scopes_changed")
        assert sorted((e.organization_id, e.target_id, e.actor_type) for e in events) == sorted(
            [(org_a.pk, writer.public_id, "system"), (org_b.pk, exporter.public_id, "system")]
        )
        assert events.get(target_id=writer.public_id).metadata["from"] == ["lists:write", "match"]
    migration.remove_lists_read(_migration_apps(), None)
    writer.refresh_from_db()
    assert writer.scopes == ["lists:write", "match"]
