"""Each scheduled source gets a django-celery-beat PeriodicTask of its own (see
lists.source_schedules); the one beat entry that swept every source each minute goes."""

import json

import django.db.models.deletion
from django.db import migrations, models
from django.utils import timezone


def tasks_for_scheduled_sources(apps, schema_editor):
    Source = apps.get_model("lists", "Source")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name="source-imports-due").delete()
    for source in Source.objects.filter(interval_minutes__gt=0):
        every, _ = IntervalSchedule.objects.get_or_create(
            every=source.interval_minutes, period="minutes"
        )
        source.periodic_task = PeriodicTask.objects.create(
            name=f"Import of source {source.public_id}",
            task="lists.scheduled_source_run",
            interval=every,
            kwargs=json.dumps({"source_id": source.pk}),
            enabled=source.enabled,
            description=f"Queues an import of the upstream source {source.name}.",
        )
        source.save(update_fields=["periodic_task"])
    # What PeriodicTask.save() does outside migrations: tell a running beat to reload.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def no_tasks(apps, schema_editor):
    Source = apps.get_model("lists", "Source")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(task="lists.scheduled_source_run").delete()
    Source.objects.update(periodic_task=None)


class Migration(migrations.Migration):
    dependencies = [
        ("django_celery_beat", "0019_alter_periodictasks_options"),
        ("lists", "0011_entry_ids_ordered_by_time"),
    ]

    operations = [
        migrations.AddField(
            model_name="source",
            name="cron",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="source",
            name="periodic_task",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="django_celery_beat.periodictask",
            ),
        ),
        migrations.RunPython(tasks_for_scheduled_sources, no_tasks),
    ]
