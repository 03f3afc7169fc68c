"""Provenance shown in matches: a list's share-classification switch, a source's verification."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("lists", "0015_entry_published_index")]

    operations: list[migrations.operations.base.Operation] = []
