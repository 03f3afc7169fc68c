"""``hashhub``: hash files, match them, add hashes to a list and keep a local copy of the export.

Each subcommand is one function taking the parsed arguments and a :class:`Context` (the streams,
the environment and, for tests, the HTTP transport), so tests run them in-process against a hub.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hashhub_client import __version__
from hashhub_client.api import (
    ADD_BATCH,
    EXPORT_PAGE,
    MATCH_BATCH,
    HubClient,
    HubError,
    HubUnreachableError,
)
from hashhub_client.hashing import FileHashes, Query, hash_file, iter_paths
from hashhub_client.offline import ExportFileError, OfflineMatcher, last_cursor
from hashhub_client.output import Progress, Table, json_line
from hashhub_client.signal_types import SIGNAL_TYPES

EXIT_OK = 0
EXIT_MATCHED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4
EXIT_INPUT = 5

ENVIRONMENT_AND_EXIT_CODES = f"""\
environment:
  HASHHUB_URL       the hub's base URL, e.g. https://hashhub.example.org (or --url)
  HASHHUB_API_KEY   the organisation's API key (or --key-file FILE; never on the
                    command line, where other users of the machine can read it)

exit codes:
  {EXIT_OK}  done (with matches too, unless --fail-on-match)
  {EXIT_MATCHED}  match --fail-on-match: at least one file matched
  {EXIT_USAGE}  bad arguments or configuration (no URL or key, unreadable export file)
  {EXIT_REFUSED}  the hub refused a request (its error code and message are printed)
  {EXIT_UNREACHABLE}  the hub could not be reached (connection, TLS or timeout)
  {EXIT_INPUT}  some files or lines could not be used (each is reported); the rest were
"""


class UsageError(Exception):
    """Bad arguments or configuration: exit code 2 with the message."""


@dataclass
class Context:
    stdout: TextIO
    stderr: TextIO
    env: Mapping[str, str]
    transport: Any = None  # an httpx transport, for tests
    sleep: Callable[[float], None] | None = None

    def say(self, message: str) -> None:
        self.stderr.write(f"hashhub: {message}\n")


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    transport: Any = None,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Run the command line ``argv``; returns the exit code."""
    context = Context(
        stdout=stdout or sys.stdout,
        stderr=stderr or sys.stderr,
        env=os.environ if env is None else env,
        transport=transport,
        sleep=sleep,
    )
    parser = build_parser()
    try:
        # argparse prints help and usage errors to sys.stdout and sys.stderr itself.
        with contextlib.redirect_stdout(context.stdout), contextlib.redirect_stderr(context.stderr):
            args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return int(args.run(args, context))
    except UsageError as error:
        context.say(f"error: {error}")
        return EXIT_USAGE
    except HubError as error:
        context.say(str(error))
        return EXIT_REFUSED
    except HubUnreachableError as error:
        context.say(str(error))
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        context.say("interrupted")
        return 130


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="hashhub",
        description=_paragraph(
            "Hash files in memory and match them against a HashHub, add hashes to the "
            "organisation's lists, and keep a local copy of its export to match offline. Images "
            "are hashed here: only their hashes are sent."
        ),
        epilog=ENVIRONMENT_AND_EXIT_CODES,
        formatter_class=formatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"hashhub {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    connection = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    group = connection.add_argument_group("connection")
    group.add_argument("--url", help="the hub's base URL (default: $HASHHUB_URL)")
    group.add_argument(
        "--key-file",
        metavar="FILE",
        help="read the API key from FILE's first line (default: $HASHHUB_API_KEY)",
    )
    group.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per request (default: 120)"
    )

    hash_ = commands.add_parser(
        "hash",
        help="print the hashes of files (PDQ with its quality, pHash, MD5, SHA-1, SHA-256)",
        description=_paragraph(
            "Hash files in memory as the hub hashes an upload: MD5, SHA-1 and SHA-256 "
            "of every file, PDQ (with its quality) and pHash of pictures (JPEG, PNG, GIF, WebP, "
            "BMP, TIFF, AVIF). A directory stands for every file under it. Needs no hub."
        ),
        epilog=ENVIRONMENT_AND_EXIT_CODES,
        formatter_class=formatter,
        # No abbreviations: "--key SECRET" must be refused, not taken for --key-file.
        allow_abbrev=False,
    )
    hash_.add_argument("paths", nargs="+", metavar="PATH")
    hash_.add_argument("--json", action="store_true", help="one JSON object per file")
    hash_.set_defaults(run=run_hash)

    match = commands.add_parser(
        "match",
        parents=[connection],
        help="hash files and match them (POST /api/v1/match, or a local export with --offline)",
        description=_paragraph(
            "Hash files in memory and match their hashes with POST /api/v1/match, "
            f"{MATCH_BATCH:,} hashes a request; the images never leave this machine. With "
            "--offline FILE, match against a local copy of the export (hashhub export) with the "
            "hub's own index and radii instead, without a network."
        ),
        epilog=ENVIRONMENT_AND_EXIT_CODES,
        formatter_class=formatter,
        # No abbreviations: "--key SECRET" must be refused, not taken for --key-file.
        allow_abbrev=False,
    )
    match.add_argument("paths", nargs="+", metavar="PATH")
    match.add_argument("--json", action="store_true", help="one JSON object per file")
    match.add_argument(
        "--fail-on-match", action="store_true", help=f"exit {EXIT_MATCHED} when any file matched"
    )
    match.add_argument(
        "--offline", metavar="FILE", help="match against this export file (hashhub export)"
    )
    match.add_argument(
        "--max-distance",
        metavar="TYPE=N",
        action="append",
        default=[],
        help="match a perceptual type within N bits only (default: the hub's, PDQ 31, pHash 10)",
    )
    match.set_defaults(run=run_match)

    add = commands.add_parser(
        "add",
        parents=[connection],
        help="add hashes from a file to one of the organisation's lists",
        description=_paragraph(
            "Add the hashes of FILE (- for standard input) to a list, "
            f"{ADD_BATCH:,} a request. Each line is type,value (CSV; optional third and fourth "
            "columns: labels separated by ; and a note), or a CSV with a header naming the type, "
            "value, labels and note columns. Blank lines and lines starting with # are skipped. "
            "Refused lines are reported as FILE:LINE: code: message."
        ),
        epilog=ENVIRONMENT_AND_EXIT_CODES,
        formatter_class=formatter,
        # No abbreviations: "--key SECRET" must be refused, not taken for --key-file.
        allow_abbrev=False,
    )
    add.add_argument("--list", required=True, metavar="ID", dest="list_id", help="the list's id")
    add.add_argument("file", metavar="FILE")
    add.add_argument(
        "--batch-size",
        type=int,
        default=ADD_BATCH,
        help=f"entries per request, 1 to 10000 (default {ADD_BATCH})",
    )
    add.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    add.set_defaults(run=run_add)

    export = commands.add_parser(
        "export",
        parents=[connection],
        help="append the delta export (every page) to a local file",
        description=_paragraph(
            "Pull GET /api/v1/export from CURSOR to its end and append the items to "
            'FILE as JSON lines, each page followed by a {"next_cursor": ...} line; print the '
            "next cursor. Without --since, carry on from the last cursor in FILE (or from the "
            "start). Replaying FILE gives what the organisation matches: hashhub match --offline."
        ),
        epilog=ENVIRONMENT_AND_EXIT_CODES,
        formatter_class=formatter,
        # No abbreviations: "--key SECRET" must be refused, not taken for --key-file.
        allow_abbrev=False,
    )
    export.add_argument("--since", metavar="CURSOR", help="the cursor to start from")
    export.add_argument("--to", required=True, metavar="FILE", help="the file to append to")
    export.add_argument(
        "--page-size",
        type=int,
        default=EXPORT_PAGE,
        help=f"items per page, 1 to 10000 (default {EXPORT_PAGE})",
    )
    export.set_defaults(run=run_export)
    return parser


def _paragraph(text: str) -> str:
    return textwrap.fill(text, width=79)


# --- configuration ---------------------------------------------------------------------------


def hub_client(args: argparse.Namespace, context: Context) -> HubClient:
    """A client for the hub named by --url or $HASHHUB_URL, with the key of --key-file or
    $HASHHUB_API_KEY (never an argument: other users of the machine can read those)."""
    url = (args.url or context.env.get("HASHHUB_URL", "")).strip()
    if not url:
        raise UsageError("no hub URL: set HASHHUB_URL or pass --url")
    if not re.match(r"https?://[^/]", url):
        raise UsageError(f"the hub URL must start with http:// or https://, not {url[:40]!r}")
    if args.key_file:
        try:
            text = Path(args.key_file).read_text(encoding="utf-8")
        except OSError as error:
            raise UsageError(f"cannot read the key file: {error.strerror or error}") from None
        key = next((line.strip() for line in text.splitlines() if line.strip()), "")
        if not key:
            raise UsageError(f"the key file {args.key_file} is empty")
    else:
        key = context.env.get("HASHHUB_API_KEY", "").strip()
        if not key:
            raise UsageError("no API key: set HASHHUB_API_KEY or pass --key-file FILE")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    extra: dict[str, Any] = {}
    if context.sleep is not None:
        extra["sleep"] = context.sleep
    return HubClient(url, key, timeout=args.timeout, transport=context.transport, **extra)


def max_distances(given: list[str]) -> dict[str, int]:
    radii: dict[str, int] = {}
    for text in given:
        name, _, number = text.partition("=")
        signal_type = SIGNAL_TYPES.get(name.strip().lower())
        if signal_type is None or signal_type.kind != "perceptual":
            perceptual = ", ".join(n for n, t in SIGNAL_TYPES.items() if t.kind == "perceptual")
            raise UsageError(f"--max-distance {text!r}: the type must be one of {perceptual}")
        try:
            radius = int(number)
        except ValueError:
            raise UsageError(f"--max-distance {text!r}: N must be a whole number") from None
        if not 0 <= radius <= signal_type.max_distance:
            raise UsageError(f"--max-distance {text!r}: N must be 0 to {signal_type.max_distance}")
        radii[signal_type.name] = radius
    return radii


# --- hash ------------------------------------------------------------------------------------


def run_hash(args: argparse.Namespace, context: Context) -> int:
    paths = list(iter_paths(args.paths))
    progress = Progress(context.stderr, len(paths), "files")
    table = Table(context.stdout, ["PATH", "TYPE", "VALUE", "QUALITY"], [24, 14, 64])
    unreadable = 0
    try:
        for path in paths:
            found = _hash_or_report(path, context, args.json)
            progress.advance()
            if found is None:
                unreadable += 1
                continue
            if args.json:
                json_line(context.stdout, found.as_dict())
                continue
            for computed in found.hashes.values():
                table.row(path, computed.type, computed.value, computed.quality)
            for computed in found.stored.values():
                table.row(path, f"{computed.type} (stored)", computed.value, computed.quality)
            if found.image_error and not args.json:
                context.say(f"{path}: {found.image_error['message']}")
    finally:
        progress.close()
    return EXIT_INPUT if unreadable else EXIT_OK


def _hash_or_report(path: str, context: Context, as_json: bool) -> FileHashes | None:
    try:
        return hash_file(path)
    except OSError as error:
        _report_unreadable(path, error.strerror or str(error), context, as_json)
        return None


def _report_unreadable(path: str, message: str, context: Context, as_json: bool) -> None:
    if as_json:
        json_line(
            context.stdout, {"path": path, "error": {"code": "unreadable_file", "message": message}}
        )
    else:
        context.say(f"{path}: cannot read: {message}")


# --- match -----------------------------------------------------------------------------------


@dataclass
class _Pending:
    """A file waiting for its batch: its hashes, or why it could not be read (printed in
    its turn, so the output keeps the order of the files)."""

    path: str
    found: FileHashes | None
    queries: list[Query] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    unreadable: str = ""


@dataclass
class _Tally:
    files: int = 0
    matched: int = 0
    unreadable: int = 0
    matches: int = 0
    hashes: int = 0
    requests: int = 0
    pending: list[_Pending] = field(default_factory=list)


def run_match(args: argparse.Namespace, context: Context) -> int:
    radii = max_distances(args.max_distance)
    lookup: Callable[[list[tuple[str, str]]], list[dict[str, Any]]]
    if args.offline:
        try:
            matcher = OfflineMatcher.from_file(args.offline)
        except OSError as error:
            raise UsageError(f"cannot read {args.offline}: {error.strerror or error}") from None
        except ExportFileError as error:
            raise UsageError(str(error)) from None

        def lookup(hashes: list[tuple[str, str]]) -> list[dict[str, Any]]:
            return matcher.match(hashes, radii)

        client = None
    else:
        client = hub_client(args, context)

        def lookup(hashes: list[tuple[str, str]]) -> list[dict[str, Any]]:
            items = [{"type": kind, "value": value} for kind, value in hashes]
            return list(client.match(items, radii or None)["results"])

    paths = list(iter_paths(args.paths))
    progress = Progress(context.stderr, len(paths), "files")
    table = Table(
        context.stdout,
        ["PATH", "TYPE", "DISTANCE", "TIER", "CATEGORY", "LIST", "CONTRIBUTOR"],
        [24, 5, 8, 9, 8, 16],
    )
    tally = _Tally()
    queued = 0
    try:
        for path in paths:
            try:
                found = hash_file(path)
            except OSError as error:
                tally.unreadable += 1
                unreadable = error.strerror or str(error)
                tally.pending.append(_Pending(path, None, unreadable=unreadable))
                progress.advance()
                continue
            progress.advance()
            queries, errors = found.queries()
            if queued + len(queries) > MATCH_BATCH:
                _match_pending(tally, lookup, context, args, table, progress)
                queued = 0
            tally.pending.append(_Pending(path, found, queries, errors))
            queued += len(queries)
        _match_pending(tally, lookup, context, args, table, progress)
    finally:
        progress.close()
        if client is not None:
            client.close()
    where = f"the export in {args.offline}" if args.offline else "the hub"
    context.say(
        f"checked {_count(tally.files, 'file')} against {where}: {tally.matched} matched "
        f"({_count(tally.matches, 'match', 'matches')})"
        + (f", {tally.unreadable} unreadable" if tally.unreadable else "")
    )
    if args.fail_on_match and tally.matched:
        return EXIT_MATCHED
    return EXIT_INPUT if tally.unreadable else EXIT_OK


def _count(number: int, one: str, many: str = "") -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def _match_pending(
    tally: _Tally,
    lookup: Callable[[list[tuple[str, str]]], list[dict[str, Any]]],
    context: Context,
    args: argparse.Namespace,
    table: Table,
    progress: Progress,
) -> None:
    """Match the queued files' hashes in one request (each distinct hash once), then print."""
    if not tally.pending:
        return
    distinct = list(dict.fromkeys((q.type, q.value) for p in tally.pending for q in p.queries))
    results: dict[tuple[str, str], dict[str, Any]] = {}
    if distinct:
        progress.advance(0, f"(matching {len(distinct)} hashes)")
        answered = lookup(distinct)
        tally.requests += 1
        tally.hashes += len(distinct)
        results = dict(zip(distinct, answered, strict=True))
    for pending in tally.pending:
        if pending.found is None:
            _report_unreadable(pending.path, pending.unreadable, context, args.json)
            continue
        matches, errors = _file_matches(pending, results)
        tally.files += 1
        if matches:
            tally.matched += 1
            tally.matches += len(matches)
        if args.json:
            json_line(
                context.stdout,
                {**pending.found.as_dict(), "matches": matches, "errors": errors},
            )
            continue
        for match in matches:
            ref = match["list"]
            contributor = ref.get("contributor") or ("anonymous" if ref.get("anonymous") else None)
            kind = match["type"] + (" (stored)" if match.get("orientation") == "stored" else "")
            table.row(
                pending.path,
                kind,
                match["distance"],
                ref.get("tier"),
                ref.get("category"),
                ref.get("name"),
                contributor,
            )
        for error in errors:
            context.say(f"{pending.path}: {error['type']}: {error['message']}")
    tally.pending = []


def _file_matches(
    pending: _Pending, results: Mapping[tuple[str, str], dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One file's matches (the nearest per type, list and listed value) and errors."""
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    errors = list(pending.errors)
    for query in pending.queries:
        result = results[(query.type, query.value)]
        if result.get("error"):
            errors.append({"type": query.type, "value": query.value, **result["error"]})
            continue
        for match in result.get("matches", []):
            key = (query.type, str(match["list"]["id"]), str(match["matched_value"]))
            shown = {"type": query.type, "value": query.value, **dict(query.labels), **match}
            if key not in best or shown["distance"] < best[key]["distance"]:
                best[key] = shown
    matches = sorted(best.values(), key=lambda m: (m["distance"], m["type"], m["list"]["id"]))
    return matches, errors


# --- add -------------------------------------------------------------------------------------

_LABEL_SEPARATORS = re.compile(r"[;|\s]+")


@dataclass(frozen=True)
class _Line:
    number: int
    entry: dict[str, Any] | None
    problem: str = ""


def run_add(args: argparse.Namespace, context: Context) -> int:
    if not 1 <= args.batch_size <= 10_000:
        raise UsageError("--batch-size must be 1 to 10000")
    name = "<stdin>" if args.file == "-" else args.file
    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read {args.file}: {error}") from None
    lines = list(_entry_lines(text))
    client = hub_client(args, context)
    refused: list[dict[str, Any]] = []
    added = already_present = 0
    progress = Progress(context.stderr, len(lines), "lines")
    batch: list[_Line] = []

    def send() -> None:
        nonlocal added, already_present
        if not batch:
            return
        answer = client.add_entries(args.list_id, [line.entry for line in batch if line.entry])
        added += int(answer.get("added", 0))
        already_present += int(answer.get("already_present", 0))
        for error in answer.get("errors", []):
            line = batch[int(error["index"])]
            refused.append(
                {"line": line.number, "code": error["code"], "message": error["message"]}
            )
        progress.advance(len(batch))
        batch.clear()

    try:
        for line in lines:
            if line.entry is None:
                refused.append(
                    {"line": line.number, "code": "invalid_line", "message": line.problem}
                )
                progress.advance()
                continue
            batch.append(line)
            if len(batch) >= args.batch_size:
                send()
        send()
    except (HubError, HubUnreachableError):
        context.say(f"stopped after adding {added} ({already_present} already present)")
        raise
    finally:
        progress.close()
        client.close()
    refused.sort(key=lambda refusal: refusal["line"])
    if args.json:
        json_line(
            context.stdout,
            {"added": added, "already_present": already_present, "refused": len(refused),
             "errors": refused},
        )  # fmt: skip
    else:
        for refusal in refused:
            context.stderr.write(
                f"{name}:{refusal['line']}: {refusal['code']}: {refusal['message']}\n"
            )
        context.stdout.write(
            f"added {added}, already present {already_present}, refused {len(refused)}\n"
        )
    return EXIT_INPUT if refused else EXIT_OK


def _entry_lines(text: str) -> Iterator[_Line]:
    """Each non-blank, non-comment line as an entry (or the reason it is not one)."""
    columns: dict[str, int] | None = None
    numbered = [
        (number, line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    rows = csv.reader(io.StringIO("\n".join(line for _, line in numbered)))
    for (number, _), row in zip(numbered, rows, strict=True):
        cells = [cell.strip() for cell in row]
        lowered = [cell.lower() for cell in cells]
        if columns is None and "type" in lowered and "value" in lowered:
            columns = {name: lowered.index(name) for name in lowered if name}
            continue
        at = columns or {"type": 0, "value": 1, "labels": 2, "note": 3}
        kind = _cell(cells, at.get("type"))
        value = _cell(cells, at.get("value"))
        if not kind or not value:
            yield _Line(number, None, "expected type,value (e.g. pdq,<64 hex digits>)")
            continue
        entry: dict[str, Any] = {"type": kind.lower(), "value": value}
        labels = _cell(cells, at.get("labels"))
        if labels:
            entry["labels"] = [label for label in _LABEL_SEPARATORS.split(labels) if label]
        note = _cell(cells, at.get("note"))
        if note:
            entry["note"] = note
        yield _Line(number, entry)


def _cell(cells: list[str], index: int | None) -> str:
    return cells[index] if index is not None and index < len(cells) else ""


# --- export ----------------------------------------------------------------------------------


def run_export(args: argparse.Namespace, context: Context) -> int:
    if not 1 <= args.page_size <= 10_000:
        raise UsageError("--page-size must be 1 to 10000")
    try:
        cursor = args.since if args.since is not None else (last_cursor(args.to) or "")
    except (OSError, ExportFileError) as error:
        raise UsageError(f"cannot read {args.to}: {error}") from None
    client = hub_client(args, context)
    counts = {"add": 0, "remove": 0}
    progress = Progress(context.stderr, None, "items")
    try:
        with open(args.to, "a", encoding="utf-8") as out:
            while True:
                page = client.export_page(cursor, args.page_size)
                items = page.get("items", [])
                for item in items:
                    json_line(out, item)
                    counts[item.get("op", "add")] = counts.get(item.get("op", "add"), 0) + 1
                changed = page["next_cursor"] != cursor
                cursor = str(page["next_cursor"])
                if items or changed:
                    # Written after the page's items: a cursor in the file never runs ahead of them.
                    json_line(out, {"next_cursor": cursor})
                out.flush()
                progress.advance(len(items))
                if not page.get("has_more"):
                    break
            os.fsync(out.fileno())
    except OSError as error:
        raise UsageError(f"cannot write {args.to}: {error.strerror or error}") from None
    finally:
        progress.close()
        client.close()
    context.say(
        f"appended {counts['add'] + counts['remove']} items ({counts['add']} adds, "
        f"{counts['remove']} removes) to {args.to}; the next cursor follows"
    )
    context.stdout.write(cursor + "\n")
    return EXIT_OK
