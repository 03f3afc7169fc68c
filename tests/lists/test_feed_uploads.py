"""Staff feed uploads never reach disk (invariant 1): read in memory, only their records kept.

Steve (hub staff) uploads files on a feed source's page. The feed directory and the temporary
directory point at empty folders of the test's own, and must stay empty whatever is uploaded; an
image is refused by name. The records the upload keeps are what the source's next run reads, so
labels, upstream keys and deletions survive the trip. Hashes are random, images synthetic.
"""

from __future__ import annotations

import io
import secrets
import tempfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_scopes import scopes_disabled
from PIL import Image

from hub.audit import Actor
from hub.models import AuditEvent
from lists.models import Entry, FeedUpload, ImportRun, ImportRunError, Source
from lists.sources.runs import run_execute
from lists.sources.services import source_create

pytestmark = pytest.mark.django_db

SYSTEM = Actor(system="test")


@pytest.fixture
def dirs(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The feed directory and every temporary directory, empty, for the test to watch."""
    feeds, temporary = tmp_path / "feeds", tmp_path / "tmp"
    feeds.mkdir()
    temporary.mkdir()
    settings.HASHHUB_FEED_DIR = feeds
    settings.FILE_UPLOAD_TEMP_DIR = str(temporary)
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    for variable in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(variable, str(temporary))
    return [feeds, temporary]


def written(dirs: list[Path]) -> list[Path]:
    return [path for directory in dirs for path in directory.rglob("*")]


def feed(name: str = "Hotline uploads", **config: Any) -> Source:
    return source_create(name=name, kind="feed", config={"format": "csv", **config}, actor=SYSTEM)


def upload(client: Client, source: Source, data: bytes, name: str = "hotline.csv") -> str:
    """Upload through the staff page; the message the page then shows."""
    url = reverse("staff_source_upload", args=[source.public_id])
    response = client.post(url, {"file": SimpleUploadedFile(name, data)})
    assert response.status_code == 302
    return client.get(response["Location"]).content.decode()


def run_latest(source: Source) -> ImportRun:
    run = ImportRun.objects.filter(source=source).order_by("-created").first()
    assert run is not None
    return run_execute(run_id=run.pk)


def live(source: Source) -> dict[str, list[str]]:
    """hex value -> labels of the source's live entries."""
    with scopes_disabled():
        entries = Entry.objects.filter(hash_list__source=source, removed_seq__isnull=True)
        return {bytes(e.hash.value).hex(): list(e.labels) for e in entries.select_related("hash")}


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 60)).save(out, format="PNG")
    return out.getvalue()


def audited(action: str) -> list[AuditEvent]:
    with scopes_disabled():
        return list(AuditEvent.objects.filter(action=action))


def test_an_upload_is_read_in_memory_its_records_kept_and_imported_with_nothing_on_disk(
    staff_client: Client, dirs: list[Path]
) -> None:
    source = feed(url="https://feeds.example.org/hashes.csv")
    md5, pdq = secrets.token_hex(16), secrets.token_hex(32)
    data = f"type,value,labels\nmd5,{md5},A1\npdq,{pdq},B2 extra\n".encode()
    page = upload(staff_client, source, data)
    assert "2 records" in page
    assert written(dirs) == []
    (kept,) = FeedUpload.objects.filter(source=source)
    assert (kept.filename, kept.size, kept.record_count, kept.rejected) == (
        "hotline.csv",
        len(data),
        2,
        0,
    )
    assert "type,value" not in kept.records  # records, not the file
    source.refresh_from_db()
    assert source.config == {"format": "csv", "upload": kept.public_id}
    assert run_latest(source).status == "succeeded"
    assert live(source) == {md5: ["A1"], pdq: ["B2", "extra"]}
    assert written(dirs) == []


def test_an_uploaded_png_is_refused_and_nothing_of_it_is_kept(
    staff_client: Client, dirs: list[Path]
) -> None:
    source = feed(url="https://feeds.example.org/hashes.csv")
    page = upload(staff_client, source, png(), name="hashes.csv")
    assert "PNG image, not a hash feed" in page
    assert written(dirs) == []
    assert not FeedUpload.objects.exists()
    assert not ImportRun.objects.exists()
    assert not audited("source.file_uploaded")
    source.refresh_from_db()
    assert source.config == {"format": "csv", "url": "https://feeds.example.org/hashes.csv"}


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (secrets.token_bytes(4000) + b"\x00", "binary"),
        (b"<html><body>Sign in</body></html>\n", "HTML"),
        (b"name,colour\nalice,red\n", "header line names no"),
        (b"type,value\nmd5,not-a-hash\n", "no valid hash row"),
    ],
)
def test_bytes_that_are_not_a_hash_feed_are_refused_with_a_reason(
    staff_client: Client, dirs: list[Path], data: bytes, complaint: str
) -> None:
    source = feed()
    page = upload(staff_client, source, data)
    assert complaint in page
    assert not FeedUpload.objects.exists()
    assert not ImportRun.objects.exists()
    assert written(dirs) == []


def test_a_file_over_the_limit_is_refused_before_it_is_read(
    staff_client: Client, dirs: list[Path], settings: Any
) -> None:
    settings.HASHHUB_MAX_HASH_FILE_BYTES = 2048
    source = feed()
    rows = "".join(f"md5,{secrets.token_hex(16)}\n" for _ in range(100))
    page = upload(staff_client, source, f"type,value\n{rows}".encode())
    assert "at most 2,048 bytes" in page
    assert not FeedUpload.objects.exists()
    assert written(dirs) == []


def test_bad_rows_are_kept_with_their_line_and_reported_by_the_run(
    staff_client: Client, dirs: list[Path]
) -> None:
    source = feed()
    good = secrets.token_hex(16)
    page = upload(staff_client, source, f"type,value\nmd5,zz\nmd5,{good}\n".encode())
    assert "1 record, 1 row rejected" in page
    run = run_latest(source)
    assert (run.status, run.added, run.rejected) == ("succeeded", 1, 1)
    (error,) = ImportRunError.objects.filter(run=run)
    assert error.position == "line 2"
    assert list(live(source)) == [good]


def test_a_new_upload_replaces_the_last_and_a_snapshot_drops_what_it_no_longer_names(
    staff_client: Client, dirs: list[Path]
) -> None:
    source = feed()
    kept, dropped = secrets.token_hex(16), secrets.token_hex(16)
    upload(staff_client, source, f"type,value\nmd5,{kept}\nmd5,{dropped}\n".encode())
    run_latest(source)
    upload(staff_client, source, f"type,value\nmd5,{kept}\n".encode())
    assert FeedUpload.objects.filter(source=source).count() == 1  # the first one is gone
    run = run_latest(source)
    assert (run.status, run.removed) == ("succeeded", 1)
    assert list(live(source)) == [kept]


def test_upstream_keys_and_deletions_survive_the_upload(
    staff_client: Client, dirs: list[Path]
) -> None:
    source = feed(mode="delta", id_field="id")
    first, replacement, other = (secrets.token_hex(16) for _ in range(3))
    upload(
        staff_client,
        source,
        f"op,id,type,value\nadd,r1,md5,{first}\nadd,r2,md5,{other}\n".encode(),
    )
    run_latest(source)
    assert set(live(source)) == {first, other}
    # r1 now names another hash (an update by key); r2 is deleted by its key alone.
    upload(
        staff_client,
        source,
        f"op,id,type,value\nadd,r1,md5,{replacement}\nremove,r2,md5,{other}\n".encode(),
    )
    run = run_latest(source)
    assert (run.updated, run.removed) == (1, 2)
    assert set(live(source)) == {replacement}


def test_the_upload_is_audited_with_the_settings_change_and_never_its_content(
    staff_client: Client, dirs: list[Path]
) -> None:
    source = feed(url="https://feeds.example.org/hashes.csv")
    value = secrets.token_hex(16)
    upload(staff_client, source, f"type,value\nmd5,{value}\n".encode(), name="june.csv")
    (event,) = audited("source.file_uploaded")
    kept = FeedUpload.objects.get()
    assert event.metadata["filename"] == "june.csv"
    assert (event.metadata["records"], event.metadata["rejected"]) == (1, 0)
    assert event.metadata["changes"] == {
        "config": {
            "upload": {"old": "(none)", "new": kept.public_id},
            "url": {"old": "https://feeds.example.org/hashes.csv", "new": "(none)"},
        }
    }
    assert value not in str(event.metadata)


def test_fetchsource_imports_an_uploaded_feed(staff_client: Client, dirs: list[Path]) -> None:
    source = feed()
    value = secrets.token_hex(16)
    page = upload(staff_client, source, f"type,value\nmd5,{value}\n".encode())
    assert "1 record." in page, page
    out = io.StringIO()
    call_command("fetchsource", source.name, "--quiet", stdout=out)
    assert "1 added" in out.getvalue()
    assert list(live(source)) == [value]


def test_a_feed_without_url_or_upload_says_what_it_waits_for(dirs: list[Path]) -> None:
    source = feed()
    run = run_execute(run_id=ImportRun.objects.create(source=source, trigger="test").pk)
    assert (run.status, run.error_code) == ("failed", "no_feed_file")
    assert "upload a file" in run.error_message
