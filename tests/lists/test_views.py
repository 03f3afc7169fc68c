"""The list pages: index, entries, add/remove, settings, bulk upload, add by image, export.

Alice owns org A, Bob is a viewer in org A (reads, never changes), Charlie owns org B and must
not reach anything of A. Images are drawn here with Pillow and hashes are random: no real material.
"""

from __future__ import annotations

import csv
import html
import io
import re
import secrets
from typing import Any

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, TestCase
from django_scopes import scope, scopes_disabled
from PIL import Image

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists import selectors, views
from lists.hashtypes import compute_all, decode_image
from lists.importing import import_job_run
from lists.models import Entry, HashList, ImportJob
from lists.services import EntryInput, entry_add, entry_remove, list_create

pytestmark = pytest.mark.django_db

TEST = Actor(system="test")


def pdq() -> str:
    return secrets.token_hex(32)


def md5() -> str:
    return secrets.token_hex(16)


def sha1() -> str:
    return secrets.token_hex(20)


def own_list(org: Organization, category: str = "csam") -> HashList:
    with scope(organization=org.pk):
        return HashList.objects.get(organization=org, category=category, is_default=True)


def add(hash_list: HashList, *items: EntryInput) -> None:
    with scope(organization=hash_list.organization_id):
        result = entry_add(hash_list=hash_list, items=items, actor=TEST)
    assert not result.errors, result.errors


def live_values(hash_list: HashList) -> set[str]:
    with scope(organization=hash_list.organization_id):
        entries = Entry.objects.filter(hash_list=hash_list, removed_seq__isnull=True)
        return {bytes(e.hash.value).hex() for e in entries.select_related("hash")}


def url(hash_list: HashList, suffix: str = "", org: str = "org-a") -> str:
    return f"/o/{org}/lists/{hash_list.public_id}/{suffix}"


def text(response: Any) -> str:
    return response.content.decode()


def shown_values(response: Any) -> list[str]:
    return re.findall(r'<code class="hash">([0-9a-f]+)</code>', text(response))


def next_link(response: Any) -> str | None:
    found = re.search(r'href="(\?[^"]*)" rel="next"', text(response))
    return html.unescape(found.group(1)) if found else None


def busy_png(seed: int = 5, size: int = 96) -> bytes:
    """Coloured noise over a gradient: a picture PDQ rates as high quality."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(0, 200, size * size * 3).reshape(size, size, 3)
    pixels = np.clip(gradient + rng.integers(0, 56, (size, size, 3)), 0, 255).astype(np.uint8)
    return png(Image.fromarray(pixels, "RGB"))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


def checked_pairs(response: Any) -> dict[str, bool]:
    found = re.findall(r'name="hash"\s+value="([^"]+)"\s+id="[^"]*"\s*(checked)?', text(response))
    return {pair: bool(checked) for pair, checked in found}


# --- who may see and change what ----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "upload/", "image/"])
def test_each_list_page_renders_for_alice(
    alice_client: Client, org_a: Organization, suffix: str
) -> None:
    csam = own_list(org_a)
    add(csam, EntryInput("pdq", pdq(), ("A1",), "seen twice"))
    response = alice_client.get(url(csam, suffix))
    assert response.status_code == 200
    assert "CSAM" in text(response)


def test_the_index_shows_each_list_with_its_size_and_counts_by_type(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    add(csam, EntryInput("pdq", pdq()), EntryInput("pdq", pdq()), EntryInput("md5", md5()))
    response = alice_client.get("/o/org-a/lists/")
    assert response.status_code == 200
    page = text(response)
    assert url(csam) in page and url(own_list(org_a, "se")) in page
    assert "md5 1" in page and "pdq 2" in page
    assert 'href="/o/org-a/lists/"' in page  # the sidebar link
    assert "Create a list" in page


def test_bob_reads_the_pages_but_is_offered_no_change(
    bob_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    add(csam, EntryInput("md5", md5()))
    assert bob_client.get("/o/org-a/lists/").status_code == 200
    page = bob_client.get(url(csam))
    assert page.status_code == 200
    assert "Add a hash" not in text(page) and "Remove" not in text(page)
    assert bob_client.get(url(csam, "export.csv")).status_code == 200


CHANGES: list[tuple[str, str]] = [
    ("POST", ""),
    ("POST", "remove/"),
    ("POST", "settings/"),
    ("POST", "delete/"),
    ("GET", "upload/"),
    ("POST", "upload/"),
    ("GET", "image/"),
    ("POST", "image/"),
    ("POST", "image/add/"),
]


@pytest.mark.parametrize(("method", "suffix"), CHANGES)
def test_bob_the_viewer_gets_403_on_every_change(
    bob_client: Client, org_a: Organization, method: str, suffix: str
) -> None:
    lists = own_list(org_a)
    with scope(organization=org_a.pk):
        extra = list_create(org=org_a, name="Extra", category="se", actor=TEST)
    value = md5()
    add(extra, EntryInput("md5", value))
    data = {
        "type": "md5",
        "value": value,
        "reason": "no",
        "name": "Renamed",
        "hash": f"md5:{value}",
        "file": upload("h.csv", b"md5," + md5().encode(), "text/csv"),
    }
    path = url(extra, suffix)
    response = bob_client.get(path) if method == "GET" else bob_client.post(path, data)
    assert response.status_code == 403
    assert live_values(extra) == {value} and live_values(lists) == set()
    with scope(organization=org_a.pk):
        assert HashList.objects.get(pk=extra.pk).name == "Extra"
        assert not ImportJob.objects.exists()


def test_bob_cannot_create_a_list(bob_client: Client, org_a: Organization) -> None:
    response = bob_client.post("/o/org-a/lists/", {"name": "Mine", "category": "se"})
    assert response.status_code == 403
    with scope(organization=org_a.pk):
        assert not HashList.objects.filter(name="Mine").exists()


ALL_URLS: list[tuple[str, str]] = [
    ("GET", ""),
    ("GET", "export.csv"),
    *CHANGES,
]


@pytest.mark.parametrize(("method", "suffix"), ALL_URLS)
@pytest.mark.parametrize("org", ["org-a", "org-b"])
def test_charlie_gets_404_for_org_as_lists_under_either_prefix(
    charlie_client: Client, org_a: Organization, org: str, method: str, suffix: str
) -> None:
    csam = own_list(org_a)
    value = md5()
    add(csam, EntryInput("md5", value))
    data = {"type": "md5", "value": value, "reason": "x", "name": "Mine", "hash": f"md5:{value}"}
    response = (
        charlie_client.get(url(csam, suffix, org))
        if method == "GET"
        else charlie_client.post(url(csam, suffix, org), data)
    )
    assert response.status_code == 404
    assert "Org A" not in text(response) and value not in text(response)
    assert live_values(csam) == {value}


# --- lists --------------------------------------------------------------------------------------


def test_alice_creates_a_list_and_a_clashing_name_is_a_400(
    alice_client: Client, org_a: Organization
) -> None:
    response = alice_client.post(
        "/o/org-a/lists/", {"name": "Escalations", "category": "se", "description": "Hot"}
    )
    with scope(organization=org_a.pk):
        created = HashList.objects.get(organization=org_a, name="Escalations")
    assert response.status_code == 302 and response["Location"] == url(created)
    clash = alice_client.post("/o/org-a/lists/", {"name": "escalations", "category": "csam"})
    assert clash.status_code == 400
    assert "already has a list named" in text(clash)
    assert (
        alice_client.post("/o/org-a/lists/", {"name": "X", "category": "nope"}).status_code == 400
    )


def test_alice_renames_a_list_and_a_blank_name_is_a_400(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    response = alice_client.post(url(csam, "settings/"), {"name": "CSAM (confirmed)"})
    assert response.status_code == 302
    with scope(organization=org_a.pk):
        assert HashList.objects.get(pk=csam.pk).name == "CSAM (confirmed)"
    clash = alice_client.post(url(csam, "settings/"), {"name": "se"})
    assert clash.status_code == 400 and "already has a list named" in text(clash)
    assert alice_client.post(url(csam, "settings/"), {"name": ""}).status_code == 400


def test_a_list_is_deleted_with_its_entries_but_a_default_list_is_not(
    alice_client: Client, org_a: Organization
) -> None:
    with scope(organization=org_a.pk):
        extra = list_create(org=org_a, name="Extra", category="se", actor=TEST)
    add(extra, EntryInput("md5", md5()))
    page = text(alice_client.get(url(extra)))
    assert "Delete list" in page and "confirm(" in page
    response = alice_client.post(url(extra, "delete/"), {"reason": "merged"})
    assert response.status_code == 302 and response["Location"] == "/o/org-a/lists/"
    assert live_values(extra) == set()
    assert alice_client.get(url(extra)).status_code == 404
    with scope(organization=org_a.pk):
        kept = list_create(org=org_a, name="Kept", category="se", actor=TEST)
    too_long = alice_client.post(url(kept, "delete/"), {"reason": "x" * 2001}, follow=True)
    assert "Reason: Ensure this value has at most 2000 characters" in text(too_long)
    assert alice_client.get(url(kept)).status_code == 200
    csam = own_list(org_a)
    assert "Delete list" not in text(alice_client.get(url(csam)))
    refused = alice_client.post(url(csam, "delete/"), follow=True)
    assert "cannot be deleted" in text(refused)
    with scope(organization=org_a.pk):
        assert HashList.objects.get(pk=csam.pk).deleted_at is None


# --- entries ------------------------------------------------------------------------------------


def test_alice_adds_one_hash_then_it_is_already_present(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    value = pdq()
    form = {"type": "pdq", "value": value.upper(), "labels": "a1, Escalated", "note": "case 7"}
    response = alice_client.post(url(csam), form, follow=True)
    assert response.status_code == 200
    assert "was added" in text(response) and value in text(response)
    with scope(organization=org_a.pk):
        entry = Entry.objects.get(hash_list=csam)
    assert (entry.labels, entry.note, entry.added_by_label) == (
        ["A1", "escalated"],
        "case 7",
        "alice@example.test",
    )
    again = alice_client.post(url(csam), form, follow=True)
    assert "was already in this list" in text(again)


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"type": "pdq", "value": "abc"}, "PDQ hashes are 64 hex characters long"),
        ({"type": "md5", "value": "0x" + "0" * 30}, "found &#x27;x&#x27; at position 2"),
        ({"type": "md5", "value": "0" * 32, "labels": "not a label!"}, "is not a label"),
        ({"type": "crc32", "value": "00"}, "Select a valid choice"),
        ({"type": "md5", "value": ""}, "This field is required"),
    ],
)
def test_a_bad_hash_is_a_400_with_the_form_and_the_message(
    alice_client: Client, org_a: Organization, form: dict[str, str], message: str
) -> None:
    csam = own_list(org_a)
    response = alice_client.post(url(csam), form)
    assert response.status_code == 400
    assert message in text(response)
    assert 'name="value"' in text(response)
    assert live_values(csam) == set()


def test_removing_with_a_reason_leaves_a_tombstone(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    kept, gone = md5(), md5()
    add(csam, EntryInput("md5", kept), EntryInput("md5", gone))
    data = {"type": "md5", "value": gone, "reason": "false positive"}
    response = alice_client.post(url(csam, "remove/"), data, follow=True)
    assert response.status_code == 200 and "was removed" in text(response)
    assert gone not in shown_values(response) and kept in shown_values(response)
    assert live_values(csam) == {kept}
    with scope(organization=org_a.pk):
        tombstone = Entry.objects.get(hash_list=csam, removed_seq__isnull=False)
    assert bytes(tombstone.hash.value).hex() == gone
    assert tombstone.removed_reason == "false positive"
    assert tombstone.removed_by_label == "alice@example.test"


def test_removing_without_a_reason_is_a_400(alice_client: Client, org_a: Organization) -> None:
    csam = own_list(org_a)
    value = md5()
    add(csam, EntryInput("md5", value))
    response = alice_client.post(url(csam, "remove/"), {"type": "md5", "value": value})
    assert response.status_code == 400 and "Reason: This field is required." in text(response)
    assert live_values(csam) == {value}


def test_removing_a_malformed_hash_is_a_400_with_the_reason(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    value = md5()
    add(csam, EntryInput("md5", value))
    data = {"type": "md5", "value": value[:-1] + "z", "reason": "typo"}
    response = alice_client.post(url(csam, "remove/"), data)
    assert response.status_code == 400
    assert "found &#x27;z&#x27; at position 32" in text(response)  # HTML-escaped
    assert live_values(csam) == {value}


def test_the_list_page_shows_each_entry_with_its_details(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    value = pdq()
    add(csam, EntryInput("pdq", value, ("B2", "chat"), "from the queue"))
    page = text(alice_client.get(url(csam)))
    assert f'<code class="hash">{value}</code>' in page
    assert '<span class="badge label">B2</span>' in page and "chat" in page
    assert "from the queue" in page and ">test<" in page  # added by (the test actor)
    assert "1</span>" in page  # the live size


def test_search_by_prefix_and_filter_by_type_and_label(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    a, b, c = "abcd" + secrets.token_hex(30), "abce" + secrets.token_hex(30), md5()
    add(csam, EntryInput("pdq", a, ("A1",)), EntryInput("pdq", b), EntryInput("md5", c, ("A1",)))
    assert shown_values(alice_client.get(url(csam), {"prefix": "ABCD"})) == [a]
    assert set(shown_values(alice_client.get(url(csam), {"prefix": "abc"}))) >= {a, b}
    assert shown_values(alice_client.get(url(csam), {"type": "md5"})) == [c]
    assert shown_values(alice_client.get(url(csam), {"label": "a1"})) == [c, a]
    assert shown_values(alice_client.get(url(csam), {"label": "A1", "type": "pdq"})) == [a]
    assert shown_values(alice_client.get(url(csam), {"label": "nothing"})) == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"prefix": "xyz"}, "hexadecimal digits"),
        ({"cursor": "not-ours"}, "not one this hub gave out"),
        ({"type": "crc32"}, "Select a valid choice"),
    ],
)
def test_a_bad_search_is_a_400_with_the_message(
    alice_client: Client, org_a: Organization, query: dict[str, str], message: str
) -> None:
    response = alice_client.get(url(own_list(org_a)), query)
    assert response.status_code == 400 and message in text(response)


def test_pages_follow_the_cursor_newest_first_keeping_the_filters(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    values = [md5() for _ in range(230)]
    add(csam, *(EntryInput("md5", v) for v in values))
    add(csam, *(EntryInput("pdq", pdq()) for _ in range(5)))
    seen: list[str] = []
    response = alice_client.get(url(csam), {"type": "md5"})
    pages = 0
    while True:
        pages += 1
        assert response.status_code == 200
        seen += shown_values(response)
        link = next_link(response)
        if link is None:
            break
        assert "type=md5" in link and "cursor=" in link
        response = alice_client.get(url(csam) + link)
    assert pages == 3
    assert seen == list(reversed(values))
    assert "Newest" in text(response)


# --- export -------------------------------------------------------------------------------------


def test_export_streams_every_live_entry_neutralising_formulas(
    alice_client: Client, org_a: Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small pages so the export walks several keyset pages; the response is read outside any
    # tenant scope, as a WSGI server streams it after the view has returned.
    monkeypatch.setattr(selectors, "EXPORT_PAGE", 2)
    csam = own_list(org_a)
    formula = "=cmd|' /C calc'!A0"
    live = [pdq() for _ in range(4)]
    removed = md5()
    add(csam, EntryInput("pdq", live[0], ("A1", "escalated"), formula))
    add(csam, *(EntryInput("pdq", v, (), "+1 -2 @x") for v in live[1:]), EntryInput("md5", removed))
    with scope(organization=org_a.pk):
        entry_remove(hash_list=csam, items=[EntryInput("md5", removed)], reason="fp", actor=TEST)
    response = alice_client.get(url(csam, "export.csv"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert response.streaming
    body = response.getvalue().decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == ["type", "value", "labels", "note", "added_at", "added_by"]
    assert sorted(row[1] for row in rows[1:]) == sorted(live)
    assert removed not in body
    first = next(row for row in rows if row[1] == live[0])
    assert first[2] == "A1;escalated" and first[3] == "'" + formula and first[5] == "test"
    assert all(row[3] == "'+1 -2 @x" for row in rows[1:] if row[1] != live[0])
    with scopes_disabled():
        event = AuditEvent.objects.get(action="list.exported")
    assert event.target_id == csam.public_id and event.actor_label == "alice@example.test"


def test_neutralise_prefixes_every_formula_start() -> None:
    starts = ["=1", "+1", "-1", "@a", "\tx", "\rx"]
    assert [views.neutralise(cell) for cell in starts] == ["'" + cell for cell in starts]
    assert views.neutralise("abc") == "abc" and views.neutralise(None) == ""


# --- bulk upload --------------------------------------------------------------------------------


def test_a_bulk_upload_runs_as_a_job_with_progress_and_a_report(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    good_pdq, good_sha1 = pdq(), sha1()
    lines = [
        "type,value,labels,note",
        f"pdq,{good_pdq},A1,first",
        "md5,zz",
        "",
        f"sha1\t{good_sha1}",
        "=cmd|' /C calc'!A0",
        "pdq,abc",
    ]
    data = "\n".join(lines).encode()
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = alice_client.post(url(csam, "upload/"), {"file": upload("h.csv", data)})
    assert response.status_code == 302
    assert len(callbacks) == 1  # the Celery task is enqueued on commit, not run here
    with scope(organization=org_a.pk):
        job = ImportJob.objects.get(hash_list=csam)
    job_url = f"/o/org-a/lists/imports/{job.public_id}/"
    assert response["Location"] == job_url
    queued = alice_client.get(job_url + "progress/")
    assert 'hx-trigger="every 1s"' in text(queued)
    assert 'hx-trigger="every 1s"' in text(alice_client.get(job_url))

    with scope(organization=org_a.pk):
        import_job_run(job_id=job.pk)

    page = alice_client.get(job_url)
    assert page.status_code == 200 and "Done" in text(page)
    partial = alice_client.get(job_url + "progress/", HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in text(partial) and "<html" not in text(partial)
    counts = re.findall(r"<dt>([a-z ]+)</dt>\s*<dd>\s*(\d+)\s*</dd>", text(partial))
    assert counts == [("added", "2"), ("already present", "0"), ("rejected", "3")]
    assert live_values(csam) == {good_pdq, good_sha1}

    report = alice_client.get(job_url + "report.csv")
    assert report.status_code == 200 and report["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert rows[0] == ["line", "code", "message", "text"]
    assert [(row[0], row[1]) for row in rows[1:]] == [
        ("3", "bad_characters"),
        ("6", "missing_type"),
        ("7", "wrong_length"),
    ]
    assert rows[2][3] == "'=cmd|' /C calc'!A0"


def test_charlie_cannot_see_org_as_import_job(
    alice_client: Client, charlie_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    with TestCase.captureOnCommitCallbacks(execute=False):
        alice_client.post(url(csam, "upload/"), {"file": upload("h.txt", md5().encode())})
    with scope(organization=org_a.pk):
        job = ImportJob.objects.get(hash_list=csam)
    for org in ("org-a", "org-b"):
        for suffix in ("", "progress/", "report.csv"):
            path = f"/o/{org}/lists/imports/{job.public_id}/{suffix}"
            assert charlie_client.get(path).status_code == 404


def test_an_upload_with_a_default_type_applies_it_to_bare_values(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    values = [md5(), md5()]
    with TestCase.captureOnCommitCallbacks(execute=False):
        response = alice_client.post(
            url(csam, "upload/"),
            {"file": upload("v.txt", "\n".join(values).encode()), "default_type": "md5"},
        )
    assert response.status_code == 302
    with scope(organization=org_a.pk):
        import_job_run(job_id=ImportJob.objects.get(hash_list=csam).pk)
    assert live_values(csam) == set(values)


def test_an_upload_over_the_declared_size_is_a_413_before_it_is_read(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_MAX_HASH_FILE_BYTES = 1024
    big = ("md5," + "0" * 32 + "\n").encode() * 4000  # ~150 kB, beyond the multipart slack
    response = alice_client.post(url(own_list(org_a), "upload/"), {"file": upload("b.csv", big)})
    assert response.status_code == 413 and "too large" in text(response)
    with scope(organization=org_a.pk):
        assert not ImportJob.objects.exists()


def test_an_upload_just_over_the_size_is_a_413_from_the_service(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_MAX_HASH_FILE_BYTES = 1024
    response = alice_client.post(
        url(own_list(org_a), "upload/"), {"file": upload("b", b"0" * 2000)}
    )
    assert response.status_code == 413 and "at most" in text(response)


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"\x00\x01binary", "binary file"), (b"\xff\xfe md5", "not UTF-8 text")],
)
def test_an_upload_that_is_not_text_is_a_400(
    alice_client: Client, org_a: Organization, data: bytes, message: str
) -> None:
    response = alice_client.post(url(own_list(org_a), "upload/"), {"file": upload("x", data)})
    assert response.status_code == 400 and message in text(response)


def test_an_upload_without_a_file_is_a_400(alice_client: Client, org_a: Organization) -> None:
    response = alice_client.post(url(own_list(org_a), "upload/"), {})
    assert response.status_code == 400 and "This field is required" in text(response)


# --- add by image -------------------------------------------------------------------------------


def test_an_image_shows_its_computed_hashes_and_the_chosen_ones_are_added(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    data = busy_png()
    expected = compute_all(
        decode_image(
            data,
            max_bytes=settings.HASHHUB_MAX_UPLOAD_BYTES,
            max_pixels=settings.HASHHUB_MAX_IMAGE_PIXELS,
        )
    )
    response = alice_client.post(url(csam, "image/"), {"image": upload("p.png", data)})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    pairs = checked_pairs(response)
    assert {f"{t}:{expected[t].text}" for t in ("pdq", "phash", "md5")} <= set(pairs)
    assert all(pairs.values())  # a busy picture: every hash is chosen
    assert not expected["pdq"].low_quality and str(expected["pdq"].quality) in text(response)
    assert live_values(csam) == set()  # nothing is added before the choice

    chosen = [f"pdq:{expected['pdq'].text}", f"md5:{expected['md5'].text}"]
    added = alice_client.post(
        url(csam, "image/add/"), {"hash": chosen, "labels": "A2", "note": "upload 9"}, follow=True
    )
    assert added.status_code == 200 and "2 added" in text(added)
    assert live_values(csam) == {expected["pdq"].text, expected["md5"].text}
    with scope(organization=org_a.pk):
        assert {tuple(e.labels) for e in Entry.objects.filter(hash_list=csam)} == {("A2",)}


def test_a_plain_image_leaves_its_low_quality_pdq_unchosen(
    alice_client: Client, org_a: Organization
) -> None:
    data = png(Image.new("RGB", (64, 64), (120, 130, 140)))
    response = alice_client.post(url(own_list(org_a), "image/"), {"image": upload("f.png", data)})
    assert response.status_code == 200
    pairs = checked_pairs(response)
    by_type = {pair.split(":")[0]: checked for pair, checked in pairs.items()}
    assert by_type["pdq"] is False and by_type["md5"] is True and by_type["sha256"] is True
    assert "low quality" in text(response)


def test_the_image_is_not_kept_in_the_page_or_the_session(
    alice_client: Client, org_a: Organization
) -> None:
    data = busy_png(seed=9)
    session_before = dict(alice_client.session.items())
    response = alice_client.post(url(own_list(org_a), "image/"), {"image": upload("p.png", data)})
    assert response.status_code == 200
    session_after = dict(alice_client.session.items())
    assert set(session_after) - set(session_before) <= {"hashhub_last_org"}
    assert all(len(str(value)) < 100 for value in session_after.values())
    body = response.content
    assert data[:64] not in body and b"base64" not in body and b"<img" not in body


def test_choosing_no_hash_is_a_400_that_shows_the_hashes_again(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    value = md5()
    computed = [f"md5:{value}:", f"pdq:{pdq()}:12"]
    response = alice_client.post(url(csam, "image/add/"), {"computed": computed, "labels": "A1"})
    assert response.status_code == 400
    assert "Choose at least one hash" in text(response) and value in text(response)
    assert live_values(csam) == set()
    tampered = alice_client.post(url(csam, "image/add/"), {"hash": ["md5:zz"], "computed": []})
    assert tampered.status_code == 400 and "hex digits" in text(tampered)


def test_a_corrupt_image_is_a_400_with_the_unreadable_message(
    alice_client: Client, org_a: Organization
) -> None:
    data = busy_png()[:200]  # a PNG cut short
    response = alice_client.post(url(own_list(org_a), "image/"), {"image": upload("c.png", data)})
    assert response.status_code == 400
    assert "not an image this hub can read" in text(response)


def test_an_image_over_the_declared_size_is_a_413(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_MAX_UPLOAD_BYTES = 2048
    data = busy_png(size=256)  # far beyond 2 kB plus the multipart slack
    assert len(data) > 2048 + views.MULTIPART_SLACK
    response = alice_client.post(url(own_list(org_a), "image/"), {"image": upload("b.png", data)})
    assert response.status_code == 413 and "too large" in text(response)


def test_an_image_just_over_the_size_is_a_413_from_the_decoder(
    alice_client: Client, org_a: Organization, settings: Any
) -> None:
    settings.HASHHUB_MAX_UPLOAD_BYTES = 2048
    response = alice_client.post(
        url(own_list(org_a), "image/"), {"image": upload("b.png", busy_png(size=48))}
    )
    assert response.status_code == 413 and "the limit is 2048 bytes" in text(response)
