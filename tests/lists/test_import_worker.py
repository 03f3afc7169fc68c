"""A bulk upload queued through the web UI is run by a real Celery worker process."""

from __future__ import annotations

import re
import secrets
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_scopes import scope

from hub.permissions import Role
from lists.models import HashList, ImportJob
from tests.conftest import _member, login, wait_for
from tests.factories import OrganizationFactory


@pytest.mark.celery
def test_an_uploaded_file_is_applied_by_a_real_worker_with_progress_and_a_report(
    celery_worker_process: subprocess.Popen[str],
) -> None:
    org = OrganizationFactory.create(slug="upload-org")
    client = login(_member(org, "uploader@example.test", Role.ANALYST))
    with scope(organization=org.pk):
        target = HashList.objects.get(organization=org, category="se")
    good = [secrets.token_hex(32) for _ in range(30)]
    body = "\n".join([*good, "not-a-hash", good[0]])
    upload = SimpleUploadedFile("feed.txt", body.encode(), content_type="text/plain")
    response = client.post(
        f"/o/upload-org/lists/{target.public_id}/upload/",
        {"file": upload, "default_type": "pdq"},
    )
    assert response.status_code == 302, response.content[:500]
    match = re.search(r"/imports/([\w-]+)/$", response["Location"])
    assert match is not None
    job_id = match.group(1)

    def finished() -> ImportJob | None:
        with scope(organization=org.pk):
            job = ImportJob.objects.get(public_id=job_id)
        return job if job.status in (ImportJob.Status.DONE, ImportJob.Status.FAILED) else None

    job = wait_for(finished, celery_worker_process)
    assert job is not None and job.status == ImportJob.Status.DONE
    assert (job.added, job.already_present, job.rejected) == (30, 1, 1)
    progress = client.get(f"/o/upload-org/lists/imports/{job_id}/progress/")
    assert "hx-trigger" not in progress.content.decode()  # polling stops once the job is done
    report = client.get(f"/o/upload-org/lists/imports/{job_id}/report.csv").content.decode()
    assert "31,bad_characters" in report
