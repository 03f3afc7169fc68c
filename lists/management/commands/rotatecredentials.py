"""Re-encrypt every credential stored on a source with the newest key of HASHHUB_CREDENTIAL_KEYS.

Key rotation: put a new key first in HASHHUB_CREDENTIAL_KEYS (keep the old ones after it, so
that stored credentials still decrypt), restart, run this, then drop the old keys.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from hub.errors import ServiceError
from hub.management.base import cli_actor
from lists.sources.stored_credentials import credentials_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored source credential with the newest key of "
        "HASHHUB_CREDENTIAL_KEYS (the first); older keys can be removed afterwards. Audited."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rotated, unreadable = credentials_rotate(actor=cli_actor())
        except ServiceError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        self.stdout.write(
            f"Re-encrypted {rotated} stored credential{'s' * (rotated != 1)} with the newest key."
        )
        if unreadable:
            raise CommandError(
                "credential_unreadable: no key in HASHHUB_CREDENTIAL_KEYS opens "
                f"{', '.join(unreadable)}; store them again on their sources' pages."
            )
