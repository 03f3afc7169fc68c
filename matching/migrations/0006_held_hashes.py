"""Hashes held for a jump in their match rate (matching.holds)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("matching", "0005_issue19_schema")]

    operations: list[migrations.operations.base.Operation] = []
