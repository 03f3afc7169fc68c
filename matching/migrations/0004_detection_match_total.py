"""Detections keep the total of matches before the per-hash cap beside the matches they store."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0003_reconciliation"),
    ]

    operations = [
        migrations.AddField(
            model_name="detection",
            name="match_total",
            field=models.IntegerField(default=0),
        ),
        # Before the cap every match was stored, so the total of an older detection is its count.
        migrations.RunSQL(
            "UPDATE matching_detection SET match_total = match_count",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
