"""Bring the access log in step with the access rules once, for hubs made before every path did.

Until this release, creating a source and creating an organisation already approved wrote no
grants, so verified sources were matched but never reached the export; deleting a shared list
wrote no revokes. Matching now reads the access log too (``sharing.selectors.matchable_by``), so
the missing grants are appended here, numbered from the change sequence like any other event.

The statement is a frozen copy of the rules at this migration (``sharing.selectors._ACCESS_SQL``),
not an import of the service, so that the migration keeps working whatever the code becomes.
"""

from django.db import migrations

_RULES = """
SELECT sub.id, l.id
  FROM lists_hashlist l
  JOIN hub_organization owner ON owner.id = l.organization_id AND owner.approved
  JOIN hub_organization sub ON sub.approved AND sub.id <> l.organization_id
 WHERE l.deleted_at IS NULL
   AND l.visibility IN ('open', 'anonymous')
   AND (
        EXISTS (SELECT 1 FROM sharing_subscription s
                 WHERE s.organization_id = sub.id AND s.hash_list_id = l.id AND NOT s.excluded)
     OR (EXISTS (SELECT 1 FROM sharing_subscription s
                  WHERE s.organization_id = sub.id AND s.hash_list_id IS NULL
                    AND s.category = l.category)
         AND NOT EXISTS (SELECT 1 FROM sharing_subscription s
                          WHERE s.organization_id = sub.id AND s.hash_list_id = l.id
                            AND s.excluded))
   )
UNION ALL
SELECT sub.id, l.id
  FROM lists_hashlist l
  JOIN lists_source src ON src.id = l.source_id
  JOIN hub_organization sub ON sub.approved
 WHERE l.deleted_at IS NULL
   AND (src.access = 'all'
        OR EXISTS (SELECT 1 FROM sharing_sourceentitlement g
                    WHERE g.source_id = src.id AND g.organization_id = sub.id))
"""

_RECORDED = """
SELECT org_id, list_id FROM (
    SELECT DISTINCT ON (organization_id, hash_list_id)
           organization_id AS org_id, hash_list_id AS list_id, granted
      FROM sharing_accessevent
     ORDER BY organization_id, hash_list_id, seq DESC
) AS latest WHERE granted
"""


def catch_up(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO lists_changecounter (id, last) VALUES (1, 0)"
            " ON CONFLICT (id) DO UPDATE SET last = lists_changecounter.last RETURNING last"
        )
        last = int(cursor.fetchone()[0])
        cursor.execute(_RULES)
        now = set(cursor.fetchall())
        cursor.execute(_RECORDED)
        recorded = set(cursor.fetchall())
        changes = [(pair, True) for pair in sorted(now - recorded)]
        changes += [(pair, False) for pair in sorted(recorded - now)]
        if not changes:
            return
        cursor.execute(
            "INSERT INTO sharing_accessevent (organization_id, hash_list_id, seq, granted, created)"
            " SELECT * , now() FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bool[])",
            [
                [org for (org, _), _ in changes],
                [hash_list for (_, hash_list), _ in changes],
                [last + 1 + i for i in range(len(changes))],
                [granted for _, granted in changes],
            ],
        )
        cursor.execute(
            "UPDATE lists_changecounter SET last = last + %s WHERE id = 1", [len(changes)]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("sharing", "0003_dispute_status_removed"),
        ("lists", "0012_source_schedules_in_celery_beat"),
        ("hub", "0001_initial"),
    ]

    operations = [migrations.RunPython(catch_up, migrations.RunPython.noop)]
