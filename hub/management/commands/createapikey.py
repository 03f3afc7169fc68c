from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hub.management.base import OrgCommand, cli_actor
from hub.models import ApiKey, Organization
from hub.services import api_key_create


class Command(OrgCommand):
    help = "Create an API key for an organisation and print its secret (the only time it is shown)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", default="match",
            help=f"comma-separated, from: {', '.join(ApiKey.Scope.values)} (default: match)",
        )  # fmt: skip

    def handle_org(self, org: Organization, **options: Any) -> None:
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        key, secret = api_key_create(
            org=org, name=options["name"], scopes=scopes, actor=cli_actor()
        )
        self.stderr.write(
            f"Created key {key.name!r} ({', '.join(key.scopes)}) for {org.slug}. Its secret:"
        )
        self.stdout.write(secret)
