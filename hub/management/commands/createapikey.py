from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from hub.management.base import OrgCommand, cli_actor
from hub.models import ApiKey, Organization
from hub.services import MAX_API_KEY_DAYS, api_key_create, api_key_expiry_in


class Command(OrgCommand):
    help = "Create an API key for an organisation and print its secret (the only time it is shown)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--scopes", default="match",
            help=f"comma-separated, from: {', '.join(ApiKey.Scope.values)} (default: match)",
        )  # fmt: skip
        parser.add_argument(
            "--expires-days", type=int, default=None, metavar="N",
            help=f"the key expires N days from now (1 to {MAX_API_KEY_DAYS}; default: never)",
        )  # fmt: skip

    def handle_org(self, org: Organization, **options: Any) -> None:
        scopes = [s.strip() for s in options["scopes"].split(",") if s.strip()]
        key, secret = api_key_create(
            org=org,
            name=options["name"],
            scopes=scopes,
            actor=cli_actor(),
            expires_at=api_key_expiry_in(options["expires_days"]),
        )
        expiry = f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC" if key.expires_at else "no expiry"
        self.stderr.write(
            f"Created key {key.name!r} ({', '.join(key.scopes)}; {expiry}) for {org.slug}. "
            "Its secret:"
        )
        self.stdout.write(secret)
