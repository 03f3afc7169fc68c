"""Demo data for matching: synthetic hashes in a demo organisation's lists and a month of
detections, made through the real services (never in production; never real material)."""

from __future__ import annotations

import random
import secrets
from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from hub.management.base import OrgCommand, cli_actor
from hub.models import Organization
from lists.models import HashList
from lists.services import EntryInput, entry_add
from matching.models import Detection
from matching.services import match_hashes


def _near(value: str, flips: int, rng: random.Random) -> str:
    number = int(value, 16)
    for bit in rng.sample(range(len(value) * 4), flips):
        number ^= 1 << bit
    return f"{number:0{len(value)}x}"


class Command(OrgCommand):
    help = "Seed random PDQ/MD5 hashes and about a month of detections into an organisation."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--once", action="store_true", help="skip if it has detections")
        parser.add_argument("--days", type=int, default=30)

    def handle_org(self, org: Organization, **options: Any) -> None:
        if options["once"] and Detection.objects.filter(organization=org).exists():
            self.stdout.write("Matching demo data already present; nothing to do.")
            return
        rng = random.Random(2026)  # noqa: S311 - demo data, not security
        actor = cli_actor()
        lists = {
            hl.category: hl for hl in HashList.objects.filter(organization=org, is_default=True)
        }
        stored: dict[str, list[tuple[str, str]]] = {}
        for category, hash_list in lists.items():
            pairs = [("pdq", secrets.token_hex(32)) for _ in range(150)]
            pairs += [("md5", secrets.token_hex(16)) for _ in range(50)]
            entry_add(
                hash_list=hash_list,
                items=[
                    EntryInput(t, v, ("A1",) if category == "csam" else (), "synthetic demo hash")
                    for t, v in pairs
                ],
                actor=actor,
            )
            stored[category] = pairs
        made = 0
        now = timezone.now()
        for day in range(options["days"]):
            for _ in range(rng.randint(0, 6)):
                category = rng.choice(sorted(stored))
                kind, value = rng.choice(stored[category])
                submitted = _near(value, rng.randint(0, 12), rng) if kind == "pdq" else value
                outcome = match_hashes(
                    org=org,
                    items=[{"type": kind, "value": submitted}],
                    actor=actor,
                    content_ref=f"demo-upload-{secrets.token_hex(4)}",
                )
                if outcome.detection is not None:
                    # Spread the demo over past days so the dashboard chart has a shape.
                    when = now - timedelta(days=day, minutes=rng.randint(0, 1439))
                    Detection.objects.filter(pk=outcome.detection.pk).update(created=when)
                    made += 1
        self.stdout.write(self.style.SUCCESS(f"Seeded 400 hashes and {made} detections."))
