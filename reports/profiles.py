"""Hotline profiles: how a report leaves HashHub, as a file a hotline integration can read.

A profile is a field map plus an output format. ``ncmec`` writes XML with the element names and
nesting of NCMEC's CyberTipline reporting API for the fields HashHub has (everything else is left
for the platform to add); ``generic`` writes JSON with documented fields (``"format":
"hashhub.report/1"``). docs/reports.md documents both field by field, and
tests/reports/test_profiles.py holds the field maps, the documentation and the real output to
one another.

Everything is built from the report's own columns and its ``package`` (the copy of what the
detection found, made when the report was opened), never from the detection itself, which may
have been purged since. A package from an older or partial snapshot may lack keys: a missing
value is left out (XML) or null (JSON), never an error.

HashHub never holds the image: every output says so and names the ``content_ref`` the platform
must preserve. The uploader reference is personal data stored encrypted; the caller decrypts it
and passes it in (``uploader_ref``), so that nothing here touches keys.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.db import models

from hub.errors import ServiceError
from reports.models import Report

GENERIC_FORMAT = "hashhub.report/1"
"""The version of the generic JSON: fields are added freely, renamed or removed only with a new
version."""

NCMEC_FORMAT = "hashhub.ncmec/1"
"""The version of the NCMEC profile's XML package (its wrapper and HashHub section)."""

IMAGE_STATEMENT = (
    "HashHub never held the image: it matched hashes only, and no copy of the file was ever "
    "stored or sent to it. The platform must preserve the file named by content_ref."
)

NO_CONTENT_REF_STATEMENT = (
    "HashHub never held the image: it matched hashes only, and no copy of the file was ever "
    "stored or sent to it. The platform gave no content_ref with the match request, so it "
    "must find and preserve the file by the hashes listed here."
)

ANONYMOUS = "anonymous"

# NCMEC's incidentType words (the public copy's IncidentType enumeration; docs/reports.md).
NCMEC_INCIDENT_TYPES: Mapping[str, str] = {
    Report.IncidentType.CHILD_PORNOGRAPHY: (
        "Child Pornography (possession, manufacture, and distribution)"
    ),
    Report.IncidentType.CHILD_SEX_TRAFFICKING: "Child Sex Trafficking",
    Report.IncidentType.CHILD_SEX_TOURISM: "Child Sex Tourism",
    Report.IncidentType.CHILD_SEXUAL_MOLESTATION: "Child Sexual Molestation",
    Report.IncidentType.MISLEADING_DOMAIN_NAME: "Misleading Domain Name",
    Report.IncidentType.MISLEADING_WORDS: "Misleading Words or Digital Images on the Internet",
    Report.IncidentType.ONLINE_ENTICEMENT: "Online Enticement of Children for Sexual Act",
    Report.IncidentType.UNSOLICITED_OBSCENE: "Unsolicited Obscene Material Sent to a Child",
}

# The profile's map of binary file hashes to NCMEC's originalFileHash hashType; every other
# signal type (perceptual or opaque) goes to a <details type="HASH"> name/value pair.
NCMEC_FILE_HASH_TYPES: Mapping[str, str] = {"md5": "MD5", "sha1": "SHA1", "sha256": "SHA256"}
NCMEC_DETAIL_HASH_NAMES: Mapping[str, str] = {
    "pdq": "PDQ",
    "phash": "pHash",
    "photodna": "PhotoDNA",
}


class Field(NamedTuple):
    """One output field: its path in the output, where its value comes from, and a note.

    JSON paths are dotted, ``[]`` marking each item of a list (``matches[].tier``); XML paths
    run from below the root element, ``/`` between elements and ``@`` before an attribute
    (``fileDetails/originalFileHash/@hashType``)."""

    path: str
    source: str
    note: str


@dataclass(frozen=True)
class Profile:
    """A hotline profile: an output format and the map of its fields."""

    name: str
    label: str
    media_type: str
    extension: str
    description: str
    fields: tuple[Field, ...]

    @property
    def content_type(self) -> str:
        return f"{self.media_type}; charset=utf-8"


@dataclass(frozen=True)
class Rendered:
    """A report rendered by a profile: the bytes to download, their type and file name."""

    body: bytes
    content_type: str
    filename: str


# --- what a report says, normalised from its columns and its package -------------------------


@dataclass(frozen=True)
class _Hash:
    type: str
    value: str


@dataclass(frozen=True)
class _Match:
    hash_type: str
    hash_value: str
    tier: str
    category: str
    list_id: str
    list_name: str
    contributor: str
    distance: int | None
    matched_value: str
    labels: tuple[str, ...]
    record_id: str
    verification: str


@dataclass(frozen=True)
class _Facts:
    report_id: str
    state: str
    created: dt.datetime
    hotline_report_id: str
    filed_at: dt.datetime | None
    acknowledged_at: dt.datetime | None
    detection_id: str
    detection_created: dt.datetime | None
    requested_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    confirmed_category: str
    incident_type: str
    incident_label: str
    incident_at: dt.datetime
    incident_at_source: str  # "requested_at", "detection_created" or "report_created"
    content_ref: str
    file_viewed_by_esp: bool | None
    hashes: tuple[_Hash, ...]
    uploader_ref: str
    matches: tuple[_Match, ...]
    notes: str

    @property
    def statement(self) -> str:
        return IMAGE_STATEMENT if self.content_ref else NO_CONTENT_REF_STATEMENT


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _items(value: object) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _text(value: object) -> str:
    if value is None or isinstance(value, dict | list | tuple):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _when(value: object) -> dt.datetime | None:
    """A datetime from a package's ISO 8601 text (or a datetime); None when absent or unreadable."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    else:
        return None
    if moment.tzinfo is None:  # the hub writes aware times; a naive one is taken as UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment


def _distance(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _match(raw: Mapping[str, Any], *, hash_type: str, hash_value: str) -> _Match:
    listing = _mapping(raw.get("list"))
    contributor = _text(listing.get("contributor"))
    # The API gives an anonymous list a null contributor and "anonymous": true; a package that
    # says nothing is never guessed at either. Whoever owns it is not named.
    if listing.get("anonymous") or not contributor:
        contributor = ANONYMOUS
    return _Match(
        hash_type=hash_type,
        hash_value=hash_value,
        tier=_text(listing.get("tier")),
        category=_text(listing.get("category")),
        list_id=_text(listing.get("id")),
        list_name=_text(listing.get("name")),
        contributor=contributor,
        distance=_distance(raw.get("distance")),
        matched_value=_text(raw.get("matched_value")),
        labels=tuple(_text(label) for label in _items(raw.get("labels")) if _text(label)),
        record_id=_text(raw.get("record_id")),
        verification=_text(raw.get("verification")),
    )


def _matches(package: Mapping[str, Any]) -> tuple[_Match, ...]:
    found: list[_Match] = []
    for result in _items(package.get("matches")):
        result = _mapping(result)
        if "list" in result and "matches" not in result:  # a bare match, not a result
            found.append(_match(result, hash_type="", hash_value=""))
            continue
        hash_type, hash_value = _text(result.get("type")), _text(result.get("value"))
        for raw in _items(result.get("matches")):
            found.append(_match(_mapping(raw), hash_type=hash_type, hash_value=hash_value))
    return tuple(found)


def _hashes(package: Mapping[str, Any]) -> tuple[_Hash, ...]:
    seen: dict[tuple[str, str], _Hash] = {}
    for item in _items(package.get("submitted")):
        item = _mapping(item)
        hash_type, value = _text(item.get("type")), _text(item.get("value"))
        if hash_type and value:
            seen.setdefault((hash_type, value), _Hash(hash_type, value))
    return tuple(seen.values())


def _detection_part(package: Mapping[str, Any]) -> Mapping[str, Any]:
    """Where the detection's copy sits: ``package["detection"]`` (reports.services writes it
    so), or the package itself in a flat snapshot (``"detection"`` then being the id)."""
    nested = package.get("detection")
    return nested if isinstance(nested, Mapping) else package


def _detection_id(package: Mapping[str, Any]) -> str:
    nested = package.get("detection")
    return _text(nested.get("id")) if isinstance(nested, Mapping) else _text(nested)


def _facts(report: Report, *, uploader_ref: str) -> _Facts:
    package = _mapping(report.package)
    detection = _detection_part(package)
    confirmation = _mapping(package.get("confirmation"))
    detection_created = _when(detection.get("created"))
    requested_at = _when(detection.get("requested_at"))
    # When the upload happened as far as HashHub knows: a retroactive detection's original
    # request, else the detection itself, else (a package without times) the report.
    incident_at, source = requested_at, "requested_at"
    if incident_at is None:
        incident_at, source = detection_created, "detection_created"
    if incident_at is None:
        incident_at, source = report.created, "report_created"
    code = report.incident_type
    return _Facts(
        report_id=report.public_id,
        state=report.state,
        created=report.created,
        hotline_report_id=report.hotline_report_id,
        filed_at=report.filed_at,
        acknowledged_at=report.acknowledged_at,
        detection_id=_detection_id(package) or report.detection_ref,
        detection_created=detection_created,
        requested_at=requested_at,
        confirmed_at=_when(confirmation.get("confirmed_at") or package.get("confirmed_at")),
        confirmed_category=_text(confirmation.get("category") or package.get("confirmed_category")),
        incident_type=code,
        incident_label=_choice_label(Report.IncidentType, code),
        incident_at=incident_at,
        incident_at_source=source,
        content_ref=report.content_ref or _text(detection.get("content_ref")),
        file_viewed_by_esp=report.file_viewed_by_esp,
        hashes=_hashes(detection),
        uploader_ref=uploader_ref,
        matches=_matches(detection),
        notes=report.notes,
    )


def _choice_label(choices: type[models.TextChoices], value: str) -> str:
    return str(choices(value).label) if value in choices.values else value


def _iso(moment: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and ``Z``, the form of the public copy's examples."""
    if moment is None:
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _match_line(match: _Match) -> str:
    parts = [f"HashHub match: {match.tier or 'unknown'} list"]
    if match.list_name:
        parts.append(f'"{match.list_name}"')
    if match.category:
        parts.append(f"({match.category})")
    parts.append(f"contributed by {match.contributor}")
    text = " ".join(parts)
    if match.hash_type:
        text += f"; {match.hash_type} {match.hash_value}"
    if match.distance is not None:
        text += f" at distance {match.distance}"
    if match.labels:
        text += f"; labels {', '.join(match.labels)}"
    if match.record_id:
        text += f"; record {match.record_id}"
    if match.verification:
        text += f"; verification: {match.verification}"
    return text


# --- NCMEC: XML with CyberTipline element names ------------------------------------------------

# Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF):
# dropped, since no escape can represent them. Tab, newline and carriage return stay.
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


_SURROGATE = re.compile("[\ud800-\udfff]")

_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n'


def xml_text(value: str) -> str:
    """``value`` without the characters XML 1.0 cannot hold (ElementTree escapes the rest)."""
    return _XML_INVALID.sub("", value)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, {k: xml_text(v) for k, v in attrib.items()})
    if text is not None:
        element.text = xml_text(text)
    return element


def _opt(parent: ET.Element, tag: str, text: str | None) -> None:
    if text:
        _sub(parent, tag, text)


def _incident_time_description(facts: _Facts) -> str:
    if facts.incident_at_source == "requested_at":
        found = _iso(facts.detection_created)
        return (
            "When the platform first asked HashHub to match the file's hashes; HashHub found "
            f"the match later{f', at {found}' if found else ''}, when the hash entered a list."
        )
    if facts.incident_at_source == "detection_created":
        return "When the platform asked HashHub to match the file's hashes."
    return "When the report was opened in HashHub (the detection's time was not kept)."


def _render_ncmec(facts: _Facts) -> bytes:
    root = ET.Element("hashhubReport", {"format": NCMEC_FORMAT})

    report = _sub(root, "report")
    summary = _sub(report, "incidentSummary")
    _sub(
        summary, "incidentType", NCMEC_INCIDENT_TYPES.get(facts.incident_type, facts.incident_type)
    )
    _sub(summary, "incidentDateTime", _iso(facts.incident_at))
    _sub(summary, "incidentDateTimeDescription", _incident_time_description(facts))
    if facts.uploader_ref:
        reported = _sub(report, "personOrUserReported")
        _sub(reported, "espIdentifier", facts.uploader_ref)
    _opt(report, "additionalInfo", facts.notes)

    file_details = _sub(root, "fileDetails")
    if facts.state != Report.State.DRAFT:
        _opt(file_details, "reportId", facts.hotline_report_id)
    if facts.file_viewed_by_esp is not None:
        _sub(file_details, "fileViewedByEsp", "true" if facts.file_viewed_by_esp else "false")
    for item in facts.hashes:
        if item.type in NCMEC_FILE_HASH_TYPES:
            _sub(
                file_details,
                "originalFileHash",
                item.value,
                hashType=NCMEC_FILE_HASH_TYPES[item.type],
            )
    other = [h for h in facts.hashes if h.type not in NCMEC_FILE_HASH_TYPES]
    if other:
        details = _sub(file_details, "details", type="HASH")
        for item in other:
            pair = _sub(details, "nameValuePair")
            _sub(pair, "name", NCMEC_DETAIL_HASH_NAMES.get(item.type, item.type))
            _sub(pair, "value", item.value)
    if facts.content_ref:
        _sub(file_details, "additionalInfo", f"Platform content reference: {facts.content_ref}")
    _sub(file_details, "additionalInfo", facts.statement)
    for match in facts.matches:
        _sub(file_details, "additionalInfo", _match_line(match))

    hub = _sub(root, "hashhub")
    _sub(hub, "reportId", facts.report_id)
    _sub(hub, "state", facts.state)
    _sub(hub, "created", _iso(facts.created))
    _opt(hub, "hotlineReportId", facts.hotline_report_id)
    _opt(hub, "filedAt", _iso(facts.filed_at))
    _opt(hub, "acknowledgedAt", _iso(facts.acknowledged_at))
    _opt(hub, "detectionId", facts.detection_id)
    _opt(hub, "detectionCreated", _iso(facts.detection_created))
    _opt(hub, "requestedAt", _iso(facts.requested_at))
    _opt(hub, "confirmedAt", _iso(facts.confirmed_at))
    _opt(hub, "confirmedCategory", facts.confirmed_category)
    _sub(hub, "incidentTypeCode", facts.incident_type)
    _opt(hub, "contentRef", facts.content_ref)
    _sub(hub, "imageHeldByHashhub", "false")
    _sub(hub, "statement", facts.statement)
    if facts.matches:
        matches = _sub(hub, "matches")
        for match in facts.matches:
            element = _sub(matches, "match")
            _opt(element, "hashType", match.hash_type)
            _opt(element, "hashValue", match.hash_value)
            _opt(element, "tier", match.tier)
            _opt(element, "category", match.category)
            _opt(element, "listId", match.list_id)
            _opt(element, "listName", match.list_name)
            _sub(element, "contributor", match.contributor)
            if match.distance is not None:
                _sub(element, "distance", str(match.distance))
            _opt(element, "matchedValue", match.matched_value)
            if match.labels:
                labels = _sub(element, "labels")
                for label in match.labels:
                    _sub(labels, "label", label)
            _opt(element, "recordId", match.record_id)
            _opt(element, "verification", match.verification)

    ET.indent(root)
    return (_XML_DECLARATION + ET.tostring(root, encoding="unicode") + "\n").encode("utf-8")


def _f(path: str, source: str, note: str = "") -> Field:
    return Field(path, source, note)


NCMEC_FIELDS: tuple[Field, ...] = (
    _f("@format", "constant", f'"{NCMEC_FORMAT}": the version of this package\'s layout.'),
    _f(
        "report/incidentSummary/incidentType",
        "Report.incident_type",
        "NCMEC's words for the incident type the analyst chose.",
    ),
    _f(
        "report/incidentSummary/incidentDateTime",
        "package.detection.requested_at, else package.detection.created, else Report.created",
        "ISO 8601, UTC: when the platform asked HashHub to match the file (a retroactive "
        "detection's original request).",
    ),
    _f(
        "report/incidentSummary/incidentDateTimeDescription",
        "which time incidentDateTime is",
        "A sentence saying which time incidentDateTime is.",
    ),
    _f(
        "report/personOrUserReported/espIdentifier",
        "uploader reference (Report.uploader_ref_token, decrypted)",
        "Left out when the analyst gave none.",
    ),
    _f("report/additionalInfo", "Report.notes", "Left out when there are no notes."),
    _f(
        "fileDetails/reportId",
        "Report.hotline_report_id",
        "The hotline's report id, once the report is filed.",
    ),
    _f(
        "fileDetails/fileViewedByEsp",
        "Report.file_viewed_by_esp",
        "true or false; left out when the analyst did not say.",
    ),
    _f(
        "fileDetails/originalFileHash",
        "package.detection.submitted (md5, sha1, sha256)",
        "One element per binary hash the platform submitted.",
    ),
    _f(
        "fileDetails/originalFileHash/@hashType",
        "package.detection.submitted[].type",
        "MD5, SHA1 or SHA256.",
    ),
    _f("fileDetails/details/@type", "constant", '"HASH".'),
    _f(
        "fileDetails/details/nameValuePair/name",
        "package.detection.submitted[].type (other types)",
        "PDQ, pHash, PhotoDNA (or the signal type's name).",
    ),
    _f(
        "fileDetails/details/nameValuePair/value",
        "package.detection.submitted[].value",
        "The hash as the platform submitted it (canonical lowercase hex).",
    ),
    _f(
        "fileDetails/additionalInfo",
        "Report.content_ref, the statement, package.detection.matches",
        "One element for the content reference, one for the statement, one per match.",
    ),
    _f("hashhub/reportId", "Report.public_id"),
    _f("hashhub/state", "Report.state", "draft, filed or acknowledged."),
    _f("hashhub/created", "Report.created", "When the report was opened."),
    _f("hashhub/hotlineReportId", "Report.hotline_report_id"),
    _f("hashhub/filedAt", "Report.filed_at", "The hotline's date of the report."),
    _f("hashhub/acknowledgedAt", "Report.acknowledged_at"),
    _f("hashhub/detectionId", "package.detection.id (Report.detection_ref)"),
    _f("hashhub/detectionCreated", "package.detection.created", "When the detection was recorded."),
    _f("hashhub/requestedAt", "package.detection.requested_at", "Retroactive detections only."),
    _f("hashhub/confirmedAt", "package.confirmation.confirmed_at"),
    _f("hashhub/confirmedCategory", "package.confirmation.category", "csam."),
    _f("hashhub/incidentTypeCode", "Report.incident_type", "HashHub's short code."),
    _f("hashhub/contentRef", "Report.content_ref (package.detection.content_ref)"),
    _f("hashhub/imageHeldByHashhub", "constant", "Always false."),
    _f("hashhub/statement", "constant", "That HashHub never held the image."),
    _f("hashhub/matches/match/hashType", "package.detection.matches[].type"),
    _f("hashhub/matches/match/hashValue", "package.detection.matches[].value"),
    _f("hashhub/matches/match/tier", "match list.tier"),
    _f("hashhub/matches/match/category", "match list.category"),
    _f("hashhub/matches/match/listId", "match list.id"),
    _f("hashhub/matches/match/listName", "match list.name"),
    _f(
        "hashhub/matches/match/contributor",
        "match list.contributor",
        '"anonymous" for an anonymous list.',
    ),
    _f("hashhub/matches/match/distance", "match distance"),
    _f("hashhub/matches/match/matchedValue", "match matched_value"),
    _f("hashhub/matches/match/labels/label", "match labels"),
    _f("hashhub/matches/match/recordId", "match record_id", "Verified sources only."),
    _f("hashhub/matches/match/verification", "match verification", "Verified sources only."),
)


# --- generic: documented JSON ----------------------------------------------------------------


def _render_generic(facts: _Facts) -> bytes:
    document = {
        "format": GENERIC_FORMAT,
        "report": {
            "id": facts.report_id,
            "state": facts.state,
            "created": _iso(facts.created),
            "hotline_report_id": facts.hotline_report_id or None,
            "filed_at": _iso(facts.filed_at),
            "acknowledged_at": _iso(facts.acknowledged_at),
        },
        "detection": {
            "id": facts.detection_id or None,
            "created": _iso(facts.detection_created),
            "requested_at": _iso(facts.requested_at),
            "confirmed_at": _iso(facts.confirmed_at),
            "confirmed_category": facts.confirmed_category or None,
        },
        "incident": {
            "type": facts.incident_type,
            "description": facts.incident_label,
            "ncmec_incident_type": NCMEC_INCIDENT_TYPES.get(facts.incident_type),
            "date_time": _iso(facts.incident_at),
            "date_time_source": facts.incident_at_source,
        },
        # At the top: the one thing the platform must act on (the statement names it).
        "content_ref": facts.content_ref or None,
        "file": {
            "viewed_by_platform": facts.file_viewed_by_esp,
            "held_by_hashhub": False,
            "hashes": [{"type": h.type, "value": h.value} for h in facts.hashes],
        },
        "uploader": {"reference": facts.uploader_ref or None},
        "matches": [
            {
                "type": m.hash_type or None,
                "value": m.hash_value or None,
                "tier": m.tier or None,
                "category": m.category or None,
                "list_id": m.list_id or None,
                "list_name": m.list_name or None,
                "contributor": m.contributor,
                "distance": m.distance,
                "matched_value": m.matched_value or None,
                "labels": list(m.labels),
                "record_id": m.record_id or None,
                "verification": m.verification or None,
            }
            for m in facts.matches
        ],
        "notes": facts.notes,
        "statement": facts.statement,
    }
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    # A lone surrogate cannot be written as UTF-8; it becomes U+FFFD rather than an error.
    return _SURROGATE.sub("\ufffd", text).encode("utf-8")


GENERIC_FIELDS: tuple[Field, ...] = (
    _f("format", "constant", f'"{GENERIC_FORMAT}".'),
    _f("report.id", "Report.public_id"),
    _f("report.state", "Report.state", "draft, filed or acknowledged."),
    _f("report.created", "Report.created", "When the report was opened."),
    _f("report.hotline_report_id", "Report.hotline_report_id", "null until filed."),
    _f("report.filed_at", "Report.filed_at", "The hotline's date of the report."),
    _f("report.acknowledged_at", "Report.acknowledged_at"),
    _f("detection.id", "package.detection.id (Report.detection_ref)"),
    _f("detection.created", "package.detection.created", "When the detection was recorded."),
    _f("detection.requested_at", "package.detection.requested_at", "Retroactive detections only."),
    _f("detection.confirmed_at", "package.confirmation.confirmed_at"),
    _f("detection.confirmed_category", "package.confirmation.category", "csam."),
    _f("incident.type", "Report.incident_type", "HashHub's short code."),
    _f("incident.description", "Report.incident_type", "HashHub's words for it."),
    _f("incident.ncmec_incident_type", "Report.incident_type", "NCMEC's incidentType words."),
    _f(
        "incident.date_time",
        "package.detection.requested_at, else package.detection.created, else Report.created",
        "When the platform asked HashHub to match the file.",
    ),
    _f(
        "incident.date_time_source",
        "which time date_time is",
        "requested_at, detection_created or report_created.",
    ),
    _f(
        "content_ref",
        "Report.content_ref (package.detection.content_ref)",
        "The file the platform must preserve.",
    ),
    _f("file.viewed_by_platform", "Report.file_viewed_by_esp", "true, false or null."),
    _f("file.held_by_hashhub", "constant", "Always false."),
    _f("file.hashes[].type", "package.detection.submitted[].type"),
    _f("file.hashes[].value", "package.detection.submitted[].value"),
    _f("uploader.reference", "uploader reference (decrypted)", "null when none was given."),
    _f("matches[].type", "package.detection.matches[].type", "The submitted hash's type."),
    _f("matches[].value", "package.detection.matches[].value", "The submitted hash."),
    _f("matches[].tier", "match list.tier"),
    _f("matches[].category", "match list.category"),
    _f("matches[].list_id", "match list.id"),
    _f("matches[].list_name", "match list.name"),
    _f("matches[].contributor", "match list.contributor", '"anonymous" for an anonymous list.'),
    _f("matches[].distance", "match distance"),
    _f("matches[].matched_value", "match matched_value"),
    _f("matches[].labels", "match labels"),
    _f("matches[].record_id", "match record_id", "Verified sources only."),
    _f("matches[].verification", "match verification", "Verified sources only."),
    _f("notes", "Report.notes"),
    _f("statement", "constant", "That HashHub never held the image."),
)


PROFILES: dict[str, Profile] = {
    "ncmec": Profile(
        name="ncmec",
        label="NCMEC CyberTipline (XML)",
        media_type="application/xml",
        extension="xml",
        description=(
            "XML with the element names of NCMEC's CyberTipline reporting API for the fields "
            "HashHub has (report, fileDetails), plus a hashhub section; the reporter, the "
            "file upload and everything else are left for the platform."
        ),
        fields=NCMEC_FIELDS,
    ),
    "generic": Profile(
        name="generic",
        label="Generic (JSON)",
        media_type="application/json",
        extension="json",
        description=f'JSON with documented fields ("format": "{GENERIC_FORMAT}").',
        fields=GENERIC_FIELDS,
    ),
}

DEFAULT_PROFILE = "generic"

_RENDERERS = {"ncmec": _render_ncmec, "generic": _render_generic}


def profile_get(name: str) -> Profile:
    """The profile called ``name``; ServiceError ``unknown_profile`` for any other name."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ServiceError(
            "unknown_profile",
            f"There is no report profile called {name!r}: choose one of "
            f"{', '.join(sorted(PROFILES))}.",
        ) from None


def render(report: Report, *, profile: str, uploader_ref: str) -> Rendered:
    """The report as ``profile`` writes it. Pure: no side effect (the caller audits downloads).

    ``uploader_ref`` is the decrypted uploader reference ("" when none). ServiceError
    ``unknown_profile`` for a name not in PROFILES."""
    chosen = profile_get(profile)
    body = _RENDERERS[chosen.name](_facts(report, uploader_ref=uploader_ref))
    return Rendered(
        body=body,
        content_type=chosen.content_type,
        filename=f"hashhub-report-{report.public_id}.{chosen.extension}",
    )


# --- the printable summary -------------------------------------------------------------------


def _shown(moment: dt.datetime | None) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "—"


def _row(label: str, value: str) -> dict[str, str]:
    # Control characters have no business on a printed page (and NUL none in HTML).
    return {"label": label, "value": xml_text(value) or "—"}


def _hash_name(hash_type: str) -> str:
    return {**NCMEC_FILE_HASH_TYPES, **NCMEC_DETAIL_HASH_NAMES}.get(hash_type, hash_type)


def _viewed(value: bool | None) -> str:
    if value is None:
        return "Not stated"
    return "Yes" if value else "No"


def _match_rows(matches: tuple[_Match, ...]) -> Iterator[dict[str, Any]]:
    for number, match in enumerate(matches, start=1):
        yield {
            "title": f"Match {number}",
            "rows": [
                _row("Submitted hash", f"{match.hash_type} {match.hash_value}".strip()),
                _row("List", match.list_name),
                _row("Tier", match.tier),
                _row("Category", match.category),
                _row("Contributor", match.contributor),
                _row("Distance", "" if match.distance is None else str(match.distance)),
                _row("Matched value", match.matched_value),
                _row("Labels", ", ".join(match.labels)),
                _row("Record id", match.record_id),
                _row("Verification", match.verification),
            ],
        }


def summary(report: Report, *, uploader_ref: str) -> dict[str, Any]:
    """What a printable summary page shows: ``{"title", "statement", "sections": [{"title",
    "rows": [{"label", "value"}]}]}``, every value plain text ("—" when empty) for the template
    to escape. Pure: no side effect."""
    facts = _facts(report, uploader_ref=uploader_ref)
    sections: list[dict[str, Any]] = [
        {
            "title": "Report",
            "rows": [
                _row("HashHub report id", facts.report_id),
                _row("State", _choice_label(Report.State, facts.state)),
                _row("Opened", _shown(facts.created)),
                _row("Hotline report id", facts.hotline_report_id),
                _row("Filed", _shown(facts.filed_at)),
                _row("Acknowledged", _shown(facts.acknowledged_at)),
            ],
        },
        {
            "title": "Incident",
            "rows": [
                _row("Incident type", facts.incident_label),
                _row(
                    "NCMEC incident type",
                    NCMEC_INCIDENT_TYPES.get(facts.incident_type, facts.incident_type),
                ),
                _row("Incident date and time", _shown(facts.incident_at)),
                _row("Detection", facts.detection_id),
                _row("Detection recorded", _shown(facts.detection_created)),
                _row("First requested", _shown(facts.requested_at)),
                _row("Confirmed", _shown(facts.confirmed_at)),
            ],
        },
        {
            "title": "File",
            "rows": [
                _row("Content reference (preserve this file)", facts.content_ref),
                _row("Viewed by platform staff", _viewed(facts.file_viewed_by_esp)),
                _row("Held by HashHub", "No: HashHub never held the image"),
                *(_row(_hash_name(h.type), h.value) for h in facts.hashes),
            ],
        },
        {
            "title": "Uploader",
            "rows": [_row("Uploader reference", facts.uploader_ref)],
        },
        *_match_rows(facts.matches),
        {"title": "Notes", "rows": [_row("Notes", facts.notes)]},
    ]
    return {
        "title": f"HashHub report {facts.report_id}",
        "statement": facts.statement,
        "sections": sections,
    }
