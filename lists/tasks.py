from __future__ import annotations

from hub.celery import ScopedTask, app
from lists.importing import import_job_run


@app.task(base=ScopedTask, name="lists.run_import_job", acks_late=True)
def run_import_job(*, job_id: int, organization_id: int) -> None:
    """Run one bulk upload (organization_id opens its scope; see ScopedTask)."""
    import_job_run(job_id=job_id)
