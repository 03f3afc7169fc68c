# The labels index covers live entries only (the label filter shows nothing else), so that a
# removal, which writes a new row version, adds nothing to it. Built and dropped concurrently:
# on a large entries table neither step blocks imports or edits.

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lists", "0008_sourcerecord_no_fk_constraints"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="entry",
            index=django.contrib.postgres.indexes.GinIndex(
                condition=models.Q(("removed_seq__isnull", True)),
                fields=["labels"],
                name="entry_live_labels_gin",
            ),
        ),
        RemoveIndexConcurrently(
            model_name="entry",
            name="entry_labels_gin",
        ),
    ]
