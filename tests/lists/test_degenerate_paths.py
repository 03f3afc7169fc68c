"""Issue 19, degenerate PDQ hashes: every add path not covered by test_degenerate_hashes.py.

That file covers the rule, the API, the add-one form, add by image (quality below 50), a CSV
import through ``import_lines`` and a CSV feed run. Here: the bulk upload page (a Celery job),
``manage.py importhashes``, JSON-lines feeds, NCMEC, StopNCII and peer-HashHub sources, and
confirming a detection. Each refuses the degenerate record with ``degenerate_hash`` and its
line, offset or position, and goes on with the rest. Hashes are random; the degenerate values
are those of test_degenerate_hashes.py (all zeros, and the PDQ of a flat grey Pillow image).
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django_scopes import scope, scopes_disabled

from hub.audit import Actor
from hub.models import AuditEvent, Organization
from lists.hashtypes.pdq import DEGENERATE_PDQ
from lists.importing import import_job_run
from lists.models import ImportJob, ImportRun, ImportRunError, Source
from lists.sources import runs
from lists.sources import services as source_services
from lists.sources.adapters.base import Credentials
from lists.sources.adapters.http import Http
from matching.models import Detection
from matching.review import detection_confirm
from matching.services import match_hashes
from tests.lists.feed_fixtures import (
    FakeStopNCII,
    Reply,
    Upstream,
    quick_http,
    random_pdq,
    serve_upstream,
    stopncii_record,
)
from tests.lists.ncmec_fixtures import EntryLog, NcmecServer, image
from tests.lists.test_feed_runs import feed_source, live, publish, run
from tests.lists.test_ncmec import T0, make_source
from tests.lists.test_ncmec import live as ncmec_live
from tests.lists.test_ncmec import run as ncmec_run
from tests.lists.test_views import live_values, own_list, upload, url

pytestmark = pytest.mark.django_db
SYSTEM = Actor(system="degenerate paths test")
ZEROS = "0" * 64
GREY = DEGENERATE_PDQ["grey"].hex()  # caught by the list, not the bit count


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    yield from serve_upstream()


@pytest.fixture
def http() -> Iterator[Http]:
    yield from quick_http()


def run_errors(done: ImportRun) -> list[tuple[str, str]]:
    with scopes_disabled():
        return list(
            ImportRunError.objects.filter(run=done).order_by("id").values_list("position", "code")
        )


# --- organisations' own add paths ----------------------------------------------------------------


def test_a_bulk_upload_reports_the_degenerate_lines_and_adds_the_rest(
    alice_client: Client, org_a: Organization
) -> None:
    csam = own_list(org_a)
    good = random_pdq()
    data = "\n".join(["type,value", f"pdq,{GREY}", f"pdq,{good}", f"pdq,{ZEROS}"]).encode()
    response = alice_client.post(url(csam, "upload/"), {"file": upload("h.csv", data)})
    assert response.status_code == 302
    with scope(organization=org_a.pk):
        job = ImportJob.objects.get(hash_list=csam)
        import_job_run(job_id=job.pk)
    report = alice_client.get(f"/o/org-a/lists/imports/{job.public_id}/report.csv")
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert [(row[0], row[1]) for row in rows[1:]] == [
        ("2", "degenerate_hash"),
        ("4", "degenerate_hash"),
    ]
    assert "flat grey image" in rows[1][2]
    assert live_values(csam) == {good}


def test_importhashes_rejects_the_degenerate_line_and_loads_the_rest(
    tmp_path: Path, org_a: Organization
) -> None:
    goods = [random_pdq(), random_pdq()]
    path = tmp_path / "hashes.txt"
    path.write_text(f"{goods[0]}\n{ZEROS}\n{goods[1]}\n")
    out, err = StringIO(), StringIO()
    call_command(
        "importhashes", "--org", "org-a", "--list", "CSAM", "--type", "pdq", str(path),
        stdout=out, stderr=err,
    )  # fmt: skip
    assert "2 added, 0 already present, 1 rejected" in out.getvalue()
    assert "line 2: degenerate_hash" in err.getvalue()
    assert live_values(own_list(org_a)) == set(goods)


def test_confirming_a_detection_of_a_degenerate_pdq_does_not_add_it(
    org_a: Organization,
) -> None:
    """Matching still looks a degenerate hash up; confirming its detection adds only the rest."""
    csam = own_list(org_a)
    md5 = secrets.token_hex(16)
    with scope(organization=org_a.pk):
        from lists.services import EntryInput, entry_add

        entry_add(hash_list=csam, items=[EntryInput("md5", md5)], actor=SYSTEM)
        outcome = match_hashes(
            org=org_a,
            items=[{"type": "md5", "value": md5}, {"type": "pdq", "value": ZEROS}],
            actor=SYSTEM,
        )
        assert outcome.detection is not None
        detection = Detection.objects.get(pk=outcome.detection.pk)
        result = detection_confirm(detection=detection, category="csam", actor=SYSTEM)
    assert result.added == 0 and result.already_present == 1
    assert live_values(csam) == {md5}
    # The reviewer is told which hash was not added, and why.
    assert [(r["type"], r["value"], r["code"]) for r in result.refused] == [
        ("pdq", ZEROS, "degenerate_hash")
    ]
    with scopes_disabled():
        event = AuditEvent.objects.get(action="detection.confirmed")
    assert event.metadata["refused"] == [{"type": "pdq", "code": "degenerate_hash"}]


# --- upstream sources ----------------------------------------------------------------------------


def test_a_json_lines_feed_rejects_the_degenerate_record_with_its_line(
    upstream: Upstream, http: Http
) -> None:
    good = random_pdq()
    source = feed_source(upstream, name="Jsonl-feed", format="jsonl")
    body = "".join(
        json.dumps({"type": "pdq", "value": value, "category": "csam"}) + "\n"
        for value in (good, ZEROS, GREY)
    )
    publish(upstream, source, body)
    done = run(source, http)
    assert (done.status, done.rejected) == ("succeeded", 2)
    assert run_errors(done) == [("line 2", "degenerate_hash"), ("line 3", "degenerate_hash")]
    assert live(source)["csam"] == {("pdq", good)}


@pytest.fixture
def ncmec() -> Iterator[NcmecServer]:
    with NcmecServer(page_size=10) as running:
        yield running


def test_an_ncmec_entry_with_a_degenerate_pdq_keeps_its_other_fingerprints(
    ncmec: NcmecServer,
) -> None:
    md5, pdq = secrets.token_hex(16), random_pdq()
    blank = image(1, "blank", T0 + 10, fingerprints=(("pdq", GREY), ("md5", md5)))
    fine = image(1, "fine", T0 + 20, fingerprints=(("pdq", pdq),))
    ncmec.log = EntryLog([blank, fine])
    source = make_source(ncmec)
    done = ncmec_run(source)
    assert (done.status, done.rejected) == ("succeeded", 1)
    [(position, code)] = run_errors(done)
    assert code == "degenerate_hash" and "blank" in position
    assert {(t, v) for t, v, _ in ncmec_live(source)["csam"]} == {("md5", md5), ("pdq", pdq)}


def test_a_stopncii_record_with_a_degenerate_pdq_is_rejected_and_the_rest_land(
    upstream: Upstream, http: Http
) -> None:
    fake = FakeStopNCII("sub-key", "fn-key")
    upstream.routes[FakeStopNCII.PATH] = fake
    good = random_pdq()
    fake.records = [stopncii_record(ZEROS, timestamp=100), stopncii_record(good, timestamp=101)]
    source = source_services.source_create(
        name="StopNCII",
        kind="stopncii",
        config={
            "url": f"{upstream.url}/v1",
            "subscription_key_env": "HASHHUB_SOURCE_NCII_SUB",
            "function_key_env": "HASHHUB_SOURCE_NCII_FN",
        },
        actor=SYSTEM,
    )
    done = run(source, http)
    assert (done.status, done.rejected) == ("succeeded", 1)
    assert [code for _, code in run_errors(done)] == ["degenerate_hash"]
    assert live(source)["se"] == {("pdq", good)}


def test_a_peer_hubs_degenerate_item_is_rejected_with_its_seq(
    upstream: Upstream, http: Http
) -> None:
    """A peer hub's list may hold a value added before it refused them."""
    good = random_pdq()
    peer: dict[str, Any] = {"id": "L1", "name": "Peer CSAM", "category": "csam", "tier": "own",
                            "contributor": "Peer org", "anonymous": False}  # fmt: skip
    items = [
        {"seq": 1, "op": "add", "type": "pdq", "value": GREY, "list": peer},
        {"seq": 2, "op": "add", "type": "pdq", "value": good, "list": peer},
    ]
    upstream.routes["/api/v1/export"] = lambda r: Reply.json(
        {"items": items if not r.query["cursor"] else [], "next_cursor": "c1", "has_more": False}
    )
    source: Source = source_services.source_create(
        name="Peer hub",
        kind="hashhub",
        config={"url": upstream.url, "api_key_env": "HASHHUB_SOURCE_PEER_KEY"},
        actor=SYSTEM,
    )
    queued = runs.run_create(source=source, trigger="test", enqueue=False)
    done = runs.run_execute(
        run_id=queued.pk, http=http, credentials=Credentials({"HASHHUB_SOURCE_PEER_KEY": "k"})
    )
    assert (done.status, done.rejected) == ("succeeded", 1)
    assert run_errors(done) == [("seq 1", "degenerate_hash")]
    assert live(source)["csam"] == {("pdq", good)}


def test_a_removal_of_a_degenerate_value_upstream_is_not_refused(
    upstream: Upstream, http: Http
) -> None:
    """Only adds are refused: a delta feed may still remove a value that is no longer allowed."""
    source = feed_source(upstream, name="Delta-feed", mode="delta")
    publish(upstream, source, f"op,type,value,category\nremove,pdq,{ZEROS},csam\n")
    done = run(source, http)
    assert (done.status, done.rejected) == ("succeeded", 0)
    assert run_errors(done) == []
