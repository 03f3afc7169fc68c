"""When upstream sources are fetched: each scheduled source has a django-celery-beat PeriodicTask.

A source runs every ``interval_minutes`` or on ``cron`` (five crontab fields, in UTC), or only
by hand when it has neither. :func:`schedule_sync` keeps the source's PeriodicTask (interval or
crontab, enabled with the source) in step with those settings in the caller's transaction, so
beat's database scheduler picks a change up on its next tick; the task it sends,
``lists.scheduled_source_run``, queues a run unless one is pending already.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from hub.errors import ServiceError
from lists.models import Source

SCHEDULED_TASK = "lists.scheduled_source_run"
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
MAX_CRON_LENGTH = 100


def parse_cron(text: str) -> dict[str, str]:
    """The five fields of a crontab line (``"0 2 * * *"``: daily at 02:00 UTC), checked by
    celery's own parser; ``invalid_cron`` names what is wrong."""
    fields = text.split()
    if len(fields) != len(CRON_FIELDS) or len(text) > MAX_CRON_LENGTH:
        raise ServiceError(
            "invalid_cron",
            "A cron schedule is five fields: minute hour day-of-month month day-of-week "
            '(e.g. "0 2 * * *" for 02:00 UTC every day).',
        )
    spec = dict(zip(CRON_FIELDS, fields, strict=True))
    try:
        crontab(**spec)
    except (ValueError, IndexError, KeyError) as error:
        raise ServiceError("invalid_cron", f"The cron schedule is not valid: {error}") from None
    return spec


def check_schedule(interval_minutes: int, cron: str) -> str:
    """The cron line, normalised (single spaces); refuses a negative interval or both at once."""
    if interval_minutes < 0:
        raise ServiceError("invalid_interval", "interval_minutes must be 0 or more.")
    cron = " ".join(cron.split())
    if cron:
        parse_cron(cron)
        if interval_minutes:
            raise ServiceError(
                "two_schedules", "Give either an interval or a cron schedule, not both."
            )
    return cron


def schedule_text(source: Source) -> str:
    """How the source is scheduled, in words ("" when only by hand)."""
    if source.cron:
        return f"on cron “{source.cron}” (UTC)"
    if source.interval_minutes:
        return f"every {source.interval_minutes:,} minutes"
    return ""


def schedule_sync(source: Source) -> None:
    """Make, change or delete the source's PeriodicTask to match its schedule and ``enabled``."""
    task = source.periodic_task
    if not source.interval_minutes and not source.cron:
        if task is not None:
            Source.objects.filter(pk=source.pk).update(periodic_task=None)
            source.periodic_task = None
            task.delete()
        return
    if task is None:
        task = PeriodicTask(name=f"Import of source {source.public_id}", task=SCHEDULED_TASK)
    if source.cron:
        task.crontab, _ = CrontabSchedule.objects.get_or_create(
            **parse_cron(source.cron), timezone="UTC"
        )
        task.interval = None
    else:
        task.interval, _ = IntervalSchedule.objects.get_or_create(
            every=source.interval_minutes, period=IntervalSchedule.MINUTES
        )
        task.crontab = None
    task.kwargs = json.dumps({"source_id": source.pk})
    task.enabled = source.enabled
    task.description = f"Queues an import of the upstream source {source.name}."
    task.save()
    if source.periodic_task_id != task.pk:
        Source.objects.filter(pk=source.pk).update(periodic_task=task)
        source.periodic_task = task


def next_run_after(source: Source, moment: datetime) -> datetime | None:
    """When the schedule runs the source next after ``moment`` (None: only by hand)."""
    if source.cron:
        schedule = crontab(**parse_cron(source.cron))
        start, delta, _ = schedule.remaining_delta(moment.astimezone(UTC), tz=UTC)
        return start + delta
    if source.interval_minutes:
        return moment + timedelta(minutes=source.interval_minutes)
    return None
