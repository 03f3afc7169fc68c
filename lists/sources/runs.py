"""Import runs of upstream sources: queued, executed, finished, and their bookkeeping.

An import run asks the source's adapter (lists.sources.adapters) for pages from the stored
checkpoint on, and applies each page *and* its checkpoint in one transaction. So:

- killing the worker at any moment loses at most the page in flight, whose checkpoint was not
  stored; the next run fetches it again, and applying a page twice gives what applying it once
  gives (an add of a live entry or a removal of an absent one changes nothing);
- a page the adapter cannot read fails the run with its code and leaves the checkpoint where
  the last good page put it;
- one run at a time per source, by a PostgreSQL advisory lock held by the running connection:
  a worker that dies releases it with its connection, and the next run marks the dead one's
  row failed ("abandoned").

Pages are parsed and planned by lists.sources.pages, written by lists.sources.apply, and in a
worker prepared one page ahead by a forked helper process (lists.sources.helper).

Runs are queued as the Celery task named ``RUN_TASK`` (lists.tasks defines it), by name: the
task imports this module, and this module does not import the task.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Generator, Mapping
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django_scopes import scopes_disabled

from hub.audit import SYSTEM, Actor
from hub.celery import app
from hub.errors import ServiceError
from lists.models import FeedUpload, HashList, ImportRun, ImportRunError, Source
from lists.sources import alerts
from lists.sources.adapters import adapter_class
from lists.sources.adapters.base import Credentials
from lists.sources.adapters.http import Http
from lists.sources.apply import apply_prepared
from lists.sources.errors import SourceError
from lists.sources.helper import prepared_in_child, statistics_due, statistics_refresh
from lists.sources.pages import PreparedPage, page_prepare
from lists.sources.services import audit_source, source_lists
from lists.sources.stored_credentials import credentials_decrypted

logger = logging.getLogger(__name__)

RUN_TASK = "lists.source_run"
"""The Celery task that executes a queued run (queued tasks name it: never rename it)."""

MAX_ERRORS_KEPT = 10_000
"""Per-record errors stored per run; the count goes on past it."""

HEARTBEAT_STALE = timedelta(minutes=10)
"""A running run whose worker has not reported for this long has probably died: a new run may
be queued beside it, and the staff pages mark it (the next run resumes from its checkpoint)."""

_LOCK_NAMESPACE = 0x48485352  # "HHSR": our advisory-lock class for source runs


def _enqueue(run: ImportRun) -> None:
    transaction.on_commit(lambda: app.send_task(RUN_TASK, args=(run.pk,)))


@transaction.atomic
def run_create(
    *, source: Source, trigger: str, enqueue: bool = True, actor: Actor | None = None
) -> ImportRun:
    """Queue an import of ``source`` (a Celery task after commit), or return the one pending.

    ``enqueue=False`` makes the row only, for a caller that runs it itself (fetchsource). A new
    run is audited (``source.run_requested``) as ``actor``, or as the trigger.
    """
    Source.objects.select_for_update().filter(pk=source.pk).first()
    pending = (
        ImportRun.objects.filter(
            source=source, status__in=[ImportRun.Status.QUEUED, ImportRun.Status.RUNNING]
        )
        .order_by("created")
        .first()
    )
    if pending is not None and pending.status == ImportRun.Status.RUNNING and _try_lock(source):
        # Nobody holds the source's lock, so the worker of this "running" run is gone.
        _unlock(source)
        ImportRun.objects.filter(pk=pending.pk).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_code="abandoned",
            error_message="The worker running this import stopped; a later run resumes it.",
        )
        pending = None
    if pending is not None and not _is_stale(pending):
        return pending
    run = ImportRun.objects.create(
        source=source, trigger=trigger[:200], checkpoint_before=source.checkpoint
    )
    audit_source(
        source, "source.run_requested", actor or Actor(system=trigger[:200]), run=run.public_id
    )
    if enqueue:
        _enqueue(run)
    return run


def _is_stale(run: ImportRun) -> bool:
    beat = run.heartbeat_at or run.created
    return timezone.now() - beat > HEARTBEAT_STALE


def _try_lock(source: Source) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, source.pk])
        return bool(cursor.fetchone()[0])


def _unlock(source: Source) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, source.pk])


def run_execute(
    *,
    run_id: int,
    http: Http | None = None,
    credentials: Credentials | None = None,
    on_page: Any = None,
) -> ImportRun:
    """Run a queued import in this process (the Celery task's body; fetchsource calls it too).

    Returns the finished run: ``succeeded``, or ``failed`` with ``error_code`` and
    ``error_message``. Another process already running the same source: the run fails with
    ``source_busy`` and changes nothing. ``on_page(run)`` is called after each applied page.
    """
    # What the process holds before the run stays out of the cyclic collector's way until the
    # run ends (its full collections walk all of it; a page makes thousands of objects).
    gc.freeze()
    try:
        with scopes_disabled():
            return _run_execute(run_id, http, credentials, on_page)
    finally:
        gc.unfreeze()


def _run_execute(
    run_id: int, http: Http | None, credentials: Credentials | None, on_page: Any
) -> ImportRun:
    run = ImportRun.objects.select_related("source").get(pk=run_id)
    source = run.source
    if run.status not in (ImportRun.Status.QUEUED, ImportRun.Status.RUNNING):
        return run
    if not _try_lock(source):
        # Someone else is running this source (maybe this very run): leave the row alone.
        raise ServiceError(
            "source_busy", "Another import of this source is running; try again later.", status=409
        )
    client = http or Http()
    try:
        # We hold the lock: any other "running" run of this source belongs to a dead worker.
        ImportRun.objects.filter(source=source, status=ImportRun.Status.RUNNING).exclude(
            pk=run.pk
        ).update(
            status=ImportRun.Status.FAILED,
            finished_at=timezone.now(),
            error_code="abandoned",
            error_message="The worker running this import stopped; a later run resumed it.",
        )
        source.refresh_from_db()
        now = timezone.now()
        run.status = ImportRun.Status.RUNNING
        run.started_at = now
        run.heartbeat_at = now
        run.checkpoint_before = source.checkpoint
        run.save(update_fields=["status", "started_at", "heartbeat_at", "checkpoint_before"])
        Source.objects.filter(pk=source.pk).update(last_run_at=now)
        adapter = adapter_class(source.kind)(
            config=source.config,
            credentials=credentials or Credentials(stored=credentials_decrypted(source)),
            http=client,
            uploaded=_uploaded_records(source),
        )
        lists = source_lists(source)
        pages = adapter.pages(dict(source.checkpoint))
        in_order = connection.in_atomic_block
        prepared: Generator[PreparedPage, None, None]
        if in_order:
            # Inside a caller's transaction (tests): a second connection would not see its
            # rows and could wait on its locks, so everything happens here, in order.
            prepared = (page_prepare(source, page) for page in pages)
        else:
            prepared = prepared_in_child(source, lists, pages)
        try:
            for number, ready in enumerate(prepared):
                if in_order and statistics_due(number):
                    # The helper process does this otherwise, off the critical path.
                    statistics_refresh()
                _apply_page_and_checkpoint(source, lists, run, ready)
                if on_page is not None:
                    on_page(run)
        finally:
            # Stop the helper now, not whenever the generator is collected; it closes the
            # adapter's pages itself (they were only ever iterated there).
            prepared.close()
            close_pages = getattr(pages, "close", None)
            if close_pages is not None and in_order:
                close_pages()
    except SourceError as error:
        return _finish(run, error.code, error.message)
    except Exception:
        logger.exception("import run %s of source %s failed", run.public_id, source.name)
        return _finish(run, "internal_error", "The import stopped on an unexpected error.")
    finally:
        if http is None:
            client.close()
        _unlock(source)
    return _finish(run, "", "")


def _uploaded_records(source: Source) -> dict[str, str]:
    """The records of the staff upload the source's config reads, by upload id."""
    upload_id = source.config.get("upload")
    if not upload_id:
        return {}
    found = FeedUpload.objects.filter(source=source, public_id=str(upload_id)).first()
    return {found.public_id: found.records} if found is not None else {}


def _finish(run: ImportRun, code: str, message: str) -> ImportRun:
    now = timezone.now()
    run.status = ImportRun.Status.FAILED if code else ImportRun.Status.SUCCEEDED
    run.finished_at = now
    run.error_code = code
    run.error_message = message
    source = Source.objects.get(pk=run.source_id)
    run.checkpoint_after = source.checkpoint
    run.save()
    if code:
        Source.objects.filter(pk=source.pk).update(last_error=f"{code}: {message}"[:2000])
        # Staff hear of it once per incident, not at every failed run (lists.sources.alerts).
        alerts.source_run_failed(source=source, error=f"{code}: {message}")
    else:
        Source.objects.filter(pk=source.pk).update(last_success_at=now, last_error="")
        alerts.source_run_succeeded(source=source)
    return run


@transaction.atomic
def _apply_page_and_checkpoint(
    source: Source, lists: Mapping[str, HashList], run: ImportRun, prepared: PreparedPage
) -> None:
    page = prepared.page
    result = apply_prepared(source, lists, prepared, run)
    Source.objects.filter(pk=source.pk).update(checkpoint=page.checkpoint)
    source.checkpoint = page.checkpoint
    kept = ImportRunError.objects.filter(run=run).count()
    room = max(0, MAX_ERRORS_KEPT - kept)
    ImportRunError.objects.bulk_create(
        ImportRunError(run=run, position=pos[:200], code=code[:64], message=message)
        for pos, code, message in result.errors[:room]
    )
    run.pages += 1
    run.seen += result.seen
    run.added += result.added
    run.updated += result.updated
    run.removed += result.removed
    run.rejected += len(result.errors)
    if page.expected is not None:
        run.expected = page.expected
    run.heartbeat_at = timezone.now()
    run.save(
        update_fields=[
            "pages",
            "seen",
            "added",
            "updated",
            "removed",
            "rejected",
            "expected",
            "heartbeat_at",
        ]
    )


def scheduled_run(source_id: int) -> ImportRun | None:
    """What beat's PeriodicTask of a source does: queue a run of it (or find the one pending),
    unless the source is gone or disabled meanwhile."""
    source = Source.objects.filter(pk=source_id, enabled=True).first()
    if source is None:
        return None
    return run_create(source=source, trigger="schedule")


def source_run_now(*, source: Source, actor: Actor = SYSTEM) -> ImportRun:
    """Queue a run for ``actor`` (the staff UI's "Run now"); audited."""
    return run_create(source=source, trigger=actor.label, actor=actor)
