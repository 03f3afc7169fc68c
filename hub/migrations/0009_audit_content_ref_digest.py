"""Audit events no longer carry a platform's ``content_ref`` (hub.retention): events written
before keep a keyed digest of it in its place, like every event written since.

The audit log is append-only (0002): this one rewrite lifts the trigger inside the migration's
transaction and puts it back before commit.
"""

from typing import Any

from django.db import migrations
from django.utils.crypto import salted_hmac

SALT = "hashhub.audit.digest"  # hub.retention.AUDIT_DIGEST_SALT, frozen here


def _digest(value: str) -> str:
    return salted_hmac(SALT, value, algorithm="sha256").hexdigest()[:32]


def _cleaned(metadata: Any) -> Any:
    if isinstance(metadata, dict):
        out = {}
        for key, value in metadata.items():
            if key == "content_ref":
                out["content_ref_digest"] = _digest(str(value)) if value else ""
            else:
                out[key] = _cleaned(value)
        return out
    if isinstance(metadata, list):
        return [_cleaned(item) for item in metadata]
    return metadata


def forwards(apps: Any, schema_editor: Any) -> None:
    AuditEvent = apps.get_model("hub", "AuditEvent")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ALTER TABLE hub_auditevent DISABLE TRIGGER hub_auditevent_append_only")
    rows = AuditEvent.objects.filter(metadata__has_key="content_ref").only("pk", "metadata")
    for event in rows.iterator(chunk_size=2000):
        AuditEvent.objects.filter(pk=event.pk).update(metadata=_cleaned(event.metadata))
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("ALTER TABLE hub_auditevent ENABLE TRIGGER hub_auditevent_append_only")


class Migration(migrations.Migration):
    dependencies = [("hub", "0008_apikey_reports_scope")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop, elidable=False)]
