"""Fixtures: the suite's fixed characters and clients for them.

Alice owns org A, Bob is a viewer in org A, Charlie owns org B and must see nothing of A,
Steve is hub staff (and a member of nothing), with an authenticator app (staff pages need
two-factor). Every ``login(...)`` client has just logged in, so sensitive actions and staff pages
do not ask it to re-authenticate until a test moves the clock past the window.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import time_machine
from allauth.account.internal.flows.login import record_authentication
from allauth.mfa.totp.internal.auth import TOTP
from django.db import connection
from django.test import Client, RequestFactory
from django_scopes import scope

from hub.audit import Actor
from hub.models import ApiKey, Organization, User
from hub.permissions import Role
from hub.selectors import user_has_mfa
from hub.services import api_key_create
from matching.engine import get_engine
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


def pytest_report_header(config: pytest.Config) -> list[str]:
    url = os.environ.get("DATABASE_URL", "(embedded default)")
    lines = [
        f"hashhub database: {url.split('@')[-1]}",
        f"hashhub redis: {os.environ.get('REDIS_URL', '(embedded default)')}",
    ]
    chromium = "/usr/bin/chromium"
    found = os.path.exists(chromium)
    browser = f"Chromium at {chromium}" if found else "NO CHROMIUM: browser tests will be SKIPPED"
    lines.append(f"hashhub browser tests: {browser}")
    return lines


@pytest.fixture(scope="session", autouse=True)
def _announce_database(django_db_setup: Any, django_db_blocker: Any) -> None:
    """Print, once, which server the suite really runs on: it must be PostgreSQL."""
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
    assert version.startswith("PostgreSQL"), version
    print(f"\n[hashhub] tests run on: {version.split(',')[0]}")


@pytest.fixture(scope="session", autouse=True)
def _test_flush_passes_the_audit_truncate_guard() -> Iterator[None]:
    """Transactional tests end with Django's flush, one TRUNCATE of every table, which the audit
    table's trigger refuses (hub migration 0004), as it must everywhere else. Only this flush,
    in its own transaction, turns the trigger off around its statement."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    from hub.models import AuditEvent

    original = DatabaseOperations.sql_flush
    table = AuditEvent._meta.db_table
    guard = f"ALTER TABLE {table} {{}} TRIGGER hub_auditevent_no_truncate;"

    def sql_flush(self: DatabaseOperations, style: Any, tables: Any, **kwargs: Any) -> list[str]:
        statements = original(self, style, tables, **kwargs)
        if table not in tables:
            return statements
        return [guard.format("DISABLE"), *statements, guard.format("ENABLE")]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(DatabaseOperations, "sql_flush", sql_flush)
        yield


@pytest.fixture(autouse=True)
def _clear_cache() -> Iterator[None]:
    # Throttle and allauth rate-limit counters live in Redis; one test must not inherit another's.
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(autouse=True)
def _fresh_match_index() -> None:
    """Each test starts with an empty match index: tests roll back, production never does."""
    get_engine().reset()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    # PBKDF2's deliberate slowness is for production; tests hash many passwords.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# The suite's upstream sources are real servers on 127.0.0.1 (tests/lists/feed_fixtures.py) and
# localhost (pytest-django's live_server as a peer hub), which the sources' address guard refuses
# unless allowed; a test about the guard sets its own list. Credentials stored on sources are
# encrypted with a fixed test key (Fernet, made up).
SOURCE_TEST_SETTINGS = {
    "HASHHUB_SOURCE_ALLOWED_HOSTS": ["127.0.0.1", "localhost"],
    "HASHHUB_CREDENTIAL_KEYS": ["dGVzdC1rZXktb2YtdGhlLWhhc2hodWItc3VpdGUtMzI="],
}


@pytest.fixture(autouse=True)
def _source_test_settings(settings: Any) -> None:
    for name, value in SOURCE_TEST_SETTINGS.items():
        setattr(settings, name, value)


@pytest.fixture
def org_a(db: None) -> Organization:
    return OrganizationFactory.create(name="Org A", slug="org-a")


@pytest.fixture
def org_b(db: None) -> Organization:
    return OrganizationFactory.create(name="Org B", slug="org-b")


def _member(org: Organization, email: str, role: Role) -> User:
    user = UserFactory.create(email=email)
    MembershipFactory.create(organization=org, user=user, role=role)
    return user


@pytest.fixture
def alice(org_a: Organization) -> User:
    return _member(org_a, "alice@example.test", Role.OWNER)


@pytest.fixture
def bob(org_a: Organization) -> User:
    return _member(org_a, "bob@example.test", Role.VIEWER)


@pytest.fixture
def charlie(org_b: Organization) -> User:
    return _member(org_b, "charlie@example.test", Role.OWNER)


# The secret of Steve's authenticator app (made up): pyotp.TOTP(STAFF_TOTP_SECRET).now() is a code.
STAFF_TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def make_staff(email: str = "steve@example.test", *, mfa: bool = True) -> User:
    """A hub staff member; with ``mfa`` (as staff pages require) an authenticator app too."""
    user = UserFactory.create(email=email, is_staff=True)
    if mfa:
        TOTP.activate(user, STAFF_TOTP_SECRET)
    return user


@pytest.fixture
def steve(db: None) -> User:
    return make_staff()


def record_login(client: Client, user: User) -> None:
    """Record in ``client``'s session that ``user`` logged in now, as allauth's login does: the
    password, then the second factor if the user has one. hub.decorators reads these records to
    decide whether a sensitive action or a staff page needs the user to re-authenticate."""
    session = client.session
    request = RequestFactory().get("/")
    request.session = session
    record_authentication(request, user, method="password", email=user.email)
    if user_has_mfa(user):
        record_authentication(request, user, method="mfa", type="totp")
    session.save()


def login(user: User) -> Client:
    """A client of ``user``, who has just logged in (with two-factor if the user has it)."""
    client = Client()
    client.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
    record_login(client, user)
    return client


@pytest.fixture
def alice_client(alice: User) -> Client:
    return login(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return login(bob)


@pytest.fixture
def charlie_client(charlie: User) -> Client:
    return login(charlie)


@pytest.fixture
def staff_client(steve: User) -> Client:
    return login(steve)


def make_key(
    org: Organization, scopes: list[str] | None = None, name: str = "test key"
) -> tuple[ApiKey, str]:
    with scope(organization=org.pk):
        return api_key_create(
            org=org, name=name, scopes=scopes or ["match"], actor=Actor(system="test")
        )


@pytest.fixture
def key_a(org_a: Organization) -> tuple[ApiKey, str]:
    return make_key(
        org_a, ["match", "lists:read", "lists:write", "lists:admin", "export"], name="A's key"
    )


@pytest.fixture
def api_a(key_a: tuple[ApiKey, str]) -> Client:
    return Client(headers={"Authorization": f"Bearer {key_a[1]}"})


@pytest.fixture
def celery_worker_process(transactional_db: None) -> Iterator[subprocess.Popen[str]]:
    """A real Celery worker process on the suite's broker and test database (not a mock).

    Needs committed data, hence transactional_db. Yields the process; a test that waits on the
    worker should stop waiting if ``poll()`` says it died, and can read its output afterwards.
    """
    db = connection.settings_dict
    env = dict(os.environ)
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env.update({name: ",".join(value) for name, value in SOURCE_TEST_SETTINGS.items()})
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "hub", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=Path(__file__).resolve().parent.parent, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    yield worker
    worker.terminate()
    worker.communicate(timeout=30)


def wait_for(
    condition: Callable[[], Any], worker: subprocess.Popen[str], seconds: float = 60
) -> Any:
    """Poll ``condition`` until it returns something truthy, the worker dies, or time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker.poll() is None:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    return condition()


# --- the clock ----------------------------------------------------------------------------------
#
# Tests about time (digests, retention, charts by day, impact by week, expiry, schedules) are
# marked ``@pytest.mark.clock``. Each runs once at every instant of CLOCK_INSTANTS, with Python's
# clock moved there, so that ``make test`` gives the same answer at any hour and a test that only
# passes at some hours of some days fails every time. Only Python's clock moves: PostgreSQL's
# ``now()``, Redis and any subprocess (a Celery worker, Chromium) keep the real time, so a marked
# test must not compare a time the database or another process made with one Python made. (The
# product stamps every row from Python: ``default=timezone.now``, never a database default.) Nor
# can it lean on a module- or session-scoped fixture's rows: those were made at the real time.

CLOCK_ENV = "HASHHUB_TEST_CLOCK"
CLOCK_INSTANTS = (
    # An afternoon of a weekday: far from midnight and from the small hours sources run at.
    dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC),
    # Half a minute before a Monday, and after it: the two sides of the midnight that ends a day
    # and a week ("today", "yesterday", "an hour ago", "this week").
    dt.datetime(2026, 3, 22, 23, 59, 30, tzinfo=dt.UTC),
    dt.datetime(2026, 3, 23, 0, 0, 30, tzinfo=dt.UTC),
)

# Fixtures whose other process keeps the real time: a marked test cannot use them.
REAL_TIME_FIXTURES = frozenset({"celery_worker_process", "live_server"})


def clock_instants() -> tuple[dt.datetime, ...]:
    """CLOCK_INSTANTS, or the comma-separated ISO 8601 instants of $HASHHUB_TEST_CLOCK instead."""
    override = os.environ.get(CLOCK_ENV, "").strip()
    if not override:
        return CLOCK_INSTANTS
    instants = []
    for text in (part.strip() for part in override.split(",")):
        try:
            instant = dt.datetime.fromisoformat(text)
        except ValueError:
            raise pytest.UsageError(f"{CLOCK_ENV}: {text!r} is not an ISO 8601 instant") from None
        if instant.tzinfo is None:
            raise pytest.UsageError(f"{CLOCK_ENV}: {text!r} needs an offset, e.g. Z")
        instants.append(instant.astimezone(dt.UTC))
    return tuple(instants)


def clock_id(instant: dt.datetime) -> str:
    """How a test id names the instant: ``Wed-2026-03-18T16:30:00Z``."""
    fraction = f".{instant:%f}".rstrip("0") if instant.microsecond else ""
    return f"{instant:%a-%Y-%m-%dT%H:%M:%S}{fraction}Z"


def pytest_configure(config: pytest.Config) -> None:
    clock_instants()  # a bad $HASHHUB_TEST_CLOCK stops the run once, before collection


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("clock") is None:
        return
    if elsewhere := sorted(REAL_TIME_FIXTURES & set(metafunc.fixturenames)):
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} is marked clock but uses {', '.join(elsewhere)}, "
            "which keeps the real time: another process does not see the moved clock"
        )
    instants = clock_instants()
    metafunc.parametrize("_clock", instants, ids=[clock_id(i) for i in instants], indirect=True)


@pytest.fixture(autouse=True)
def _clock(request: pytest.FixtureRequest) -> Iterator[None]:
    """Python's clock at the marked test's instant (ticking on from it); no change otherwise.

    Function-scoped and autouse, so it starts before the test's own fixtures make their rows.
    A test that travels itself (``time_machine.travel``) still can: travel nests. To try the
    marked tests at other instants, name them: ``HASHHUB_TEST_CLOCK=2026-03-16T00:00:30Z,
    2026-12-31T23:59:30Z make test PYTEST_ARGS="-m clock"``.
    """
    instant = getattr(request, "param", None)
    if instant is None:
        yield
        return
    with time_machine.travel(instant, tick=True):
        yield
