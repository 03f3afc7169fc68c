"""The Celery app. Tasks that touch tenant data derive from :class:`ScopedTask`."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

DEFAULT_QUEUE = "celery"
WEBHOOKS_QUEUE = "webhooks"
IMPORTS_QUEUE = "imports"
DIGESTS_QUEUE = "digests"

app = Celery("hashhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
# A webhook delivery waits on a customer's server (up to HASHHUB_WEBHOOK_DEADLINE_SECONDS per
# attempt), so deliveries have a queue of their own, consumed by a worker of its own whose
# concurrency (HASHHUB_WEBHOOK_CONCURRENCY) bounds them: a flood of slow receivers then fills that
# worker only, never the one that runs imports, digests and the reconciler (hub/Procfile starts
# one with ``-Q celery``, the other with ``-Q webhooks``). A worker started without ``-Q``
# consumes every queue listed here, so one started the old way (or the test suite's) still
# delivers webhooks rather than leaving them queued for nobody.
app.conf.task_default_queue = DEFAULT_QUEUE
# Each queue with an exchange and routing key of its own: a bare Queue would be bound with the
# default routing key, and a message for one queue would then be copied into both.
app.conf.task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in (DEFAULT_QUEUE, WEBHOOKS_QUEUE, IMPORTS_QUEUE, DIGESTS_QUEUE)
)
# Imports (bulk uploads and source runs, minutes of work each) and the daily digests (a burst of
# e-mail) have queues of their own too, so that an operator can give each its own workers when
# one machine is not enough (README "Production"); hub/Procfile's default worker consumes both.
app.conf.task_routes = {
    "matching.deliver_webhook": {"queue": WEBHOOKS_QUEUE},
    "lists.run_import_job": {"queue": IMPORTS_QUEUE},
    "lists.source_run": {"queue": IMPORTS_QUEUE},
    "matching.send_digests": {"queue": DIGESTS_QUEUE},
}
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
