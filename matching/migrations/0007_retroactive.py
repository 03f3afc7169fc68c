"""Kept submissions for retroactive matching (matching.retroactive)."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


def start_at_the_present(apps, schema_editor):  # type: ignore[no-untyped-def]
    """The matcher's cursor starts at the change sequence's present: entries that entered lists
    before the feature existed can be news to no kept submission."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT last FROM lists_changecounter WHERE id = 1")
        row = cursor.fetchone()
    cursor_model = apps.get_model("matching", "RetroactiveCursor")
    cursor_model.objects.update_or_create(pk=1, defaults={"after": int(row[0]) if row else 0})


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0006_held_hashes"),
        ("lists", "0002_change_counter_and_default_lists"),
        ("hub", "0002_audit_append_only"),
    ]

    operations = [
        migrations.CreateModel(
            name="KeptSubmission",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("signal_type", models.CharField(max_length=16)),
                ("value", models.BinaryField()),
                ("content_ref", models.CharField(blank=True, max_length=500)),
                ("requested_at", models.DateTimeField()),
                ("expires_at", models.DateTimeField()),
                ("seen_seq", models.BigIntegerField(default=0)),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="hub.organization",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["signal_type", "value"], name="kept_by_value"),
                    models.Index(fields=["expires_at"], name="kept_by_expiry"),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("organization", "signal_type", "value", "content_ref"),
                        name="one_kept_submission",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="KeptCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("kept", models.BigIntegerField(default=0)),
                (
                    "organization",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="hub.organization",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="RetroactiveCursor",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("after", models.BigIntegerField(default=0)),
                ("updated", models.DateTimeField(default=django.utils.timezone.now)),
            ],
        ),
        migrations.CreateModel(
            name="RetroactiveCheck",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("created", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "detection",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
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
                (
                    "kept",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="matching.keptsubmission",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("kept", "hash_list", "hash"), name="one_retroactive_check"
                    )
                ],
            },
        ),
        migrations.RunPython(start_at_the_present, migrations.RunPython.noop),
    ]
