"""What each detection matched through, so retractions reach it (matching.retractions)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# The reader starts at the change sequence's present: removals before it cannot concern a
# detection, since no detection recorded its hits before this migration.
CURSOR_START = """
INSERT INTO matching_retractioncursor (id, last_seq, updated)
SELECT 1, COALESCE((SELECT last FROM lists_changecounter WHERE id = 1), 0), now()
"""


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0007_retroactive"),
        ("lists", "0002_change_counter_and_default_lists"),
    ]

    operations = [
        migrations.CreateModel(
            name="DetectionHit",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("published_view", models.BooleanField(default=False)),
                (
                    "detection",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="hits",
                        to="matching.detection",
                    ),
                ),
                (
                    "hash",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="lists.hash",
                    ),
                ),
                (
                    "hash_list",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="lists.hashlist",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["hash_list", "hash"], name="detection_hit_by_entry")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("detection", "hash_list", "hash"),
                        name="one_hit_per_detection_entry",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="RetractionCursor",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("last_seq", models.BigIntegerField(default=0)),
                ("updated", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.RunSQL(CURSOR_START, migrations.RunSQL.noop),
    ]
