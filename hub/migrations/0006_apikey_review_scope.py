"""API keys gain the ``review`` scope (issue 19): read and review detections through the API.

A new capability, so no existing key is granted it.
"""

from __future__ import annotations

import django.contrib.postgres.fields
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("hub", "0005_organization_quota")]

    operations = [
        migrations.AlterField(
            model_name="apikey",
            name="scopes",
            field=django.contrib.postgres.fields.ArrayField(
                base_field=models.CharField(
                    choices=[
                        ("match", "match"),
                        ("lists:read", "lists:read"),
                        ("lists:write", "lists:write"),
                        ("lists:admin", "lists:admin"),
                        ("export", "export"),
                        ("review", "review"),
                    ],
                    max_length=16,
                ),
                default=list,
                size=None,
            ),
        ),
    ]
