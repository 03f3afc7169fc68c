"""Celery tasks of the reports app: each receives ids, loads, and calls one function."""

from __future__ import annotations

from hub.celery import ScopedTask, app
from reports import services


@app.task(base=ScopedTask, name="reports.purge_reports")
def purge_reports() -> int:
    """Delete reports past HASHHUB_REPORT_RETENTION_DAYS that no preservation hold keeps
    (daily, from beat). Returns how many were deleted."""
    return services.reports_purge()
