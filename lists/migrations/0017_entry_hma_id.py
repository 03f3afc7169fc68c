"""A stable random 53-bit id per entry for HMA clients (hma/).

The column's database default draws 53 random bits for every new row, whatever inserts it (the ORM
or lists.changes' hand-written statements). PostgreSQL evaluates a volatile default once per row
when it adds the column, so existing entries get their own values as the column is added; the
RunPython step then fills any entry still without one (none, unless the column was added by hand).
"""

from django.db import migrations, models
from django.db.models.expressions import RawSQL

# 53 of the random bits of a version-4 UUID: hex characters 19-32, past its version and variant.
HMA_ID_SQL = (
    "('x' || substr(replace(gen_random_uuid()::text, '-', ''), 19, 14))::bit(56)::bigint >> 3"
)


def fill_missing(apps, schema_editor):
    entry = apps.get_model("lists", "Entry")
    entry._base_manager.filter(hma_id__isnull=True).update(hma_id=RawSQL(HMA_ID_SQL, ()))  # noqa: S611 (a constant)


class Migration(migrations.Migration):
    dependencies = [("lists", "0016_provenance")]

    operations = [
        migrations.AddField(
            model_name="entry",
            name="hma_id",
            field=models.BigIntegerField(
                db_default=RawSQL(HMA_ID_SQL, ()),  # noqa: S611 (a constant)
                null=True,
                unique=True,
            ),
        ),
        migrations.RunPython(fill_missing, migrations.RunPython.noop),
    ]
