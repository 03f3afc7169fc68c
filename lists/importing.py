"""Bulk upload of hash files (CSV, TSV or plain text) into a list, from the UI or the shell.

Accepted lines, one hash each (blank lines and lines starting with ``#`` are skipped, as is a
header line whose first cell is ``type``):

    type,value[,labels,note]        labels separated by ``;`` or spaces, e.g. ``A1;escalated``
    type<TAB>value[<TAB>labels<TAB>note]
    value                           the type chosen in the form (or ``--type``) applies

Every valid line is applied; every rejected line is reported with its number, code and reason.
Lines are applied in chunks, each in its own transaction, so progress is visible while a large
file runs and a crash loses nothing: a re-run finds the applied hashes already present.
An import stops at the first chunk that would take the list or its organisation past an entry
quota (hub.quotas): that chunk is rolled back, those before it stay, the audit event says where
it stopped and the import fails with ``quota_exceeded`` naming the line.
"""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from queue import Full, Queue

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_scopes import scope

from hub.audit import Actor, audit
from hub.celery import app
from hub.errors import ServiceError
from lists.changes import ParsedEntry, Provenance, entries_add
from lists.hashtypes import get_signal_type
from lists.models import HashList, ImportJob
from lists.services import (
    EntryInput,
    audit_list,
    check_writable,
    entries_quota_check,
    parse_entry,
)

IMPORT_JOB_TASK = "lists.run_import_job"
"""The Celery task that runs a queued upload (lists.tasks defines it; queued tasks name it). Sent
by name, so that this module does not import the tasks module, which imports it."""

CHUNK = 50_000
MAX_REPORTED = 10_000
MAX_LINE = 4096


@dataclass
class ImportSummary:
    lines: int = 0
    added: int = 0
    already_present: int = 0
    rejected: int = 0
    rejections: list[dict[str, object]] = field(default_factory=list)

    def reject(self, line: int, code: str, message: str, text: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED:
            self.rejections.append(
                {"line": line, "code": code, "message": message, "text": text[:200]}
            )


def _cells(line: str) -> list[str]:
    delimiter = "\t" if "\t" in line else ","
    return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True))


def _split_labels(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(";", " ").replace("|", " ").split() if part)


def parse_lines(
    lines: Iterable[str], *, default_type: str, summary: ImportSummary
) -> Iterator[ParsedEntry]:
    """Yield each valid line as a ParsedEntry; record each rejected one in ``summary``."""
    for number, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        summary.lines += 1
        if len(line) > MAX_LINE:
            summary.reject(
                number, "line_too_long", f"A line takes at most {MAX_LINE} characters.", line
            )
            continue
        try:
            cells = _cells(line)
        except csv.Error:
            summary.reject(number, "bad_csv", "This line is not valid CSV/TSV.", line)
            continue
        if number == 1 and cells and cells[0].strip().lower() == "type":
            summary.lines -= 1
            continue
        if len(cells) == 1:
            if not default_type:
                summary.reject(
                    number,
                    "missing_type",
                    "No type on this line and no type chosen for the file.",
                    line,
                )
                continue
            item = EntryInput(default_type, cells[0])
        else:
            labels = _split_labels(cells[2]) if len(cells) > 2 else ()
            note = ",".join(cells[3:]).strip() if len(cells) > 3 else ""
            item = EntryInput(cells[0], cells[1], labels, note)
        try:
            yield parse_entry(number, item)
        except ServiceError as error:
            summary.reject(number, error.code, error.message, line)


def _chunks(rows: Iterable[ParsedEntry], size: int) -> Iterator[list[ParsedEntry]]:
    chunk: list[ParsedEntry] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_DONE = object()


def _read_ahead(
    chunks: Iterator[list[ParsedEntry]], depth: int = 2
) -> Generator[list[ParsedEntry], None, None]:
    """Parse the next chunks in a thread while the database applies the current one.

    Parsing is Python work and applying is mostly waiting on PostgreSQL (which releases the
    GIL), so on two cores the two overlap. The parser touches no database.
    """
    queue: Queue[object] = Queue(maxsize=depth)
    stop = threading.Event()  # Set when the consumer gives up (an error while applying).

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return
            except Full:
                continue

    def produce() -> None:
        try:
            for chunk in chunks:
                if stop.is_set():
                    return
                put(chunk)
        except BaseException as error:  # Handed to the consumer, which re-raises it.
            put(error)
        finally:
            put(_DONE)

    thread = threading.Thread(target=produce, name="hashhub-parse", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)


def import_lines(
    *,
    hash_list: HashList,
    lines: Iterable[str],
    default_type: str,
    actor: Actor,
    label: str,
    progress: Callable[[ImportSummary], None] | None = None,
    chunk_size: int = CHUNK,
) -> ImportSummary:
    """Apply a hash file to a list chunk by chunk (one transaction each). Audits the whole run.

    Raises ServiceError ``quota_exceeded`` when a chunk would cross an entry quota (see the
    module's docstring), after auditing what was applied before it.
    """
    check_writable(hash_list)
    default_type = _canonical_type(default_type)
    summary = ImportSummary()
    who = Provenance.of(actor, label)
    chunks = _chunks(parse_lines(lines, default_type=default_type, summary=summary), chunk_size)
    stopped: ServiceError | None = None
    at_line = 0
    try:
        for chunk in _read_ahead(chunks):
            at_line = chunk[0].index
            with transaction.atomic():
                valid, added = entries_add(hash_list, chunk, who)
                entries_quota_check(hash_list, added)
            summary.added += added
            summary.already_present += valid - added
            if progress is not None:
                progress(summary)
    except ServiceError as error:
        if error.code != "quota_exceeded":
            raise
        stopped = ServiceError(
            error.code,
            f"The import stopped at line {at_line:,}: {error.message} The "
            f"{summary.added:,} hashes added from the lines before it stay in the list; once the "
            "quota allows, import the file again (they count as already present).",
            {**(error.details or {}), "line": at_line, "added": summary.added},
            status=error.status,
        )
    audit_list(
        actor=actor,
        action="entries.imported",
        hash_list=hash_list,
        metadata={
            "source": label,
            "lines": summary.lines,
            "added": summary.added,
            "already_present": summary.already_present,
            "rejected": summary.rejected,
            **({"stopped": stopped.code, "stopped_at_line": at_line} if stopped else {}),
        },
    )
    if progress is not None:
        progress(summary)
    if stopped is not None:
        raise stopped
    return summary


def _canonical_type(name: str) -> str:
    """The chosen type for value-only lines, canonical; "" for none. Unknown: ``unknown_type``."""
    return get_signal_type(name).name if name else ""


def decode_upload(data: bytes) -> str:
    """The text of an uploaded hash file.

    Raises ServiceError ``bad_encoding`` or ``file_too_large``.
    """
    if len(data) > settings.HASHHUB_MAX_HASH_FILE_BYTES:
        raise ServiceError(
            "file_too_large",
            f"A hash file may be at most {settings.HASHHUB_MAX_HASH_FILE_BYTES // 2**20} MB.",
            status=413,
        )
    if b"\x00" in data[:8192]:
        raise ServiceError(
            "bad_encoding", "This looks like a binary file, not a CSV, TSV or text file."
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ServiceError(
            "bad_encoding", f"The file is not UTF-8 text (first bad byte at offset {error.start})."
        ) from None


def _count_hash_lines(text: str) -> int:
    """Lines that will be read as hashes: not blank, not comments, not a header."""
    count = 0
    for number, line in enumerate(io.StringIO(text), start=1):
        stripped = line.strip().lstrip("\ufeff")
        if not stripped or stripped.startswith("#"):
            continue
        if number == 1 and stripped.lower().startswith("type"):
            continue
        count += 1
    return count


@transaction.atomic
def import_job_create(
    *, hash_list: HashList, filename: str, data: bytes, default_type: str, actor: Actor
) -> ImportJob:
    """Queue a bulk upload: validates the file and the type, stores the text, enqueues the job."""
    check_writable(hash_list)
    text = decode_upload(data)
    default_type = _canonical_type(default_type)
    if hash_list.organization is None:
        raise ServiceError("not_self_managed", "Only an organisation's own lists take uploads.")
    job = ImportJob.objects.create(
        organization=hash_list.organization,
        hash_list=hash_list,
        filename=filename[:255],
        default_type=default_type,
        payload=text.encode(),
        total_lines=_count_hash_lines(text),
        created_by=actor.user,
    )
    audit(
        actor=actor,
        action="import.queued",
        organization=hash_list.organization,
        target_type="import",
        target_id=job.public_id,
        metadata={"list": hash_list.public_id, "filename": job.filename, "lines": job.total_lines},
    )
    job_id, org_id = job.pk, job.organization_id
    transaction.on_commit(
        lambda: app.send_task(IMPORT_JOB_TASK, kwargs={"job_id": job_id, "organization_id": org_id})
    )
    return job


def import_job_run(*, job_id: int) -> ImportJob:
    """Run a queued import (the Celery task calls this). Safe to run again after a crash."""
    job = ImportJob.objects.select_related("hash_list", "created_by").get(pk=job_id)
    if job.status == ImportJob.Status.DONE:
        return job
    with scope(organization=job.organization_id):
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.RUNNING, started_at=timezone.now()
        )
        text = bytes(job.payload or b"").decode()
        actor = Actor(user=job.created_by) if job.created_by else Actor(system="import")

        def progress(summary: ImportSummary) -> None:
            ImportJob.objects.filter(pk=job.pk).update(
                processed_lines=summary.lines,
                added=summary.added,
                already_present=summary.already_present,
                rejected=summary.rejected,
            )

        try:
            summary = import_lines(
                hash_list=job.hash_list,
                lines=io.StringIO(text),
                default_type=job.default_type,
                actor=actor,
                label=f"upload {job.filename} ({job.public_id})",
                progress=progress,
            )
        except ServiceError as error:
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.Status.FAILED, error=error.message, finished_at=timezone.now()
            )
        else:
            ImportJob.objects.filter(pk=job.pk).update(
                status=ImportJob.Status.DONE,
                processed_lines=summary.lines,
                total_lines=summary.lines,
                added=summary.added,
                already_present=summary.already_present,
                rejected=summary.rejected,
                rejections=summary.rejections,
                payload=None,
                finished_at=timezone.now(),
            )
        job.refresh_from_db()
    return job
