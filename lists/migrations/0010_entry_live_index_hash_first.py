# The live-entry unique index leads with the hash, and serves every look-up of entries by hash
# (all of them want live entries), so the plain index on the hash goes: one index fewer for each
# import row and each removal to write. The new index is built before the old ones are dropped,
# so that uniqueness is never unguarded, and all three steps run concurrently: on a large
# entries table none blocks imports or edits.

import django.db.models.deletion
from django.db import migrations, models

NEW = "one_live_entry_per_hash_and_list"
OLD = "one_live_entry_per_list_and_hash"
BY_HASH = "lists_entry_hash_id_b5bf948b"  # Django's name for the foreign key's index


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("lists", "0009_entry_labels_gin_live_only"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                # An earlier attempt that failed half-way leaves an invalid index of that name
                # behind: drop it rather than take it for built.
                migrations.RunSQL(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {NEW}", migrations.RunSQL.noop
                ),
                migrations.RunSQL(
                    f"CREATE UNIQUE INDEX CONCURRENTLY {NEW}"
                    " ON lists_entry (hash_id, hash_list_id) WHERE removed_seq IS NULL",
                    f"DROP INDEX CONCURRENTLY IF EXISTS {NEW}",
                ),
                migrations.RunSQL(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {OLD}",
                    f"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS {OLD}"
                    " ON lists_entry (hash_list_id, hash_id) WHERE removed_seq IS NULL",
                ),
                migrations.RunSQL(
                    f"DROP INDEX CONCURRENTLY IF EXISTS {BY_HASH}",
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {BY_HASH} ON lists_entry (hash_id)",
                ),
            ],
            state_operations=[
                migrations.RemoveConstraint(model_name="entry", name=OLD),
                migrations.AlterField(
                    model_name="entry",
                    name="hash",
                    field=models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="entries",
                        to="lists.hash",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="entry",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("removed_seq__isnull", True)),
                        fields=("hash", "hash_list"),
                        name=NEW,
                    ),
                ),
            ],
        ),
    ]
