"""Source and peer-hub URLs pass the same address guard as webhooks (hub.lib.netguard).

When a URL is saved (service, staff form, addsource) a host that resolves to a loopback, private,
link-local or metadata address is refused; when the worker connects, the host is resolved again
and the connection goes to the very address that was checked, so a DNS answer that changed since
cannot point a fetch inside. HASHHUB_SOURCE_ALLOWED_HOSTS lets hosts or networks through (the
suite allows 127.0.0.1 for its local upstreams: these tests set their own list), and only the
hosts it names may receive credentials over plain http. Names resolve through a fake DNS.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from hub.audit import Actor
from hub.errors import ServiceError
from hub.lib import netguard
from lists.models import ImportRun, Source
from lists.sources.adapters.base import Credentials
from lists.sources.adapters.hashhub import HashHubAdapter
from lists.sources.adapters.http import Http
from lists.sources.errors import SourceError
from lists.sources.runs import run_execute
from lists.sources.services import source_create, source_update
from tests.lists.feed_fixtures import Reply, Upstream, random_md5, serve_upstream

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
PUBLIC = "93.184.216.34"  # a public address, never connected to here
TOKEN_VAR = "HASHHUB_SOURCE_GUARD_TOKEN"


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Names the test makes resolve to an address of its choice (the rest resolve normally)."""
    names: dict[str, str] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real(names.get(host, host), port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


def serve_csv(upstream: Upstream) -> str:
    value = random_md5()
    upstream.routes["/hashes.csv"] = Reply(f"type,value\nmd5,{value}\n")
    return value


def feed(url: str, name: str = "Partner feed", **config: Any) -> Source:
    return source_create(name=name, kind="feed", config={"url": url, **config}, actor=SYSTEM)


def fetch(source: Source, http: Http | None = None) -> ImportRun:
    run = ImportRun.objects.create(source=source, trigger="test")
    return run_execute(run_id=run.pk, http=http)


# --- when a URL is saved --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "refused"),
    [
        ("http://127.0.0.1:9/f.csv", "loopback"),
        ("https://10.1.2.3/f.csv", "private"),
        ("https://[::1]/f.csv", "loopback"),
        ("https://[::ffff:127.0.0.1]/f.csv", "inside an IPv6 address"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://metadata.google.internal/f.csv", "metadata"),
        ("https://internal.partner.test/f.csv", "private"),  # a name for 192.168.1.20
    ],
)
def test_a_url_reaching_inside_is_refused_when_saved(
    settings: Any, fake_dns: dict[str, str], url: str, refused: str
) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = []
    fake_dns["internal.partner.test"] = "192.168.1.20"
    with pytest.raises(ServiceError) as raised:
        feed(url)
    assert raised.value.code == "address_not_allowed"
    assert refused in raised.value.message
    assert not Source.objects.exists()


def test_a_public_or_not_yet_resolvable_name_is_let_through(
    settings: Any, fake_dns: dict[str, str]
) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = []
    fake_dns["feeds.partner.test"] = PUBLIC
    assert feed("https://feeds.partner.test/f.csv")
    # Checked again at every connection.
    assert feed("https://not-yet-in-dns.partner.test/f.csv", name="Later")


@pytest.mark.parametrize("allowed", [["192.168.1.0/24"], ["internal.partner.test"]])
def test_the_allow_list_lets_a_network_or_a_host_through(
    settings: Any, fake_dns: dict[str, str], allowed: list[str]
) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = allowed
    fake_dns["internal.partner.test"] = "192.168.1.20"
    assert feed("https://internal.partner.test/f.csv")


def test_metadata_stays_refused_inside_an_allowed_network(settings: Any) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = ["169.254.0.0/16"]
    assert feed("http://169.254.10.10/f.csv")
    with pytest.raises(ServiceError) as raised:
        feed("http://169.254.169.254/f.csv", name="Metadata")
    assert raised.value.code == "address_not_allowed"


def test_a_changed_url_is_checked_too(settings: Any) -> None:
    source = feed("https://feeds.example.org/f.csv")
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = []
    with pytest.raises(ServiceError) as raised:
        source_update(source=source, config={"url": "http://127.0.0.1:5432/"}, actor=SYSTEM)
    assert raised.value.code == "address_not_allowed"
    source.refresh_from_db()
    assert source.config == {"url": "https://feeds.example.org/f.csv"}


def test_the_staff_form_and_addsource_refuse_it(staff_client: Client, settings: Any) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = []
    form = {
        "name": "Inside",
        "kind": "hashhub",
        "default_category": "csam",
        "access": "granted",
        "interval_minutes": "0",
        "config": json.dumps({"url": "http://127.0.0.1:8000", "api_key_env": TOKEN_VAR}),
    }
    response = staff_client.post(reverse("staff_sources"), form)
    assert response.status_code == 400
    assert "will not fetch sources from 127.0.0.1" in response.content.decode()
    with pytest.raises(CommandError, match="address_not_allowed"):
        call_command(
            "addsource", "--name", "Inside", "--kind", "feed", "--url", "http://10.0.0.8/f.csv",
            stdout=io.StringIO(),
        )  # fmt: skip
    assert not Source.objects.exists()


# --- when the worker connects ---------------------------------------------------------------------


def test_a_name_that_resolves_inside_by_the_time_of_the_fetch_is_refused(
    settings: Any, fake_dns: dict[str, str], upstream: Upstream
) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = []
    port = upstream.url.rsplit(":", 1)[1]
    fake_dns["feeds.partner.test"] = PUBLIC
    source = feed(f"http://feeds.partner.test:{port}/hashes.csv")
    serve_csv(upstream)
    fake_dns["feeds.partner.test"] = "127.0.0.1"  # DNS rebinding, after the save
    run = fetch(source)
    assert (run.status, run.error_code) == ("failed", "address_not_allowed")
    assert "loopback" in run.error_message
    assert upstream.requests == []


def test_the_connection_goes_to_the_checked_address_under_the_urls_name(
    settings: Any, fake_dns: dict[str, str], upstream: Upstream
) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = ["127.0.0.1/32"]
    port = upstream.url.rsplit(":", 1)[1]
    fake_dns["feeds.partner.test"] = "127.0.0.1"
    source = feed(f"http://feeds.partner.test:{port}/hashes.csv")
    value = serve_csv(upstream)
    run = fetch(source)
    assert (run.status, run.added) == ("succeeded", 1), run.error_message
    assert upstream.requests[-1].headers["host"] == f"feeds.partner.test:{port}"
    assert value


def test_a_peer_hub_is_guarded_too(settings: Any, upstream: Upstream) -> None:
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = []
    guarded = Http(timeout=5, attempts=1, backoff=0, sleep=lambda _: None)
    adapter = HashHubAdapter(
        config={"url": upstream.url, "api_key_env": TOKEN_VAR},
        credentials=Credentials({TOKEN_VAR: "peer-key"}),
        http=guarded,
    )
    try:
        with pytest.raises(SourceError) as raised:
            list(adapter.pages({}))
    finally:
        guarded.close()
    assert raised.value.code in {"address_not_allowed", "insecure_credentials"}
    assert upstream.requests == []
    with pytest.raises(ServiceError) as refused:
        source_create(
            name="Peer", kind="hashhub", config={"url": "https://10.20.30.40"}, actor=SYSTEM
        )
    assert refused.value.code == "address_not_allowed"


# --- credentials over plain http ------------------------------------------------------------------


def test_credentials_go_over_plain_http_only_to_a_host_the_allow_list_names(
    settings: Any, fake_dns: dict[str, str], upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The network is allowed, so the name may be fetched; but only a *named* host gets secrets.
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = ["127.0.0.1/32"]
    monkeypatch.setenv(TOKEN_VAR, "feed-token")
    port = upstream.url.rsplit(":", 1)[1]
    fake_dns["feeds.partner.test"] = "127.0.0.1"
    serve_csv(upstream)
    url = f"http://feeds.partner.test:{port}/hashes.csv"
    with pytest.raises(ServiceError) as raised:
        feed(url, token_env=TOKEN_VAR)
    assert raised.value.code == "insecure_credentials"
    # A config stored some other way is refused at fetch time, before the request.
    source = feed(url)
    Source.objects.filter(pk=source.pk).update(config={"url": url, "token_env": TOKEN_VAR})
    source.refresh_from_db()
    run = fetch(source)
    assert (run.status, run.error_code) == ("failed", "insecure_credentials")
    assert upstream.requests == []
    # Named in the allow-list: the token may go.
    settings.HASHHUB_SOURCE_ALLOWED_HOSTS = ["feeds.partner.test"]
    assert fetch(source).status == "succeeded"
    assert upstream.requests[-1].headers["authorization"] == "Bearer feed-token"


def test_the_allowance_reads_networks_addresses_and_names() -> None:
    allowance = netguard.Allowance.from_entries(["10.0.0.0/8", "::1", "Feeds.Partner.TEST.", " "])
    assert allowance.names("10.2.3.4")
    assert allowance.names("[::1]")
    assert allowance.names("feeds.partner.test")
    assert not allowance.names("other.partner.test")
    assert not allowance.names("11.0.0.1")
