from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from hub.management.base import cli_actor
from matching.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Recompute the hub's derived state from its rules and compare: the access log the export "
        "replays, each list's live counters, and every process's match index. Repairs what it "
        "can (the access log and counters) unless --dry-run; exits 1 when it found drift."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report only; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run = options["dry_run"]
        actor = cli_actor()
        run = reconcile(dry_run=dry_run, actor=actor, trigger=f"{actor.label} reconcile")
        verb = "found" if dry_run else "repaired"
        self.stdout.write(
            f"access log: {run.access_grants} missing grants, "
            f"{run.access_revokes} missing revokes ({verb})"
        )
        self.stdout.write(f"list counters: {run.counter_drift} lists drifted ({verb})")
        for report in run.details.get("indexes", []):
            self.stdout.write(
                f"match index of {report['process']} at change {report['version']}: "
                + ", ".join(f"{k} {v}" for k, v in report["sizes"].items())
            )
        self.stdout.write(
            f"match indexes: {run.index_drift} processes drifted (not repairable "
            "here: restart them)"
        )
        self.stdout.write(f"drift: {run.drift}")
        if run.drift and dry_run:
            raise CommandError(f"{run.drift} drift found; run without --dry-run to repair")
        if run.index_drift:
            raise CommandError(f"{run.index_drift} match indexes drifted; restart those processes")
