"""The daily digest e-mail: to owners and admins only, with counts and never a hash value."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.models import Organization, User
from hub.permissions import Role
from matching import digest
from matching.models import Detection, DigestSent
from tests.conftest import _member
from tests.matching.test_review import a_match, make_detection, md5, pdq

# The digest's periods are counted back from now: run them at the suite's fixed instants.
pytestmark = [pytest.mark.django_db, pytest.mark.clock]


def html_of(message: mail.EmailMessage) -> str:
    assert isinstance(message, mail.EmailMultiAlternatives)
    [(body, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return str(body)


@pytest.fixture
def everyone_of_a(alice: User, bob: User, org_a: Organization) -> None:
    _member(org_a, "adam@example.test", Role.ADMIN)
    _member(org_a, "anna@example.test", Role.ANALYST)


def test_the_digest_goes_to_owners_and_admins_with_counts_and_no_hashes(
    org_a: Organization, org_b: Organization, charlie: User, everyone_of_a: None
) -> None:
    now = timezone.now()
    submitted = [{"type": "pdq", "value": pdq()}, {"type": "md5", "value": md5()}]
    found = [a_match("own", "csam", name="Secret Incidents"), a_match("verified", "se")]
    detections = [
        make_detection(org_a, created=now - timedelta(hours=1), submitted=submitted, found=found),
        make_detection(org_a, created=now - timedelta(hours=5)),
        make_detection(
            org_a,
            created=now - timedelta(hours=23),
            found=[a_match("community", "se", contributor="Org B")],
            status=Detection.Status.DISMISSED,
        ),
    ]
    make_detection(org_a, created=now - timedelta(hours=25))  # yesterday's digest had it
    make_detection(org_b, created=now - timedelta(hours=2))

    assert digest.digests_send(now=now) == 2
    [to_a] = [m for m in mail.outbox if "Org A" in m.subject]
    [to_b] = [m for m in mail.outbox if "Org B" in m.subject]
    assert sorted(to_a.to) == ["adam@example.test", "alice@example.test"]
    assert to_b.to == ["charlie@example.test"]
    assert to_a.subject == "[HashHub] Org A: 3 detections in the last 24 hours"

    text, html = to_a.body, html_of(to_a)
    assert "3 detections, 2 awaiting review." in text
    assert "  Verified: 1\n  Own: 2\n  Community: 1\n" in text
    assert "  CSAM: 2\n  Sexually exploitative: 2\n" in text
    assert f"{django_settings.SITE_URL}/o/org-a/detections/" in text
    assert f"{django_settings.SITE_URL}/o/org-a/detections/?status=new" in html
    assert "<strong>3</strong> detection" in html
    for detection in detections:
        for item in detection.submitted:
            assert item["value"] not in text and item["value"] not in html
        for result in detection.matches:
            for match in result["matches"]:
                assert match["matched_value"] not in text and match["matched_value"] not in html
    # Nothing of other organisations, nor the names of lists.
    for secret in ("Org B", "Secret Incidents", "Trusted Source"):
        assert secret not in text and secret not in html
    assert "Org A" not in to_b.body and "Org A" not in html_of(to_b)


def test_the_link_points_at_the_review_queue_on_the_site_url(
    org_a: Organization, alice: User, settings: Any
) -> None:
    settings.SITE_URL = "https://hub.example.test"
    make_detection(org_a)
    assert digest.digests_send() == 1
    [message] = mail.outbox
    assert "https://hub.example.test/o/org-a/detections/\n" in message.body
    assert 'href="https://hub.example.test/o/org-a/detections/"' in html_of(message)


def test_no_detections_no_digest(org_a: Organization, alice: User) -> None:
    make_detection(org_a, created=timezone.now() - timedelta(days=2))
    assert digest.digests_send() == 0
    assert mail.outbox == []


def test_unverified_addresses_and_inactive_owners_get_none(
    org_a: Organization, alice: User
) -> None:
    EmailAddress.objects.filter(user=alice).update(verified=False)
    gone = _member(org_a, "olga@example.test", Role.OWNER)
    gone.is_active = False
    gone.save()
    make_detection(org_a)
    assert digest.digests_send() == 0
    assert mail.outbox == []


def test_a_second_run_the_same_day_sends_nothing_and_the_next_day_starts_where_it_ended(
    org_a: Organization, alice: User
) -> None:
    now = timezone.now()
    make_detection(org_a, created=now - timedelta(hours=2))
    assert digest.digests_send(now=now) == 1
    make_detection(org_a, created=now + timedelta(hours=1))  # after the first digest
    assert digest.digests_send(now=now + timedelta(hours=3)) == 0  # a retry, a second beat
    assert len(mail.outbox) == 1

    assert digest.digests_send(now=now + timedelta(days=1)) == 1
    second = mail.outbox[-1]
    assert second.subject == "[HashHub] Org A: 1 detection in the last 24 hours"
    with scopes_disabled():
        periods = list(DigestSent.objects.order_by("until").values_list("since", "until"))
    assert periods == [
        (now - timedelta(hours=24), now),
        (now, now + timedelta(days=1)),
    ]


def test_days_without_a_run_are_carried_into_the_next_digest(
    org_a: Organization, alice: User
) -> None:
    now = timezone.now()
    make_detection(org_a, created=now - timedelta(hours=1))
    assert digest.digests_send(now=now) == 1
    make_detection(org_a, created=now + timedelta(days=1))
    make_detection(org_a, created=now + timedelta(days=2))
    # The task did not run for two days; the third day's digest has both.
    assert digest.digests_send(now=now + timedelta(days=3)) == 1
    message = mail.outbox[-1]
    assert "2 detections since" in message.subject
    assert "2 detections, 2 awaiting review." in message.body


def test_a_failed_send_records_nothing_and_the_next_run_sends_it(
    org_a: Organization, alice: User, org_b: Organization, charlie: User,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    now = timezone.now()
    make_detection(org_a, created=now - timedelta(hours=1))
    make_detection(org_b, created=now - timedelta(hours=1))
    real_send = mail.get_connection().__class__.send_messages

    def flaky(self: Any, messages: list[mail.EmailMessage]) -> int:
        if any("Org A" in m.subject for m in messages):
            raise smtplib.SMTPServerDisconnected("the relay went away")
        return int(real_send(self, messages) or 0)

    monkeypatch.setattr(mail.get_connection().__class__, "send_messages", flaky)
    assert digest.digests_send(now=now) == 1  # org B's still went
    monkeypatch.undo()
    assert digest.digests_send(now=now + timedelta(minutes=5)) == 1
    assert sorted(m.subject.split(":")[0] for m in mail.outbox) == [
        "[HashHub] Org A", "[HashHub] Org B",
    ]  # fmt: skip


def test_a_name_with_a_line_break_neither_breaks_the_subject_nor_stops_the_others(
    org_a: Organization, org_b: Organization, alice: User, charlie: User
) -> None:
    """A CR/LF in a name made the subject header raise BadHeaderError, and every organisation
    after it got no digest (issue 18)."""
    Organization.objects.filter(pk=org_a.pk).update(name="Org A\r\nBcc: someone@example.test")
    now = timezone.now()
    make_detection(org_a, created=now - timedelta(hours=1))
    make_detection(org_b, created=now - timedelta(hours=1))
    assert digest.digests_send(now=now) == 2
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects[0].startswith("[HashHub] Org A Bcc: someone@example.test: 1 detection")
    assert subjects[1].startswith("[HashHub] Org B: 1 detection")
    assert all("\n" not in s and "\r" not in s for s in subjects)
    assert all(m.bcc == [] for m in mail.outbox)
