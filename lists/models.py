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

from hub.lib.ids import new_ordered_public_id, new_public_id
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
    # A verified list belongs to an upstream source instead of an organisation (one per category).
    source = models.ForeignKey(
        "lists.Source", null=True, blank=True, on_delete=models.PROTECT, related_name="hash_lists"
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
    # What other organisations see of an anonymous list: its live entries per signal type as of
    # the last publication, and that publication's time (lists.changes.publish_pending).
    published_counts = models.JSONField(default=dict, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    # Adds up to this change number have been considered for publication, so a batch reads only
    # the newer ones; -1 while no publication has taken the anonymous list in (lists.changes).
    published_through = models.BigIntegerField(default=0)
    # Whether subscribers see the labels of this list's entries in their matches and export (all
    # of them for an open list, only the A1-B2 classification for an anonymous one: a free tag
    # could name the owner). The owner turns it on; off for lists made before it existed.
    share_classification = models.BooleanField(default=False)
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
            models.UniqueConstraint(
                fields=("source", "category"),
                condition=Q(source__isnull=False),
                name="one_list_per_source_and_category",
            ),
            models.CheckConstraint(
                condition=Q(organization__isnull=True) | Q(source__isnull=True),
                name="list_owned_by_org_or_source",
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
        Hash,
        on_delete=models.PROTECT,
        related_name="entries",
        db_constraint=False,
        # Served by the live-entry index, hash first: everything that looks entries up by hash
        # wants the live ones (matching, corroboration, disputes), and one index fewer is
        # less for every import row and every removal to write.
        db_index=False,
    )
    # Unique through Meta's constraint: ``unique=True`` would add a second index for LIKE
    # look-ups, which nothing makes, and every bulk insert paid for it. Ordered by time, so that
    # the index grows at one end (see new_ordered_public_ids).
    public_id = models.CharField(max_length=32, default=new_ordered_public_id)
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
    # The publication numbers of the add and of the removal, for an entry of an anonymous list:
    # other organisations see its changes only once a batch has published them, with numbers
    # taken from the change sequence at publication (lists.changes.publish_pending), so their
    # timing and order cannot be paired with the owner's other lists (DESIGN.md, invariant 3).
    # NULL until published; unused for entries of other lists.
    published_seq = models.BigIntegerField(null=True, blank=True)
    unpublished_seq = models.BigIntegerField(null=True, blank=True)
    # The entry's ``bank_content_id`` for HMA clients (hma/): 53 random bits (an integer
    # JavaScript keeps exactly), never a row number. A database default, so that every insert
    # path (the ORM and lists.changes' hand-written statements alike) gets one.
    # 53 of the random bits of a version-4 UUID (characters 19-32 of its hex: past its fixed
    # version and variant bits).
    hma_id = models.BigIntegerField(
        null=True,
        unique=True,
        db_default=models.expressions.RawSQL(
            "('x' || substr(replace(gen_random_uuid()::text, '-', ''), 19, 14))::bit(56)::bigint"
            " >> 3",
            (),
        ),
    )

    objects: ClassVar[models.Manager[Entry]] = ScopedManager(organization="hash_list__organization")

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("hash", "hash_list"),
                condition=Q(removed_seq__isnull=True),
                name="one_live_entry_per_hash_and_list",
            ),
            models.UniqueConstraint(
                fields=("removed_seq",),
                condition=Q(removed_seq__isnull=False),
                name="one_removal_per_seq",
            ),
            models.UniqueConstraint(fields=("public_id",), name="entry_public_id_unique"),
        )
        indexes = (
            # A list's entries in change order: keyset pages of a list, its last change.
            models.Index(fields=("hash_list", "added_seq"), name="entry_by_list_seq"),
            # The label filter of the list page and API, which show live entries only: a
            # removal (a new row version) then adds nothing to it.
            GinIndex(
                fields=("labels",),
                name="entry_live_labels_gin",
                condition=Q(removed_seq__isnull=True),
            ),
            # The published view of anonymous lists (small: only their published entries):
            # keyset pages and the export's adds, the export's removals, and the removals not
            # published yet (still live to others) for matching by hash.
            models.Index(
                fields=("hash_list", "published_seq"),
                name="entry_by_list_published",
                condition=Q(published_seq__isnull=False),
            ),
            models.Index(
                fields=("unpublished_seq",),
                name="entry_unpublished",
                condition=Q(unpublished_seq__isnull=False),
            ),
            # The match index's delta: hashes whose publication changed since a number.
            models.Index(
                fields=("published_seq",),
                name="entry_published",
                condition=Q(published_seq__isnull=False),
            ),
            models.Index(
                fields=("hash",),
                name="entry_removal_unpublished",
                condition=Q(
                    published_seq__isnull=False,
                    removed_seq__isnull=False,
                    unpublished_seq__isnull=True,
                ),
            ),
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


class Source(models.Model):
    """An upstream verified feed that hub staff register; it owns one list per category.

    ``config`` holds what the adapter needs (URLs, formats, the *names* of environment variables
    that hold credentials); a credential itself is never in the config, the UI or logs, and in
    the database only encrypted (SourceCredential).
    ``checkpoint`` is the adapter's position, advanced in the same transaction as each page.
    """

    class Kind(models.TextChoices):
        NCMEC = "ncmec", "NCMEC hash-sharing API"
        STOPNCII = "stopncii", "StopNCII-style JSON"
        FEED = "feed", "File or URL feed (CSV, TSV, JSON lines)"
        HASHHUB = "hashhub", "Another HashHub (federation)"

    class Access(models.TextChoices):
        ALL = "all", "Every approved organisation"
        GRANTED = "granted", "Only organisations granted access by staff"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    description = models.TextField(blank=True)
    # How the source verifies its entries (e.g. "each hash reviewed by two analysts"), shown to
    # members with the source's list and with each of its matches and export items.
    verification = models.TextField(blank=True)
    default_category = models.CharField(
        max_length=8, choices=HashList.Category.choices, default=HashList.Category.CSAM
    )
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    access = models.CharField(max_length=8, choices=Access.choices, default=Access.GRANTED)
    # When beat runs an import: every interval_minutes, or on cron (five crontab fields, UTC);
    # neither: only by hand. lists.sources.schedules keeps periodic_task in step with them.
    interval_minutes = models.PositiveIntegerField(default=0)
    cron = models.CharField(max_length=100, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    checkpoint = models.JSONField(default=dict, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class SourceRecord(models.Model):
    """The hashes an upstream record (by its upstream key) currently contributes to a list.

    A later record with the same key replaces them; a deletion by key removes them. A hash held
    by several records of a list stays until the last of them lets it go.
    """

    # No index of their own on either foreign key: the (source, key) unique index serves look-ups
    # by source, nothing looks records up by list, and each index costs every import row. No
    # database constraint either (as on Entry): each is a check per written row when the page
    # commits, and records are only written by lists.sources from the run's own source and
    # lists; Django applies the cascade itself.
    source = models.ForeignKey(
        Source, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    key = models.CharField(max_length=200)
    hash_list = models.ForeignKey(
        HashList, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    hash_ids = ArrayField(models.BigIntegerField(), default=list)
    labels = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    # For snapshot feeds: the snapshot that last named this record (the sweep removes the rest).
    snapshot = models.CharField(max_length=80, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = (
            models.UniqueConstraint(fields=("source", "key"), name="one_record_per_source_key"),
        )
        indexes = (
            # No pending list (fastupdate): every import page looks released hashes up here
            # right after writing records, and a search reads the whole pending list (up to
            # 4 MB) each time, which cost an import more than writing straight into the tree.
            GinIndex(fields=("hash_ids",), name="source_record_hashes_gin", fastupdate=False),
            models.Index(fields=("source", "snapshot"), name="source_record_by_snapshot"),
        )

    def __str__(self) -> str:
        return f"{self.source_id}:{self.key}"


class ImportRun(models.Model):
    """One import of a source by a Celery worker: counts, progress, per-record errors."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="runs")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    trigger = models.CharField(max_length=200, blank=True)  # who or what started it
    created = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    pages = models.PositiveIntegerField(default=0)
    seen = models.PositiveBigIntegerField(default=0)
    added = models.PositiveBigIntegerField(default=0)
    updated = models.PositiveBigIntegerField(default=0)
    removed = models.PositiveBigIntegerField(default=0)
    rejected = models.PositiveBigIntegerField(default=0)
    expected = models.PositiveBigIntegerField(null=True, blank=True)  # records, when known
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    checkpoint_before = models.JSONField(default=dict, blank=True)
    checkpoint_after = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"run {self.public_id} of {self.source_id} ({self.status})"

    @property
    def percent(self) -> int | None:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.expected:
            return None
        read = self.seen + self.rejected  # a rejected record was read all the same
        return min(99, int(read * 100 / self.expected))


class ImportRunError(models.Model):
    """A record an import rejected, with where it stood upstream."""

    run = models.ForeignKey(ImportRun, on_delete=models.CASCADE, related_name="errors")
    position = models.CharField(max_length=200)
    code = models.CharField(max_length=64)
    message = models.TextField()

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.position}: {self.code}"


class SourceCredential(models.Model):
    """A credential staff stored on a source, encrypted (lists.sources.stored_credentials).

    ``name`` is the credential an adapter asks for, as its ``*_env`` setting names it without
    the suffix (``password`` for ``password_env``); a stored one is used in place of the
    environment variable. ``token`` is a Fernet token of the value under one of
    HASHHUB_CREDENTIAL_KEYS; the value itself is never stored, shown, logged or audited.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="stored_credentials")
    name = models.CharField(max_length=64)
    token = models.TextField()
    set_at = models.DateTimeField(default=timezone.now)
    set_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("name",)
        constraints = (
            models.UniqueConstraint(fields=("source", "name"), name="one_credential_per_name"),
        )

    def __str__(self) -> str:
        return f"{self.source_id}:{self.name}"


class FeedUpload(models.Model):
    """The records of a feed file staff uploaded, parsed in memory (lists.sources.uploads).

    The uploaded bytes are never kept, on disk or here: ``records`` holds what parsing made of
    them, one JSON array a line (a record: position, op, key, category, labels, hashes in their
    canonical text; a rejected row: position, code, message), which the source's next run reads
    as its file. A source keeps only its latest upload.
    """

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="uploads")
    filename = models.CharField(max_length=200, blank=True)
    size = models.PositiveBigIntegerField(default=0)  # bytes of the file as uploaded
    record_count = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    records = models.TextField()
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"upload {self.public_id} of {self.source_id}"


class SourceIncident(models.Model):
    """A source whose import fails, or which is overdue by its schedule: opened once, resolved
    once, each time e-mailed to hub staff and sent to the staff webhook (lists.sources.alerts).

    At most one incident of each kind is open per source (a partial unique constraint), so a
    source that keeps failing alerts once, not at every run.
    """

    class Kind(models.TextChoices):
        FAILING = "failing", "Imports fail"
        OVERDUE = "overdue", "Overdue by its schedule"

    public_id = models.CharField(max_length=32, unique=True, default=new_public_id)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="incidents")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The latest error while it is open ("code: message", truncated), and how many runs failed.
    last_error = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ("-opened_at",)
        constraints = (
            models.UniqueConstraint(
                fields=["source", "kind"],
                condition=Q(resolved_at__isnull=True),
                name="lists_one_open_incident_per_source_kind",
            ),
        )

    def __str__(self) -> str:
        return f"{self.kind} incident of {self.source_id}"
