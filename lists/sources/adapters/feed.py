"""File or URL feeds (IWF- and industry-style): CSV, TSV or JSON lines, as snapshots or deltas.

Where the file comes from (one of; a feed with none waits for an upload):

``url``
    fetched on every run (``token_env`` optionally names an environment variable holding a
    token sent as ``Authorization: Bearer``, or a ``token`` is stored on the source). An
    unchanged file (same SHA-256 as the last one fully applied) yields no page at all.
``file``
    a path *relative to* the feed directory, ``settings.HASHHUB_FEED_DIR`` (default
    ``VAR_DIR/feeds``), for files the operator puts there; a path that leaves the directory is
    refused.
``upload``
    the id of the source's latest staff upload (lists.sources.uploads). An uploaded file never
    reaches disk: :func:`parse_upload` reads it in memory, with the settings below, into records
    (one JSON array a line, see :class:`UploadedReader`), and a run reads those records as its
    file. The staff UI sets this key.

How it is read:

``format``
    ``csv``, ``tsv`` or ``jsonl``; when absent it is sniffed from the first line (``{`` starts
    JSON lines, a tab makes TSV, anything else is CSV).
``mode``
    ``snapshot`` (default: the file is the whole list, what it no longer names is removed) or
    ``delta`` (each row adds or removes, by its ``op`` field: ``add``/``remove`` and the usual
    synonyms; a row without one adds).
``type``
    a fixed signal type for every row; otherwise each row names its type in the type field.
``hash_fields``
    ``{signal type: field}`` for wide files with one column per hash type (IWF style, e.g.
    ``{"md5": "MD5", "photodna": "PhotoDNA"}``): each row is one record with all its hashes.
``type_field``, ``value_field``, ``labels_field``, ``category_field``, ``op_field``, ``id_field``
    the names of the fields (CSV/TSV header cells or JSON keys, any case). Defaults ``type``,
    ``value`` (or ``hash``), ``labels``, ``category``, ``op``; ``id_field`` has none.
``columns``
    for CSV/TSV files without a header line: the field names, in order.
``category``
    the category (``csam``/``se``) of rows that do not name one (else the source's default).
``allow_empty``
    a snapshot without one valid row is refused (``empty_snapshot``) unless this is true: an
    upstream serving an empty file by mistake must not empty the list.
``page_size`` (rows per page, default 10,000) and ``encoding`` (default ``utf-8``).

Every record is *keyed*, so the runner can tell which records a snapshot named: by the
``id_field`` when there is one, otherwise by the record's canonical hashes. Labels in CSV/TSV
are separated by ``;``, ``|`` or spaces (JSON lines may give a list).

The checkpoint is ``{"content": sha256 of the file, "bytes": its size, "snapshot": id,
"offset": last line applied, "records": valid records so far, "complete": bool}``. A run that
stopped part-way through a file resumes after the last applied page when the file is unchanged;
a changed file starts a new snapshot from line 1, except that a delta file which only had lines
appended goes on after the lines already applied. Each line is one row (hash feeds have no
multi-line fields), so every broken row is reported with its line number and the rest goes on;
a file that is not text, looks like HTML, or has no usable header or first JSON line fails with
``malformed_page``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from hub.lib.jsonsafe import JSONLimitError, loads_bounded
from lists.hashtypes import HashParseError, get_signal_type
from lists.sources.adapters.base import ADD, REMOVE, Adapter, Page, Record, RecordError
from lists.sources.errors import SourceError

PAGE_SIZE = 10_000
MAX_PAGE_SIZE = 100_000
# One row holds a few hashes (PhotoDNA hex is 288 characters) and some labels.
MAX_LINE = 8192
# A line of the records parse_upload made of a row: JSON escapes a byte of the row into at most
# six characters (a control character as \u00XX), so a row of MAX_LINE bytes fits.
UPLOADED_MAX_LINE = 8 * MAX_LINE
SNIFF_BYTES = 8192
MAX_KEY = 190
# A row is a flat object (labels may be a list): 32 levels is generous, and bounds the decoder.
MAX_JSON_DEPTH = 32
CATEGORIES = ("csam", "se")
FORMATS = ("csv", "tsv", "jsonl")
MODES = ("snapshot", "delta")
OPS = {
    "add": ADD,
    "added": ADD,
    "insert": ADD,
    "upsert": ADD,
    "+": ADD,
    "remove": REMOVE,
    "removed": REMOVE,
    "delete": REMOVE,
    "deleted": REMOVE,
    "withdrawn": REMOVE,
    "-": REMOVE,
}


def feed_dir() -> Path:
    """Where uploaded feed files live (``file`` paths are relative to it)."""
    configured = getattr(settings, "HASHHUB_FEED_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "feeds"


def hash_key(signal_type: str, value: str) -> tuple[str, str, str]:
    """(type name, canonical text, key) of one hash; raises HashParseError when it is not one.

    The key is ``type:canonical hex``, or a digest of the value for long (opaque) types, so that
    two spellings of one hash are one key and keys stay short enough for SourceRecord.key.
    """
    kind = get_signal_type(signal_type)
    raw = kind.parse(value)
    text = kind.to_text(raw)
    shown = text if len(text) <= 128 else "b2." + hashlib.blake2b(raw, digest_size=20).hexdigest()
    return kind.name, text, f"{kind.name}:{shown}"


def short_key(key: str) -> str:
    """``key`` itself when it fits SourceRecord.key, else a digest of it."""
    if len(key) <= MAX_KEY:
        return key
    return "b2." + hashlib.blake2b(key.encode(), digest_size=20).hexdigest()


def split_labels(text: str) -> tuple[str, ...]:
    return tuple(part for part in text.replace(";", " ").replace("|", " ").split() if part)


@dataclass(frozen=True)
class FeedContent:
    """One fetched or uploaded file: digest, size in bytes and lines, first bytes, a reader."""

    digest: str
    size: int
    lines: int
    head: bytes
    open: Callable[[], IO[bytes]]

    @classmethod
    def from_bytes(cls, data: bytes) -> FeedContent:
        return cls(
            digest=hashlib.sha256(data).hexdigest(),
            size=len(data),
            lines=data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1),
            head=data[:SNIFF_BYTES],
            open=lambda: io.BytesIO(data),
        )

    @classmethod
    def from_path(cls, path: Path) -> FeedContent:
        digest = hashlib.sha256()
        size = lines = 0
        last = b""
        with path.open("rb") as stream:
            head = stream.read(SNIFF_BYTES)
            chunk = head
            while chunk:
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
                last = chunk
                chunk = stream.read(1 << 20)
        if last and not last.endswith(b"\n"):
            lines += 1
        return cls(digest.hexdigest(), size, lines, head, lambda: path.open("rb"))

    def starts_with(self, digest: str, size: int) -> bool:
        """Whether the file starts with whole lines whose SHA-256 is ``digest`` (a grown log)."""
        if not 0 < size < self.size:
            return False
        found = hashlib.sha256()
        last = b""
        with self.open() as stream:
            left = size
            while left:
                chunk = stream.read(min(left, 1 << 20))
                if not chunk:
                    return False
                found.update(chunk)
                left -= len(chunk)
                last = chunk
        return last.endswith(b"\n") and found.hexdigest() == digest


def _physical_lines(stream: IO[bytes], limit: int = MAX_LINE) -> Iterator[bytes | None]:
    """Each line without its end; None for a line over ``limit`` bytes (read past, never kept
    whole)."""
    while True:
        line = stream.readline(limit + 2)
        if not line:
            return
        if len(line) > limit + 1:
            while line and not line.endswith(b"\n"):
                line = stream.readline(1 << 16)
            yield None
            continue
        yield line.rstrip(b"\r\n")


@dataclass(frozen=True)
class FeedSettings:
    """The cleaned configuration the reader works from."""

    mode: str
    format: str
    fixed_type: str
    hash_fields: dict[str, str]
    type_field: str
    value_fields: tuple[str, ...]
    labels_field: str
    category_field: str
    op_field: str
    id_field: str
    columns: tuple[str, ...]
    category: str
    encoding: str


class RowReader:
    """Turns numbered lines into records, errors, or nothing (blank lines, comments, the header)."""

    def __init__(self, feed: FeedSettings, file_format: str) -> None:
        self.feed = feed
        self.format = file_format
        self.fields: tuple[str, ...] | None = feed.columns or None
        if file_format == "jsonl":
            self.fields = ()
        elif self.fields:
            self._check_header("configuration", self.fields)
        self.first_data_line = True
        self._decoder = codecs.lookup(feed.encoding)

    @property
    def ready(self) -> bool:
        """True once the header (if any) is read: later lines can be skipped without parsing."""
        return self.fields is not None

    def read(self, number: int, raw: bytes | None) -> Record | RecordError | None:
        position = f"line {number}"
        if raw is None:
            return RecordError(position, "line_too_long", f"A line takes at most {MAX_LINE} bytes.")
        try:
            line = self._decoder.decode(raw)[0]
        except UnicodeDecodeError:
            return RecordError(
                position, "bad_encoding", f"This line is not valid {self.feed.encoding}."
            )
        if number == 1:
            line = line.lstrip("\ufeff")
        text = line.strip()
        if not text or text.startswith("#"):
            return None
        if "\x00" in line:
            # PostgreSQL's text cannot hold it (an id or label with one failed the whole page).
            return RecordError(position, "bad_encoding", "This line holds a NUL character.")
        if self.format == "jsonl":
            return self._json_row(position, text)
        return self._delimited_row(position, line)

    def _json_row(self, position: str, text: str) -> Record | RecordError:
        first, self.first_data_line = self.first_data_line, False
        try:
            row = loads_bounded(text, max_depth=MAX_JSON_DEPTH, allow_nul=False)
        except JSONLimitError as error:
            # JSON, but beyond what a row may be (too deep, a number of hundreds of digits, a
            # NUL): this row's error, even on the first line, which did look like JSON lines.
            return RecordError(position, "bad_json", f"This line is refused: {error.message}")
        except ValueError:
            row = None
        if not isinstance(row, dict):
            if first:
                raise SourceError(
                    "malformed_page",
                    "The file is not JSON lines: its first line is not a JSON object.",
                    position=position,
                )
            return RecordError(position, "bad_json", "This line is not a JSON object.")
        return self.record(position, {str(k).strip().lower(): v for k, v in row.items()})

    def _delimited_row(self, position: str, line: str) -> Record | RecordError | None:
        delimiter = "\t" if self.format == "tsv" else ","
        try:
            cells = next(csv.reader([line], delimiter=delimiter, strict=True), [])
        except csv.Error as error:
            return RecordError(position, "bad_row", f"This line is not valid CSV/TSV: {error}.")
        if self.fields is None:
            self.fields = tuple(cell.strip().lower() for cell in cells)
            self._check_header(position, self.fields)
            return None
        extra = cells[len(self.fields) :]
        if any(cell.strip() for cell in extra):
            return RecordError(
                position,
                "too_many_fields",
                f"This line has {len(cells)} fields; the header names {len(self.fields)}.",
            )
        return self.record(position, dict(zip(self.fields, cells, strict=False)))

    def _check_header(self, position: str, fields: tuple[str, ...]) -> None:
        missing = [name for name in self._required() if name not in fields]
        if self.feed.hash_fields and not any(f in fields for f in self.feed.hash_fields.values()):
            missing.append(" or ".join(self.feed.hash_fields.values()))
        if not self.feed.hash_fields and not any(f in fields for f in self.feed.value_fields):
            missing.append(" or ".join(self.feed.value_fields))
        if missing:
            shown = ", ".join(cell[:30] for cell in fields[:12])
            raise SourceError(
                "malformed_page",
                f"The header line names no {' and no '.join(missing)} column "
                f"(it has: {shown or 'nothing'}); is this a {self.format.upper()} hash feed?",
                position=position,
            )

    def _required(self) -> list[str]:
        if self.feed.hash_fields or self.feed.fixed_type:
            return []
        return [self.feed.type_field]

    def record(self, position: str, row: Mapping[str, Any]) -> Record | RecordError:
        """One row (field name → value) as a keyed record, or why it cannot be one."""
        feed = self.feed

        def text(name: str) -> str:
            value = row.get(name)
            if value is None:
                return ""
            if not isinstance(value, str):
                raise _RowError("bad_field", f"The {name} field must be text.")
            return value.strip()

        try:
            op = ADD
            if feed.mode == "delta" and text(feed.op_field):
                op = OPS.get(text(feed.op_field).lower(), "")
                if not op:
                    raise _RowError(
                        "bad_op",
                        f"Unknown operation {text(feed.op_field)[:20]!r}: use add or remove.",
                    )
            category = text(feed.category_field).lower() or feed.category
            if category and category not in CATEGORIES:
                raise _RowError(
                    "bad_category", f"Unknown category {category[:20]!r}: use csam or se."
                )
            labels = self._labels(row.get(feed.labels_field))
            hashes, keys = self._hashes(row, text)
        except _RowError as error:
            return RecordError(position, error.code, error.message)
        except HashParseError as error:
            return RecordError(position, error.code, error.message)
        record_id = text(feed.id_field) if feed.id_field else ""
        key = f"id:{record_id}" if record_id else "|".join(sorted(keys))
        return Record(
            position=position,
            op=op,
            hashes=hashes,
            key=short_key(key),
            category=category,
            labels=labels,
        )

    def _labels(self, value: Any) -> tuple[str, ...]:
        if value is None:
            return ()
        if isinstance(value, str):
            return split_labels(value)
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return tuple(item.strip() for item in value if item.strip())
        raise _RowError("bad_field", "Labels must be text or a list of texts.")

    def _hashes(
        self, row: Mapping[str, Any], text: Callable[[str], str]
    ) -> tuple[tuple[tuple[str, str], ...], list[str]]:
        feed = self.feed
        pairs: list[tuple[str, str]] = []
        if feed.hash_fields:
            pairs = [(t, text(f)) for t, f in feed.hash_fields.items() if text(f)]
            if not pairs:
                raise _RowError("missing_field", "This row has none of the hash fields filled in.")
        else:
            signal_type = feed.fixed_type or text(feed.type_field)
            if not signal_type:
                raise _RowError("missing_field", f"This row has no {feed.type_field}.")
            value = next((text(f) for f in feed.value_fields if text(f)), "")
            if not value:
                raise _RowError("missing_field", f"This row has no {feed.value_fields[0]}.")
            pairs = [(signal_type, value)]
        hashes: list[tuple[str, str]] = []
        keys: list[str] = []
        for signal_type, value in pairs:
            name, canonical, key = hash_key(signal_type, value)
            hashes.append((name, canonical))
            keys.append(key)
        return tuple(hashes), keys


class _RowError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UploadedReader:
    """Reads the records :func:`parse_upload` made of an uploaded file, a JSON array a line.

    A record is ``[position, op, key, category, labels, [[type, canonical value], ...]]`` (an
    empty key: the record is keyed by its hashes, as RowReader keys it); a row the upload could
    not read is ``[position, code, message]``, reported by the run like any bad row.
    """

    ready = True
    first_data_line = False

    def read(self, number: int, raw: bytes | None) -> Record | RecordError | None:
        try:
            row = loads_bounded(raw or b"", max_depth=MAX_JSON_DEPTH)
        except ValueError:
            row = None
        if isinstance(row, list) and len(row) == 3:
            return RecordError(str(row[0]), str(row[1]), str(row[2]))
        if not isinstance(row, list) or len(row) != 6:
            raise SourceError(
                "malformed_page",
                "The uploaded file's records are damaged; upload the file again.",
                position=f"record {number}",
            )
        position, op, key, category, labels, hashes = row
        pairs = tuple((str(t), str(v)) for t, v in hashes)
        if not key:
            key = short_key("|".join(sorted(hash_key(t, v)[2] for t, v in pairs)))
        return Record(
            position=str(position),
            op=str(op),
            hashes=pairs,
            key=str(key),
            category=str(category),
            labels=tuple(str(label) for label in labels),
        )


def feed_settings(config: Mapping[str, Any]) -> FeedSettings:
    """The reader's settings from a feed's config (checked by FeedAdapter.check_config)."""

    def field(name: str, default: str) -> str:
        return str(config.get(name) or default).strip().lower()

    value_field = str(config.get("value_field") or "").strip().lower()
    return FeedSettings(
        mode=str(config.get("mode") or "snapshot"),
        format=str(config.get("format") or ""),
        fixed_type=str(config.get("type") or ""),
        hash_fields={
            get_signal_type(t).name: f.strip().lower()
            for t, f in dict(config.get("hash_fields") or {}).items()
        },
        type_field=field("type_field", "type"),
        value_fields=(value_field,) if value_field else ("value", "hash"),
        labels_field=field("labels_field", "labels"),
        category_field=field("category_field", "category"),
        op_field=field("op_field", "op"),
        id_field=field("id_field", ""),
        columns=tuple(c.strip().lower() for c in config.get("columns") or ()),
        category=str(config.get("category") or ""),
        encoding=str(config.get("encoding") or "utf-8"),
    )


# The first bytes of the image (and video) formats a hash-sharing hub is most likely to be sent,
# so that an upload of one is refused by name before anything reads it as text.
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x00\x00\x01\x00", "an icon"),
)


def media_kind(head: bytes) -> str:
    """What image or video format ``head`` starts like ('' for none we know)."""
    for magic, kind in _IMAGE_MAGIC:
        if head.startswith(magic):
            return kind
    if head[:2] == b"BM" and head[6:10] == b"\x00\x00\x00\x00":  # the header's reserved zeros
        return "a BMP image"
    if head[:4] == b"RIFF" and head[8:12] in (b"WEBP", b"AVI "):
        return "a WebP image" if head[8:12] == b"WEBP" else "a video"
    if head[4:8] == b"ftyp":
        return "an image or video (HEIF, AVIF or MP4)"
    return ""


@dataclass(frozen=True)
class ParsedUpload:
    """An uploaded file as records: the text UploadedReader reads, and what it holds."""

    records: str
    count: int
    rejected: int
    first_errors: list[RecordError]


# Config keys that say where a feed's file comes from (an upload replaces them all).
WHERE_KEYS = ("url", "token_env", "file", "upload")


def parse_upload(config: Mapping[str, Any], data: bytes) -> ParsedUpload:
    """Read an uploaded feed file in memory, with the feed's ``config``, into records.

    Nothing is written anywhere; the caller keeps the records and drops ``data``. Raises
    SourceError: ``not_a_feed`` for an image or video, ``malformed_page`` for anything else that
    is not a text hash feed (binary, HTML, no usable header), ``empty_feed`` when no row is a
    valid record (unless an empty snapshot is allowed). Bad rows are kept as errors, with their
    line numbers, for the run to report.
    """
    media = media_kind(data[:16])
    if media:
        raise SourceError(
            "not_a_feed",
            f"This file is {media}, not a hash feed. Upload a CSV, TSV or JSON-lines file of "
            "hashes; images are never uploaded here.",
        )
    cleaned = FeedAdapter.check_config({k: v for k, v in config.items() if k not in WHERE_KEYS})
    feed = feed_settings(cleaned)
    reader = RowReader(feed, _sniff(data[:SNIFF_BYTES], feed))
    lines: list[str] = []
    count = rejected = 0
    first_errors: list[RecordError] = []
    for number, raw in enumerate(_physical_lines(io.BytesIO(data)), start=1):
        item = reader.read(number, raw)
        if item is None:
            continue
        if isinstance(item, RecordError):
            rejected += 1
            if len(first_errors) < 5:
                first_errors.append(item)
            lines.append(json.dumps([item.position, item.code, item.message]))
            continue
        count += 1
        own_key = short_key("|".join(sorted(hash_key(t, v)[2] for t, v in item.hashes)))
        lines.append(
            json.dumps(
                [
                    item.position,
                    item.op,
                    "" if item.key == own_key else item.key,
                    item.category,
                    list(item.labels),
                    [list(pair) for pair in item.hashes],
                ],
                separators=(",", ":"),
            )
        )
    if not count and not (feed.mode == "snapshot" and cleaned.get("allow_empty")):
        first = ""
        if first_errors:
            first = f" The first problem: {first_errors[0].position}: {first_errors[0].message}"
        raise SourceError(
            "empty_feed", f"The file has no valid hash row ({rejected:,} rejected).{first}"
        )
    return ParsedUpload("\n".join(lines) + "\n" if lines else "", count, rejected, first_errors)


class FeedAdapter(Adapter):
    """A CSV, TSV or JSON-lines file from a URL, the feed directory or a staff upload; see the
    module docstring."""

    kind = "feed"
    credential_keys = ("token_env",)

    @classmethod
    def check_config(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        cleaned = dict(config)
        url, file = str(config.get("url") or ""), str(config.get("file") or "")
        upload = config.get("upload")
        if sum(1 for where in (url, file, upload) if where) > 1:
            raise SourceError("bad_config", "A feed takes only one of 'url', 'file' and 'upload'.")
        if url and not url.startswith(("https://", "http://")):
            raise SourceError("bad_config", "The feed's url must start with https:// or http://.")
        if file:
            _feed_path(file)
        if upload is not None and (
            not isinstance(upload, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", upload)
        ):
            raise SourceError("bad_config", "upload is the id of an uploaded file.")
        _choice(config, "format", FORMATS, "")
        _choice(config, "mode", MODES, "snapshot")
        _choice(config, "category", CATEGORIES, "")
        hash_fields = config.get("hash_fields")
        named_types = [config.get("type"), *(hash_fields if isinstance(hash_fields, dict) else ())]
        for name in named_types:
            if name:
                try:
                    get_signal_type(str(name))
                except HashParseError as error:
                    raise SourceError("bad_config", error.message) from None
        if config.get("hash_fields") is not None and (
            not isinstance(config["hash_fields"], dict)
            or not all(isinstance(v, str) and v for v in config["hash_fields"].values())
        ):
            raise SourceError("bad_config", "hash_fields maps signal types to field names.")
        columns = config.get("columns")
        if columns is not None and (
            not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)
        ):
            raise SourceError("bad_config", "columns is a list of field names.")
        size = config.get("page_size", PAGE_SIZE)
        if not isinstance(size, int) or isinstance(size, bool) or not 1 <= size <= MAX_PAGE_SIZE:
            raise SourceError(
                "bad_config", f"page_size is a whole number from 1 to {MAX_PAGE_SIZE}."
            )
        try:
            # str.encode refuses what is not a text encoding ("zlib_codec", "base64", "rot13"
            # are codecs.lookup()'s too, and would turn a small body into a huge one).
            "".encode(str(config.get("encoding") or "utf-8"))
        except LookupError:
            raise SourceError(
                "bad_config", "The feed's encoding is not a text encoding Python knows."
            ) from None
        return cleaned

    def settings(self) -> FeedSettings:
        return feed_settings(self.check_config(self.config))

    def fetch(self) -> FeedContent:
        """The file: from the staff upload's records, the feed directory or the URL."""
        if self.config.get("upload"):
            records = self.uploaded.get(str(self.config["upload"]))
            if records is None:
                raise SourceError(
                    "file_missing", "The uploaded file's records are gone; upload it again."
                )
            return FeedContent.from_bytes(records.encode())
        if self.config.get("file"):
            path = _feed_path(str(self.config["file"]))
            if not path.is_file():
                raise SourceError("file_missing", f"The feed file {self.config['file']} is gone.")
            return FeedContent.from_path(path)
        if not self.config.get("url"):
            raise SourceError(
                "no_feed_file",
                "This feed has no url and no uploaded file yet: upload a file on the source's "
                "page, or set its url.",
            )
        headers = {"Accept": "text/csv, text/tab-separated-values, application/x-ndjson, */*"}
        if self.credentials.has(self.config, "token_env"):
            headers["Authorization"] = f"Bearer {self.credentials.get(self.config, 'token_env')}"
        response = self.http.get(str(self.config["url"]), headers=headers)
        return FeedContent.from_bytes(response.content)

    def pages(self, checkpoint: Mapping[str, Any]) -> Iterator[Page]:
        feed = self.settings()
        page_size = int(self.config.get("page_size", PAGE_SIZE))
        content = self.fetch()
        same = checkpoint.get("content") == content.digest
        if same and checkpoint.get("complete"):
            return  # The file has not changed since it was last applied in full.
        # A delta log that only grew goes on after its applied lines: replaying them would
        # re-add and re-remove what was removed since, churning the change sequence.
        appended = feed.mode == "delta" and content.starts_with(
            str(checkpoint.get("content") or ""), int(checkpoint.get("bytes") or 0)
        )
        if same or appended:
            snapshot = str(checkpoint.get("snapshot") or "")
            offset = int(checkpoint.get("offset") or 0)
            records = int(checkpoint.get("records") or 0)
        else:
            snapshot, offset, records = "", 0, 0
        # A fresh id for each new import of a file, so a snapshot id is never reused even when
        # a file comes back that was applied before (the sweep compares ids).
        snapshot = snapshot or f"{content.digest[:32]}.{secrets.token_hex(6)}"
        reader: RowReader | UploadedReader
        line_limit = MAX_LINE
        if self.config.get("upload"):
            reader = UploadedReader()  # parsed when uploaded, with the same settings
            line_limit = UPLOADED_MAX_LINE
        else:
            reader = RowReader(feed, _sniff(content.head, feed))
            reader.first_data_line = not offset
        expected = max(0, content.lines - offset)

        def page(items: list[Record | RecordError], line: int, complete: bool) -> Page:
            nonlocal records
            good = [item for item in items if isinstance(item, Record)]
            records += len(good)
            empty = complete and feed.mode == "snapshot" and not records
            if empty and not self.config.get("allow_empty"):
                raise SourceError(
                    "empty_snapshot",
                    "The feed has no valid row; refusing to empty the source's lists "
                    "(set allow_empty when an empty file is meant).",
                )
            return Page(
                records=good,
                errors=[item for item in items if isinstance(item, RecordError)],
                checkpoint={
                    "content": content.digest,
                    "bytes": content.size,
                    "snapshot": snapshot,
                    "offset": line,
                    "records": records,
                    "complete": complete,
                },
                snapshot=snapshot if feed.mode == "snapshot" else "",
                snapshot_complete=complete and feed.mode == "snapshot",
                expected=expected,
            )

        items: list[Record | RecordError] = []
        held: tuple[list[Record | RecordError], int] | None = None
        last = offset
        with content.open() as stream:
            for number, raw in enumerate(_physical_lines(stream, line_limit), start=1):
                if number <= offset and reader.ready:
                    continue
                item = reader.read(number, raw)
                if number <= offset or item is None:
                    continue
                if held is not None:
                    # Only now is it known that the held page is not the file's last.
                    yield page(*held, complete=False)
                    held = None
                items.append(item)
                last = number
                if len(items) >= page_size:
                    held, items = (items, number), []
        if held is not None:
            yield page(*held, complete=True)
        else:
            yield page(items, max(last, content.lines), complete=True)


def _choice(config: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str) -> None:
    value = config.get(name) or default
    if value and value not in allowed:
        raise SourceError("bad_config", f"{name} must be one of {', '.join(allowed)}.")


def _feed_path(relative: str) -> Path:
    base = feed_dir().resolve()
    path = (base / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(base):
        raise SourceError("bad_config", "A feed file must be a path inside the feed directory.")
    return path


def _sniff(head: bytes, feed: FeedSettings) -> str:
    """The file's format; SourceError ``malformed_page`` when it is not a text hash feed."""
    if b"\x00" in head:
        raise SourceError(
            "malformed_page", "The file is binary, not a CSV, TSV or JSON-lines feed."
        )
    text = codecs.getincrementaldecoder(feed.encoding)(errors="replace").decode(head, final=False)
    # A stray undecodable line is that line's error; a head full of them is no text file at all.
    unreadable = sum(1 for c in text if c == "\ufffd" or (c < " " and c not in "\t\r\n"))
    if unreadable > max(8, len(text) // 20):
        raise SourceError(
            "malformed_page",
            f"The file is not {feed.encoding} text (a CSV, TSV or JSON-lines feed).",
        )
    first = next(
        (
            line.strip()
            for line in text.lstrip("\ufeff").splitlines()
            if line.strip() and not line.strip().startswith("#")
        ),
        "",
    )
    if first.startswith("<"):
        raise SourceError("malformed_page", "The file looks like HTML or XML, not a hash feed.")
    if feed.format:
        return feed.format
    if first.startswith("{"):
        return "jsonl"
    return "tsv" if "\t" in first else "csv"


ADAPTER = FeedAdapter
