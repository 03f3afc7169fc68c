"""Demo data for sharing and sources: a community list, a subscription and a sample upstream feed.

Made through the real services with synthetic random hashes (never in production; never real
material). ``--once`` does nothing when the demo feed exists already.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_scopes import scope, scopes_disabled

from hub.management.base import cli_actor
from hub.models import Organization
from lists.models import HashList, Source
from lists.services import EntryInput, entry_add, list_create
from lists.sources.runs import run_create, run_execute
from lists.sources.services import source_create
from sharing.services import anonymous_publish, list_visibility_set, subscription_category_set

FEED_NAME = "Demo hotline feed"


class Command(BaseCommand):
    help = "Seed a shared anonymous list, a category subscription and a demo upstream feed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="skip if the demo feed exists")
        parser.add_argument("--sharer", default="borealis", help="org that shares a list")
        parser.add_argument("--subscriber", default="acme", help="org that subscribes")

    def handle(self, *args: Any, **options: Any) -> None:
        with scopes_disabled():
            if options["once"] and Source.objects.filter(name=FEED_NAME).exists():
                self.stdout.write("Sharing demo data already present; nothing to do.")
                return
            sharer = Organization.objects.filter(slug=options["sharer"]).first()
            subscriber = Organization.objects.filter(slug=options["subscriber"]).first()
        if sharer is None or subscriber is None:
            raise CommandError(
                "not_found: run seeddemo first (the demo organisations are missing)."
            )
        actor = cli_actor()
        with scope(organization=sharer.pk):
            shared = HashList.objects.filter(organization=sharer, name="Community CSAM").first()
            if shared is None:
                shared = list_create(
                    org=sharer,
                    name="Community CSAM",
                    category="csam",
                    description="Synthetic demo hashes shared anonymously with the community.",
                    actor=actor,
                )
            entry_add(
                hash_list=shared,
                items=[EntryInput("pdq", secrets.token_hex(32), ("A1",)) for _ in range(100)],
                actor=actor,
            )
            list_visibility_set(hash_list=shared, visibility="anonymous", actor=actor)
        with scope(organization=subscriber.pk):
            subscription_category_set(org=subscriber, category="csam", subscribed=True, actor=actor)
        # The demo shows the anonymous list at once rather than at the next batch.
        anonymous_publish()
        feed_dir = settings.HASHHUB_FEED_DIR / "demo"
        feed_dir.mkdir(parents=True, exist_ok=True)
        rows = ["type,value,labels"]
        rows += [f"pdq,{secrets.token_hex(32)},B1" for _ in range(200)]
        rows += [f"md5,{secrets.token_hex(16)},A2" for _ in range(100)]
        (feed_dir / "hotline.csv").write_text("\n".join(rows) + "\n")
        with scopes_disabled():
            source = source_create(
                name=FEED_NAME,
                kind="feed",
                config={"file": "demo/hotline.csv", "format": "csv", "mode": "snapshot"},
                access="all",
                description="A synthetic IWF-style CSV snapshot, to show the verified tier.",
                actor=actor,
            )
            run = run_execute(
                run_id=run_create(source=source, trigger="seedsharing", enqueue=False).pk
            )
        self.stdout.write(
            f"Shared {shared.name!r} of {sharer.slug} anonymously; {subscriber.slug} subscribes to "
            f"shared CSAM lists; {FEED_NAME}: {run.status}, {run.added} hashes."
        )
