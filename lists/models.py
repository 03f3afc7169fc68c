"""The merged set of hashes, hash lists, their entries, the change sequence and bulk-import jobs.

The change sequence
-------------------
Every add and every removal of an entry takes the next number of one global sequence, written on
the entry (``added_seq``, ``removed_seq``) in the same transaction as the change. Numbers come from
the single row of :class:`ChangeCounter`: a writer takes that row's lock (``SELECT … FOR UPDATE``)
as the *last* step before writing its entries, bumps it by the number of changes it makes (one
``UPDATE`` however many: a million-entry import allocates its range at once), and keeps the lock
until it commits. So transactions receive their numbers in the order in which they commit, and any
snapshot a reader takes sees a gap-free *prefix* of the sequence (numbers of rolled-back writers
are simply never used). A reader that remembers "everything up to N" and asks for ``seq > N`` can
therefore never skip a change that committed late. The price is that writers serialise for the
short moment between taking the lock and committing; the services keep that moment short (hashes
are upserted and input validated before the lock).
"""

from __future__ import annotations

from typing import ClassVar

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_scopes import ScopedManager

from hub.lib.ids import new_public_id
from hub.models import ApiKey, Organization, User


class Hash(models.Model):
    """One distinct (signal type, value): a member of the merged set, however many lists hold it."""

    signal_type = models.CharField(max_length=16)
    value = models.BinaryField()

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("signal_type", "value"), name="one_row_per_hash"),
        )

    def __str__(self) -> str:
        return f"{self.signal_type}:{bytes(self.value).hex()}"


class HashList(models.Model):
    """A named set of hashes with a category, owned by an organisation (or, later, a source)."""

    class Category(models.TextChoices):
        CSAM = "csam", "CSAM"
        SE = "se", "Sexually exploitative"

    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private"
        OPEN = "open", "Open"
        ANONYMOUS = "anonymous", "Anonymous"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.PROTECT, related_name="hash_lists"
    )
    name = models.CharField(max_length=120)
    category = models.CharField(max_length=8, choices=Category.choices)
    description = models.TextField(blank=True)
    visibility = models.CharField(
        max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    # The organisation's own CSAM and SE lists, made with it; they cannot be deleted.
    is_default = models.BooleanField(default=False)
    # Live entries per signal type and the time of the last add or removal, kept by
    # lists.services in the same transaction as each change (never counted on a page view).
    live_counts = models.JSONField(default=dict, blank=True)
    last_change_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[HashList]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("category", "name")
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "name"),
                condition=Q(deleted_at__isnull=True),
                name="list_name_unique_per_org",
            ),
        )

    def __str__(self) -> str:
        return self.name


class Entry(models.Model):
    """A hash's membership in a list, with provenance. Removal is a tombstone, never a delete.

    Re-adding a removed hash makes a new live entry; the tombstone stays, so the delta feed and
    the history keep both. At most one live entry per (list, hash).
    """

    # No database-level foreign keys on the two hot columns: PostgreSQL checks each with a
    # per-row trigger that also locks the referenced row, which made a million-entry import
    # spend most of its time at commit. Integrity holds without them: hashes and lists are
    # never deleted (lists are soft-deleted; PROTECT keeps the ORM from trying), and entries are
    # only written by lists.services from ids it has just read in the same transaction.
    hash_list = models.ForeignKey(
        HashList,
        on_delete=models.PROTECT,
        related_name="entries",
        db_constraint=False,
        db_index=False,  # Served by the (hash_list, added_seq) index below.
    )
    hash = models.ForeignKey(
        Hash, on_delete=models.PROTECT, related_name="entries", db_constraint=False
    )
    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    labels = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    note = models.TextField(blank=True)

    added_seq = models.BigIntegerField(unique=True)
    added_at = models.DateTimeField(default=timezone.now)
    # Provenance columns are read with their entry, never searched: no index to maintain, and
    # no database foreign key (each would queue a trigger event per inserted row, NULL or not);
    # Django applies SET_NULL itself when a user or key is deleted.
    added_by_user = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    added_by_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    added_by_label = models.CharField(max_length=200)

    removed_seq = models.BigIntegerField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    removed_by_user = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    removed_by_key = models.ForeignKey(
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    removed_by_label = models.CharField(max_length=200, blank=True)
    removed_reason = models.TextField(blank=True)

    objects: ClassVar[models.Manager[Entry]] = ScopedManager(organization="hash_list__organization")

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("hash_list", "hash"),
                condition=Q(removed_seq__isnull=True),
                name="one_live_entry_per_list_and_hash",
            ),
            models.UniqueConstraint(
                fields=("removed_seq",),
                condition=Q(removed_seq__isnull=False),
                name="one_removal_per_seq",
            ),
        )
        indexes = (
            # A list's entries in change order: keyset pages of a list, its last change.
            models.Index(fields=("hash_list", "added_seq"), name="entry_by_list_seq"),
            # The label filter of the list page and API.
            GinIndex(fields=("labels",), name="entry_labels_gin"),
        )

    def __str__(self) -> str:
        return f"{self.hash} in {self.hash_list_id}"

    @property
    def live(self) -> bool:
        return self.removed_seq is None


class ChangeCounter(models.Model):
    """The single row holding the last number handed out by the change sequence (see above)."""

    last = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"change sequence at {self.last}"


class ImportJob(models.Model):
    """A bulk upload of hashes into a list, run by a Celery worker with progress and a report.

    The uploaded text (hashes, never images) is kept only until the job has run.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    hash_list = models.ForeignKey(HashList, on_delete=models.CASCADE, related_name="import_jobs")
    filename = models.CharField(max_length=255)
    default_type = models.CharField(max_length=16, blank=True)
    payload = models.BinaryField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    total_lines = models.IntegerField(default=0)
    processed_lines = models.IntegerField(default=0)
    added = models.IntegerField(default=0)
    already_present = models.IntegerField(default=0)
    rejected = models.IntegerField(default=0)
    # [{"line": 12, "code": "wrong_length", "message": "...", "text": "first 200 chars"}]
    rejections = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[models.Manager[ImportJob]] = ScopedManager(organization="organization")

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"import {self.public_id} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        if not self.total_lines:
            return 0
        return min(99, int(self.processed_lines * 100 / self.total_lines))
