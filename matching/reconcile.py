"""The reconciler: derived state recomputed from the rules, drift reported and repaired.

DESIGN.md invariant 8 names three derived states, each with one writer kept in step inside the
writer's transaction. This module checks them from the outside:

- the access log the export replays and the match path reads (``sharing.services.access_sync``
  over every pair: a missing grant or revoke is appended, numbered like any other event, so the
  export carries the repair to platforms);
- each list's live counters (``lists.services.list_counts_reconcile``);
- the in-process match index of every process that reported lately, against the database at the
  change number the process reported (``matching.engine``). An index cannot be repaired from
  here; a drifted process is named, and it rebuilds when restarted.

Each run writes a :class:`~matching.models.Reconciliation` row (the staff health page shows the
latest), an audit event, and logs any drift at ERROR.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import Actor, audit
from lists.changes import list_counts_reconcile
from matching.engine import IndexReport, get_engine, live_sizes_at, reports_read
from matching.models import Reconciliation
from sharing.services import access_drift, access_sync

logger = logging.getLogger(__name__)

EXAMPLES = 50
"""How many examples of each kind of drift a run keeps (the counts are always complete)."""


def _index_drift(reports: list[IndexReport]) -> list[dict[str, Any]]:
    expected: dict[int, dict[str, int]] = {}
    drift = []
    for report in reports:
        if report.version not in expected:
            expected[report.version] = live_sizes_at(report.version)
        want = expected[report.version]
        if report.sizes != want:
            drift.append({**report.as_dict(), "expected": want})
    return drift


def reconcile(*, dry_run: bool, actor: Actor, trigger: str) -> Reconciliation:
    """Check (and, unless ``dry_run``, repair) the access log, list counters and match indexes.

    Side effects: with repair, access events appended and counters rewritten; always a
    Reconciliation row, an audit event ``hub.reconciled`` and, on drift, an ERROR log line.
    """
    started = timezone.now()
    with scopes_disabled():
        drift = access_drift() if dry_run else access_sync()
        grants, revokes = drift.grants, drift.revokes
        counters = list_counts_reconcile(repair=not dry_run)
    # This process's own index, synced now, and the latest figures of every other process.
    own = get_engine().state()
    reports = [own, *(r for r in reports_read() if r.process != own.process)]
    indexes = _index_drift(reports)
    details: dict[str, Any] = {
        "access_grants": [{"org": o, "list": hl} for o, hl in grants[:EXAMPLES]],
        "access_revokes": [{"org": o, "list": hl} for o, hl in revokes[:EXAMPLES]],
        "counters": [c.as_dict() for c in counters[:EXAMPLES]],
        "indexes": [r.as_dict() for r in reports],
        "index_drift": indexes,
    }
    with transaction.atomic():
        run = Reconciliation.objects.create(
            started_at=started,
            finished_at=timezone.now(),
            dry_run=dry_run,
            trigger=trigger[:200],
            access_grants=len(grants),
            access_revokes=len(revokes),
            counter_drift=len(counters),
            index_drift=len(indexes),
            details=details,
        )
        audit(
            actor=actor,
            action="hub.reconciled",
            organization=None,
            target_type="reconciliation",
            target_id=str(run.pk),
            metadata={
                "dry_run": dry_run,
                "access_grants": run.access_grants,
                "access_revokes": run.access_revokes,
                "counter_drift": run.counter_drift,
                "index_drift": run.index_drift,
            },
        )
    if run.drift:
        logger.error(
            "reconciler found drift (%s): %s missing grants, %s missing revokes, "
            "%s lists with wrong counters, %s processes with a wrong index%s",
            "dry run" if dry_run else "repaired",
            run.access_grants,
            run.access_revokes,
            run.counter_drift,
            run.index_drift,
            "" if not indexes else ": " + ", ".join(d["process"] for d in indexes),
        )
    return run


def reconciliation_latest() -> Reconciliation | None:
    return Reconciliation.objects.first()
