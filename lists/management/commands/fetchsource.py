from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Q

from hub.errors import ServiceError
from hub.management.base import cli_actor
from lists.models import ImportRun, ImportRunError, Source
from lists.sources.runs import run_create, run_execute

BAR_WIDTH = 30
ERRORS_SHOWN = 20


def duration(seconds: float) -> str:
    return (
        f"{seconds:.1f} s" if seconds < 120 else f"{int(seconds // 60)} min {int(seconds % 60)} s"
    )


class Command(BaseCommand):
    help = (
        "Run one import of an upstream source now, in this process (no Celery worker needed), "
        "with a progress bar; exits non-zero when the run fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the source's name (or id)")
        parser.add_argument("--quiet", action="store_true", help="no progress bar, summary only")

    def handle(self, *args: Any, **options: Any) -> None:
        source = self._source(options["name"])
        quiet = options["quiet"]
        run = run_create(source=source, trigger=f"{cli_actor().label} fetchsource", enqueue=False)
        if run.status == ImportRun.Status.RUNNING:
            raise CommandError(
                f"source_busy: run {run.public_id} of {source.name} is already going "
                f"(by {run.trigger or 'someone'}); wait for it or watch it on the staff page."
            )
        if not quiet:
            note = "" if source.enabled else " (disabled: it runs only by hand)"
            self.stderr.write(f"Fetching {source.name} ({source.get_kind_display()}){note}…")
        started = time.monotonic()
        try:
            run = run_execute(run_id=run.pk, on_page=None if quiet else self._progress)
        except ServiceError as error:
            raise CommandError(f"{error.code}: {error.message}") from None
        if not quiet and run.pages:
            self.stderr.write("")  # end the progress line
        self._report_errors(run)
        summary = (
            f"{source.name}: {run.get_status_display().lower()} in "
            f"{duration(time.monotonic() - started)}: {run.pages:,} page{'s' * (run.pages != 1)}, "
            f"{run.seen:,} records, {run.added:,} added, {run.updated:,} updated, "
            f"{run.removed:,} removed, {run.rejected:,} rejected (run {run.public_id})."
        )
        if run.status != ImportRun.Status.SUCCEEDED:
            self.stdout.write(summary)
            raise CommandError(f"{run.error_code}: {run.error_message}")
        self.stdout.write(self.style.SUCCESS(summary))

    def _source(self, name: str) -> Source:
        found = list(Source.objects.filter(Q(name=name) | Q(public_id=name)))
        if not found:
            found = list(Source.objects.filter(name__iexact=name))
        if len(found) != 1:
            known = ", ".join(Source.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(f"not_found: no source named {name!r} (sources: {known}).")
        return found[0]

    def _progress(self, run: ImportRun) -> None:
        read = run.seen + run.rejected  # a rejected record was read all the same
        if run.expected:
            filled = int(BAR_WIDTH * min(read, run.expected) / run.expected)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            where = f"{read:,}/{run.expected:,} records"
        else:
            # The upstream does not say how much there is: a moving marker, then the count.
            spot = run.pages % BAR_WIDTH
            bar = "." * spot + "#" + "." * (BAR_WIDTH - spot - 1)
            where = f"{read:,} records"
        self.stderr.write(
            f"\r[{bar}] {where} · {run.pages:,} page{'s' * (run.pages != 1)} · "
            f"{run.added:,} added · {run.updated:,} updated · {run.removed:,} removed · "
            f"{run.rejected:,} rejected",
            ending="",
        )
        self.stderr.flush()

    def _report_errors(self, run: ImportRun) -> None:
        if not run.rejected:
            return
        for error in ImportRunError.objects.filter(run=run).order_by("id")[:ERRORS_SHOWN]:
            self.stderr.write(f"{error.position}: {error.code}: {error.message}")
        if run.rejected > ERRORS_SHOWN:
            self.stderr.write(
                f"… and {run.rejected - ERRORS_SHOWN:,} more rejected records "
                "(all of them on the run's staff page)."
            )
