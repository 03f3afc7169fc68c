"""API keys gain an expiry and the ``lists:read`` scope (issue 17).

Reading a list's entries now needs ``lists:read``. A key that holds ``lists:write`` or ``export``
could already read those entries (through its own writes, or the export), so it is granted the
new scope and its integration keeps working; a ``match``-only key loses entry reading. Each key
granted it gets an audit line in its organisation's log, written by this migration.
"""

from __future__ import annotations

from typing import Any

import django.contrib.postgres.fields
from django.db import migrations, models
from django.utils import timezone

GRANTED = "lists:read"
# Keys with either of these could already read the entries that lists:read now guards.
ALREADY_READING = ["lists:write", "export"]
ACTOR = "migration hub.0003 (lists:read for keys that could read entries)"


def grant_lists_read(apps: Any, schema_editor: Any) -> None:
    ApiKey = apps.get_model("hub", "ApiKey")
    AuditEvent = apps.get_model("hub", "AuditEvent")
    keys = ApiKey.objects.filter(scopes__overlap=ALREADY_READING).exclude(
        scopes__contains=[GRANTED]
    )
    now = timezone.now()
    for key in keys.order_by("pk"):
        before = sorted(key.scopes)
        key.scopes = sorted({*key.scopes, GRANTED})
        key.save(update_fields=["scopes"])
        # The historical model bypasses hub.audit.audit (migrations must not import app code);
        # the row has the shape that function writes.
        AuditEvent.objects.create(
            organization_id=key.organization_id,
            actor_type="system",
            actor_label=ACTOR,
            action="api_key.scopes_changed",
            target_type="api_key",
            target_id=key.public_id,
            metadata={"name": key.name, "prefix": key.prefix, "from": before, "to": key.scopes},
            created=now,
        )


def remove_lists_read(apps: Any, schema_editor: Any) -> None:
    # Going back, the scope no longer exists; the audit lines stay (the log is append-only).
    ApiKey = apps.get_model("hub", "ApiKey")
    for key in ApiKey.objects.filter(scopes__contains=[GRANTED]).order_by("pk"):
        key.scopes = [scope for scope in key.scopes if scope != GRANTED]
        key.save(update_fields=["scopes"])


class Migration(migrations.Migration):
    dependencies = [("hub", "0002_audit_append_only")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="expires_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
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
                    ],
                    max_length=16,
                ),
                default=list,
                size=None,
            ),
        ),
        migrations.RunPython(grant_lists_read, remove_lists_read),
    ]
