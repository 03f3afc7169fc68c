"""``manage.py publishanonymous``: publish anonymous lists' due changes now, as one batch.

Beat runs the same on its fixed clock (``HASHHUB_ANONYMOUS_PUBLISH_MINUTES``); this is for
operators and scripts that do not want to wait for it.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from sharing.services import anonymous_publish


class Command(BaseCommand):
    help = "Publish the due changes of anonymous lists to other organisations now (one batch)."

    def handle(self, *args: Any, **options: Any) -> None:
        publication = anonymous_publish()
        self.stdout.write(
            f"Published {publication.changes} entry change(s) and "
            f"{len(publication.access)} access change(s) of anonymous lists."
        )
