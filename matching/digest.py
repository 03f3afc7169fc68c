"""The daily e-mail digest: each organisation's owners and admins hear what was detected.

One message per organisation that had detections in the last 24 hours, in text and HTML. It
carries counts only (by tier, by category, how many await review) and a link to the review
queue: never a hash value, a list name or another organisation's name, because e-mail leaves
the hub's access control.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import Count, Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.models import Membership, Organization
from hub.permissions import Role
from lists.models import HashList
from matching.models import Detection
from matching.review import TIERS

logger = logging.getLogger(__name__)

WINDOW = timedelta(hours=24)
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
    *, org: Organization, counts: DigestCounts, recipients: list[str], until: datetime
) -> EmailMultiAlternatives:
    """The digest e-mail of one organisation (not sent)."""
    path = reverse("detections", kwargs={"org_slug": org.slug})
    context = {
        "org": org,
        "counts": counts,
        "until": until,
        "since": until - WINDOW,
        "queue_url": f"{settings.SITE_URL}{path}",
        "new_url": f"{settings.SITE_URL}{path}?status={Detection.Status.NEW}",
    }
    plural = "" if counts.total == 1 else "s"
    message = EmailMultiAlternatives(
        subject=f"[HashHub] {org.name}: {counts.total} detection{plural} in the last 24 hours",
        body=render_to_string("matching/email/digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        # One message per recipient's copy would say the same; owners and admins of one
        # organisation already see each other on its members page.
        to=recipients,
    )
    message.attach_alternative(render_to_string("matching/email/digest.html", context), "text/html")
    return message


def digests_send(*, now: datetime | None = None) -> int:
    """E-mail each organisation with detections in the 24 hours before ``now`` a digest.

    Runs without a tenant scope (daily, from beat). Side effect: sends the e-mails through
    Django's mail backend. An organisation without an owner or admin with a verified address
    gets none. Returns the number of e-mails sent.
    """
    until = now or timezone.now()
    with scopes_disabled():
        per_org = _counts_by_org(until - WINDOW, until)
        orgs = Organization.objects.in_bulk(list(per_org))
        messages = []
        for org_id, counts in per_org.items():
            org = orgs[org_id]
            recipients = digest_recipients(org=org)
            if not recipients:
                logger.info("no digest for %s: no owner or admin with a verified e-mail", org.slug)
                continue
            messages.append(
                digest_message(org=org, counts=counts, recipients=recipients, until=until)
            )
    if not messages:
        return 0
    with get_connection() as connection:
        return int(connection.send_messages(messages) or 0)
