from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hub.errors import ServiceError
from hub.management.base import cli_actor
from hub.services import organization_create


class Command(BaseCommand):
    help = (
        "Create an organisation (with its own lists); --approve lets it see shared lists at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", default="")
        parser.add_argument("--approve", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            org = organization_create(
                name=options["name"],
                slug=options["slug"],
                owner=None,
                actor=cli_actor(),
                approved=options["approve"],
            )
        except ServiceError as error:
            raise CommandError(f"{error.code}: {error.message}") from error
        state = "approved" if org.approved else "awaiting approval"
        self.stdout.write(
            self.style.SUCCESS(f"Created organisation {org.name} ({org.slug}), {state}.")
        )
