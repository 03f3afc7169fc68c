"""A real Celery worker process, on the suite's broker and test database, runs a scoped task."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django_scopes import scopes_disabled

from hub.models import AuditEvent
from hub.tasks import worker_check
from tests.factories import OrganizationFactory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.celery
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_runs_a_task_inside_the_organisations_scope() -> None:
    org = OrganizationFactory.create(slug="worker-org")
    db = connection.settings_dict
    env = dict(os.environ)
    user, host, port, name = db["USER"], db["HOST"], db["PORT"], db["NAME"]
    env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{name}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "hub", "worker", "--pool", "solo",
         "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        worker_check.delay(organization_id=org.pk)
        deadline = time.monotonic() + 60
        event = None
        while event is None and time.monotonic() < deadline:
            with scopes_disabled():
                event = AuditEvent.objects.filter(
                    organization=org, action="system.worker_check"
                ).first()
            if worker.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=30)
    assert event is not None, f"the worker did not run the task; its output:\n{output}"
    assert event.actor_label == "celery worker"
    assert event.metadata["database"].startswith("PostgreSQL")
