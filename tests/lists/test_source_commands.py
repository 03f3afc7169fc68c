"""addsource and fetchsource: register an upstream source from the shell, and import it now.

fetchsource runs against a real HTTP server on 127.0.0.1 serving a CSV feed; hashes are random.
"""

from __future__ import annotations

import io
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent
from lists.models import Entry, HashList, ImportRun, Source
from lists.sources.services import source_create
from tests.lists.feed_fixtures import Reply, Upstream, serve_upstream

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-token-Vv7-must-never-be-printed"
TOKEN_VAR = "HASHHUB_SOURCE_TEST_FEED_TOKEN"


def run(command: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(command, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def live_md5s(source: Source, category: str = "csam") -> set[str]:
    with scopes_disabled():
        hash_list = HashList.objects.get(source=source, category=category)
        entries = Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True)
        return {bytes(value).hex() for value in entries.values_list("hash__value", flat=True)}


def csv_feed(md5s: list[str], *, broken: int = 0) -> str:
    rows = ["type,value,labels", *(f"md5,{value},A1" for value in md5s)]
    rows += [f"md5,not-a-hash-{n}," for n in range(broken)]
    return "\n".join(rows) + "\n"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture(autouse=True)
def _quick_http(settings: Any) -> None:
    # One attempt, no backoff: a failing upstream fails the run at once.
    settings.HASHHUB_SOURCE_HTTP_ATTEMPTS = 1
    settings.HASHHUB_SOURCE_HTTP_BACKOFF = 0
    settings.HASHHUB_SOURCE_HTTP_TIMEOUT = 5


def feed_source(upstream: Upstream, name: str = "Partner feed", **config: Any) -> Source:
    return source_create(
        name=name,
        kind="feed",
        config={"url": f"{upstream.url}/hashes.csv", **config},
        actor=Actor(system="test"),
    )


# --- addsource ----------------------------------------------------------------------------------


def test_addsource_registers_a_source_with_its_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_VAR, SECRET)
    out, _ = run(
        "addsource",
        "--name", "Partner feed", "--kind", "feed",
        "--url", "https://feeds.example.org/hashes.csv",
        "--category", "se", "--access", "all", "--interval", "60",
        "--config-json", '{"mode": "delta", "format": "csv"}',
        "--token-env", TOKEN_VAR,
    )  # fmt: skip
    source = Source.objects.get()
    assert source.name == "Partner feed"
    assert (source.kind, source.default_category, source.access) == ("feed", "se", "all")
    assert source.interval_minutes == 60
    assert source.config == {
        "url": "https://feeds.example.org/hashes.csv",
        "mode": "delta",
        "format": "csv",
        "token_env": TOKEN_VAR,
    }
    with scopes_disabled():
        assert HashList.objects.filter(source=source).count() == 2
        assert AuditEvent.objects.filter(action="source.created").count() == 1
    assert "Registered source Partner feed" in out
    assert "every 60 minutes" in out
    assert f"${TOKEN_VAR}" in out
    assert "set in this shell" in out
    assert SECRET not in out


def test_addsource_names_the_token_variable_as_each_adapter_expects() -> None:
    run("addsource", "--name", "Peer", "--kind", "hashhub", "--url", "https://hub.peer.example",
        "--token-env", "HASHHUB_SOURCE_PEER_KEY")  # fmt: skip
    run("addsource", "--name", "NCMEC", "--kind", "ncmec",
        "--url", "https://report.cybertip.org/hashsharing",
        "--username-env", "HASHHUB_SOURCE_NCMEC_USER",
        "--password-env", "HASHHUB_SOURCE_NCMEC_PASSWORD")  # fmt: skip
    assert Source.objects.get(name="Peer").config["api_key_env"] == "HASHHUB_SOURCE_PEER_KEY"
    ncmec = Source.objects.get(name="NCMEC").config
    assert (ncmec["username_env"], ncmec["password_env"]) == (
        "HASHHUB_SOURCE_NCMEC_USER",
        "HASHHUB_SOURCE_NCMEC_PASSWORD",
    )


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--url", "https://x.example/f", "--config-json", '{"file": "f.csv"}'], "bad_config"),
        (["--url", "ftp://x.example/f.csv"], "bad_config"),
        (["--url", "https://x.example/f", "--config-json", "{nope"], "bad_config"),
        (["--url", "https://x.example/f", "--config-json", "[1]"], "bad_config"),
        (["--url", "https://x.example/f", "--interval", "-5"], "invalid_interval"),
        (["--url", "https://x.example/f", "--token-env", "not a name"], "bad_config"),
        (
            [
                "--url",
                "https://x.example/f",
                "--username-env",
                "HASHHUB_SOURCE_U",
                "--token-env",
                "HASHHUB_SOURCE_T",
            ],
            "bad_config",
        ),
    ],
)
def test_addsource_refuses_a_bad_source(args: list[str], code: str) -> None:
    with pytest.raises(CommandError, match=code):
        run("addsource", "--name", "Broken", "--kind", "feed", *args)
    assert not Source.objects.exists()


def test_addsource_wants_a_user_name_with_a_password() -> None:
    with pytest.raises(CommandError, match="together"):
        run("addsource", "--name", "NCMEC", "--kind", "ncmec", "--url", "https://x.example",
            "--password-env", "HASHHUB_SOURCE_NCMEC_PASSWORD")  # fmt: skip


def test_addsource_refuses_a_taken_name() -> None:
    run("addsource", "--name", "Feed", "--kind", "feed", "--url", "https://x.example/f.csv")
    with pytest.raises(CommandError, match="name_taken"):
        run("addsource", "--name", "Feed", "--kind", "feed", "--url", "https://x.example/g.csv")


@pytest.mark.parametrize(
    "args",
    [
        ["--config-json", json.dumps({"token": SECRET})],
        ["--config-json", json.dumps({"token_env": SECRET})],
        ["--url", f"https://feeder:{SECRET}@x.example/f.csv"],
    ],
)
def test_addsource_refuses_a_credential_without_printing_it(args: list[str]) -> None:
    base = ["--name", "Feed", "--kind", "feed"]
    if "--url" not in args:
        base += ["--url", "https://x.example/f.csv"]
    with pytest.raises(CommandError) as refused:
        run("addsource", *base, *args)
    assert SECRET not in str(refused.value)
    assert not Source.objects.exists()


# --- fetchsource --------------------------------------------------------------------------------


def test_fetchsource_imports_a_feed_with_a_progress_bar(upstream: Upstream) -> None:
    first = [secrets.token_hex(16) for _ in range(25)]
    upstream.routes["/hashes.csv"] = Reply(csv_feed(first, broken=2), 200)
    source = feed_source(upstream, page_size=10)
    out, err = run("fetchsource", "Partner feed")
    assert live_md5s(source) == set(first)
    run_row = ImportRun.objects.get(source=source)
    assert run_row.status == ImportRun.Status.SUCCEEDED
    assert (run_row.pages, run_row.added, run_row.rejected) == (3, 25, 2)
    assert "fetchsource" in run_row.trigger
    assert "[" in err and "/28 records" in err  # the bar, with the total the feed announced
    assert "line 27: " in err  # the rejected rows, with where they were
    assert "succeeded" in out
    assert "25 added" in out
    assert "2 rejected" in out
    source.refresh_from_db()
    assert source.last_success_at is not None

    # The next snapshot drops rows: fetchsource removes them.
    upstream.routes["/hashes.csv"] = Reply(csv_feed(first[:20]), 200)
    out, _ = run("fetchsource", source.public_id)
    assert live_md5s(source) == set(first[:20])
    assert "5 removed" in out


def test_fetchsource_quiet_prints_only_the_summary(upstream: Upstream) -> None:
    upstream.routes["/hashes.csv"] = Reply(csv_feed([secrets.token_hex(16)]), 200)
    feed_source(upstream)
    out, err = run("fetchsource", "partner feed", "--quiet")  # any case
    assert err == ""
    assert "1 added" in out


def test_fetchsource_fails_with_the_runs_error(upstream: Upstream) -> None:
    upstream.routes["/hashes.csv"] = Reply("upstream is down", 503)
    source = feed_source(upstream)
    with pytest.raises(CommandError, match=r"http_error: .*HTTP 503"):
        run("fetchsource", "Partner feed")
    run_row = ImportRun.objects.get(source=source)
    assert run_row.status == ImportRun.Status.FAILED
    assert run_row.error_code == "http_error"
    source.refresh_from_db()
    assert source.last_error.startswith("http_error")


def test_fetchsource_never_prints_the_token(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_VAR, SECRET)
    upstream.routes["/hashes.csv"] = lambda request: (
        Reply(csv_feed([secrets.token_hex(16)]), 200)
        if request.headers.get("authorization") == f"Bearer {SECRET}"
        else Reply("no", 401)
    )
    feed_source(upstream, token_env=TOKEN_VAR)
    out, err = run("fetchsource", "Partner feed")
    assert "1 added" in out
    assert SECRET not in out + err
    monkeypatch.setenv(TOKEN_VAR, "wrong")
    with pytest.raises(CommandError, match="auth_failed") as refused:
        run("fetchsource", "Partner feed")
    assert SECRET not in str(refused.value)


def test_fetchsource_needs_a_known_source() -> None:
    with pytest.raises(CommandError, match="not_found"):
        run("fetchsource", "Nothing like it")


def test_fetchsource_does_not_run_a_source_already_running(upstream: Upstream) -> None:
    from django.db import connections

    from lists.sources.runs import _LOCK_NAMESPACE

    source = feed_source(upstream)
    ImportRun.objects.create(
        source=source, status="running", trigger="worker", heartbeat_at=timezone.now()
    )
    worker = connections.create_connection("default")  # a live worker holds the source's lock
    try:
        with worker.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, source.pk])
        with pytest.raises(CommandError, match="source_busy"):
            run("fetchsource", "Partner feed")
        assert ImportRun.objects.filter(source=source).count() == 1
    finally:
        worker.close()
