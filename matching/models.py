"""Detections (what a match request found), the allow list, and webhook endpoints and deliveries.

The match index itself is not a model: it is built in each process from ``lists`` (see
``matching/engine.py``).
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager

from hub.lib.ids import new_public_id
from hub.models import ApiKey, Organization, User


class Detection(models.Model):
    """The record of one match request that found something, for the organisation that asked.

    ``submitted`` holds what the platform sent (``[{"type", "value"}]``), ``matches`` the results
    that matched at that moment, in the API's shape (so a later change to a list does not rewrite
    history). Purged after ``HASHHUB_DETECTION_RETENTION_DAYS``.
    """

    class Status(models.TextChoices):
        NEW = "new", "New"
        CONFIRMED = "confirmed", "Confirmed"
        FALSE_POSITIVE = "false_positive", "False positive"
        DISMISSED = "dismissed", "Dismissed"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Who asked, kept as text too: the key may be deleted, the detection stays readable.
    source_label = models.CharField(max_length=200)
    content_ref = models.CharField(max_length=500, blank=True)
    submitted = models.JSONField(default=list)
    matches = models.JSONField(default=list)
    match_count = models.IntegerField(default=0)  # the matches stored (returned) with it
    # Every match the request had before the per-hash cap (DESIGN.md, invariant 9).
    match_total = models.IntegerField(default=0)
    # The distinct tiers and categories among the matches, for the review queue's filters.
    tiers = ArrayField(models.CharField(max_length=16), default=list, blank=True)
    categories = ArrayField(models.CharField(max_length=8), default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    reviewed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    # Recorded under the organisation's shadow mode: counted, never returned, sent or queued.
    shadow = models.BooleanField(default=False)
    # Found later, when a kept submission's hash entered a list (matching.retroactive); the
    # original request's time is ``requested_at``.
    retroactive = models.BooleanField(default=False)
    requested_at = models.DateTimeField(null=True, blank=True)
    # Every entry it matched through was retracted or removed since (matching.retractions).
    retracted_at = models.DateTimeField(null=True, blank=True)
    # The strongest recommended action among its matches ("block", "review", "none", or "").
    action = models.CharField(max_length=8, blank=True)
    # One of its matches was a hash held for a jump in its match rate (matching.holds).
    held = models.BooleanField(default=False)
    # The category of the own list a confirmation added its hashes to ("csam", "se"; "" until
    # confirmed). Only a detection confirmed as CSAM can be reported (reports.services).
    confirmed_category = models.CharField(max_length=8, blank=True)

    objects: ClassVar[models.Manager[Detection]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created", "-id")
        indexes = (
            models.Index(fields=("organization", "-created"), name="detection_by_org_time"),
            models.Index(fields=("created",), name="detection_by_time"),
        )

    def __str__(self) -> str:
        return f"detection {self.public_id}"


class AllowedHash(models.Model):
    """A hash the organisation judged a false positive: matches for it are suppressed, and counted.

    The allow list is keyed on what the platform submits (the hash of the benign content), so the
    same content is not flagged again; see ``matching.services`` for how near a perceptual
    submission must be to count as the same content.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    signal_type = models.CharField(max_length=16)
    value = models.BinaryField()
    note = models.TextField(blank=True)
    detection = models.ForeignKey(
        Detection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_by_label = models.CharField(max_length=200)
    created = models.DateTimeField(default=timezone.now)
    suppressed_count = models.BigIntegerField(default=0)
    last_suppressed_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[AllowedHash]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created", "-id")
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "signal_type", "value"), name="one_allowed_hash_per_org"
            ),
        )

    def __str__(self) -> str:
        return f"{self.signal_type}:{bytes(self.value).hex()} allowed"


class WebhookEndpoint(models.Model):
    """A URL of the organisation's to which each detection is POSTed, signed with ``secret``."""

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    # Kept in clear: the hub needs it to sign each delivery. Shown once, on creation or rotation.
    secret = models.CharField(max_length=80)
    enabled = models.BooleanField(default=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[WebhookEndpoint]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("created", "id")

    def __str__(self) -> str:
        return self.url


class WebhookDelivery(models.Model):
    """One attempt to deliver one event to one endpoint: every attempt is kept and shown."""

    class Status(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        GAVE_UP = "gave_up", "Failed, no more retries"
        REFUSED = "refused", "Refused (address not allowed)"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    detection = models.ForeignKey(
        Detection, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=40)
    # The id the receiver sees in the body; the same for every attempt of one event.
    event_id = models.CharField(max_length=32)
    attempt = models.IntegerField(default=1)
    status = models.CharField(max_length=10, choices=Status.choices)
    response_status = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.IntegerField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[WebhookDelivery]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created", "-id")
        indexes = (models.Index(fields=("endpoint", "-created"), name="delivery_by_endpoint"),)

    def __str__(self) -> str:
        return f"{self.event} #{self.attempt} to {self.endpoint_id}: {self.status}"


class DigestSent(models.Model):
    """One daily digest e-mailed to an organisation: the period it covered and when it went.

    The next digest covers the time since this one's ``until``, so a day the task did not run
    is carried into the next, and a second run the same day finds nothing new to send.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    since = models.DateTimeField()
    until = models.DateTimeField()
    detections = models.PositiveIntegerField()
    recipients = models.PositiveIntegerField()
    sent_at = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[DigestSent]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-until", "-id")
        indexes = (models.Index(fields=("organization", "-until"), name="digest_by_org_until"),)

    def __str__(self) -> str:
        return f"digest of {self.organization_id} up to {self.until:%Y-%m-%d %H:%M}"


class Reconciliation(models.Model):
    """One run of the reconciler (``manage.py reconcile`` or the daily task) and what it found.

    Hub-wide, staff-only: it names lists by their public ids and counts organisations' drift,
    never shows anyone's entries. The staff health page shows the latest.
    """

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    dry_run = models.BooleanField()
    trigger = models.CharField(max_length=200)
    access_grants = models.IntegerField(default=0)
    access_revokes = models.IntegerField(default=0)
    counter_drift = models.IntegerField(default=0)
    index_drift = models.IntegerField(default=0)
    # Up to a few dozen examples of each kind, and every process's index figures.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-started_at",)

    def __str__(self) -> str:
        return f"reconciliation {self.pk}: {self.drift} drift"

    @property
    def drift(self) -> int:
        return self.access_grants + self.access_revokes + self.counter_drift + self.index_drift


class KeptSubmission(models.Model):
    """A hash an organisation submitted to match, kept for retroactive matching (never an image).

    Kept only while the organisation's policy says so (``retroactive_days`` > 0), until
    ``expires_at``; one row per (type, value, content_ref), the latest request's time winning.
    ``matching.retroactive`` keeps, matches and purges them.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    signal_type = models.CharField(max_length=16)
    value = models.BinaryField()
    content_ref = models.CharField(max_length=500, blank=True)
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # The last change the request could have seen: only entries after it are news to it.
    seen_seq = models.BigIntegerField(default=0)

    objects: ClassVar[models.Manager[KeptSubmission]] = ScopedManager(organization="organization")

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "signal_type", "value", "content_ref"),
                name="one_kept_submission",
            ),
        )
        indexes = (
            # Exact types are matched by value; the purge goes by expiry.
            models.Index(fields=("signal_type", "value"), name="kept_by_value"),
            models.Index(fields=("expires_at",), name="kept_by_expiry"),
        )

    def __str__(self) -> str:
        return f"kept {self.signal_type} of {self.organization_id} until {self.expires_at:%Y-%m-%d}"


class KeptCount(models.Model):
    """How many submissions an organisation keeps now, for its quota (one writer:
    ``matching.retroactive``; the purge recounts it from the rows)."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="+")
    kept = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.kept} kept by {self.organization_id}"


class RetroactiveCheck(models.Model):
    """A kept submission was matched again because a hash entered a list: never twice for the
    same (kept submission, list, hash). ``detection`` is the retroactive detection it raised,
    if any (none when the policy, allow list or threshold said no)."""

    kept = models.ForeignKey(KeptSubmission, on_delete=models.CASCADE, related_name="+")
    hash_list = models.ForeignKey("lists.HashList", on_delete=models.CASCADE, related_name="+")
    hash = models.ForeignKey("lists.Hash", on_delete=models.CASCADE, related_name="+")
    detection = models.ForeignKey(
        Detection, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("kept", "hash_list", "hash"), name="one_retroactive_check"
            ),
        )

    def __str__(self) -> str:
        return f"kept {self.kept_id} checked for {self.hash_list_id}/{self.hash_id}"


class RetroactiveCursor(models.Model):
    """How far the retroactive matcher has read the "entered a list" feed (one row, id 1)."""

    after = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"retroactive matching read up to change {self.after}"


class DetectionHit(models.Model):
    """One (list, stored hash) a detection matched through, as the organisation saw the list.

    Written with the detection (matching.services). When every hit of a detection has left the
    organisation's view of its list (the entry retracted, removed upstream or by an upheld
    dispute; for another owner's anonymous list, once the removal is published), the detection
    is flagged retracted (matching.retractions).
    """

    detection = models.ForeignKey(Detection, on_delete=models.CASCADE, related_name="hits")
    hash_list = models.ForeignKey("lists.HashList", on_delete=models.CASCADE, related_name="+")
    hash = models.ForeignKey("lists.Hash", on_delete=models.CASCADE, related_name="+")
    # Matched through the published view (another owner's anonymous list): it leaves at the
    # removal's publication, not at the removal itself.
    published_view = models.BooleanField(default=False)

    objects: ClassVar[models.Manager[DetectionHit]] = ScopedManager(
        organization="detection__organization"
    )

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("detection", "hash_list", "hash"), name="one_hit_per_detection_entry"
            ),
        )
        indexes = (models.Index(fields=("hash_list", "hash"), name="detection_hit_by_entry"),)

    def __str__(self) -> str:
        return f"hit of {self.detection_id} in {self.hash_list_id}"


class RetractionCursor(models.Model):
    """How far matching.retractions has read the change sequence's removals (one row, id 1)."""

    last_seq = models.BigIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"retractions read up to {self.last_seq}"


# --- holds: a brake on poisoned hashes (matching.holds) ------------------------------------------


class HashMatchDay(models.Model):
    """How often one stored hash was matched across the hub on one (UTC) day: counts only.

    ``matches`` counts detections that matched the hash (one per detection, however many lists
    or submissions it matched through); ``organizations`` the distinct organisations among them,
    counted through :class:`HashMatchDigest` and never stored by name. Rows older than the
    baseline window are purged (``matching.holds.hold_counts_purge``).
    """

    hash_id = models.BigIntegerField()
    day = models.DateField()
    matches = models.IntegerField(default=0)
    organizations = models.IntegerField(default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("hash_id", "day"), name="one_match_day_per_hash"),
        )
        indexes = (models.Index(fields=("day",), name="match_day_by_day"),)

    def __str__(self) -> str:
        return f"hash {self.hash_id} on {self.day}: {self.matches} by {self.organizations}"


class HashMatchDigest(models.Model):
    """One organisation that matched one hash on one day, as a keyed digest of its id and the day
    (``matching.holds``): only so that the day's distinct organisations are counted once each.

    Unreadable without the hub's key and unlinkable across days; purged once its day is over.
    """

    day = models.DateField()
    hash_id = models.BigIntegerField()
    digest = models.BinaryField()

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("day", "hash_id", "digest"), name="one_match_digest_per_org_day"
            ),
        )

    def __str__(self) -> str:
        return f"a matcher of hash {self.hash_id} on {self.day}"


class HeldHash(models.Model):
    """A stored hash held for a jump in its hub-wide match rate: its community matches carry
    ``held: true`` until hub staff release it or retract it from the community lists holding
    it. ``matches``, ``organizations`` and ``baseline_matches`` (the 7 days before, in all) are
    the figures that triggered it; they are counts only, never who matched.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    # Served by the (hash, -held_at) index below.
    hash = models.ForeignKey(
        "lists.Hash", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    held_at = models.DateTimeField(default=timezone.now)
    day = models.DateField()
    matches = models.IntegerField()
    organizations = models.IntegerField()
    baseline_matches = models.IntegerField()
    baseline_days = models.IntegerField()
    released_at = models.DateTimeField(null=True, blank=True)
    retracted_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ended_by_label = models.CharField(max_length=200, blank=True)
    end_note = models.TextField(blank=True)

    class Meta:
        ordering = ("-held_at", "-id")
        constraints = (
            models.UniqueConstraint(
                fields=("hash",),
                condition=models.Q(released_at__isnull=True, retracted_at__isnull=True),
                name="one_open_hold_per_hash",
            ),
        )
        indexes = (models.Index(fields=("hash", "-held_at"), name="hold_by_hash_time"),)

    def __str__(self) -> str:
        return f"hold {self.public_id} of hash {self.hash_id}"

    @property
    def open(self) -> bool:
        return self.released_at is None and self.retracted_at is None


# --- preservation holds (matching.preservation) --------------------------------------------------


class PreservationHold(models.Model):
    """A detection kept past retention: it, its webhook deliveries and its kept submitted hashes
    are skipped by every retention purge (hub.retention) while the hold is active.

    Placed by filing a report (``report_ref`` names it; reports.services) for
    HASHHUB_PRESERVATION_HOLD_DAYS, or by hand by the organisation. Released by hand or when
    ``until`` passes. Every change is audited.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    detection = models.ForeignKey(Detection, on_delete=models.CASCADE, related_name="holds")
    # The report that placed it (a reports.Report public id), "" for a hold placed by hand.
    report_ref = models.CharField(max_length=32, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    placed_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField()
    placed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    placed_by_label = models.CharField(max_length=200)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by_label = models.CharField(max_length=200, blank=True)

    objects: ClassVar[models.Manager[PreservationHold]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-placed_at", "-id")
        indexes = (
            models.Index(fields=("detection",), name="preservation_by_detection"),
            models.Index(fields=("until",), name="preservation_by_until"),
        )

    def __str__(self) -> str:
        return f"preservation hold {self.public_id} of {self.detection_id}"

    def active_at(self, moment: object) -> bool:
        return self.released_at is None and self.until > moment  # type: ignore[operator]
