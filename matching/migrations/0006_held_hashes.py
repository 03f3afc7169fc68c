"""Hashes held for a jump in their match rate (matching.holds)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import hub.lib.ids


class Migration(migrations.Migration):
    dependencies = [
        ("matching", "0005_issue19_schema"),
        ("lists", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="HashMatchDay",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("hash_id", models.BigIntegerField()),
                ("day", models.DateField()),
                ("matches", models.IntegerField(default=0)),
                ("organizations", models.IntegerField(default=0)),
            ],
            options={
                "indexes": [models.Index(fields=["day"], name="match_day_by_day")],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("hash_id", "day"), name="one_match_day_per_hash"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="HashMatchDigest",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("day", models.DateField()),
                ("hash_id", models.BigIntegerField()),
                ("digest", models.BinaryField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("day", "hash_id", "digest"), name="one_match_digest_per_org_day"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="HeldHash",
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
                ("held_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("day", models.DateField()),
                ("matches", models.IntegerField()),
                ("organizations", models.IntegerField()),
                ("baseline_matches", models.IntegerField()),
                ("baseline_days", models.IntegerField()),
                ("released_at", models.DateTimeField(blank=True, null=True)),
                ("retracted_at", models.DateTimeField(blank=True, null=True)),
                ("ended_by_label", models.CharField(blank=True, max_length=200)),
                ("end_note", models.TextField(blank=True)),
                (
                    "ended_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "hash",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="lists.hash",
                    ),
                ),
            ],
            options={
                "ordering": ("-held_at", "-id"),
                "indexes": [models.Index(fields=["hash", "-held_at"], name="hold_by_hash_time")],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(
                            ("released_at__isnull", True), ("retracted_at__isnull", True)
                        ),
                        fields=("hash",),
                        name="one_open_hold_per_hash",
                    )
                ],
            },
        ),
    ]
