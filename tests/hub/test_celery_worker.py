"""A real Celery worker process, on the suite's broker and test database, runs a scoped task."""

from __future__ import annotations

import subprocess

import pytest
from django_scopes import scopes_disabled

from hub.models import AuditEvent
from hub.tasks import worker_check
from tests.conftest import wait_for
from tests.factories import OrganizationFactory


def _check_event(org_id: int) -> AuditEvent | None:
    with scopes_disabled():
        return AuditEvent.objects.filter(
            organization_id=org_id, action="system.worker_check"
        ).first()


@pytest.mark.celery
def test_a_real_worker_runs_a_task_inside_the_organisations_scope(
    celery_worker_process: subprocess.Popen[str],
) -> None:
    org = OrganizationFactory.create(slug="worker-org")
    worker_check.delay(organization_id=org.pk)
    event = wait_for(lambda: _check_event(org.pk), celery_worker_process)
    assert event is not None, "the worker did not run the task (see its output above)"
    assert event.actor_label == "celery worker"
    assert event.metadata["database"].startswith("PostgreSQL")
