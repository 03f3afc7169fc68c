"""Source schedules: each scheduled source has a django-celery-beat PeriodicTask (an interval or
a crontab in UTC) that beat's database scheduler reads, kept in step with the source's settings;
the task it sends queues a run unless one is pending."""

from __future__ import annotations

import datetime as dt
import importlib
import io
import json
from typing import Any

import pytest
import time_machine
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from django_celery_beat.schedulers import DatabaseScheduler

from hub.audit import Actor
from hub.celery import app
from hub.errors import ServiceError
from lists.models import ImportRun, Source
from lists.sources.schedules import next_run_after
from lists.sources.services import source_create, source_update
from lists.tasks import scheduled_source_run

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")
# A Wednesday and the Thursday after it: weekdays, as the crontab "30 2 * * mon-fri" wants.
WEDNESDAY = dt.date(2026, 3, 18)
THURSDAY = dt.date(2026, 3, 19)


def at(day: dt.date, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute, second), tzinfo=dt.UTC)


def new_source(name: str = "Nightly feed", **kwargs: Any) -> Source:
    kwargs.setdefault("kind", "feed")
    kwargs.setdefault("config", {"url": "https://feeds.example.org/hashes.csv"})
    return source_create(name=name, actor=SYSTEM, **kwargs)


def task_of(source: Source) -> PeriodicTask:
    source.refresh_from_db()
    assert source.periodic_task_id is not None
    return PeriodicTask.objects.select_related("interval", "crontab").get(
        pk=source.periodic_task_id
    )


def beat_entries() -> dict[str, Any]:
    """What beat's database scheduler would run, read as beat reads it."""
    return dict(DatabaseScheduler(app=app, lazy=True).all_as_schedule())


def test_an_interval_source_gets_an_enabled_periodic_task_that_beat_reads() -> None:
    source = new_source(interval_minutes=90)
    task = task_of(source)
    assert task.task == "lists.scheduled_source_run"
    assert json.loads(task.kwargs) == {"source_id": source.pk}
    assert task.enabled and task.crontab is None
    assert task.interval is not None
    assert (task.interval.every, task.interval.period) == (90, "minutes")
    entry = beat_entries()[task.name]
    assert entry.task == "lists.scheduled_source_run"
    assert entry.schedule.run_every == dt.timedelta(minutes=90)


def test_a_cron_source_gets_a_crontab_in_utc() -> None:
    # Beat reads a crontab task only near its hour (the next tests): a minute before it.
    with time_machine.travel(at(WEDNESDAY, 2, 29), tick=False):
        source = new_source(cron="  30 2  * * mon-fri ")
        assert source.cron == "30 2 * * mon-fri"  # normalised
        task = task_of(source)
        assert task.interval is None and task.crontab is not None
        crontab = task.crontab
        assert (crontab.minute, crontab.hour, crontab.day_of_month) == ("30", "2", "*")
        assert (crontab.month_of_year, crontab.day_of_week, str(crontab.timezone)) == (
            "*",
            "mon-fri",
            "UTC",
        )
        assert task.name in beat_entries()


@pytest.mark.parametrize(
    ("now", "read"),
    [
        pytest.param((16, 30), False, id="at-16:30-left-out"),
        pytest.param((23, 59), False, id="at-23:59-left-out"),
        pytest.param((0, 0), True, id="at-00:00-read"),  # two hours before its hour
        pytest.param((2, 30), True, id="at-02:30-read"),
        pytest.param((4, 59), True, id="at-04:59-read"),  # two hours after
        pytest.param((5, 0), False, id="at-05:00-left-out"),
    ],
)
def test_beat_reads_a_crontab_task_only_within_two_hours_of_its_hour(
    now: tuple[int, int], read: bool
) -> None:
    """django-celery-beat 2.9's database scheduler leaves out a crontab task whose hour is more
    than two hours from the current one (by Python's clock, in UTC here; hour 4, that of
    celery's own clean-up, it always reads). An upgrade that changes this window fails here,
    and the tests of cron sources must follow it."""
    with time_machine.travel(at(THURSDAY, *now), tick=False):
        task = task_of(new_source(cron="30 2 * * mon-fri"))
        assert (task.name in beat_entries()) is read


def test_beat_sends_a_cron_sources_task_at_its_time() -> None:
    with time_machine.travel(at(WEDNESDAY, 16, 30), tick=False) as clock:
        source = new_source(cron="30 2 * * mon-fri")
        name = task_of(source).name
        assert name not in beat_entries()  # not yet: far from its hour
        clock.move_to(at(THURSDAY, 2, 29, 30))
        entry = beat_entries()[name]  # read as beat reads it, near its hour
        assert entry.task == "lists.scheduled_source_run"
        assert entry.kwargs == {"source_id": source.pk}
        due, wait = entry.is_due()
        assert not due and wait == 30
        clock.move_to(at(THURSDAY, 2, 30))
        assert entry.is_due().is_due  # beat sends it now


def test_a_source_run_only_by_hand_has_no_periodic_task() -> None:
    source = new_source()
    assert source.periodic_task_id is None
    assert not PeriodicTask.objects.filter(task="lists.scheduled_source_run").exists()


def test_changing_the_schedule_or_disabling_follows_on_the_task_and_tells_beat() -> None:
    # At 03:00, the hour of the crontab below, for beat to read it while it is enabled.
    with time_machine.travel(at(WEDNESDAY, 3, 0), tick=True):
        source = new_source(interval_minutes=60)
        first = task_of(source)
        changed_before = PeriodicTasks.last_change()
        source_update(source=source, actor=SYSTEM, interval_minutes=0, cron="0 3 * * *")
        task = task_of(source)
        assert task.pk == first.pk  # the same task, rescheduled
        assert task.interval is None and task.crontab is not None and task.crontab.hour == "3"
        assert source.interval_minutes == 0
        changed_after = PeriodicTasks.last_change()
        assert changed_after is not None and (
            changed_before is None or changed_after > changed_before
        )
        assert task.name in beat_entries()
        source_update(source=source, actor=SYSTEM, enabled=False)
        assert not task_of(source).enabled
        assert task.name not in beat_entries()  # beat leaves a disabled task out
        source_update(source=source, actor=SYSTEM, enabled=True, cron="")
        source.refresh_from_db()
        assert source.periodic_task_id is None
        assert not PeriodicTask.objects.filter(pk=first.pk).exists()


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"cron": "0 2 * *"}, "invalid_cron"),
        ({"cron": "61 2 * * *"}, "invalid_cron"),
        ({"cron": "0 2 * * funday"}, "invalid_cron"),
        ({"cron": "*/0 * * * *"}, "invalid_cron"),
        ({"cron": "0 2 * * *", "interval_minutes": 30}, "two_schedules"),
        ({"interval_minutes": -5}, "invalid_interval"),
    ],
)
def test_bad_schedules_are_refused_with_a_code_and_change_nothing(
    changes: dict[str, Any], code: str
) -> None:
    with pytest.raises(ServiceError) as refused:
        new_source(**changes)
    assert refused.value.code == code
    assert not Source.objects.exists()
    source = new_source(interval_minutes=15)
    with pytest.raises(ServiceError) as refused:
        source_update(source=source, actor=SYSTEM, **changes)
    assert refused.value.code == code
    interval = task_of(source).interval
    assert interval is not None and interval.every == 15


def test_the_scheduled_task_queues_one_run_and_skips_a_disabled_source() -> None:
    source = new_source(interval_minutes=60)
    first = scheduled_source_run(source.pk)
    run = ImportRun.objects.get(source=source)
    assert first == run.public_id and run.trigger == "schedule" and run.status == "queued"
    assert scheduled_source_run(source.pk) == run.public_id  # still pending: no second run
    assert ImportRun.objects.filter(source=source).count() == 1
    source_update(source=source, actor=SYSTEM, enabled=False)
    ImportRun.objects.filter(pk=run.pk).update(status="succeeded")
    assert scheduled_source_run(source.pk) is None
    assert scheduled_source_run(10**9) is None  # a source that is gone
    assert ImportRun.objects.filter(source=source).count() == 1


def test_a_cron_source_is_overdue_once_it_missed_two_runs() -> None:
    source = new_source(cron="0 2 * * *")
    moment = dt.datetime(2026, 11, 20, 3, 0, tzinfo=dt.UTC)
    assert next_run_after(source, moment) == dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)
    hourly = new_source("Hourly feed", interval_minutes=60)
    assert next_run_after(hourly, moment) == moment + dt.timedelta(hours=1)
    assert next_run_after(new_source("By hand"), moment) is None


@pytest.mark.clock
def test_the_staff_pages_set_and_show_a_cron_schedule(staff_client: Client) -> None:
    form = {
        "name": "Nightly feed",
        "kind": "feed",
        "default_category": "csam",
        "access": "granted",
        "interval_minutes": "0",
        "cron": "0 2 * * *",
        "description": "",
        "config": json.dumps({"url": "https://feeds.example.org/hashes.csv"}),
    }
    bad = staff_client.post(reverse("staff_sources"), form | {"cron": "0 25 * * *"})
    assert bad.status_code == 400
    assert "The cron schedule is not valid" in bad.content.decode()
    both = staff_client.post(reverse("staff_sources"), form | {"interval_minutes": "60"})
    assert both.status_code == 400
    assert "not both" in both.content.decode()
    assert not Source.objects.exists()
    assert staff_client.post(reverse("staff_sources"), form).status_code == 302
    source = Source.objects.get()
    assert task_of(source).crontab is not None
    now = timezone.now()
    Source.objects.filter(pk=source.pk).update(
        last_run_at=now, last_success_at=now - dt.timedelta(days=3)
    )
    listing = " ".join(staff_client.get(reverse("staff_sources")).content.decode().split())
    assert "on cron “0 2 * * *” (UTC)" in listing
    assert "overdue" in listing
    page = staff_client.get(reverse("staff_source", args=[source.public_id])).content.decode()
    assert "on cron “0 2 * * *” (UTC)" in page
    settings = {
        "enabled": "on",
        "default_category": "csam",
        "interval_minutes": "45",
        "cron": "",
        "description": "",
        "config": json.dumps({"url": "https://feeds.example.org/hashes.csv"}),
    }
    url = reverse("staff_source", args=[source.public_id])
    assert staff_client.post(url, settings).status_code == 302
    task = task_of(source)
    assert task.crontab is None and task.interval is not None and task.interval.every == 45


def test_addsource_takes_a_cron_schedule() -> None:
    out = io.StringIO()
    call_command(
        "addsource",
        "--name", "Nightly feed", "--kind", "feed", "--url", "https://feeds.example.org/h.csv",
        "--cron", "15 4 * * *",
        stdout=out,
    )  # fmt: skip
    assert "on cron “15 4 * * *” (UTC)" in out.getvalue()
    assert task_of(Source.objects.get()).crontab is not None
    with pytest.raises(CommandError, match="invalid_cron"):
        call_command(
            "addsource",
            "--name", "Other feed", "--kind", "feed", "--url", "https://feeds.example.org/o.csv",
            "--cron", "whenever",
            stdout=io.StringIO(),
        )  # fmt: skip


def test_the_migration_gives_existing_interval_sources_their_task() -> None:
    migration = importlib.import_module("lists.migrations.0012_source_schedules_in_celery_beat")
    scheduled = new_source(interval_minutes=30)
    new_source("By hand")
    PeriodicTask.objects.filter(pk=task_of(scheduled).pk).delete()  # as before the migration
    every_minute = IntervalSchedule.objects.create(every=60, period="seconds")
    PeriodicTask.objects.create(
        name="source-imports-due", task="lists.schedule_sources", interval=every_minute
    )
    migration.tasks_for_scheduled_sources(apps, None)
    task = task_of(scheduled)
    assert task.interval is not None and task.interval.every == 30
    assert json.loads(task.kwargs) == {"source_id": scheduled.pk}
    assert set(PeriodicTask.objects.values_list("name", flat=True)) == {task.name}
