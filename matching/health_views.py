"""The staff health page: the reconciler's latest result, every process's match index, the open
incidents of upstream sources (lists.sources.alerts), and the hashes held for a jump in their
match rate (matching.holds), which staff release or retract."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from hub.audit import Actor
from hub.decorators import staff_required
from hub.errors import ServiceError
from lists.sources import alerts
from matching import holds
from matching.models import Reconciliation

RUNS_SHOWN = 10
INCIDENTS_SHOWN = 50


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
        {
            "latest": latest,
            "runs": runs,
            "indexes": indexes,
            "incidents": list(alerts.incidents_open()[:INCIDENTS_SHOWN]),
            **holds.health_context(),
        },
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


@staff_required
@require_POST
def staff_hold_release(request: HttpRequest, hold_id: str) -> HttpResponse:
    """End a match-rate hold: the hash's community matches are no longer held (audited)."""
    hold = holds.hold_get(public_id=hold_id)
    try:
        holds.hold_release(
            hold=hold, note=request.POST.get("note", ""), actor=Actor.from_request(request)
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The hold was released: its matches are no longer held.")
    return redirect("staff_health")


@staff_required
@require_POST
def staff_hold_retract(request: HttpRequest, hold_id: str) -> HttpResponse:
    """Remove a held hash from the community lists holding it and end the hold (audited)."""
    hold = holds.hold_get(public_id=hold_id)
    try:
        removed = holds.hold_retract(
            hold=hold, reason=request.POST.get("reason", ""), actor=Actor.from_request(request)
        )
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, f"The hash was retracted from {removed} community list{'s' * (removed != 1)}."
        )
    return redirect("staff_health")
