"""Source incidents: failing or overdue verified sources, alerted once each (operations)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

import hub.lib.ids


class Migration(migrations.Migration):
    dependencies = [("lists", "0017_entry_hma_id")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.CreateModel(
            name="SourceIncident",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "public_id",
                    models.CharField(default=hub.lib.ids.new_public_id, max_length=32, unique=True),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("failing", "Imports fail"),
                            ("overdue", "Overdue by its schedule"),
                        ],
                        max_length=8,
                    ),
                ),
                ("opened_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("resolved_at", models.DateTimeField(blank=True, null=True)),
                ("last_error", models.TextField(blank=True)),
                ("failures", models.PositiveIntegerField(default=0)),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="incidents",
                        to="lists.source",
                    ),
                ),
            ],
            options={
                "ordering": ("-opened_at",),
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("resolved_at__isnull", True)),
                        fields=("source", "kind"),
                        name="lists_one_open_incident_per_source_kind",
                    )
                ],
            },
        ),
    ]
