"""The one way a retention purge deletes (hub.retention names the periods; each app's purge
chooses which of its rows are due and which a hold keeps)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django_scopes import scopes_disabled

from hub.audit import SYSTEM, Actor, audit
from hub.models import Organization
from hub.retention import Period

BATCH = 5000


def purge_due(
    due: models.QuerySet[Any],
    *,
    action: str,
    target_type: str,
    cutoff: datetime,
    period: Period,
    batch: int = BATCH,
    actor: Actor = SYSTEM,
) -> int:
    """Delete the rows of ``due`` (a model with an ``organization`` field), ``batch`` at a time,
    each batch in its own transaction with one audit event ``action`` per organisation it
    touched (``purged``, ``older_than``, ``retention_days``). Runs without a tenant scope (from
    beat). Returns how many rows were deleted."""
    purged = 0
    with scopes_disabled():
        while True:
            with transaction.atomic():
                taken = list(due.order_by("pk").values_list("pk", "organization_id")[:batch])
                if not taken:
                    return purged
                due.model.objects.filter(pk__in=[pk for pk, _ in taken]).delete()
                per_org = Counter(org_id for _, org_id in taken)
                orgs = Organization.objects.in_bulk(list(per_org))
                for org_id, count in sorted(per_org.items()):
                    audit(
                        actor=actor,
                        action=action,
                        organization=orgs[org_id],
                        target_type=target_type,
                        metadata={
                            "purged": count,
                            "older_than": cutoff.isoformat(),
                            "retention_days": period.days,
                        },
                    )
            purged += len(taken)
