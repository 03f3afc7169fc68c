from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from hub.management.base import OrgCommand, cli_actor
from hub.models import Organization
from lists.importing import ImportSummary, decode_upload, import_lines
from lists.models import HashList


class Command(OrgCommand):
    help = (
        "Load a CSV/TSV/TXT hash file into one of an organisation's lists "
        "(lines: type,value[,labels,note], or one value per line with --type)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--list", required=True, help="the list's name (e.g. CSAM) or id")
        parser.add_argument("--type", default="", help="the type of lines that carry only a value")
        parser.add_argument("file", help="the file to load, or - for standard input")

    def handle_org(self, org: Organization, **options: Any) -> None:
        hash_list = (
            HashList.objects.filter(
                organization=org, deleted_at__isnull=True, public_id=options["list"]
            ).first()
            or HashList.objects.filter(
                organization=org, deleted_at__isnull=True, name__iexact=options["list"]
            ).first()
        )
        if hash_list is None:
            raise CommandError(f"{org.slug} has no list named or numbered {options['list']!r}.")
        if options["file"] == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                data = Path(options["file"]).read_bytes()
            except OSError as error:
                raise CommandError(f"Cannot read {options['file']}: {error.strerror}.") from None
        text = decode_upload(data)
        total = sum(1 for line in text.splitlines() if line.strip() and not line.startswith("#"))

        def progress(summary: ImportSummary) -> None:
            done = min(summary.lines, total)
            width = 30
            filled = int(width * done / total) if total else width
            self.stderr.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} lines "
                f"· {summary.added:,} added · {summary.rejected:,} rejected",
                ending="",
            )

        summary = import_lines(
            hash_list=hash_list,
            lines=text.splitlines(),
            default_type=options["type"],
            actor=cli_actor(),
            label=f"importhashes {Path(options['file']).name}",
            progress=progress,
        )
        self.stderr.write("")
        for rejection in summary.rejections[:50]:
            self.stderr.write(
                f"line {rejection['line']}: {rejection['code']}: {rejection['message']}"
            )
        if summary.rejected > 50:
            self.stderr.write(f"… and {summary.rejected - 50:,} more rejected lines")
        self.stdout.write(
            self.style.SUCCESS(
                f"{hash_list.name} ({org.slug}): {summary.lines:,} lines, {summary.added:,} added, "
                f"{summary.already_present:,} already present, {summary.rejected:,} rejected."
            )
        )
