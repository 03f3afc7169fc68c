"""Hub staff status is granted and removed through one audited service, whichever path does it.

Staff approve organisations, add sources, grant entitlements and may look up who owns an
anonymous list, so becoming staff is itself a line in the audit log (with no organisation: it is
the hub's, read by staff), written by ``manage.py createmember --staff``, ``seeddemo`` and
Django's ``createsuperuser`` alike.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django_scopes import scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from hub.services import user_set_staff
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

STAFF_ACTIONS = ("staff.granted", "staff.removed")


def _staff_events() -> list[tuple[str, str, int | None]]:
    """(action, target user's e-mail, organisation id) of every staff grant, oldest first."""
    with scopes_disabled():
        events = AuditEvent.objects.filter(action__in=STAFF_ACTIONS).order_by("pk")
        return [
            (e.action, User.objects.get(pk=int(e.target_id)).email, e.organization_id)
            for e in events
        ]


def _createmember(*flags: str) -> None:
    call_command(
        "createmember", "--org", "org-a", "--email", "ops@example.test", "--role", "viewer",
        *flags, stdout=StringIO(),
    )  # fmt: skip


def test_createmember_staff_grants_it_audited_and_no_staff_removes_it(
    org_a: Organization,
) -> None:
    _createmember("--staff")
    user = User.objects.get(email="ops@example.test")
    assert user.is_staff
    assert _staff_events() == [("staff.granted", "ops@example.test", None)]
    with scopes_disabled():
        event = AuditEvent.objects.get(action="staff.granted")
    assert event.actor_type == "system"
    assert event.actor_label.startswith("manage.py (")
    assert (event.target_type, event.metadata) == ("user", {"email": "ops@example.test"})
    # Already staff, or no flag at all: nothing changes and nothing is written.
    _createmember("--staff")
    _createmember()
    user.refresh_from_db()
    assert user.is_staff
    assert len(_staff_events()) == 1
    _createmember("--no-staff")
    user.refresh_from_db()
    assert not user.is_staff
    assert _staff_events()[-1] == ("staff.removed", "ops@example.test", None)


def test_seeddemo_grants_its_staff_member_through_the_service() -> None:
    call_command("seeddemo", "--once", stdout=StringIO())
    assert User.objects.get(email="staff@example.org").is_staff
    assert _staff_events() == [("staff.granted", "staff@example.org", None)]


def test_seeddemo_removes_staff_from_a_demo_member_who_had_it() -> None:
    UserFactory.create(email="bob@example.org", is_staff=True)
    call_command("seeddemo", stdout=StringIO())
    assert not User.objects.get(email="bob@example.org").is_staff
    assert ("staff.removed", "bob@example.org", None) in _staff_events()


def test_createsuperuser_is_audited_as_a_staff_grant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long enough password 1")
    call_command("createsuperuser", "--noinput", "--email", "root@example.test", stdout=StringIO())
    user = User.objects.get(email="root@example.test")
    assert user.is_staff and user.is_superuser
    assert _staff_events() == [("staff.granted", "root@example.test", None)]


def test_the_service_records_who_granted_it_and_writes_nothing_for_no_change(
    steve: User,
) -> None:
    erin = UserFactory.create(email="erin@example.test")
    actor = Actor(user=steve, ip="203.0.113.4")
    user_set_staff(user=erin, staff=True, actor=actor)
    user_set_staff(user=erin, staff=True, actor=actor)
    user_set_staff(user=erin, staff=False, actor=actor)
    assert _staff_events() == [
        ("staff.granted", "erin@example.test", None),
        ("staff.removed", "erin@example.test", None),
    ]
    with scopes_disabled():
        labels = {e.actor_label for e in AuditEvent.objects.filter(action__in=STAFF_ACTIONS)}
        ips = {e.ip for e in AuditEvent.objects.filter(action__in=STAFF_ACTIONS)}
    assert (labels, ips) == ({"steve@example.test"}, {"203.0.113.4"})
