"""Demo data for reports: two of the demo organisation's detections confirmed as CSAM, one
reported as a draft and one filed with a (made-up) hotline report id, through the real services
(never in production; never real material: the demo's hashes are random)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from hub.management.base import OrgCommand, cli_actor
from hub.models import Organization
from matching.models import Detection
from matching.review import detection_confirm
from reports.models import Report
from reports.services import report_file, report_open

DEMO_NOTES = "Demo report: synthetic hashes only."


class Command(OrgCommand):
    help = "Confirm two of an organisation's CSAM detections and report them (a draft, a filed)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--once", action="store_true", help="skip if it has reports")

    def handle_org(self, org: Organization, **options: Any) -> None:
        if options["once"] and Report.objects.filter(organization=org).exists():
            self.stdout.write("Report demo data already present; nothing to do.")
            return
        actor = cli_actor()
        candidates = list(
            Detection.objects.filter(
                organization=org,
                status=Detection.Status.NEW,
                categories=["csam"],
                shadow=False,
            ).order_by("-created", "-id")[:2]
        )
        if len(candidates) < 2:
            self.stdout.write("Fewer than two new CSAM detections to report; nothing to do.")
            return
        filed_detection, draft_detection = candidates
        for detection in candidates:
            detection_confirm(
                detection=detection, category="csam", note="Demo confirmation.", actor=actor
            )
        report_open(
            detection=draft_detection,
            actor=actor,
            notes=DEMO_NOTES,
            uploader_ref="demo-user-1042",
            file_viewed_by_esp=True,
        )
        filed = report_open(
            detection=filed_detection,
            actor=actor,
            notes=DEMO_NOTES,
            uploader_ref="demo-user-2207",
            file_viewed_by_esp=False,
        )
        report_file(
            report=filed,
            actor=actor,
            hotline_report_id="CT-DEMO-0001",
            filed_at=timezone.now() - timedelta(days=12),
        )
        self.stdout.write(self.style.SUCCESS("Seeded 2 reports (a draft and a filed one)."))
