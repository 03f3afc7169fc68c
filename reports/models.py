"""Reports an organisation files with a hotline about a detection it confirmed as CSAM.

HashHub never holds the image: a report names the platform's ``content_ref``, which the
platform must preserve, and carries a copy of what the detection found (``package``), so that a
report outlives the detection's retention. The uploader reference is personal data: stored only
encrypted (``uploader_ref_token``, the same keys as stored source credentials), never audited,
never sent in a webhook. ``reports.services`` is the one writer.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from hub.lib.ids import new_public_id
from hub.models import Organization, User


class ReportSettings(models.Model):
    """An organisation's reporting choices: the hotline profile its downloads follow."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="+")
    # A name of reports.profiles.PROFILES ("ncmec", "generic").
    profile = models.CharField(max_length=16, default="generic")
    updated = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects: ClassVar[models.Manager[ReportSettings]] = ScopedManager(organization="organization")

    def __str__(self) -> str:
        return f"report settings of {self.organization_id}: {self.profile}"


class Report(models.Model):
    """One report about one confirmed-CSAM detection: draft → filed → acknowledged."""

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        FILED = "filed", "Filed"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"

    class IncidentType(models.TextChoices):
        # Short codes; each profile maps them to its hotline's words (reports.profiles).
        CHILD_PORNOGRAPHY = (
            "child_pornography",
            "Child sexual abuse material (possession, manufacture, distribution)",
        )
        CHILD_SEX_TRAFFICKING = "child_sex_trafficking", "Child sex trafficking"
        CHILD_SEX_TOURISM = "child_sex_tourism", "Child sex tourism"
        CHILD_SEXUAL_MOLESTATION = "child_sexual_molestation", "Child sexual molestation"
        MISLEADING_DOMAIN_NAME = "misleading_domain_name", "Misleading domain name"
        MISLEADING_WORDS = "misleading_words", "Misleading words or digital images on the internet"
        ONLINE_ENTICEMENT = "online_enticement", "Online enticement of children for sexual acts"
        UNSOLICITED_OBSCENE = "unsolicited_obscene", "Unsolicited obscene material sent to a child"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # The detection it reports; kept by public id too, since the detection may be purged later
    # (a filed report holds it for HASHHUB_PRESERVATION_HOLD_DAYS; a draft does not).
    detection = models.ForeignKey(
        "matching.Detection", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    detection_ref = models.CharField(max_length=32)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    incident_type = models.CharField(
        max_length=32, choices=IncidentType.choices, default=IncidentType.CHILD_PORNOGRAPHY
    )
    # The platform's reference to the content, which it must preserve (HashHub holds no image).
    content_ref = models.CharField(max_length=500, blank=True)
    # The uploader as the platform knows it, encrypted (Fernet token); "" when none was given.
    uploader_ref_token = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    # Whether the platform's staff viewed the file (NCMEC's fileViewedByEsp); None: not said.
    file_viewed_by_esp = models.BooleanField(null=True, blank=True)
    # What the detection found, copied when the report was opened: submitted hashes, matches
    # (lists, labels, distances), times, the confirmation. The download is built from it.
    package = models.JSONField(default=dict)
    hotline_report_id = models.CharField(max_length=100, blank=True)
    filed_at = models.DateTimeField(null=True, blank=True)  # the hotline's date of the report
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200)
    updated = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[Report]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created", "-id")
        indexes = (
            models.Index(fields=("organization", "-created"), name="report_by_org_time"),
            models.Index(fields=("updated",), name="report_by_updated"),
        )

    def __str__(self) -> str:
        return f"report {self.public_id} ({self.state})"


class ReportedEntry(models.Model):
    """An entry of the organisation's own CSAM list that a report is about: the entry shows the
    report id to its owner (never to subscribers), and later which verified source listed it."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="entries")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    entry = models.ForeignKey(
        "lists.Entry", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    # The entry's hash, looked up when a hash enters a verified source's list.
    hash = models.ForeignKey(
        "lists.Hash", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    created = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[ReportedEntry]] = ScopedManager(organization="organization")

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("report", "entry"), name="one_reported_entry"),
        )
        indexes = (models.Index(fields=("hash",), name="reported_entry_by_hash"),)

    def __str__(self) -> str:
        return f"entry {self.entry_id} in report {self.report_id}"


class ReportListing(models.Model):
    """A verified source's list came to hold a reported entry's hash (``listed_at``: when the
    source's entry was added). ``before_report``: it was listed before the report was opened,
    so it says nothing of the report-to-listing lag."""

    reported_entry = models.ForeignKey(
        ReportedEntry, on_delete=models.CASCADE, related_name="listings"
    )
    hash_list = models.ForeignKey("lists.HashList", on_delete=models.CASCADE, related_name="+")
    listed_at = models.DateTimeField()
    before_report = models.BooleanField(default=False)
    found_at = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[ReportListing]] = ScopedManager(
        organization="reported_entry__organization"
    )

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("reported_entry", "hash_list"), name="one_listing_per_source_list"
            ),
        )

    def __str__(self) -> str:
        return f"{self.reported_entry_id} listed in {self.hash_list_id} at {self.listed_at}"


class ListingCursor(models.Model):
    """How far reports.listings has read the "entered a list" feed (one row, id 1)."""

    after = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"report listings read up to change {self.after}"
