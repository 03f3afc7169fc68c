from __future__ import annotations

from django.db import connection

from hub.audit import Actor, audit
from hub.celery import ScopedTask, app
from hub.models import Organization
from hub.offboarding import organizations_purge_due


@app.task(base=ScopedTask, name="hub.worker_check")
def worker_check(*, organization_id: int) -> dict[str, object]:
    """Prove a worker can reach the database inside an organisation's scope; audits the check."""
    org = Organization.objects.get(pk=organization_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
    audit(
        actor=Actor(system="celery worker"),
        action="system.worker_check",
        organization=org,
        target_type="organization",
        target_id=org.slug,
        metadata={"database": version.split(" on ")[0]},
    )
    return {"organization": org.slug, "database": version}


@app.task(base=ScopedTask, name="hub.purge_deleted_organizations")
def purge_deleted_organizations() -> dict[str, int]:
    """Beat: purge deleted organisations past their grace period, erase entries a day later."""
    return organizations_purge_due()
