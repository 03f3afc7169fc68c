from __future__ import annotations

import argparse
import os
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from hub.audit import audit
from hub.management.base import OrgCommand, cli_actor
from hub.models import Membership, Organization, User
from hub.permissions import Role
from hub.services import user_set_staff


class Command(OrgCommand):
    help = (
        "Add a user (created if new, e-mail marked verified) to an organisation with a role. "
        "The password is read from the environment variable named by --password-env."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--email", required=True)
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument(
            "--password-env", default="", help="name of the variable holding the password"
        )
        parser.add_argument(
            "--staff", action=argparse.BooleanOptionalAction, default=None,
            help="also make the user hub staff (--no-staff removes it; neither: unchanged)",
        )  # fmt: skip

    @transaction.atomic
    def handle_org(self, org: Organization, **options: Any) -> None:
        password = None
        if options["password_env"]:
            password = os.environ.get(options["password_env"])
            if not password:
                raise CommandError(
                    f"The environment variable {options['password_env']} is not set."
                )
        email = options["email"].strip().lower()
        user = User.objects.filter(email__iexact=email).first()
        created = user is None
        if user is None:
            user = User.objects.create_user(email, password)
        elif password:
            user.set_password(password)
        user.save()
        if options["staff"] is not None:
            user_set_staff(user=user, staff=options["staff"], actor=cli_actor())
        EmailAddress.objects.update_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        membership, _ = Membership.objects.update_or_create(
            organization=org, user=user, defaults={"role": options["role"]}
        )
        audit(
            actor=cli_actor(),
            action="membership.set_by_command",
            organization=org,
            target_type="membership",
            target_id=membership.public_id,
            metadata={"email": email, "role": options["role"], "new_user": created},
        )
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} {email} as {options['role']} of {org.slug}."))
