"""Provenance shown in matches: a list's share-classification switch, a source's verification."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lists", "0015_entry_published_index")]

    operations = [
        # Off for every existing list: an owner shares its classification only by choice.
        migrations.AddField(
            model_name="hashlist",
            name="share_classification",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="source",
            name="verification",
            field=models.TextField(blank=True),
        ),
    ]
