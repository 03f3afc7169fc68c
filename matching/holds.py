"""A brake on poisoned hashes: a hash whose hub-wide match rate jumps is held (issue 19).

Once matches recommend ``block``, one bad community hash (a blank picture's PDQ, a meme, a
mistaken entry) would block for every subscriber at once. Such a hash shows itself by its match
rate: matched far more often today than on the days before, by many organisations. It is then
*held*: its community matches carry ``held: true`` (so the recommended action is ``review``,
never ``block``), the owners of the community lists holding it and hub staff are e-mailed, and
staff release it or retract it from those lists on the health page (``/staff/health/``).

Counting (one bounded statement per detection, :func:`hold_count_matches`). Each detection
counts once for each distinct stored hash among its community matches (the only ones a hold
changes: counting own and verified matches too would write far more for nothing), in a
:class:`HashMatchDay` row of (hash, UTC day): ``matches`` and ``organizations``. Distinct
organisations are counted by inserting a keyed digest of (day, organisation id) per (day, hash)
into :class:`HashMatchDigest`, insert-or-nothing; a digest that was new adds one. A digest is an
HMAC keyed by the hub's SECRET_KEY with the day in the message: nobody reads an organisation
back from it without the key, the same organisation's digests on two days cannot be paired, and
digests are deleted once their day is over (beat's ``matching.purge_hold_counts``, just after
midnight UTC), so what is kept beyond the day is counts only. (Redis HyperLogLog would expire
on its own, but would count outside the detection's transaction and without exact small
counts, which the organisation minimum below is about; PostgreSQL keeps it in one place.)

The rule (checked in the same statement, only for the hashes just matched). A hash is held when,
today (UTC, so far):

- at least ``HASHHUB_HOLD_MIN_ORGS`` (5) distinct organisations matched it, and
- it was matched at least ``HASHHUB_HOLD_MIN_MATCHES`` (50) times, and
- at least ``HASHHUB_HOLD_RATE_FACTOR`` (20) times its baseline: its matches over the 7 days
  before today divided by 7 (a day without a match counts 0).

So a long-popular hash (a high baseline) is never held for being popular, and a brand-new hash
(baseline 0, where any count is "infinitely" above it) is judged by the minimum count and the
organisation minimum alone: a new listing matched a few times by a few organisations is what a
new listing should do; fifty matches by five organisations on its first day is a jump.

Only a hash held live by a shared community list (open or anonymous) is held, and only its
community matches say ``held: true``: the brake is for what one organisation shares with all.
Verified sources are vetted upstream, and an organisation's own lists are its own judgement;
their matches are left alone. A hash whose hold ended (released or retracted) is not held again
for 7 days, while its baseline catches up with the spike staff already looked at. The request
that trips the rule is answered as it was; every later one sees the hold.

Nothing here records or shows which organisations matched: counts only (in the e-mails and on
the health page too).
"""

from __future__ import annotations

import logging
import smtplib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import BadHeaderError, EmailMessage, get_connection
from django.db import IntegrityError, connection, transaction
from django.http import Http404
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_scopes import scope, scopes_disabled

from hub.audit import Actor, audit
from hub.celery import app
from hub.errors import ServiceError
from hub.models import Organization, User
from lists.hashtypes import get_signal_type
from lists.models import Entry, HashList
from lists.services import EntryInput, entry_remove
from matching.digest import digest_recipients
from matching.models import HashMatchDay, HashMatchDigest, HeldHash

logger = logging.getLogger(__name__)

BASELINE_DAYS = 7
"""The days before today whose matches make a hash's baseline, and how long after a hold ended
the hash is not held again."""
SHARED = (HashList.Visibility.OPEN, HashList.Visibility.ANONYMOUS)
NOTIFY_TASK = "matching.notify_hold"
PURGE_TASK = "matching.purge_hold_counts"
MAX_NOTE = 2000


def _today(now: datetime | None = None) -> date:
    """The UTC day of ``now``: the hub's days are UTC days, whatever TIME_ZONE says."""
    return (now or timezone.now()).astimezone(UTC).date()


def organization_digest(*, org_id: int, day: date) -> bytes:
    """The keyed digest that counts ``org_id`` once among a hash's matchers on ``day``."""
    return salted_hmac(
        "matching.holds.matcher", f"{day.isoformat()}:{org_id}", algorithm="sha256"
    ).digest()[:16]


# --- reading --------------------------------------------------------------------------------------


def held_hash_ids(*, hash_ids: Iterable[int]) -> set[int]:
    """Which of these stored hashes are held now; no query for none (a request without a
    community hit costs nothing more)."""
    wanted = set(hash_ids)
    if not wanted:
        return set()
    return set(
        HeldHash.objects.filter(
            hash_id__in=wanted, released_at__isnull=True, retracted_at__isnull=True
        ).values_list("hash_id", flat=True)
    )


def _community_lists(hash_id: int) -> list[HashList]:
    """The shared (open or anonymous) self-managed lists holding the hash live now."""
    with scopes_disabled():
        list_ids = Entry.objects.filter(hash_id=hash_id, removed_seq__isnull=True).values(
            "hash_list_id"
        )
        return list(
            HashList.objects.filter(
                pk__in=list_ids,
                organization__isnull=False,
                deleted_at__isnull=True,
                visibility__in=SHARED,
            )
            .select_related("organization")
            .order_by("pk")
        )


@dataclass(frozen=True)
class HoldRow:
    """An open hold as the staff health page shows it: counts, and the lists by name only
    (an anonymous list's owner is never shown; revealing it is the audited staff action)."""

    hold: HeldHash
    signal_type: str
    value: str
    baseline_per_day: float
    lists: list[str]


def holds_open() -> list[HoldRow]:
    """Every open hold, newest first, for the staff health page."""
    rows = []
    for hold in HeldHash.objects.filter(
        released_at__isnull=True, retracted_at__isnull=True
    ).select_related("hash"):
        signal_type = get_signal_type(hold.hash.signal_type)
        rows.append(
            HoldRow(
                hold=hold,
                signal_type=signal_type.name,
                value=signal_type.to_text(bytes(hold.hash.value)),
                baseline_per_day=hold.baseline_matches / max(hold.baseline_days, 1),
                lists=[_list_label(hl) for hl in _community_lists(hold.hash_id)],
            )
        )
    return rows


def health_context() -> dict[str, Any]:
    """The staff health page's holds section: the open holds and the rule's settings."""
    return {
        "holds": holds_open(),
        "hold_rule": {
            "min_orgs": settings.HASHHUB_HOLD_MIN_ORGS,
            "min_matches": settings.HASHHUB_HOLD_MIN_MATCHES,
            "rate_factor": settings.HASHHUB_HOLD_RATE_FACTOR,
            "baseline_days": BASELINE_DAYS,
        },
    }


def _list_label(hash_list: HashList) -> str:
    if hash_list.visibility == HashList.Visibility.ANONYMOUS:
        return f"“{hash_list.name}” (anonymous, {hash_list.category})"
    owner = hash_list.organization.name if hash_list.organization else ""
    return f"“{hash_list.name}” ({owner}, {hash_list.category})"


# --- counting and holding -------------------------------------------------------------------------

# One statement per detection: the organisation's digest per hash (new ones say "a new
# matcher"), the day's counts upserted (in hash order, so that two detections lock shared rows
# in one order), and, for the hashes now past both minimums and not held or lately released,
# their baseline. The baseline reads days before today only, which this statement's writes do
# not touch.
_COUNT = """
WITH w AS MATERIALIZED (
    SELECT DISTINCT unnest(%(ids)s::bigint[]) AS hash_id
), fresh AS (
    INSERT INTO {digests} (day, hash_id, digest)
    SELECT %(day)s::date, hash_id, %(digest)s::bytea FROM w ORDER BY hash_id
    ON CONFLICT DO NOTHING
    RETURNING hash_id
), counted AS (
    INSERT INTO {days} AS d (hash_id, day, matches, organizations)
    SELECT w.hash_id, %(day)s::date, 1,
           CASE WHEN w.hash_id IN (SELECT hash_id FROM fresh) THEN 1 ELSE 0 END
      FROM w ORDER BY w.hash_id
    ON CONFLICT (hash_id, day) DO UPDATE
       SET matches = d.matches + 1, organizations = d.organizations + EXCLUDED.organizations
    RETURNING d.hash_id, d.matches, d.organizations
)
SELECT c.hash_id, c.matches, c.organizations,
       (SELECT COALESCE(SUM(b.matches), 0) FROM {days} b
         WHERE b.hash_id = c.hash_id AND b.day >= %(since)s::date AND b.day < %(day)s::date)
  FROM counted c
 WHERE c.organizations >= %(min_orgs)s AND c.matches >= %(min_matches)s
   AND NOT EXISTS (
       SELECT 1 FROM {holds} h
        WHERE h.hash_id = c.hash_id
          AND ((h.released_at IS NULL AND h.retracted_at IS NULL)
               OR h.released_at >= %(quiet)s OR h.retracted_at >= %(quiet)s))
"""


def hold_rule_met(*, matches: int, organizations: int, baseline_matches: int) -> bool:
    """The rule of the module docstring: today's figures against the 7 days before."""
    if organizations < settings.HASHHUB_HOLD_MIN_ORGS:
        return False
    if matches < settings.HASHHUB_HOLD_MIN_MATCHES:
        return False
    # matches >= factor * (baseline / 7), in whole numbers.
    return matches * BASELINE_DAYS >= settings.HASHHUB_HOLD_RATE_FACTOR * baseline_matches


def hold_count_matches(
    *, org: Organization, hash_ids: Iterable[int], now: datetime | None = None
) -> list[HeldHash]:
    """Count one detection of ``org`` that matched these stored hashes, and hold those that
    the rule now says to hold. Call it in the detection's transaction.

    Side effects: one statement upserting today's counts (and ``org``'s digest per hash); for
    a hash that meets the rule and is held live by a shared community list, a :class:`HeldHash`,
    an audit event ``hash_hold.created`` (hub-wide, counts only) and, after commit, the
    e-mails (:func:`hold_notify`, as a Celery task). Returns the new holds.
    """
    ids = sorted(set(hash_ids))
    if not ids:
        return []
    now = now or timezone.now()
    day = _today(now)
    sql = _COUNT.format(
        digests=HashMatchDigest._meta.db_table,
        days=HashMatchDay._meta.db_table,
        holds=HeldHash._meta.db_table,
    )
    params: dict[str, Any] = {
        "ids": ids,
        "day": day,
        "digest": organization_digest(org_id=org.pk, day=day),
        "since": day - timedelta(days=BASELINE_DAYS),
        "min_orgs": settings.HASHHUB_HOLD_MIN_ORGS,
        "min_matches": settings.HASHHUB_HOLD_MIN_MATCHES,
        "quiet": now - timedelta(days=BASELINE_DAYS),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        candidates = cursor.fetchall()
    held = []
    for hash_id, matches, organizations, baseline in candidates:
        if not hold_rule_met(
            matches=matches, organizations=organizations, baseline_matches=int(baseline)
        ):
            continue
        hold = _hold(
            hash_id=hash_id,
            day=day,
            matches=matches,
            organizations=organizations,
            baseline_matches=int(baseline),
            now=now,
        )
        if hold is not None:
            held.append(hold)
    return held


def _hold(
    *,
    hash_id: int,
    day: date,
    matches: int,
    organizations: int,
    baseline_matches: int,
    now: datetime,
) -> HeldHash | None:
    if not _community_lists(hash_id):
        return None
    try:
        # A savepoint: another detection may have held the hash a moment ago.
        with transaction.atomic():
            hold = HeldHash.objects.create(
                hash_id=hash_id,
                held_at=now,
                day=day,
                matches=matches,
                organizations=organizations,
                baseline_matches=baseline_matches,
                baseline_days=BASELINE_DAYS,
            )
    except IntegrityError:
        return None
    audit(
        actor=Actor(system="match-rate holds"),
        action="hash_hold.created",
        organization=None,
        target_type="hash_hold",
        target_id=hold.public_id,
        metadata={
            "matches": matches,
            "organizations": organizations,
            "baseline_matches": baseline_matches,
            "baseline_days": BASELINE_DAYS,
        },
    )
    hold_id = hold.pk
    transaction.on_commit(
        lambda: app.send_task(NOTIFY_TASK, kwargs={"hold_id": hold_id}), robust=True
    )
    return hold


# --- telling the owners and staff -----------------------------------------------------------------


def _staff_recipients() -> list[str]:
    users = User.objects.filter(is_staff=True, is_active=True).values("pk")
    addresses = EmailAddress.objects.filter(user_id__in=users, primary=True, verified=True)
    return sorted({address.email.lower() for address in addresses})


def _figures(hold: HeldHash) -> dict[str, Any]:
    signal_type = get_signal_type(hold.hash.signal_type)
    text = signal_type.to_text(bytes(hold.hash.value))
    return {
        "hold": hold,
        "type": signal_type.name,
        "prefix": text[:12],
        "baseline_per_day": f"{hold.baseline_matches / max(hold.baseline_days, 1):.1f}",
    }


def hold_messages(*, hold: HeldHash) -> list[EmailMessage]:
    """The e-mails about a new hold (not sent): one to the owners and admins of each
    organisation whose shared list holds the hash, naming only its own lists, and one to hub
    staff. Counts only: no message names an organisation that matched, and none names an
    anonymous list's owner. The hash is shown by its first characters only (e-mail leaves the
    hub's access control); the owner's link opens the list filtered to it."""
    figures = _figures(hold)
    by_org: dict[int, list[HashList]] = defaultdict(list)
    community = _community_lists(hold.hash_id)
    for hash_list in community:
        if hash_list.organization_id is not None:
            by_org[hash_list.organization_id].append(hash_list)
    messages = []
    for hash_lists in by_org.values():
        org = hash_lists[0].organization
        assert org is not None  # noqa: S101 - a shared list is an organisation's (filtered above)
        recipients = digest_recipients(org=org)
        if not recipients:
            continue
        links = [
            (
                hash_list.name,
                settings.SITE_URL
                + reverse(
                    "list_detail", kwargs={"org_slug": org.slug, "list_id": hash_list.public_id}
                )
                + f"?prefix={figures['prefix']}",
            )
            for hash_list in hash_lists
        ]
        messages.append(
            EmailMessage(
                subject="[HashHub] A hash in your shared list is held for review",
                body=render_to_string("matching/email/hold_owner.txt", {**figures, "lists": links}),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=recipients,
            )
        )
    staff = _staff_recipients()
    if staff:
        messages.append(
            EmailMessage(
                subject=f"[HashHub] Hash held: {figures['type']} {figures['prefix']}…",
                body=render_to_string(
                    "matching/email/hold_staff.txt",
                    {
                        **figures,
                        "list_count": len(community),
                        "health_url": settings.SITE_URL + reverse("staff_health") + "#holds",
                    },
                ),
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=staff,
            )
        )
    return messages


def hold_notify(*, hold_id: int) -> int:
    """E-mail the owners of the lists holding a new hold's hash and hub staff; returns the
    number of messages sent (none for a hold already ended)."""
    with scopes_disabled():
        hold = HeldHash.objects.select_related("hash").filter(pk=hold_id).first()
        if hold is None or not hold.open:
            return 0
        messages = hold_messages(hold=hold)
    if not messages:
        return 0
    try:
        with get_connection() as mail_connection:
            return int(mail_connection.send_messages(messages) or 0)
    except (OSError, smtplib.SMTPException, BadHeaderError):
        logger.exception("the e-mails about hold %s were not sent", hold.public_id)
        return 0


@app.task(name=NOTIFY_TASK)
def notify_hold(*, hold_id: int) -> int:
    """The e-mails about a new hold, sent after the detection that made it committed."""
    return hold_notify(hold_id=hold_id)


# --- staff: release and retract -------------------------------------------------------------------


def hold_get(*, public_id: str) -> HeldHash:
    """A hold by its public id (staff pages), or 404."""
    hold = HeldHash.objects.select_related("hash").filter(public_id=public_id).first()
    if hold is None:
        raise Http404("No such hold.")
    return hold


def _locked_open(hold: HeldHash) -> HeldHash:
    locked = HeldHash.objects.select_for_update().select_related("hash").get(pk=hold.pk)
    if not locked.open:
        raise ServiceError("hold_ended", "This hold has already been released or retracted.", 409)
    return locked


def _clean_note(note: str) -> str:
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise ServiceError("note_too_long", f"A note takes at most {MAX_NOTE} characters.")
    return note


def _end(hold: HeldHash, actor: Actor, note: str, field: str) -> None:
    setattr(hold, field, timezone.now())
    hold.ended_by = actor.user
    hold.ended_by_label = actor.label[:200]
    hold.end_note = note
    hold.save(update_fields=[field, "ended_by", "ended_by_label", "end_note"])


@transaction.atomic
def hold_release(*, hold: HeldHash, note: str, actor: Actor) -> HeldHash:
    """End a hold: the hash's community matches are no longer held (and block again where the
    organisation's policy says so). Writes an audit event ``hash_hold.released``.

    Raises ServiceError ``hold_ended`` (409) for a hold already ended, ``note_too_long``.
    """
    note = _clean_note(note)
    hold = _locked_open(hold)
    _end(hold, actor, note, "released_at")
    audit(
        actor=actor,
        action="hash_hold.released",
        organization=None,
        target_type="hash_hold",
        target_id=hold.public_id,
        metadata={"note": note},
    )
    return hold


@transaction.atomic
def hold_retract(*, hold: HeldHash, reason: str, actor: Actor) -> int:
    """Remove the held hash from every shared community list holding it, and end the hold.

    Each removal is a tombstone with the reason, through ``lists.services.entry_remove`` (so
    the export carries it and each owner's audit log records it). Verified sources' lists are
    not touched (upstream owns them) nor organisations' private lists (their own judgement).
    Writes an audit event ``hash_hold.retracted``; returns how many lists it was removed from.

    Raises ServiceError ``reason_required``, ``hold_ended`` (409), ``note_too_long``.
    """
    reason = _clean_note(reason)
    if not reason:
        raise ServiceError("reason_required", "Say why the hash is retracted.")
    hold = _locked_open(hold)
    signal_type = get_signal_type(hold.hash.signal_type)
    item = EntryInput(signal_type.name, signal_type.to_text(bytes(hold.hash.value)))
    removed = 0
    for hash_list in _community_lists(hold.hash_id):
        with scope(organization=hash_list.organization_id):
            result = entry_remove(
                hash_list=hash_list,
                items=[item],
                reason=f"Retracted by hub staff after a match-rate hold: {reason}",
                actor=actor,
            )
        removed += result.removed
    _end(hold, actor, reason, "retracted_at")
    audit(
        actor=actor,
        action="hash_hold.retracted",
        organization=None,
        target_type="hash_hold",
        target_id=hold.public_id,
        metadata={"reason": reason, "lists": removed},
    )
    return removed


# --- purging --------------------------------------------------------------------------------------


def hold_counts_purge(*, now: datetime | None = None) -> tuple[int, int]:
    """Delete the digests of days before today and the counts older than the baseline window;
    returns how many of each. Daily from beat, just after midnight UTC."""
    today = _today(now)
    digests, _ = HashMatchDigest.objects.filter(day__lt=today).delete()
    days, _ = HashMatchDay.objects.filter(day__lt=today - timedelta(days=BASELINE_DAYS)).delete()
    return digests, days


@app.task(name=PURGE_TASK)
def purge_hold_counts() -> int:
    """The daily purge of match-rate counts (beat)."""
    digests, days = hold_counts_purge()
    return digests + days
