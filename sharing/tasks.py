"""Celery tasks of the sharing app: each calls one service."""

from __future__ import annotations

from hub.celery import ScopedTask, app
from sharing import policy, services


@app.task(base=ScopedTask, name="sharing.publish_anonymous")
def publish_anonymous() -> int:
    """Publish anonymous lists' due changes to other organisations, as one batch (on the fixed
    clock of ``HASHHUB_ANONYMOUS_PUBLISH_MINUTES``, from beat). Returns the changes published."""
    publication = services.anonymous_publish()
    return publication.changes + len(publication.access)


@app.task(base=ScopedTask, name="sharing.end_due_disables")
def end_due_disables() -> int:
    """End the entry disables whose date has come, so the export adds their hashes again
    (every minute, from beat). Returns how many it ended."""
    return policy.disables_end_due()
