"""The change counter's single row, and the own CSAM and SE lists of organisations made before lists."""

from django.db import migrations
from django.utils import timezone

DEFAULTS = (
    ("CSAM", "csam", "Hashes of child sexual abuse material this organisation has confirmed."),
    ("SE", "se", "Hashes of sexually exploitative content this organisation removes."),
)


def forwards(apps, schema_editor):
    import secrets

    ChangeCounter = apps.get_model("lists", "ChangeCounter")
    Organization = apps.get_model("hub", "Organization")
    HashList = apps.get_model("lists", "HashList")
    ChangeCounter.objects.get_or_create(pk=1, defaults={"last": 0})
    for org in Organization.objects.all():
        for name, category, description in DEFAULTS:
            exists = HashList.objects.filter(
                organization=org, category=category, is_default=True, deleted_at__isnull=True
            ).exists()
            if not exists:
                HashList.objects.create(
                    organization=org,
                    name=name,
                    category=category,
                    description=description,
                    is_default=True,
                    public_id=secrets.token_urlsafe(12),
                    created=timezone.now(),
                )


class Migration(migrations.Migration):
    dependencies = [("lists", "0001_initial"), ("hub", "0002_audit_append_only")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
