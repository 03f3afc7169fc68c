"""What HashHub's management commands share: resolve the org, open its scope, act as the CLI."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_scopes import scope

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import Organization


def cli_actor() -> Actor:
    """Commands act as the system, labelled with the shell user who ran them."""
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return Actor(system=f"manage.py ({who})")


class OrgCommand(BaseCommand):
    """A command that acts on one organisation (``--org SLUG``) inside its tenant scope."""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--org", required=True, help="the organisation's short name (slug)")

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options.pop("org")
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            raise CommandError(f"No organisation with the short name {slug!r}.")
        with scope(organization=org.pk):
            try:
                self.handle_org(org, **options)
            except ServiceError as error:
                raise CommandError(f"{error.code}: {error.message}") from error

    def handle_org(self, org: Organization, **options: Any) -> None:
        raise NotImplementedError
