"""Report downloads (issue 21): the NCMEC CyberTipline XML, the generic JSON and the printable
summary that reports.profiles makes from a report and its package.

Reports are made with the ORM (a package dict of random hashes), not through the report
services, so that these tests say what the profiles do whatever opened the report. Every XML
answer is parsed back with defusedxml, as an integration would.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import pytest
from defusedxml import ElementTree as SafeET
from django_scopes import scopes_disabled

from hub.errors import ServiceError
from hub.models import Organization
from reports import profiles
from reports.models import Report

DOC = Path(__file__).resolve().parents[2] / "docs" / "reports.md"

OPENED = dt.datetime(2026, 3, 18, 16, 30, tzinfo=dt.UTC)
DETECTED = dt.datetime(2026, 3, 17, 10, 0, tzinfo=dt.UTC)
REQUESTED = dt.datetime(2026, 3, 1, 8, 15, tzinfo=dt.UTC)
CONFIRMED = dt.datetime(2026, 3, 18, 9, 0, tzinfo=dt.UTC)
FILED = dt.datetime(2026, 3, 19, 12, 0, tzinfo=dt.UTC)
ACKNOWLEDGED = dt.datetime(2026, 3, 20, 12, 0, tzinfo=dt.UTC)

# NCMEC's incidentType words, as the public copy gives them
# (Johannes-Andersen/Cybertipline-Tools, src/types/Constants/IncidentType.ts).
NCMEC_WORDS = {
    "Child Pornography (possession, manufacture, and distribution)",
    "Child Sex Trafficking",
    "Child Sex Tourism",
    "Child Sexual Molestation",
    "Misleading Domain Name",
    "Misleading Words or Digital Images on the Internet",
    "Online Enticement of Children for Sexual Act",
    "Unsolicited Obscene Material Sent to a Child",
}

# The order of <fileDetails>' children in the public copy (SubmitFileDetails.ts and its snapshot).
FILE_DETAILS_ORDER = (
    "reportId",
    "fileId",
    "fileName",
    "originalFileName",
    "locationOfFile",
    "fileViewedByEsp",
    "exifViewedByEsp",
    "publiclyAvailable",
    "fileRelevance",
    "fileAnnotations",
    "industryClassification",
    "originalFileHash",
    "ipCaptureEvent",
    "deviceId",
    "details",
    "additionalInfo",
)
REPORT_ORDER = (
    "incidentSummary",
    "internetDetails",
    "lawEnforcement",
    "reporter",
    "personOrUserReported",
    "intendedRecipient",
    "victim",
    "additionalInfo",
)


def hexes(nbytes: int) -> str:
    return secrets.token_hex(nbytes)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat()


def a_match(
    *, tier: str, name: str, contributor: str | None, anonymous: bool, value: str, **extra: Any
) -> dict[str, Any]:
    return {
        "list": {
            "id": hexes(8),
            "name": name,
            "category": "csam",
            "tier": tier,
            "contributor": contributor,
            "anonymous": anonymous,
        },
        "distance": extra.pop("distance", 0),
        "matched_value": value,
        "labels": extra.pop("labels", []),
        "added": None,
        "record_id": extra.pop("record_id", None),
        "verification": extra.pop("verification", None),
        "action": "block",
        **extra,
    }


def full_package(**detection: Any) -> dict[str, Any]:
    """A package as reports.services writes it, every value there."""
    md5, sha1, sha256, pdq, phash = hexes(16), hexes(20), hexes(32), hexes(32), hexes(8)
    near_pdq = pdq[:-2] + ("00" if pdq[-2:] != "00" else "01")
    return {
        "version": 1,
        "image_held": False,
        "detection": {
            "id": "dt" + hexes(6),
            "created": iso(DETECTED),
            "requested_at": None,
            "retroactive": False,
            "content_ref": "upload-8841",
            "submitted": [
                {"type": "md5", "value": md5},
                {"type": "sha1", "value": sha1},
                {"type": "sha256", "value": sha256},
                {"type": "pdq", "value": pdq},
                {"type": "phash", "value": phash},
            ],
            "matches": [
                {
                    "type": "md5",
                    "value": md5,
                    "matches": [
                        a_match(
                            tier="verified",
                            name="Upstream CSAM",
                            contributor="Upstream Feed",
                            anonymous=False,
                            value=md5,
                            labels=["A1"],
                            record_id="rec-" + hexes(4),
                            verification="triple-vetted",
                        )
                    ],
                },
                {
                    "type": "pdq",
                    "value": pdq,
                    "matches": [
                        a_match(
                            tier="community",
                            name="Shared finds",
                            contributor=None,
                            anonymous=True,
                            value=near_pdq,
                            distance=2,
                        )
                    ],
                },
            ],
            "tiers": ["verified", "community"],
            "categories": ["csam"],
            **detection,
        },
        "confirmation": {"category": "csam", "confirmed_at": iso(CONFIRMED)},
    }


def make_report(org: Organization, **fields: Any) -> Report:
    values: dict[str, Any] = {
        "organization": org,
        "detection_ref": "dt-ref",
        "content_ref": "upload-8841",
        "notes": "Seen in a group upload.",
        "file_viewed_by_esp": True,
        "package": full_package(),
        "created": OPENED,
        "updated": OPENED,
        "created_by_label": "alice@example.test",
    }
    values.update(fields)
    with scopes_disabled():
        report = Report.objects.create(**values)
        return Report.objects.get(pk=report.pk)  # as a view would read it back


def filed(org: Organization, **fields: Any) -> Report:
    return make_report(
        org,
        state=Report.State.ACKNOWLEDGED,
        hotline_report_id="123456",
        filed_at=FILED,
        acknowledged_at=ACKNOWLEDGED,
        **fields,
    )


def ncmec(report: Report, uploader_ref: str = "user-1234") -> Element:
    rendered = profiles.render(report, profile="ncmec", uploader_ref=uploader_ref)
    return SafeET.fromstring(rendered.body)


def generic(report: Report, uploader_ref: str = "user-1234") -> dict[str, Any]:
    rendered = profiles.render(report, profile="generic", uploader_ref=uploader_ref)
    document: dict[str, Any] = json.loads(rendered.body.decode("utf-8"))
    return document


def xml_paths(root: Element) -> Iterator[str]:
    """Every leaf element's and attribute's path below the root, as the field maps write them."""
    for name in root.attrib:
        yield f"@{name}"

    def walk(element: Element, path: str) -> Iterator[str]:
        for name in element.attrib:
            yield f"{path}/@{name}"
        children = list(element)
        if not children:
            yield path
        for child in children:
            yield from walk(child, f"{path}/{child.tag}")

    for child in root:
        yield from walk(child, child.tag)


def json_paths(value: Any, path: str = "") -> Iterator[str]:
    """Every leaf's path: dotted keys, ``[]`` for the items of a list of objects."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from json_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
        for item in value:
            yield from json_paths(item, f"{path}[]")
    else:
        yield path


def mapped(profile: str) -> set[str]:
    return {field.path for field in profiles.PROFILES[profile].fields}


def within_map(paths: set[str], profile: str) -> set[str]:
    """The paths that are neither mapped nor a container of a mapped field (should be none)."""
    fields = mapped(profile)
    return {
        p
        for p in paths
        if p not in fields and not any(f.startswith(p + s) for f in fields for s in "/.[")
    }


# --- the NCMEC profile -----------------------------------------------------------------------


def test_the_ncmec_xml_carries_the_cybertipline_element_names(org_a: Organization) -> None:
    report = filed(org_a)
    detection = report.package["detection"]
    md5, sha1, sha256, pdq, phash = (h["value"] for h in detection["submitted"])
    root = ncmec(report)

    assert root.tag == "hashhubReport"
    assert root.get("format") == "hashhub.ncmec/1"
    assert root.findtext("report/incidentSummary/incidentType") == (
        "Child Pornography (possession, manufacture, and distribution)"
    )
    assert root.findtext("report/incidentSummary/incidentDateTime") == "2026-03-17T10:00:00.000Z"
    assert root.findtext("report/personOrUserReported/espIdentifier") == "user-1234"
    assert root.findtext("report/additionalInfo") == "Seen in a group upload."
    assert root.findtext("fileDetails/reportId") == "123456"
    assert root.findtext("fileDetails/fileViewedByEsp") == "true"
    assert {(e.get("hashType"), e.text) for e in root.iterfind("fileDetails/originalFileHash")} == {
        ("MD5", md5),
        ("SHA1", sha1),
        ("SHA256", sha256),
    }
    details = root.findall("fileDetails/details")
    assert [d.get("type") for d in details] == ["HASH"]
    assert [
        (p.findtext("name"), p.findtext("value")) for p in details[0].iterfind("nameValuePair")
    ] == [("PDQ", pdq), ("pHash", phash)]
    info = [e.text or "" for e in root.iterfind("fileDetails/additionalInfo")]
    assert "Platform content reference: upload-8841" in info
    assert profiles.IMAGE_STATEMENT in info
    assert any("Upstream CSAM" in line and "A1" in line for line in info)
    assert root.findtext("hashhub/contentRef") == "upload-8841"
    assert root.findtext("hashhub/imageHeldByHashhub") == "false"
    assert "never held the image" in (root.findtext("hashhub/statement") or "")
    assert root.findtext("hashhub/state") == "acknowledged"
    assert root.findtext("hashhub/hotlineReportId") == "123456"
    assert root.findtext("hashhub/filedAt") == "2026-03-19T12:00:00.000Z"
    assert root.findtext("hashhub/reportId") == report.public_id
    verified, community = root.findall("hashhub/matches/match")
    assert verified.findtext("tier") == "verified"
    assert verified.findtext("contributor") == "Upstream Feed"
    assert [label.text for label in verified.iterfind("labels/label")] == ["A1"]
    assert verified.findtext("recordId", "").startswith("rec-")
    assert verified.findtext("verification") == "triple-vetted"
    assert community.findtext("distance") == "2"
    assert community.findtext("contributor") == "anonymous"


def test_the_ncmec_xml_keeps_the_public_copys_order_of_elements(org_a: Organization) -> None:
    root = ncmec(filed(org_a))
    report = [child.tag for child in root.find("report")]  # type: ignore[union-attr]
    file_details = [child.tag for child in root.find("fileDetails")]  # type: ignore[union-attr]

    assert report == sorted(report, key=REPORT_ORDER.index)
    assert file_details == sorted(file_details, key=FILE_DETAILS_ORDER.index)
    summary = [c.tag for c in root.find("report/incidentSummary")]  # type: ignore[union-attr]
    assert summary == ["incidentType", "incidentDateTime", "incidentDateTimeDescription"]


@pytest.mark.parametrize(
    ("viewed", "xml", "json_value"),
    [(True, "true", True), (False, "false", False), (None, None, None)],
)
def test_file_viewed_by_esp_is_true_false_or_left_out(
    org_a: Organization, viewed: bool | None, xml: str | None, json_value: bool | None
) -> None:
    report = make_report(org_a, file_viewed_by_esp=viewed)

    elements = ncmec(report).findall("fileDetails/fileViewedByEsp")
    assert [e.text for e in elements] == ([xml] if xml else [])
    assert generic(report)["file"]["viewed_by_platform"] is json_value


@pytest.mark.parametrize("code", Report.IncidentType.values)
def test_each_incident_type_becomes_ncmecs_words(org_a: Organization, code: str) -> None:
    report = make_report(org_a, incident_type=code)

    words = ncmec(report).findtext("report/incidentSummary/incidentType")
    assert words in NCMEC_WORDS
    assert generic(report)["incident"]["ncmec_incident_type"] == words
    assert generic(report)["incident"]["type"] == code


def test_a_retroactive_detection_dates_the_incident_at_the_original_request(
    org_a: Organization,
) -> None:
    package = full_package(requested_at=iso(REQUESTED), retroactive=True)
    report = make_report(org_a, package=package)

    root = ncmec(report)
    assert root.findtext("report/incidentSummary/incidentDateTime") == "2026-03-01T08:15:00.000Z"
    assert "found the match later" in (
        root.findtext("report/incidentSummary/incidentDateTimeDescription") or ""
    )
    assert generic(report)["incident"]["date_time"] == "2026-03-01T08:15:00.000Z"
    assert generic(report)["incident"]["date_time_source"] == "requested_at"


def test_a_draft_carries_no_hotline_report_id_and_no_uploader_when_none_was_given(
    org_a: Organization,
) -> None:
    report = make_report(org_a)

    root = ncmec(report, uploader_ref="")
    assert root.find("fileDetails/reportId") is None
    assert root.find("report/personOrUserReported") is None
    assert root.findtext("hashhub/state") == "draft"
    document = generic(report, uploader_ref="")
    assert document["uploader"]["reference"] is None
    assert document["report"]["hotline_report_id"] is None


# --- the generic profile ---------------------------------------------------------------------


def test_the_generic_json_has_exactly_its_documented_fields(org_a: Organization) -> None:
    report = filed(org_a)

    document = generic(report)
    assert document["format"] == "hashhub.report/1"
    assert set(json_paths(document)) == mapped("generic")
    assert document["report"] == {
        "id": report.public_id,
        "state": "acknowledged",
        "created": "2026-03-18T16:30:00.000Z",
        "hotline_report_id": "123456",
        "filed_at": "2026-03-19T12:00:00.000Z",
        "acknowledged_at": "2026-03-20T12:00:00.000Z",
    }
    assert document["content_ref"] == "upload-8841"
    assert document["file"]["held_by_hashhub"] is False
    assert "never held the image" in document["statement"]
    assert document["uploader"] == {"reference": "user-1234"}
    assert [m["tier"] for m in document["matches"]] == ["verified", "community"]
    assert document["matches"][0]["labels"] == ["A1"]
    assert document["detection"]["confirmed_category"] == "csam"


def test_the_ncmec_xml_has_exactly_its_mapped_fields(org_a: Organization) -> None:
    report = filed(org_a, package=full_package(requested_at=iso(REQUESTED), retroactive=True))

    assert set(xml_paths(ncmec(report))) == mapped("ncmec")


def test_a_bare_report_shows_nothing_outside_the_field_maps(org_a: Organization) -> None:
    report = make_report(org_a, package={}, notes="", content_ref="", file_viewed_by_esp=None)

    assert within_map(set(xml_paths(ncmec(report, uploader_ref=""))), "ncmec") == set()
    assert within_map(set(json_paths(generic(report, uploader_ref=""))), "generic") == set()
    # Every documented field is there, null where HashHub has no value.
    assert set(json_paths(generic(report))) >= {p.split("[]")[0] for p in mapped("generic")}


def test_the_doc_names_every_field_of_every_profile() -> None:
    text = DOC.read_text(encoding="utf-8")

    missing = {
        (name, field.path)
        for name, profile in profiles.PROFILES.items()
        for field in profile.fields
        if f"`{field.path}`" not in text
    }
    assert missing == set()
    for words in NCMEC_WORDS:
        assert words in text


# --- what no profile may get wrong ---------------------------------------------------------

NASTY = "a<b>&c\"d'e]]>\x01\x0b\x1f</additionalInfo><x>&amp;\t\r\nend \ufffe\u2028ü"


def test_nasty_text_is_escaped_and_parses_back(org_a: Organization) -> None:
    report = filed(org_a, content_ref=NASTY[:200], notes=NASTY)
    cleaned = re.sub("[\x01\x0b\x1f\ufffe]", "", NASTY).replace("\r\n", "\n")

    root = ncmec(report, uploader_ref=NASTY)
    assert root.findtext("report/additionalInfo") == cleaned
    assert root.findtext("report/personOrUserReported/espIdentifier") == cleaned
    assert root.findtext("hashhub/contentRef") == re.sub(
        "[\x01\x0b\x1f\ufffe]", "", NASTY[:200]
    ).replace("\r\n", "\n")
    assert root.find("x") is None and root.find("report/x") is None
    document = generic(report, uploader_ref=NASTY)
    assert document["notes"] == NASTY  # JSON escapes every character faithfully
    assert document["uploader"]["reference"] == NASTY


def test_characters_xml_cannot_carry_are_dropped_even_unstored(org_a: Organization) -> None:
    # NUL and a lone surrogate cannot reach PostgreSQL, but render() must not care.
    report = Report(
        organization=org_a,
        public_id="rp-unsaved",
        content_ref="ref\x00\ud800<",
        notes="n\x00\ud800>",
        created=OPENED,
        package=full_package(),
    )

    root = SafeET.fromstring(profiles.render(report, profile="ncmec", uploader_ref="u\x00").body)
    assert root.findtext("hashhub/contentRef") == "ref<"
    assert root.findtext("report/additionalInfo") == "n>"
    body = profiles.render(report, profile="generic", uploader_ref="u").body
    assert json.loads(body.decode("utf-8"))["notes"] == "n\x00\ufffd>"


def test_an_anonymous_lists_owner_is_never_named(org_a: Organization) -> None:
    package = full_package()
    # A snapshot that somehow kept an owner's name beside "anonymous": true still never shows it.
    anonymous = package["detection"]["matches"][1]["matches"][0]["list"]
    anonymous["contributor"] = "Secret Owner Org"
    report = make_report(org_a, package=package)

    for name in profiles.PROFILES:
        body = profiles.render(report, profile=name, uploader_ref="u").body.decode("utf-8")
        assert "Secret Owner Org" not in body
        assert "anonymous" in body
    shown = json.dumps(profiles.summary(report, uploader_ref="u"))
    assert "Secret Owner Org" not in shown
    assert "anonymous" in shown


@pytest.mark.parametrize(
    "package",
    [
        {},
        {"detection": "dt-flat", "matches": "not a list", "submitted": [None, 3, {"type": "md5"}]},
        {"detection": {"matches": [{"type": "md5", "value": "ab", "matches": [None, {}]}]}},
        {"detection": {"created": "not a time", "submitted": {"md5": "x"}}, "confirmation": []},
        {"detection": {"matches": [{"list": {"name": "bare match"}, "distance": "3"}]}},
    ],
    ids=["empty", "junk", "empty-matches", "bad-times", "bare-match"],
)
def test_a_partial_package_still_renders(org_a: Organization, package: dict[str, Any]) -> None:
    report = make_report(org_a, package=package)

    root = ncmec(report)
    assert root.findtext("report/incidentSummary/incidentDateTime") == "2026-03-18T16:30:00.000Z"
    document = generic(report)
    assert document["incident"]["date_time_source"] == "report_created"
    assert all(m["contributor"] == "anonymous" for m in document["matches"])
    assert profiles.summary(report, uploader_ref="")["sections"]


def test_a_flat_package_is_read_too(org_a: Organization) -> None:
    # The shape the brief describes: the detection's fields at the top.
    nested = full_package(requested_at=iso(REQUESTED))
    flat = {
        **nested["detection"],
        "detection": nested["detection"]["id"],
        "confirmed_at": iso(CONFIRMED),
        "confirmed_category": "csam",
    }
    a, b = make_report(org_a, package=nested), make_report(org_a, package=flat)

    first, second = generic(a), generic(b)
    for document in (first, second):
        document.pop("report")
    assert first == second


def test_an_unknown_profile_is_refused() -> None:
    with pytest.raises(ServiceError) as refused:
        profiles.render(Report(public_id="x"), profile="iwf", uploader_ref="")
    assert refused.value.code == "unknown_profile"


@pytest.mark.parametrize(
    ("name", "content_type", "extension"),
    [
        ("ncmec", "application/xml; charset=utf-8", "xml"),
        ("generic", "application/json; charset=utf-8", "json"),
    ],
)
def test_the_download_is_named_and_typed_by_its_profile(
    org_a: Organization, name: str, content_type: str, extension: str
) -> None:
    report = make_report(org_a)

    rendered = profiles.render(report, profile=name, uploader_ref="")
    assert rendered.content_type == content_type
    assert rendered.filename == f"hashhub-report-{report.public_id}.{extension}"
    assert rendered.body.startswith(
        b'<?xml version="1.0" encoding="UTF-8"?>' if name == "ncmec" else b"{"
    )
    assert profiles.DEFAULT_PROFILE in profiles.PROFILES


def test_the_summary_lists_the_facts_to_print(org_a: Organization) -> None:
    report = filed(org_a)

    shown = profiles.summary(report, uploader_ref="user-1234")
    rows = {
        (section["title"], row["label"]): row["value"]
        for section in shown["sections"]
        for row in section["rows"]
    }
    assert shown["title"] == f"HashHub report {report.public_id}"
    assert "never held the image" in shown["statement"]
    assert rows[("Report", "Hotline report id")] == "123456"
    assert rows[("Report", "State")] == "Acknowledged"
    assert rows[("File", "Content reference (preserve this file)")] == "upload-8841"
    assert rows[("File", "Viewed by platform staff")] == "Yes"
    assert rows[("Uploader", "Uploader reference")] == "user-1234"
    assert rows[("Match 2", "Contributor")] == "anonymous"
    assert rows[("Incident", "Incident date and time")] == "2026-03-17 10:00:00 UTC"
    assert all(isinstance(v, str) and v for v in rows.values())
