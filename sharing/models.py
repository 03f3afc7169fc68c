"""Community sharing: subscriptions, the access log the export feed replays, disputes, impact.

A self-managed list is *shared* when its visibility is ``open`` or ``anonymous`` and its owner is
an approved organisation. Another approved organisation matches against a shared list when it is
*subscribed* to it: by a subscription to that list, or by a subscription to every shared list of
the list's category that it has not opted that one list out of.

Whenever that answer changes for an (organisation, list) pair, :class:`AccessEvent` records it
with the next number of the change sequence (lists.models), so the export feed can tell a platform
to add the whole list when access begins and to drop it when access ends, in sequence order with
every other change.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_scopes import ScopedManager

from hub.lib.ids import new_public_id
from hub.models import Organization, User
from lists.models import Entry, Hash, HashList, Source


class Subscription(models.Model):
    """An organisation's choice of community lists: one list, one opt-out, or a whole category.

    Exactly one of ``hash_list`` and ``category`` is set. A row with a list and ``excluded``
    opts that list out of a category subscription (so unsubscribing one list of a subscribed
    category sticks, and a later category subscription does not silently bring it back).
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="subscriptions"
    )
    hash_list = models.ForeignKey(
        HashList, null=True, blank=True, on_delete=models.CASCADE, related_name="subscriptions"
    )
    category = models.CharField(max_length=8, blank=True, choices=HashList.Category.choices)
    excluded = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    created_by_label = models.CharField(max_length=200, blank=True)

    objects: ClassVar[models.Manager[Subscription]] = ScopedManager(organization="organization")

    class Meta:
        constraints = (
            models.CheckConstraint(
                condition=(Q(hash_list__isnull=False) & Q(category=""))
                | (Q(hash_list__isnull=True) & ~Q(category="") & Q(excluded=False)),
                name="subscription_list_xor_category",
            ),
            models.UniqueConstraint(
                fields=("organization", "hash_list"),
                condition=Q(hash_list__isnull=False),
                name="one_subscription_per_org_and_list",
            ),
            models.UniqueConstraint(
                fields=("organization", "category"),
                condition=Q(hash_list__isnull=True),
                name="one_subscription_per_org_and_category",
            ),
        )

    def __str__(self) -> str:
        target = f"list {self.hash_list_id}" if self.hash_list_id else f"category {self.category}"
        return f"{self.organization_id} {'excludes' if self.excluded else 'subscribes to'} {target}"


class AccessEvent(models.Model):
    """The moment an organisation gained or lost matching access to another organisation's list.

    ``seq`` comes from the change sequence, so the export feed orders these with entry changes.
    Only ever appended; the latest row per (organisation, list) is the current state.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField(unique=True)
    granted = models.BooleanField()
    created = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[AccessEvent]] = ScopedManager(organization="organization")

    class Meta:
        indexes = (models.Index(fields=("organization", "seq"), name="access_by_org_seq"),)

    def __str__(self) -> str:
        verb = "granted" if self.granted else "revoked"
        return f"{self.hash_list_id} {verb} to {self.organization_id} at {self.seq}"


class Dispute(models.Model):
    """A subscriber's objection to one hash of a shared list.

    The owner sees the reason and note, and the disputer's organisation only when ``reveal`` is
    set. An open dispute counts toward ``disputed: true`` in match results once enough distinct
    organisations hold one on the same (list, hash) (settings.HASHHUB_DISPUTE_THRESHOLD).
    """

    class Reason(models.TextChoices):
        NOT_CSAM = "not_csam", "Not CSAM / not exploitative"
        WRONG_CATEGORY = "wrong_category", "Wrong category"
        LOW_QUALITY = "low_quality", "Low-quality hash"
        OTHER = "other", "Other"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REJECTED = "rejected", "Rejected by the owner"
        RETRACTED = "retracted", "Entry retracted by the owner"
        REMOVED = "removed", "Entry removed by the owner"
        WITHDRAWN = "withdrawn", "Withdrawn"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    # The disputing organisation: the tenant that owns this row.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="disputes")
    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="+")
    # The live entry disputed (None if it was already removed when the dispute was made).
    entry = models.ForeignKey(Entry, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    note = models.TextField(blank=True)
    reveal = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by_label = models.CharField(max_length=200)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.TextField(blank=True)
    resolved_by_label = models.CharField(max_length=200, blank=True)

    objects: ClassVar[models.Manager[Dispute]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created",)
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "hash_list", "hash"),
                condition=Q(status="open"),
                name="one_open_dispute_per_org_list_hash",
            ),
        )
        indexes = (
            models.Index(
                fields=("hash_list", "hash"),
                condition=Q(status="open"),
                name="open_disputes_by_list_hash",
            ),
        )

    def __str__(self) -> str:
        return f"dispute {self.public_id} ({self.status})"


class ListImpact(models.Model):
    """How many match results a shared list gave other organisations in one week: counts only."""

    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="+")
    week = models.DateField()  # The Monday the week starts on (UTC).
    matches = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("hash_list", "week"), name="one_impact_row_per_week"),
        )

    def __str__(self) -> str:
        return f"{self.hash_list_id} {self.week}: {self.matches}"


class SharingPreferences(models.Model):
    """An organisation's own settings for community matches."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="sharing_preferences"
    )
    ignore_disputed = models.BooleanField(default=False)

    objects: ClassVar[models.Manager[SharingPreferences]] = ScopedManager(
        organization="organization"
    )

    def __str__(self) -> str:
        return f"sharing preferences of {self.organization_id}"


class SourceEntitlement(models.Model):
    """Staff's grant to an organisation to match a source whose access is "granted only"."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="entitlements")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    granted_by_label = models.CharField(max_length=200)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("source", "organization"), name="one_entitlement_per_source_and_org"
            ),
        )

    def __str__(self) -> str:
        return f"{self.organization_id} may match {self.source_id}"


class MatchPolicy(models.Model):
    """How an organisation matches (its match policy: ``GET|PUT /api/v1/policy``).

    What it matches at all is :class:`PolicyExclusion` and :class:`EntryDisable` (they change the
    export too); the fields here change only how matches are answered: thresholds per signal
    type and per list, shadow mode, recommended-action rules. ``dihedral_default``,
    ``link_template`` and ``retroactive_days`` are the organisation's defaults for image
    matching, the review queue and retroactive matching. ``sharing.policy`` validates them.
    """

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="match_policy"
    )
    # {"pdq": 24}: the default radius per signal type, at most the server's maximum.
    thresholds = models.JSONField(default=dict, blank=True)
    # {list public id: {"pdq": 16}}: a list's own radius, at most the type's threshold.
    list_thresholds = models.JSONField(default=dict, blank=True)
    # List public ids and source public ids whose matches are recorded as shadow detections.
    shadow_lists = models.JSONField(default=list, blank=True)
    shadow_sources = models.JSONField(default=list, blank=True)
    # [{"action": "block", "tier": "verified", "category": "csam", "label": "A1",
    #   "max_distance": 10}], first match wins; no rule: "review".
    action_rules = models.JSONField(default=list, blank=True)
    default_action = models.CharField(max_length=8, default="review")
    dihedral_default = models.BooleanField(default=False)
    # e.g. "https://moderation.example/item/{content_ref}"; "" for none.
    link_template = models.CharField(max_length=500, blank=True)
    # Keep submitted hashes for retroactive matching this many days; 0 turns it off.
    retroactive_days = models.PositiveSmallIntegerField(default=0)
    updated = models.DateTimeField(default=timezone.now)

    objects: ClassVar[models.Manager[MatchPolicy]] = ScopedManager(organization="organization")

    def __str__(self) -> str:
        return f"match policy of {self.organization_id}"


class PolicyExclusion(models.Model):
    """A verified source, a shared list or a category of shared lists the organisation turned off.

    Exactly one of ``source``, ``hash_list`` and ``category`` is set. The access rules
    (``sharing.selectors``) leave what it names out, so the export carries its removals.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="policy_exclusions"
    )
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.CASCADE)
    hash_list = models.ForeignKey(HashList, null=True, blank=True, on_delete=models.CASCADE)
    category = models.CharField(max_length=8, blank=True, choices=HashList.Category.choices)
    created = models.DateTimeField(default=timezone.now)
    created_by_label = models.CharField(max_length=200, blank=True)

    objects: ClassVar[models.Manager[PolicyExclusion]] = ScopedManager(organization="organization")

    class Meta:
        constraints = (
            models.CheckConstraint(
                condition=(Q(source__isnull=False) & Q(hash_list__isnull=True) & Q(category=""))
                | (Q(source__isnull=True) & Q(hash_list__isnull=False) & Q(category=""))
                | (Q(source__isnull=True) & Q(hash_list__isnull=True) & ~Q(category="")),
                name="exclusion_names_one_thing",
            ),
            models.UniqueConstraint(
                fields=("organization", "source"),
                condition=Q(source__isnull=False),
                name="one_exclusion_per_source",
            ),
            models.UniqueConstraint(
                fields=("organization", "hash_list"),
                condition=Q(hash_list__isnull=False),
                name="one_exclusion_per_list",
            ),
            models.UniqueConstraint(
                fields=("organization", "category"),
                condition=~Q(category=""),
                name="one_exclusion_per_category",
            ),
        )

    def __str__(self) -> str:
        target = self.source_id or self.hash_list_id or self.category
        return f"{self.organization_id} turned off {target}"


class EntryDisable(models.Model):
    """One hash of one list the organisation does not match until ``until`` ("not for us").

    ``seq`` and ``ended_seq`` come from the change sequence: the export removes the hash at
    ``seq`` and adds it again at ``ended_seq`` (set when the beat job or the organisation ends
    the disable), in order with every other change.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="+")
    hash = models.ForeignKey(Hash, on_delete=models.PROTECT, related_name="+")
    until = models.DateTimeField()
    note = models.TextField(blank=True)
    seq = models.BigIntegerField(unique=True)
    ended_seq = models.BigIntegerField(null=True, blank=True, unique=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by_label = models.CharField(max_length=200)

    objects: ClassVar[models.Manager[EntryDisable]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created", "-id")
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "hash_list", "hash"),
                condition=Q(ended_seq__isnull=True),
                name="one_active_disable_per_entry",
            ),
        )
        indexes = (
            models.Index(
                fields=("until",), condition=Q(ended_seq__isnull=True), name="disable_due"
            ),
        )

    def __str__(self) -> str:
        return f"{self.organization_id} disabled {self.hash_list_id}/{self.hash_id}"
