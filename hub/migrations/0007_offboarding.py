"""Organisation offboarding: leaving or deleting an organisation, with a grace period."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("hub", "0006_apikey_review_scope")]

    # Nullable columns without defaults: PostgreSQL adds them without rewriting the table, so this
    # migration is safe to run while the old code serves (README, "Upgrades").
    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="organization",
            name="deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="organization",
            name="purge_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="organization",
            name="purged_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="organization",
            name="erased_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
