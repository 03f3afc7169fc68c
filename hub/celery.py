"""The Celery app. Tasks that touch tenant data derive from :class:`ScopedTask`."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("hashhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class ScopedTask(Task):
    """Runs the task body inside ``scope(organization=<organization_id kwarg>)``.

    Tasks receive ids, not objects (they cross a process boundary); a task without an
    ``organization_id`` runs with scopes disabled and must scope its own queries explicitly.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from django_scopes import scope, scopes_disabled

        organization_id = kwargs.get("organization_id")
        context = scope(organization=organization_id) if organization_id else scopes_disabled()
        with context:
            return super().__call__(*args, **kwargs)
