"""The audit table also refuses TRUNCATE, which skips the row triggers of 0002 altogether."""

from django.db import migrations

SQL = """
CREATE TRIGGER hub_auditevent_no_truncate
    BEFORE TRUNCATE ON hub_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only();
"""

REVERSE = "DROP TRIGGER IF EXISTS hub_auditevent_no_truncate ON hub_auditevent;"


class Migration(migrations.Migration):
    dependencies = [("hub", "0003_apikey_lists_read_and_expiry")]
    operations = [migrations.RunSQL(SQL, REVERSE)]
