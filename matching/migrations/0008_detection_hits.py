"""What each detection matched through, so retractions reach it (matching.retractions)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("matching", "0007_retroactive")]

    operations: list[migrations.operations.base.Operation] = []
