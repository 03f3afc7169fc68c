"""Kept submissions for retroactive matching (matching.retroactive)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("matching", "0006_held_hashes")]

    operations: list[migrations.operations.base.Operation] = []
