"""Feed files uploaded by staff for a ``feed`` source: stored, the source pointed at it, a run
queued."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from hub.audit import Actor
from hub.errors import ServiceError
from lists.models import ImportRun, Source
from lists.sources.runs import run_create
from lists.sources.services import audit_source, config_clean


@transaction.atomic
def feed_file_store(*, source: Source, data: bytes, filename: str, actor: Actor) -> ImportRun:
    """Keep an uploaded feed file for a ``feed`` source, point the source at it, queue a run.

    The file is written whole under the feed directory (a temporary name, then renamed), so a
    run never reads half a file; the source then reads it instead of any URL. Audited (name and
    size, never the content).
    """
    import hashlib
    import os
    import tempfile

    from django.conf import settings

    if source.kind != Source.Kind.FEED:
        raise ServiceError("not_a_feed", "Only a file or URL feed source takes an uploaded file.")
    if not data:
        raise ServiceError("empty_file", "The file is empty.")
    if len(data) > settings.HASHHUB_MAX_HASH_FILE_BYTES:
        raise ServiceError(
            "file_too_large",
            f"A feed file may be at most {settings.HASHHUB_MAX_HASH_FILE_BYTES:,} bytes.",
            status=413,
        )
    directory = settings.HASHHUB_FEED_DIR / source.public_id
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()
    target = directory / f"{timezone.now():%Y%m%dT%H%M%S}-{digest[:12]}.feed"
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".upload-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    os.replace(temporary, target)
    config = {k: v for k, v in source.config.items() if k not in ("url", "token_env")}
    config["file"] = str(target.relative_to(settings.HASHHUB_FEED_DIR))
    source.config = config_clean(source.kind, config)
    source.save(update_fields=["config"])
    audit_source(
        source,
        "source.file_uploaded",
        actor,
        filename=filename[:200],
        bytes=len(data),
        sha256=digest,
    )
    return run_create(source=source, trigger=actor.label, actor=actor)
