"""What the client prints: aligned tables, JSON lines, and a progress bar on a terminal only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any, TextIO


def json_line(stream: TextIO, record: dict[str, Any]) -> None:
    stream.write(json.dumps(record, separators=(",", ":"), sort_keys=False) + "\n")


class Table:
    """Rows printed under a header as they come, each column but the last as wide as its
    header and its ``widths`` entry (longer values push their row along rather than being cut)."""

    def __init__(self, stream: TextIO, headers: Sequence[str], widths: Sequence[int]) -> None:
        self.stream = stream
        self.widths = [max(len(h), w) for h, w in zip(headers[:-1], widths, strict=True)]
        self._headers = list(headers)
        self._started = False

    def row(self, *cells: object) -> None:
        if not self._started:
            self._started = True
            self._write(self._headers)
        self._write(["-" if cell is None else str(cell) for cell in cells])

    def _write(self, cells: Sequence[str]) -> None:
        padded = [cell.ljust(width) for cell, width in zip(cells[:-1], self.widths, strict=False)]
        self.stream.write("  ".join([*padded, cells[-1]]).rstrip() + "\n")


class Progress:
    """A one-line progress bar on ``stream``, drawn only when it is a terminal (never into a
    file or a pipe, so logs and JSON output stay clean), at most ten times a second."""

    WIDTH = 30

    def __init__(
        self,
        stream: TextIO,
        total: int | None,
        unit: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        isatty = getattr(stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.stream = stream
        self.total = total
        self.unit = unit
        self.done = 0
        self.note = ""
        self._clock = clock
        self._drawn_at = -1.0

    def advance(self, count: int = 1, note: str = "") -> None:
        self.done += count
        if note:
            self.note = note
        if not self.enabled:
            return
        now = self._clock()
        if now - self._drawn_at >= 0.1 or self.done == self.total:
            self._drawn_at = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            filled = min(self.WIDTH, self.WIDTH * self.done // self.total)
            bar = "#" * filled + "." * (self.WIDTH - filled)
            text = f"[{bar}] {self.done}/{self.total} {self.unit}"
        else:
            text = f"{self.done} {self.unit}"
        if self.note:
            text += f" {self.note}"
        self.stream.write("\r" + text + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._drawn_at >= 0:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
