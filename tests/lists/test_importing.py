from __future__ import annotations

import secrets
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import TestCase
from django_scopes import scope

from hub.audit import Actor
from hub.errors import ServiceError
from hub.models import Organization
from lists.changes import ParsedEntry
from lists.importing import decode_upload, import_job_create, import_job_run, import_lines
from lists.models import Entry, HashList, ImportJob

pytestmark = pytest.mark.django_db
ACTOR = Actor(system="import test")


def _file(good: list[str]) -> list[str]:
    return [
        "type,value,labels,note",
        f"pdq,{good[0]},A1;escalated,from a report",
        "# a comment line",
        "",
        f"md5\t{good[1]}\tB2",
        "pdq,abc",
        f"crc32,{good[2]}",
        f"PDQ,{good[0].upper()}",
        '"unterminated,quote',
        good[3],
    ]


def test_every_valid_line_is_applied_and_every_bad_one_reported_with_its_line(
    csam_a: HashList,
) -> None:
    good = [
        secrets.token_hex(32),
        secrets.token_hex(16),
        secrets.token_hex(8),
        secrets.token_hex(32),
    ]
    summary = import_lines(
        hash_list=csam_a, lines=_file(good), default_type="pdq", actor=ACTOR, label="t"
    )
    assert (summary.added, summary.already_present, summary.rejected) == (3, 1, 3)
    assert [(r["line"], r["code"]) for r in summary.rejections] == [
        (6, "wrong_length"),
        (7, "unknown_type"),
        (9, "bad_characters"),
    ]
    first = Entry.objects.get(hash_list=csam_a, hash__value=bytes.fromhex(good[0]))
    assert first.labels == ["A1", "escalated"] and first.note == "from a report"


def test_a_value_only_line_without_a_chosen_type_is_rejected(csam_a: HashList) -> None:
    summary = import_lines(
        hash_list=csam_a, lines=[secrets.token_hex(32)], default_type="", actor=ACTOR, label="t"
    )
    assert summary.rejections[0]["code"] == "missing_type"


def test_reimporting_the_same_file_adds_nothing(csam_a: HashList) -> None:
    lines = [f"md5,{secrets.token_hex(16)}" for _ in range(120)]
    first = import_lines(
        hash_list=csam_a, lines=lines, default_type="", actor=ACTOR, label="t", chunk_size=50
    )
    again = import_lines(
        hash_list=csam_a, lines=lines, default_type="", actor=ACTOR, label="t", chunk_size=50
    )
    assert (first.added, again.added, again.already_present) == (120, 0, 120)
    assert Entry.objects.filter(hash_list=csam_a).count() == 120


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"\x00\x01binary", "bad_encoding"), ("caf\u00e9".encode("latin-1"), "bad_encoding")],
)
def test_undecodable_files_are_refused(data: bytes, code: str) -> None:
    with pytest.raises(ServiceError) as error:
        decode_upload(data)
    assert error.value.code == code


def test_a_queued_job_runs_and_reports(csam_a: HashList, org_a: Organization) -> None:
    good = [
        secrets.token_hex(32),
        secrets.token_hex(16),
        secrets.token_hex(8),
        secrets.token_hex(32),
    ]
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        job = import_job_create(
            hash_list=csam_a,
            filename="feed.csv",
            data="\n".join(_file(good)).encode(),
            default_type="pdq",
            actor=ACTOR,
        )
    assert len(callbacks) == 1  # the Celery enqueue, after commit
    assert (
        job.status == ImportJob.Status.QUEUED and job.total_lines == 7
    )  # the header line is not a hash
    with scope(organization=org_a.pk):
        done = import_job_run(job_id=job.pk)
    assert done.status == ImportJob.Status.DONE
    assert (done.added, done.already_present, done.rejected, done.percent) == (3, 1, 3, 100)
    assert done.payload is None  # the uploaded text is not kept once applied
    assert [r["line"] for r in done.rejections] == [6, 7, 9]


def test_importhashes_loads_a_file_and_reports(tmp_path: Path, csam_a: HashList) -> None:
    path = tmp_path / "hashes.txt"
    path.write_text("\n".join(secrets.token_hex(32) for _ in range(25)) + "\nnot-a-hash\n")
    out, err = StringIO(), StringIO()
    call_command(
        "importhashes",
        "--org",
        "org-a",
        "--list",
        "CSAM",
        "--type",
        "pdq",
        str(path),
        stdout=out,
        stderr=err,
    )
    assert "25 added, 0 already present, 1 rejected" in out.getvalue()
    assert "line 26: bad_characters" in err.getvalue()
    assert "26/26 lines" in err.getvalue()
    with pytest.raises(CommandError, match="no list named"):
        call_command(
            "importhashes", "--org", "org-a", "--list", "Nope", str(path), stdout=out, stderr=err
        )
    with pytest.raises(CommandError, match="Cannot read"):
        call_command(
            "importhashes",
            "--org",
            "org-a",
            "--list",
            "CSAM",
            str(tmp_path / "missing"),
            stdout=out,
            stderr=err,
        )


def test_read_ahead_hands_a_parser_error_to_the_importer_and_stops_cleanly() -> None:
    import threading

    from lists.importing import _read_ahead

    def chunks() -> Iterator[list[ParsedEntry]]:
        yield []
        raise RuntimeError("parser broke")

    reader = _read_ahead(chunks())
    assert next(reader) == []
    with pytest.raises(RuntimeError, match="parser broke"):
        next(reader)

    def endless() -> Iterator[list[ParsedEntry]]:
        while True:
            yield []

    early = _read_ahead(endless())
    next(early)
    early.close()  # the importer failed and left: the parsing thread must not linger
    assert not any(t.name == "hashhub-parse" and t.is_alive() for t in threading.enumerate())
