"""What an organisation may match against: the one place that decides it (DESIGN.md, match path 3).

Today that is the organisation's own lists; community subscriptions (issue 5) and entitled
verified sources (issue 6) extend :func:`lists_matchable_by`, and every caller (the match service,
the export feed, webhooks) follows without change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from hub.models import Organization


@dataclass(frozen=True)
class MatchableList:
    """A list as a match result shows it to the organisation that matched.

    ``contributor`` is None and ``anonymous`` True for an anonymous community list: nothing here
    may name its owner.
    """

    pk: int
    public_id: str
    name: str
    category: str
    tier: str
    contributor: str | None
    anonymous: bool

    def as_dict(self) -> dict[str, Any]:
        """The ``list`` object of a match or export item (API contract v1)."""
        return {
            "id": self.public_id,
            "name": self.name,
            "category": self.category,
            "tier": self.tier,
            "contributor": self.contributor,
            "anonymous": self.anonymous,
        }


def lists_matchable_by(
    *, org: Organization, include_deleted: bool = False
) -> dict[int, MatchableList]:
    """The lists ``org`` matches against, keyed by primary key.

    ``include_deleted`` adds the organisation's deleted lists, whose tombstones the export feed
    must still carry so that a platform matching locally drops their hashes.
    """
    # Every match request asks this, so it is one hand-written statement, not an ORM query. It
    # names the organisation itself: other organisations' lists will be read here once sharing
    # exists, so the caller's scope cannot be what filters it.
    sql = "SELECT id, public_id, name, category FROM lists_hashlist WHERE organization_id = %s"
    if not include_deleted:
        sql += " AND deleted_at IS NULL"
    with connection.cursor() as cursor:
        cursor.execute(sql, [org.pk])
        rows = cursor.fetchall()
    return {
        pk: MatchableList(
            pk=pk,
            public_id=public_id,
            name=name,
            category=category,
            tier="own",
            contributor=org.name,
            anonymous=False,
        )
        for pk, public_id, name, category in rows
    }
