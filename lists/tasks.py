from __future__ import annotations

from typing import Any

from django_scopes import scopes_disabled

from hub.celery import ScopedTask, app
from hub.errors import ServiceError
from lists.importing import IMPORT_JOB_TASK, import_job_run
from lists.sources.runs import RUN_TASK, run_execute, scheduled_run

# The services queue these tasks by name (IMPORT_JOB_TASK, RUN_TASK) so that they need not
# import this module: tasks import services, never the other way round.


@app.task(base=ScopedTask, name=IMPORT_JOB_TASK, acks_late=True)
def run_import_job(*, job_id: int, organization_id: int) -> None:
    """Run one bulk upload (organization_id opens its scope; see ScopedTask)."""
    import_job_run(job_id=job_id)


@app.task(name=RUN_TASK, acks_late=True, bind=True, max_retries=30)
def source_run(self: Any, run_id: int) -> None:
    """Run one import of an upstream source (lists.sources.runs.run_execute).

    While another process runs the same source, try again a minute later.
    """
    try:
        with scopes_disabled():
            run_execute(run_id=run_id)
    except ServiceError as error:
        if error.code != "source_busy":
            raise
        raise self.retry(countdown=60) from None


@app.task(name="lists.scheduled_source_run")
def scheduled_source_run(source_id: int) -> str | None:
    """Sent by beat from a source's PeriodicTask: queue its run. Returns the run's public id."""
    with scopes_disabled():
        run = scheduled_run(source_id)
    return run.public_id if run is not None else None
