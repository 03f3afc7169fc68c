"""The staff health page: the reconciler's latest result and every process's match index."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from hub.decorators import staff_required
from matching.models import Reconciliation

RUNS_SHOWN = 10


@staff_required
@require_GET
def staff_health(request: HttpRequest) -> HttpResponse:
    runs = list(Reconciliation.objects.all()[:RUNS_SHOWN])
    latest = runs[0] if runs else None
    drifted = {str(d.get("process")) for d in _details(latest, "index_drift")}
    # Pre-rendered rows: the template never walks a JSON value's keys (a key named "items"
    # would shadow the method).
    indexes = [
        {
            "process": str(report.get("process", "")),
            "version": report.get("version"),
            "reported_at": str(report.get("reported_at", ""))[:19].replace("T", " "),
            "sizes": ", ".join(f"{k} {v}" for k, v in sorted(report.get("sizes", {}).items())),
            "drifted": str(report.get("process", "")) in drifted,
        }
        for report in _details(latest, "indexes")
    ]
    return render(
        request,
        "matching/staff_health.html",
        {"latest": latest, "runs": runs, "indexes": indexes},
    )


def _details(run: Reconciliation | None, key: str) -> list[dict[str, Any]]:
    value = run.details.get(key, []) if run is not None else []
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


@staff_required
@require_POST
def staff_health_check(request: HttpRequest) -> HttpResponse:
    """Queue a reconciler run now: a dry run (report only) or a repair."""
    from matching.tasks import reconcile_state

    dry_run = request.POST.get("mode") != "repair"
    trigger = f"{request.user.get_username()} on the health page"[:200]
    transaction.on_commit(lambda: reconcile_state.delay(dry_run=dry_run, trigger=trigger))
    messages.info(
        request,
        "A check was queued; reload this page in a minute for its result."
        if dry_run
        else "A repair was queued; reload this page in a minute for its result.",
    )
    return redirect("staff_health")
