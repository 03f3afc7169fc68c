"""Fixtures: the suite's fixed characters and clients for them.

Alice owns org A, Bob is a viewer in org A, Charlie owns org B and must see nothing of A,
Steve is hub staff (and a member of nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django_scopes import scope

from hub.audit import Actor
from hub.models import ApiKey, Organization, User
from hub.permissions import Role
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


@pytest.fixture
def steve(db: None) -> User:
    return UserFactory.create(email="steve@example.test", is_staff=True)


def login(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="allauth.account.auth_backends.AuthenticationBackend")
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
    return make_key(org_a, ["match", "lists:write", "lists:admin", "export"], name="A's key")


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
