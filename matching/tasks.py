"""Celery tasks of the matching app: each receives ids, loads, and calls one function."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from hub.celery import ScopedTask, app
from matching import digest, engine, kept, retractions, retroactive, review, webhooks


@app.task(base=ScopedTask, name=webhooks.DELIVER_TASK, acks_late=True)
def deliver_webhook(
    *,
    organization_id: int,
    endpoint_id: int,
    detection_id: int | None,
    event: str,
    event_id: str,
    attempt: int = 1,
    review: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: str | None = None,
) -> None:
    """One delivery attempt; a failed attempt enqueues the next one after a growing delay.

    Runs on the ``webhooks`` queue (``task_routes`` in hub.celery, for the first attempt sent by
    name and for these retries alike), so slow receivers only ever hold the webhooks worker.
    """
    done = webhooks.webhook_attempt(
        endpoint_id=endpoint_id,
        detection_id=detection_id,
        event=event,
        event_id=event_id,
        attempt=attempt,
        review=review,
        data=data,
        occurred_at=occurred_at,
    )
    if not done and attempt < settings.HASHHUB_WEBHOOK_MAX_ATTEMPTS:
        deliver_webhook.apply_async(
            kwargs={
                "organization_id": organization_id,
                "endpoint_id": endpoint_id,
                "detection_id": detection_id,
                "event": event,
                "event_id": event_id,
                "attempt": attempt + 1,
                "review": review,
                "data": data,
                "occurred_at": occurred_at,
            },
            countdown=webhooks.retry_delay_seconds(attempt),
        )


@app.task(base=ScopedTask, name="matching.purge_detections")
def purge_detections() -> int:
    """Delete detections older than the retention setting, and expired kept submissions of
    retroactive matching (daily, from beat)."""
    purged = review.detections_purge()
    kept.kept_purge()
    return purged


@app.task(base=ScopedTask, name="matching.purge_webhook_deliveries")
def purge_webhook_deliveries() -> int:
    """Delete webhook delivery logs past their retention, except held detections' (daily)."""
    return webhooks.deliveries_purge()


@app.task(base=ScopedTask, name=retroactive.RUN_TASK)
def retroactive_match() -> int:
    """Match the hashes that entered lists against kept submissions (every minute from beat,
    and after each commit that added entries). Returns the retroactive detections made."""
    return retroactive.retroactive_run()


@app.task(base=ScopedTask, name="matching.send_digests")
def send_digests() -> int:
    """E-mail each organisation's owners and admins yesterday's detections (daily, from beat)."""
    return digest.digests_send()


@app.task(base=ScopedTask, name="matching.write_index_snapshot")
def write_index_snapshot() -> int:
    """Write the match index snapshot that web processes load at start (hourly, from beat)."""
    return engine.snapshot_write()


@app.task(base=ScopedTask, name="matching.reconcile")
def reconcile_state(*, dry_run: bool = False, trigger: str = "daily task") -> int:
    """Check (and repair, unless ``dry_run``) the hub's derived state: daily from beat, or when
    staff ask on the health page. Returns the drift found."""
    from hub.audit import Actor
    from matching.reconcile import reconcile

    run = reconcile(dry_run=dry_run, actor=Actor(system="reconciler"), trigger=trigger)
    return run.drift


@app.task(base=ScopedTask, name=retractions.RUN_TASK)
def run_retractions() -> int:
    """Flag the detections that removals since the last run retracted (every minute, from beat,
    and queued after a removal commits)."""
    return retractions.retractions_run_queued()
