"""Match against a local copy of the delta export, with the hub's own match index.

``hashhub export`` appends the export's items to a file as JSON lines (one item a line, as
``GET /api/v1/export`` gives them) and, after each page, a line ``{"next_cursor": ...}``. Replaying
the items in order (an ``add`` makes a (list, type, value) live, a ``remove`` ends it) gives what
the organisation matches against (DESIGN.md, invariant 8); replaying a page twice changes nothing,
so an interrupted export can simply be run again from its last cursor.

Exact and opaque types are looked up by value; perceptual ones in
:class:`matching.index.HammingIndex` (the index the hub serves matches from; it imports only
numpy) at the hub's default radii (PDQ 31, pHash 10), or less when asked.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hashhub_client.signal_types import SIGNAL_TYPES

Key = tuple[str, str, str]
"""(list id, signal type, value)."""


class ExportFileError(Exception):
    """A line of the export file that is not an export item or a cursor."""


def read_lines(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; ExportFileError for one that is not JSON."""
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ExportFileError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict):
                raise ExportFileError(f"{path}:{number}: not a JSON object")
            yield number, record


def last_cursor(path: str | Path) -> str | None:
    """The last ``next_cursor`` written to an export file, or None (no file, or no page yet)."""
    if not Path(path).exists():
        return None
    cursor = None
    for _, record in read_lines(path):
        if "next_cursor" in record and "op" not in record:
            cursor = str(record["next_cursor"])
    return cursor


def replay(path: str | Path) -> dict[Key, dict[str, Any]]:
    """The live (list id, type, value) of an export file, each with its list object."""
    live: dict[Key, dict[str, Any]] = {}
    for number, record in read_lines(path):
        if "op" not in record:
            continue  # a cursor line
        try:
            ref = record["list"]
            key = (str(ref["id"]), str(record["type"]), str(record["value"]).lower())
            op = record["op"]
        except (KeyError, TypeError):
            raise ExportFileError(f"{path}:{number}: not an export item") from None
        if op == "add":
            live[key] = ref
        elif op == "remove":
            live.pop(key, None)
        else:
            raise ExportFileError(f"{path}:{number}: unknown op {op!r}")
    return live


@dataclass
class _Perceptual:
    index: Any  # matching.index.HammingIndex
    rows: list[tuple[str, dict[str, Any]]]  # (value, list) by row id


class OfflineMatcher:
    """What the export's live hashes match, as ``POST /api/v1/match`` would list them."""

    def __init__(self, live: dict[Key, dict[str, Any]]) -> None:
        import numpy as np

        from matching.index import HammingIndex

        self.size = len(live)
        self._exact: dict[tuple[str, str], list[dict[str, Any]]] = {}
        grouped: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for (_, kind, value), ref in live.items():
            signal_type = SIGNAL_TYPES.get(kind)
            if signal_type is not None and signal_type.kind == "perceptual":
                grouped.setdefault(kind, []).append((value, ref))
            else:
                self._exact.setdefault((kind, value), []).append(ref)
        self._perceptual: dict[str, _Perceptual] = {}
        for kind, rows in grouped.items():
            signal_type = SIGNAL_TYPES[kind]
            codes = np.frombuffer(b"".join(bytes.fromhex(value) for value, _ in rows), np.uint8)
            index = HammingIndex.build(
                np.arange(len(rows), dtype=np.int64),
                codes.reshape(len(rows), signal_type.bits // 8),
                bits=signal_type.bits,
                max_radius=signal_type.max_distance,
            )
            self._perceptual[kind] = _Perceptual(index, rows)

    @classmethod
    def from_file(cls, path: str | Path) -> OfflineMatcher:
        return cls(replay(path))

    def match(
        self, hashes: Iterable[tuple[str, str]], max_distance: dict[str, int] | None = None
    ) -> list[dict[str, Any]]:
        """One result per hash, like the match API's: ``{"type", "value", "error", "matches"}``,
        each match ``{"list", "distance", "matched_value"}``, nearest first."""
        results = []
        for kind, raw in hashes:
            value = raw.strip().lower()
            result: dict[str, Any] = {"type": kind, "value": value, "error": None, "matches": []}
            signal_type = SIGNAL_TYPES.get(kind)
            if signal_type is None:
                result["error"] = {"code": "unknown_type", "message": f"Unknown type {kind!r}."}
            elif signal_type.kind != "perceptual":
                result["matches"] = [
                    {"list": ref, "distance": 0, "matched_value": value}
                    for ref in self._exact.get((kind, value), [])
                ]
            elif kind in self._perceptual:
                radius = signal_type.default_max_distance
                if max_distance and kind in max_distance:
                    radius = min(max_distance[kind], signal_type.max_distance)
                result["matches"] = self._near(kind, value, radius)
            results.append(result)
        for result in results:
            result["matches"].sort(
                key=lambda m: (m["distance"], m["list"]["id"], m["matched_value"])
            )
            result["match_count"] = len(result["matches"])
        return results

    def _near(self, kind: str, value: str, radius: int) -> list[dict[str, Any]]:
        import numpy as np

        found = self._perceptual[kind]
        try:
            code = np.frombuffer(bytes.fromhex(value), np.uint8)
        except ValueError:
            return []
        if code.size != found.index.code_bytes:
            return []
        [hits] = found.index.search(code.reshape(1, -1), radius)
        return [
            {"list": found.rows[row][1], "distance": distance, "matched_value": found.rows[row][0]}
            for row, distance in hits
        ]
