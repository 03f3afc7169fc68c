"""The daily e-mail digest: each organisation's owners and admins hear what was detected.

One message per organisation that had detections in the last 24 hours, in text and HTML. It
carries counts only (by tier, by category, how many await review) and a link to the review
queue: never a hash value, a list name or another organisation's name, because e-mail leaves
the hub's access control.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import BadHeaderError, EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.models import Membership, Organization
from hub.permissions import Role
from lists.models import HashList
from matching.models import Detection, DigestSent
from matching.review import TIERS

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
"""The period of a digest after a day like any other."""
MAX_WINDOW = timedelta(days=7)
"""The longest period a digest covers when days went by without one (the task did not run)."""
MIN_GAP = timedelta(hours=20)
"""A digest goes to an organisation at most once in this long: a second run the same day (a
retry, a second beat) sends nothing twice."""
RECIPIENT_ROLES = (Role.OWNER, Role.ADMIN)


@dataclass
class DigestCounts:
    """One organisation's detections in the window, counted once per tier and category each has."""

    total: int = 0
    new: int = 0
    by_tier: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)

    def tier_rows(self) -> list[tuple[str, int]]:
        return [(tier.title(), self.by_tier.get(tier, 0)) for tier in TIERS]

    def category_rows(self) -> list[tuple[str, int]]:
        return [(label, self.by_category.get(value, 0)) for value, label in _CATEGORY_LABELS]


_CATEGORY_LABELS = tuple(HashList.Category.choices)


def _counts_by_org(since: datetime, until: datetime) -> dict[int, DigestCounts]:
    aggregates = {
        "total": Count("id"),
        "new": Count("id", filter=Q(status=Detection.Status.NEW)),
        **{f"tier_{t}": Count("id", filter=Q(tiers__contains=[t])) for t in TIERS},
        **{
            f"category_{c}": Count("id", filter=Q(categories__contains=[c]))
            for c, _ in _CATEGORY_LABELS
        },
    }
    rows = (
        Detection.objects.filter(created__gte=since, created__lt=until)
        .values("organization_id")
        .annotate(**aggregates)
        .order_by("organization_id")
    )
    return {
        row["organization_id"]: DigestCounts(
            total=row["total"],
            new=row["new"],
            by_tier={t: row[f"tier_{t}"] for t in TIERS},
            by_category={c: row[f"category_{c}"] for c, _ in _CATEGORY_LABELS},
        )
        for row in rows
    }


def digest_recipients(*, org: Organization) -> list[str]:
    """The verified primary e-mail addresses of the organisation's active owners and admins."""
    user_ids = Membership.objects.filter(
        organization=org, role__in=RECIPIENT_ROLES, user__is_active=True
    ).values("user_id")
    addresses = EmailAddress.objects.filter(user_id__in=user_ids, primary=True, verified=True)
    return sorted({address.email.lower() for address in addresses})


def digest_message(
    *,
    org: Organization,
    counts: DigestCounts,
    recipients: list[str],
    until: datetime,
    since: datetime | None = None,
) -> EmailMultiAlternatives:
    """One organisation's digest e-mail (not sent), for ``since`` (default: a day) to ``until``."""
    since = since or until - WINDOW
    path = reverse("detections", kwargs={"org_slug": org.slug})
    context = {
        "org": org,
        "counts": counts,
        "until": until,
        "since": since,
        "queue_url": f"{settings.SITE_URL}{path}",
        "new_url": f"{settings.SITE_URL}{path}?status={Detection.Status.NEW}",
    }
    plural = "" if counts.total == 1 else "s"
    period = (
        "in the last 24 hours"
        if until - since <= WINDOW
        else f"since {since.astimezone(UTC):%d %B %Y, %H:%M} UTC"
    )
    # A header is one line: a name with CR/LF (names are free text) raised BadHeaderError,
    # which stopped the digests of every organisation after this one.
    name = " ".join(org.name.split())
    message = EmailMultiAlternatives(
        subject=f"[HashHub] {name}: {counts.total} detection{plural} {period}",
        body=render_to_string("matching/email/digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        # One message per recipient's copy would say the same; owners and admins of one
        # organisation already see each other on its members page.
        to=recipients,
    )
    message.attach_alternative(render_to_string("matching/email/digest.html", context), "text/html")
    return message


def digests_send(*, now: datetime | None = None) -> int:
    """E-mail each organisation with detections since its last digest a digest of them.

    A digest covers the time since the organisation's previous one (at most ``MAX_WINDOW``;
    the 24 hours before ``now`` for a first one), and none goes to an organisation that had one
    in the last ``MIN_GAP``, so a second run the same day sends nothing twice and a day without
    a run is carried into the next. Each organisation is handled in its own transaction,
    holding an advisory lock on it, so two runs at once cannot both send it one. Runs without
    a tenant scope (daily, from beat); sends through Django's mail backend and records a
    :class:`DigestSent`. An organisation without an owner or admin with a verified address gets
    none. Returns the number of e-mails sent.
    """
    until = now or timezone.now()
    sent = 0
    with scopes_disabled():
        candidates = set(
            Detection.objects.filter(created__gte=until - MAX_WINDOW, created__lt=until)
            .values_list("organization_id", flat=True)
            .distinct()
        )
        if not candidates:
            return 0
        with get_connection() as mail_connection:
            for org_id in sorted(candidates):
                try:
                    sent += _send_one(org_id, until, mail_connection)
                except (OSError, smtplib.SMTPException, BadHeaderError):
                    # Nothing was recorded: the next run sends this organisation's period.
                    logger.exception("the digest of organisation %s was not sent", org_id)
    return sent


_LOCK_NAMESPACE = 0x48484447  # "HHDG": the advisory-lock class of digest sending


def _send_one(org_id: int, until: datetime, mail_connection: Any) -> int:
    with transaction.atomic():
        # Held until commit: a second run waits, then finds this digest recorded.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, org_id])
        org = Organization.objects.filter(pk=org_id).first()
        if org is None:
            return 0
        last = DigestSent.objects.filter(organization=org).order_by("-until").first()
        if last is not None and until - last.until < MIN_GAP:
            return 0
        since = max(last.until, until - MAX_WINDOW) if last is not None else until - WINDOW
        counts = _counts_by_org(since, until).get(org.pk)
        if counts is None:
            return 0
        recipients = digest_recipients(org=org)
        if not recipients:
            logger.info("no digest for %s: no owner or admin with a verified e-mail", org.slug)
            return 0
        message = digest_message(
            org=org, counts=counts, recipients=recipients, until=until, since=since
        )
        # Sent before the record is written: a failed send leaves no record, and the next run
        # sends the period again.
        delivered = int(mail_connection.send_messages([message]) or 0)
        DigestSent.objects.create(
            organization=org,
            since=since,
            until=until,
            detections=counts.total,
            recipients=len(recipients),
        )
        return delivered
