"""Giving a report's package to its organisation: the download in a hotline profile's form, and
the printable summary. Both carry the uploader reference (decrypted here, for the organisation's
own members only), so each is a sensitive read and audited (``report.downloaded``)."""

from __future__ import annotations

from typing import Any

from hub.audit import Actor
from reports import profiles, services
from reports.models import Report

PRINT = "print"
"""The ``profile`` a printed summary's audit line names."""


def report_download(*, report: Report, profile: str, actor: Actor) -> profiles.Rendered:
    """The report as ``profile`` writes it (a name of reports.profiles.PROFILES).

    Side effect: a ``report.downloaded`` audit event naming the profile. Refused (ServiceError):
    ``unknown_profile``; ``encryption_unavailable`` (503) when the uploader reference cannot be
    read. Nothing is audited when it is refused.
    """
    profiles.profile_get(profile)
    rendered = profiles.render(
        report, profile=profile, uploader_ref=services.uploader_ref_of(report=report)
    )
    services.report_downloaded(report=report, actor=actor, profile=profile)
    return rendered


def report_print(*, report: Report, actor: Actor) -> dict[str, Any]:
    """What the printable summary page shows (reports.profiles.summary).

    Side effect: a ``report.downloaded`` audit event with profile ``print``.
    """
    shown = profiles.summary(report, uploader_ref=services.uploader_ref_of(report=report))
    services.report_downloaded(report=report, actor=actor, profile=PRINT)
    return shown


def profile_choices() -> list[tuple[str, str]]:
    """(name, label) of each hotline profile, for the settings form and the download links."""
    return [(name, profile.label) for name, profile in profiles.PROFILES.items()]
