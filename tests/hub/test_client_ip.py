"""Behind a reverse proxy each client keeps its own address: login limits, throttle, audit.

The proxy is 10.0.0.1, in the trusted 10.0.0.0/8. Client A (203.0.113.10) and client B
(198.51.100.20) reach the hub through it; an untrusted client connects directly and forges
``X-Forwarded-For`` to borrow someone else's address.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django_scopes import scopes_disabled
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from hub import api_auth
from hub.adapters import AccountAdapter
from hub.audit import client_ip as audit_client_ip
from hub.lib.client_ip import client_ip, trusted_proxy_networks
from hub.models import AuditEvent, Organization, User
from tests.factories import PASSWORD

PROXY = "10.0.0.1"
CLIENT_A = "203.0.113.10"
CLIENT_B = "198.51.100.20"
FORGED = "192.0.2.99"


@pytest.fixture
def trusted_proxy(settings: Any) -> None:
    settings.HASHHUB_TRUSTED_PROXIES = ["10.0.0.0/8"]


def _request(remote_addr: str, forwarded_for: str | None = None) -> Any:
    headers: dict[str, Any] = (
        {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    )
    return RequestFactory().get("/", REMOTE_ADDR=remote_addr, **headers)


def _throttle_ident(remote_addr: str, forwarded_for: str | None = None) -> str:
    return api_auth.ApiKeyThrottle().get_ident(Request(_request(remote_addr, forwarded_for)))


# --- the resolver ---------------------------------------------------------------------------


def test_by_default_no_proxy_is_trusted_and_the_peer_is_the_client() -> None:
    assert client_ip(_request(PROXY, CLIENT_A)) == PROXY


@pytest.mark.usefixtures("trusted_proxy")
def test_an_untrusted_peers_forwarded_for_is_ignored() -> None:
    assert client_ip(_request(CLIENT_A, FORGED)) == CLIENT_A


@pytest.mark.usefixtures("trusted_proxy")
def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() -> None:
    # The client forged the first value; the proxies appended the last two.
    assert client_ip(_request(PROXY, f"{FORGED}, {CLIENT_A}, 10.0.0.2")) == CLIENT_A
    assert client_ip(_request(PROXY, CLIENT_A)) == CLIENT_A
    assert client_ip(_request(PROXY)) == PROXY


@pytest.mark.usefixtures("trusted_proxy")
def test_when_every_hop_is_trusted_the_furthest_is_the_client() -> None:
    assert client_ip(_request(PROXY, "10.0.0.3, 10.0.0.2")) == "10.0.0.3"


@pytest.mark.usefixtures("trusted_proxy")
@pytest.mark.parametrize(
    "junk",
    [
        "unknown",
        "",
        " , ",
        "203.0.113.10:4711",
        "[2001:db8::1]",
        "2001:db8::1]:443",
        "203.0.113.10 198.51.100.20",
        "999.0.113.10",
        "010.0.0.1",
        "\x00",
        "x" * 5000,
    ],
)
def test_a_forwarded_for_that_is_not_an_address_leaves_the_peer(junk: str) -> None:
    assert client_ip(_request(PROXY, junk)) == PROXY
    # Junk to the left of the client is the client's own and changes nothing.
    assert client_ip(_request(PROXY, f"{junk},{CLIENT_A}")) == CLIENT_A
    # Behind a trusted hop, that hop passed the junk on.
    assert client_ip(_request(PROXY, f"{junk},10.0.0.2")) == "10.0.0.2"


@pytest.mark.usefixtures("trusted_proxy")
def test_addresses_come_out_in_one_storable_form() -> None:
    # A dual-stack socket's IPv4 peer is still trusted, and still one address.
    assert client_ip(_request(f"::ffff:{PROXY}", CLIENT_A)) == CLIENT_A
    assert client_ip(_request(f"::ffff:{CLIENT_B}")) == CLIENT_B
    # PostgreSQL's inet refuses an IPv6 zone, and upper-case hex is the same address.
    assert client_ip(_request(PROXY, "FE80::1%eth0")) == "fe80::1"
    assert client_ip(_request("not an address")) is None


def test_a_peer_may_be_trusted_by_address_or_network(settings: Any) -> None:
    settings.HASHHUB_TRUSTED_PROXIES = ["10.0.0.1", "2001:db8::/32"]
    assert client_ip(_request(PROXY, CLIENT_A)) == CLIENT_A
    assert client_ip(_request("10.0.0.2", CLIENT_A)) == "10.0.0.2"
    assert client_ip(_request("2001:db8::7", CLIENT_B)) == CLIENT_B


def test_the_setting_is_read_into_canonical_networks() -> None:
    assert trusted_proxy_networks(["127.0.0.1", " 10.0.0.0/8 ", "2001:DB8::/32"]) == [
        "127.0.0.1/32",
        "10.0.0.0/8",
        "2001:db8::/32",
    ]
    with pytest.raises(ImproperlyConfigured, match=re.escape("'10.0.0.1/8' is not one")):
        trusted_proxy_networks(["10.0.0.1/8"])  # host bits set: the address, or the network?
    with pytest.raises(ImproperlyConfigured, match="HASHHUB_TRUSTED_PROXIES"):
        trusted_proxy_networks(["proxy.example.org"])


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.example.org", "10.0.0.0/8,nope"])
def test_a_bad_trusted_proxies_value_stops_start_up_with_a_clear_message(value: str) -> None:
    env = {**os.environ, "HASHHUB_TRUSTED_PROXIES": value}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "HASHHUB_TRUSTED_PROXIES must list IP addresses or networks" in result.stderr


# --- the API throttle -----------------------------------------------------------------------


@pytest.mark.usefixtures("trusted_proxy")
def test_the_throttle_ignores_an_untrusted_clients_forwarded_for() -> None:
    assert _throttle_ident(CLIENT_A, FORGED) == CLIENT_A
    assert _throttle_ident(CLIENT_A, f"{FORGED}, 10.0.0.2") == CLIENT_A


@pytest.mark.usefixtures("trusted_proxy")
def test_the_throttle_tells_clients_behind_a_trusted_proxy_apart() -> None:
    assert _throttle_ident(PROXY, CLIENT_A) == CLIENT_A
    assert _throttle_ident(PROXY, CLIENT_B) == CLIENT_B
    assert _throttle_ident(PROXY, "unknown") == PROXY


@pytest.fixture
def anonymous_rate(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """The API rate on a frozen throttle clock, with this process's tallies fresh."""
    monkeypatch.setattr(api_auth, "_tallies", {})
    monkeypatch.setattr(api_auth.ApiKeyThrottle, "timer", lambda self: 1_000_020.0)

    def set_rate(rate: str) -> None:
        rates: dict[str, str | None] = dict(api_settings.DEFAULT_THROTTLE_RATES)  # type: ignore[arg-type]
        rates["api_key"] = rate
        monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", rates)

    return set_rate


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted_proxy")
def test_a_forged_forwarded_for_buys_no_fresh_throttle_budget(
    anonymous_rate: Callable[[str], None],
) -> None:
    anonymous_rate("2/min")
    client = Client()
    codes = [
        client.get(
            "/api/docs", REMOTE_ADDR=CLIENT_A, HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"
        ).status_code
        for n in range(3)
    ]
    assert codes == [200, 200, 429]
    # Behind the proxy, client B has a budget of its own; client A has spent its.
    behind: dict[str, Any] = {"REMOTE_ADDR": PROXY}
    assert client.get("/api/docs", **behind, HTTP_X_FORWARDED_FOR=CLIENT_B).status_code == 200
    assert client.get("/api/docs", **behind, HTTP_X_FORWARDED_FOR=CLIENT_A).status_code == 429


# --- the audit log --------------------------------------------------------------------------


def _failed_login(client: Client, login: str, **meta: Any) -> Any:
    return client.post("/accounts/login/", {"login": login, "password": "wrong password"}, **meta)


def _failed_login_ips() -> list[str | None]:
    with scopes_disabled():
        events = AuditEvent.objects.filter(action="account.login_failed").order_by("pk")
        return [event.ip for event in events]


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted_proxy")
def test_the_audit_ignores_an_untrusted_clients_forwarded_for() -> None:
    assert _failed_login(Client(), "a@example.test", REMOTE_ADDR=CLIENT_A).status_code == 400
    forged = _failed_login(
        Client(), "a@example.test", REMOTE_ADDR=CLIENT_A, HTTP_X_FORWARDED_FOR=FORGED
    )
    assert forged.status_code == 400
    assert _failed_login_ips() == [CLIENT_A, CLIENT_A]
    assert audit_client_ip(_request(CLIENT_A, FORGED)) == CLIENT_A


@pytest.mark.usefixtures("trusted_proxy")
def test_behind_a_trusted_proxy_the_audit_records_the_real_client(
    alice_client: Client, org_a: Organization
) -> None:
    alice_client.post(
        "/o/org-a/members/",
        {"email": "new@example.test", "role": "analyst"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=f"{FORGED}, {CLIENT_A}",
    )
    with scopes_disabled():
        row = AuditEvent.objects.get(action="invitation.created")
    assert (row.organization, row.ip) == (org_a, CLIENT_A)
    _failed_login(Client(), "a@example.test", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=CLIENT_B)
    assert _failed_login_ips() == [CLIENT_B]


@pytest.mark.django_db
@pytest.mark.usefixtures("trusted_proxy")
@pytest.mark.parametrize("junk", ["unknown", "203.0.113.10:4711", "fe80::1%eth0", "\u00e9", ","])
def test_a_junk_forwarded_for_never_fails_a_login_or_its_audit_line(junk: str) -> None:
    response = _failed_login(
        Client(), "a@example.test", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=junk
    )
    assert response.status_code == 400
    assert len(_failed_login_ips()) == 1


# --- allauth's login limits -----------------------------------------------------------------


def test_allauth_counts_the_client_behind_a_trusted_proxy(settings: Any) -> None:
    adapter = AccountAdapter()
    assert adapter.get_client_ip(_request(PROXY, CLIENT_A)) == PROXY
    settings.HASHHUB_TRUSTED_PROXIES = ["10.0.0.0/8"]
    assert adapter.get_client_ip(_request(PROXY, CLIENT_A)) == CLIENT_A
    assert adapter.get_client_ip(_request(CLIENT_B, FORGED)) == CLIENT_B


@pytest.mark.clock
@pytest.mark.usefixtures("trusted_proxy")
def test_one_clients_failed_logins_behind_the_proxy_lock_out_no_other(alice: User) -> None:
    behind_a: dict[str, Any] = {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": CLIENT_A}
    client_a = Client()
    # 20 failures from one address is the per-IP limit (a different login each time, so the
    # per-login limit of 5 is not what stops them).
    for n in range(20):
        assert _failed_login(client_a, f"guess{n}@example.test", **behind_a).status_code == 400
    blocked = client_a.post(
        "/accounts/login/", {"login": alice.email, "password": PASSWORD}, **behind_a
    )
    assert "Too many failed login attempts" in blocked.content.decode()
    assert "_auth_user_id" not in client_a.session

    client_b = Client()
    response = client_b.post(
        "/accounts/login/",
        {"login": alice.email, "password": PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=CLIENT_B,
    )
    assert response.status_code == 302
    assert client_b.session["_auth_user_id"] == str(alice.pk)
