"""Feed files uploaded by staff for a ``feed`` source: parsed in memory, their records kept, a run
queued.

Invariant 1 (no uploaded byte is ever stored) holds for staff uploads too, since an "upload"
could be an image: the file is read in memory (the hub's upload handler never spools to disk),
parsed with the feed's settings into records (lists.sources.adapters.feed.parse_upload), and
only those records are kept, as a lists.models.FeedUpload the next run reads in place of a file.
Bytes that are not a hash feed (an image, anything binary, HTML) are refused with a sentence
saying so, and nothing of them is kept.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction

from hub.audit import Actor
from hub.errors import ServiceError
from lists.models import FeedUpload, ImportRun, Source
from lists.sources.adapters.feed import WHERE_KEYS, parse_upload
from lists.sources.errors import SourceError
from lists.sources.runs import run_create
from lists.sources.services import audit_source, config_clean, settings_changes, uploads_unread


def upload_size_check(size: int) -> None:
    """ServiceError ``file_too_large`` (413) for a feed file over HASHHUB_MAX_HASH_FILE_BYTES."""
    if size > settings.HASHHUB_MAX_HASH_FILE_BYTES:
        raise ServiceError(
            "file_too_large",
            f"A feed file may be at most {settings.HASHHUB_MAX_HASH_FILE_BYTES:,} bytes.",
            status=413,
        )


@transaction.atomic
def feed_upload_store(
    *, source: Source, data: bytes, filename: str, actor: Actor
) -> tuple[FeedUpload, ImportRun]:
    """Parse an uploaded feed file, keep its records, point the source at them, queue a run.

    The records replace the source's URL, file or earlier upload (which is deleted). Audited
    (``source.file_uploaded``: file name, size, records, rejected rows and the config change,
    never the content). Raises ServiceError: ``not_a_feed`` (an image or video),
    ``malformed_page`` (not a text hash feed), ``empty_feed``, ``empty_file``,
    ``file_too_large``, ``not_a_feed_source``.
    """
    if source.kind != Source.Kind.FEED:
        raise ServiceError(
            "not_a_feed_source", "Only a file or URL feed source takes an uploaded file."
        )
    if not data:
        raise ServiceError("empty_file", "The file is empty.")
    upload_size_check(len(data))
    try:
        parsed = parse_upload(source.config, data)
    except SourceError as error:
        raise ServiceError(error.code, error.message) from None
    upload = FeedUpload.objects.create(
        source=source,
        filename=filename[:200],
        size=len(data),
        record_count=parsed.count,
        rejected=parsed.rejected,
        records=parsed.records,
        created_by=actor.label[:200],
    )
    before = dict(source.config)
    config = {k: v for k, v in source.config.items() if k not in WHERE_KEYS}
    config["upload"] = upload.public_id
    source.config = config_clean(source.kind, config)
    source.save(update_fields=["config"])
    uploads_unread(source)
    audit_source(
        source,
        "source.file_uploaded",
        actor,
        upload=upload.public_id,
        filename=filename[:200],
        bytes=len(data),
        records=parsed.count,
        rejected=parsed.rejected,
        changes=settings_changes({"config": before}, {"config": source.config}),
    )
    return upload, run_create(source=source, trigger=actor.label, actor=actor)
