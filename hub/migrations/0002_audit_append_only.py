"""The database itself refuses UPDATE and DELETE of audit rows, whatever client connects."""

from django.db import migrations

SQL = """
CREATE FUNCTION hub_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER hub_auditevent_append_only
    BEFORE UPDATE OR DELETE ON hub_auditevent
    FOR EACH ROW EXECUTE FUNCTION hub_audit_append_only();
"""

REVERSE = """
DROP TRIGGER IF EXISTS hub_auditevent_append_only ON hub_auditevent;
DROP FUNCTION IF EXISTS hub_audit_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("hub", "0001_initial")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
