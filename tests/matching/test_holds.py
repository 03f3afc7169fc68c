"""Issue 19, a brake on poisoned hashes: a hash whose hub-wide match rate jumps is held.

Org A (Alice) shares a list holding a hash; matcher organisations subscribe to it and match it.
Hub-wide counts are per stored hash and UTC day; the rule (matching.holds) holds it when at least
HASHHUB_HOLD_MIN_ORGS organisations matched it today, at least HASHHUB_HOLD_MIN_MATCHES times and
at least HASHHUB_HOLD_RATE_FACTOR times its daily average over the 7 days before. The minimum
count is lowered to 10 here so that a test needs few requests; the other two keep their
defaults (5 organisations, 20 times). Every test runs at a fixed instant (time-machine).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization, User
from lists import services as list_services
from lists.models import Entry, Hash, HashList
from matching import holds
from matching.models import Detection, HashMatchDay, HashMatchDigest, HeldHash
from matching.services import match_hashes
from sharing import services as sharing_services
from tests.conftest import login, make_staff
from tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
NOW = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)
TODAY = NOW.date()


@pytest.fixture(autouse=True)
def _frozen_clock() -> Iterator[None]:
    """A fixed instant, far from midnight (autouse: before the other fixtures make rows)."""
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture(autouse=True)
def _rule(settings: Any) -> None:
    settings.HASHHUB_HOLD_MIN_MATCHES = 10
    settings.HASHHUB_HOLD_MIN_ORGS = 5
    settings.HASHHUB_HOLD_RATE_FACTOR = 20


@pytest.fixture(autouse=True)
def sent_tasks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    """Tasks sent to the broker (the hold's e-mails), recorded instead of sent."""
    sent: list[tuple[str, dict[str, Any]]] = []

    def send_task(name: str, args: Any = None, kwargs: Any = None, **options: Any) -> None:
        sent.append((name, kwargs or {}))

    monkeypatch.setattr(holds.app, "send_task", send_task)
    return sent


@pytest.fixture
def value() -> str:
    return secrets.token_hex(16)  # a made-up md5


@pytest.fixture
def shared(org_a: Organization, alice: User, value: str) -> HashList:
    """Org A's open CSAM list holding ``value``."""
    with scope(organization=org_a.pk):
        hash_list = list_services.list_create(
            org=org_a, name="Shared incidents", category="csam", actor=SYSTEM
        )
        list_services.entry_add(
            hash_list=hash_list, items=[list_services.EntryInput("md5", value)], actor=SYSTEM
        )
        sharing_services.list_visibility_set(hash_list=hash_list, visibility="open", actor=SYSTEM)
    return hash_list


def matchers(hash_list: HashList, count: int) -> list[Organization]:
    """``count`` approved organisations subscribed to ``hash_list``."""
    orgs = []
    for n in range(count):
        org = OrganizationFactory.create(name=f"Matcher {n}", slug=f"matcher-{n}")
        with scope(organization=org.pk):
            sharing_services.subscription_list_set(
                org=org, public_id=hash_list.public_id, subscribed=True, actor=SYSTEM
            )
        orgs.append(org)
    return orgs


def match(org: Organization, value: str) -> tuple[list[dict[str, Any]], Detection | None]:
    with scope(organization=org.pk):
        outcome = match_hashes(
            org=org, items=[{"type": "md5", "value": value}], actor=Actor(system=org.slug)
        )
    return outcome.results[0].matches, outcome.detection


def rounds(orgs: list[Organization], value: str, times: int) -> None:
    """Each organisation matches ``value`` ``times`` times, taking turns."""
    for _ in range(times):
        for org in orgs:
            match(org, value)


def hash_id(value: str) -> int:
    return Hash.objects.get(signal_type="md5", value=bytes.fromhex(value)).pk


def baseline(value: str, per_day: int) -> None:
    """``value`` was matched ``per_day`` times on each of the 7 days before today."""
    HashMatchDay.objects.bulk_create(
        HashMatchDay(
            hash_id=hash_id(value),
            day=TODAY - dt.timedelta(days=n),
            matches=per_day,
            organizations=3,
        )
        for n in range(1, 8)
    )


def open_hold(value: str) -> HeldHash | None:
    return HeldHash.objects.filter(
        hash_id=hash_id(value), released_at__isnull=True, retracted_at__isnull=True
    ).first()


def today_counts(value: str) -> tuple[int, int]:
    row = HashMatchDay.objects.get(hash_id=hash_id(value), day=TODAY)
    return row.matches, row.organizations


# --- the rule -------------------------------------------------------------------------------------


def test_a_hash_matched_by_many_orgs_far_above_its_baseline_is_held_and_its_matches_say_held(
    shared: HashList,
    value: str,
    sent_tasks: list[tuple[str, dict[str, Any]]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    baseline(value, per_day=1)  # 1 a day: 20 times that is 20 today
    orgs = matchers(shared, 5)
    rounds(orgs, value, 3)
    for org in orgs[:4]:
        match(org, value)
    assert today_counts(value) == (19, 5)
    assert open_hold(value) is None
    with django_capture_on_commit_callbacks(execute=True):
        # The 20th: trips the rule; answered as before, the e-mails queued once it commits.
        matches, detection = match(orgs[4], value)
    assert [m["held"] for m in matches] == [False]
    assert detection is not None and not detection.held
    hold = open_hold(value)
    assert hold is not None
    assert (hold.matches, hold.organizations, hold.baseline_matches, hold.day) == (20, 5, 7, TODAY)
    assert sent_tasks == [(holds.NOTIFY_TASK, {"hold_id": hold.pk})]
    with scopes_disabled():
        created = AuditEvent.objects.get(action="hash_hold.created")
    assert created.metadata == {
        "matches": 20,
        "organizations": 5,
        "baseline_matches": 7,
        "baseline_days": 7,
    }
    # Every later request sees the hold, and its detection says so.
    matches, detection = match(orgs[0], value)
    assert [(m["list"]["id"], m["held"]) for m in matches] == [(shared.public_id, True)]
    assert detection is not None and detection.held
    assert [m["held"] for m in detection.matches[0]["matches"]] == [True]


def test_the_owners_own_match_of_a_held_hash_is_not_held(
    shared: HashList, org_a: Organization, value: str
) -> None:
    rounds(matchers(shared, 5), value, 2)
    assert open_hold(value) is not None
    matches, _ = match(org_a, value)
    assert [(m["list"]["tier"], m["held"]) for m in matches] == [("own", False)]


def test_below_the_organisation_minimum_nothing_is_held(shared: HashList, value: str) -> None:
    rounds(matchers(shared, 4), value, 10)
    assert today_counts(value) == (40, 4)
    assert open_hold(value) is None
    assert not HeldHash.objects.exists()


def test_a_long_popular_hash_with_a_high_baseline_is_not_held(shared: HashList, value: str) -> None:
    baseline(value, per_day=100)  # 20 times that is 2,000 today
    orgs = matchers(shared, 6)
    rounds(orgs, value, 10)
    assert today_counts(value) == (60, 6)
    assert open_hold(value) is None


def test_a_brand_new_hash_is_judged_by_the_minimum_count(shared: HashList, value: str) -> None:
    orgs = matchers(shared, 5)
    for org in orgs:
        match(org, value)
    for org in orgs[:4]:
        match(org, value)
    assert today_counts(value) == (9, 5)
    assert open_hold(value) is None  # no baseline, but below 10 matches
    match(orgs[4], value)
    assert open_hold(value) is not None


@pytest.mark.parametrize(
    ("matches", "organizations", "baseline_matches", "held"),
    [
        (140, 5, 49, True),  # 7 a day: 20 times is 140
        (139, 5, 49, False),
        (140, 4, 49, False),  # too few organisations
        (9, 9, 0, False),  # below the minimum count
        (10, 5, 0, True),  # new: the minimum count decides
    ],
)
def test_the_rule(matches: int, organizations: int, baseline_matches: int, held: bool) -> None:
    met = holds.hold_rule_met(
        matches=matches, organizations=organizations, baseline_matches=baseline_matches
    )
    assert met is held


def test_matches_of_own_lists_are_not_counted_and_never_held(
    org_a: Organization, value: str
) -> None:
    with scope(organization=org_a.pk):
        own = HashList.objects.get(organization=org_a, category="csam", is_default=True)
        list_services.entry_add(
            hash_list=own, items=[list_services.EntryInput("md5", value)], actor=SYSTEM
        )
    for _ in range(20):
        matches, _ = match(org_a, value)
    assert [(m["list"]["tier"], m["held"]) for m in matches] == [("own", False)]
    assert not HashMatchDay.objects.filter(hash_id=hash_id(value)).exists()
    assert not HeldHash.objects.exists()


def test_a_hash_past_every_figure_but_no_longer_shared_is_not_held(
    shared: HashList, value: str, org_a: Organization
) -> None:
    orgs = matchers(shared, 5)
    rounds(orgs, value, 1)
    assert today_counts(value) == (5, 5)
    HashMatchDay.objects.filter(hash_id=hash_id(value)).update(matches=100)
    # The last community match is counted, then the list stops being shared before the check.
    with scope(organization=org_a.pk):
        sharing_services.list_visibility_set(hash_list=shared, visibility="private", actor=SYSTEM)
    held = holds.hold_count_matches(org=orgs[0], hash_ids=[hash_id(value)])
    assert held == [] and open_hold(value) is None
    assert today_counts(value) == (101, 5)


def test_one_organisation_counts_once_a_day_and_is_kept_only_as_a_digest(
    shared: HashList, value: str
) -> None:
    [org] = matchers(shared, 1)
    for _ in range(3):
        match(org, value)
    assert today_counts(value) == (3, 1)
    [digest] = HashMatchDigest.objects.filter(hash_id=hash_id(value))
    stored = bytes(digest.digest)
    assert stored == holds.organization_digest(org_id=org.pk, day=TODAY)
    assert stored != holds.organization_digest(org_id=org.pk, day=TODAY + dt.timedelta(days=1))
    assert str(org.pk).encode() not in stored and org.slug.encode() not in stored


def test_the_purge_keeps_todays_digests_and_the_baseline_window(
    shared: HashList, value: str
) -> None:
    baseline(value, per_day=1)
    HashMatchDay.objects.create(
        hash_id=hash_id(value), day=TODAY - dt.timedelta(days=8), matches=5, organizations=1
    )
    HashMatchDigest.objects.create(
        hash_id=hash_id(value), day=TODAY - dt.timedelta(days=1), digest=b"x" * 16
    )
    rounds(matchers(shared, 1), value, 1)
    assert holds.hold_counts_purge() == (1, 1)
    assert set(HashMatchDigest.objects.values_list("day", flat=True)) == {TODAY}
    days = set(HashMatchDay.objects.values_list("day", flat=True))
    assert days == {TODAY - dt.timedelta(days=n) for n in range(8)}


# --- telling people ------------------------------------------------------------------------------


def test_the_emails_go_to_the_list_owners_and_staff_with_counts_only(
    shared: HashList, value: str
) -> None:
    staff = make_staff("sam@example.test")
    baseline(value, per_day=1)
    orgs = matchers(shared, 5)
    rounds(orgs, value, 4)
    hold = open_hold(value)
    assert hold is not None
    assert holds.hold_notify(hold_id=hold.pk) == 2
    owner_mail, staff_mail = mail.outbox
    assert owner_mail.to == ["alice@example.test"]
    assert owner_mail.subject == "[HashHub] A hash in your shared list is held for review"
    assert (
        "Across the hub it was matched 20 times today (UTC) by 5 organisations, against 1.0 a "
        "day on average over the 7 days before." in owner_mail.body
    )
    assert f"/lists/{shared.public_id}/?prefix={value[:12]}" in owner_mail.body
    assert staff_mail.to == [staff.email]
    assert staff_mail.subject == f"[HashHub] Hash held: md5 {value[:12]}…"
    assert "Today (UTC) so far: 20 matches by 5 organisations" in staff_mail.body
    assert "It is in 1 shared community list; their owners were told." in staff_mail.body
    assert "/staff/health/#holds" in staff_mail.body
    for message in (owner_mail, staff_mail):
        text = f"{message.subject}\n{message.body}"
        assert value not in text  # the first characters only
        assert "Org A" not in text
        for org in orgs:
            assert org.name not in text and org.slug not in text


def test_no_email_for_a_hold_already_ended(shared: HashList, value: str, steve: User) -> None:
    rounds(matchers(shared, 5), value, 2)
    hold = open_hold(value)
    assert hold is not None
    holds.hold_release(hold=hold, note="", actor=Actor(user=steve))
    assert holds.hold_notify(hold_id=hold.pk) == 0
    assert mail.outbox == []


# --- staff: the health page, release and retract ------------------------------------------------


@pytest.fixture
def held(shared: HashList, value: str) -> HeldHash:
    rounds(matchers(shared, 5), value, 2)
    hold = open_hold(value)
    assert hold is not None
    return hold


@pytest.fixture
def staff_client(steve: User) -> Client:
    return login(steve)  # logged in at the test's instant


def test_the_health_page_lists_open_holds_with_counts_and_buttons(
    staff_client: Client, held: HeldHash, value: str
) -> None:
    page = staff_client.get("/staff/health/")
    assert page.status_code == 200
    text = page.content.decode()
    assert f"md5 <code>{value}</code>" in text
    assert "10 matches by 5 organisations" in text
    assert "“Shared incidents” (Org A, csam)" in text
    assert f"/staff/health/holds/{held.public_id}/release/" in text
    assert f"/staff/health/holds/{held.public_id}/retract/" in text
    assert "Matcher" not in text


def test_the_health_page_never_names_an_anonymous_lists_owner(
    staff_client: Client, held: HeldHash, shared: HashList
) -> None:
    with scopes_disabled():
        HashList.objects.filter(pk=shared.pk).update(visibility="anonymous")
    text = staff_client.get("/staff/health/").content.decode()
    assert "“Shared incidents” (anonymous, csam)" in text
    assert "Org A" not in text


def test_staff_release_a_hold_audited_and_matches_are_no_longer_held(
    staff_client: Client, held: HeldHash, steve: User, shared: HashList, value: str
) -> None:
    response = staff_client.post(
        f"/staff/health/holds/{held.public_id}/release/", {"note": "a real incident"}
    )
    assert response.status_code == 302 and response["Location"] == "/staff/health/"
    held.refresh_from_db()
    assert held.released_at is not None and held.ended_by == steve
    assert held.end_note == "a real incident"
    with scopes_disabled():
        event = AuditEvent.objects.get(action="hash_hold.released")
    assert (event.actor_user, event.target_id, event.organization) == (steve, held.public_id, None)
    matcher = Organization.objects.get(slug="matcher-0")
    matches, detection = match(matcher, value)
    assert [m["held"] for m in matches] == [False]
    assert detection is not None and not detection.held
    # Not held again while its baseline catches up with the spike staff looked at.
    rounds(list(Organization.objects.filter(slug__startswith="matcher-")), value, 3)
    assert open_hold(value) is None
    # A second release finds it ended.
    again = staff_client.post(f"/staff/health/holds/{held.public_id}/release/", follow=True)
    assert "already been released or retracted" in again.content.decode()


def test_staff_retract_a_held_hash_from_the_shared_lists_only(
    staff_client: Client,
    held: HeldHash,
    steve: User,
    shared: HashList,
    value: str,
    org_a: Organization,
) -> None:
    charlie_org = OrganizationFactory.create(name="Private keeper", slug="private-keeper")
    with scope(organization=charlie_org.pk):
        private = HashList.objects.get(organization=charlie_org, category="csam", is_default=True)
        list_services.entry_add(
            hash_list=private, items=[list_services.EntryInput("md5", value)], actor=SYSTEM
        )
    response = staff_client.post(
        f"/staff/health/holds/{held.public_id}/retract/", {"reason": "a meme"}
    )
    assert response.status_code == 302 and response["Location"] == "/staff/health/"
    held.refresh_from_db()
    assert held.retracted_at is not None and held.ended_by == steve
    with scopes_disabled():
        entries = {
            e.hash_list_id: e
            for e in Entry.objects.filter(hash_id=held.hash_id).exclude(
                hash_list__organization__slug__startswith="matcher-"
            )
        }
        removed = entries[shared.pk]
        assert removed.removed_seq is not None
        assert removed.removed_reason == "Retracted by hub staff after a match-rate hold: a meme"
        assert removed.removed_by_user == steve
        assert entries[private.pk].removed_seq is None  # a private list is its owner's
        assert AuditEvent.objects.filter(action="entries.removed", organization=org_a).exists()
        event = AuditEvent.objects.get(action="hash_hold.retracted")
    assert event.actor_user == steve and event.metadata == {"reason": "a meme", "lists": 1}
    matcher = Organization.objects.get(slug="matcher-0")
    assert match(matcher, value)[0] == []


def test_a_retraction_needs_a_reason(
    staff_client: Client, held: HeldHash, shared: HashList
) -> None:
    page = staff_client.post(f"/staff/health/holds/{held.public_id}/retract/", follow=True)
    assert "Say why the hash is retracted." in page.content.decode()
    held.refresh_from_db()
    assert held.open


@pytest.mark.parametrize("action", ["release", "retract"])
def test_non_staff_cannot_release_or_retract(
    alice_client: Client, held: HeldHash, action: str
) -> None:
    response = alice_client.post(
        f"/staff/health/holds/{held.public_id}/{action}/", {"reason": "mine"}
    )
    assert response.status_code == 404
    held.refresh_from_db()
    assert held.open
    with scopes_disabled():
        assert (
            not AuditEvent.objects.filter(action__startswith="hash_hold.")
            .exclude(action="hash_hold.created")
            .exists()
        )


def test_an_unknown_hold_is_404_to_staff(staff_client: Client) -> None:
    assert staff_client.post("/staff/health/holds/nope/release/").status_code == 404
