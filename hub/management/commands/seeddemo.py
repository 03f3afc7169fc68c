from __future__ import annotations

import os
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django_scopes import scope

from hub.management.base import cli_actor
from hub.models import Membership, Organization, User
from hub.permissions import Role
from hub.services import api_key_create, organization_create, user_set_staff

DEMO_PASSWORD = "hashhub-demo-2026"  # noqa: S105 - a documented demo login, not a secret.

ORGS = [
    ("Acme Trust & Safety", "acme", True),
    ("Borealis Platform", "borealis", True),
    ("Cinder Social", "cinder", False),
]
PEOPLE: list[tuple[str, str | None, Role | None, bool]] = [
    ("alice@example.org", "acme", Role.OWNER, False),
    ("bob@example.org", "acme", Role.VIEWER, False),
    ("charlie@example.net", "borealis", Role.OWNER, False),
    ("dana@example.com", "cinder", Role.OWNER, False),
    ("staff@example.org", None, None, True),
]


class Command(BaseCommand):
    help = "Fill an empty hub with demo organisations, people and an API key (never in production)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--once", action="store_true", help="do nothing if the demo is already there"
        )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        if options["once"] and Organization.objects.filter(slug="acme").exists():
            self.stdout.write("Demo data already present; nothing to do.")
            return
        password: str = os.environ.get("HASHHUB_DEMO_PASSWORD") or DEMO_PASSWORD
        actor = cli_actor()
        orgs = {}
        for name, slug, approved in ORGS:
            orgs[slug] = Organization.objects.filter(slug=slug).first() or organization_create(
                name=name, slug=slug, owner=None, actor=actor, approved=approved
            )
        for email, org_slug, role, staff in PEOPLE:
            user = User.objects.filter(email=email).first() or User.objects.create_user(
                email, password
            )
            user_set_staff(user=user, staff=staff, actor=actor)
            EmailAddress.objects.update_or_create(
                user=user, email=email, defaults={"verified": True, "primary": True}
            )
            if org_slug:
                Membership.objects.update_or_create(
                    organization=orgs[org_slug], user=user, defaults={"role": role}
                )
        with scope(organization=orgs["acme"].pk):
            _key, secret = api_key_create(
                org=orgs["acme"],
                name="demo integration",
                scopes=["match", "lists:read", "lists:write", "export"],
                actor=actor,
            )
        self.stdout.write(self.style.SUCCESS("Demo data created."))
        self.stdout.write(f"  logins (password {password}): " + ", ".join(p[0] for p in PEOPLE))
        self.stdout.write(f"  Acme's demo API key (shown once): {secret}")
