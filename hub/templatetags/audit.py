"""Template filters for the audit log: metadata shown as pairs, whatever JSON a row holds.

A template must not write ``event.metadata.items``: Django's variable lookup tries a dict key
before a method, so a metadata key named ``items`` (``export.read`` writes one) or ``keys``,
``values``, ``get``, ... turns the loop into a 500. These filters never look a name up on the
metadata; they read the value in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from django import template

register = template.Library()

# What one value may take on the page. Audit rows are written by our own code and are small,
# but a row is for ever: a long value is cut, and the whole of it (within reason) goes in a
# tooltip rather than into the table.
MAX_SHOWN = 200
MAX_TITLE = 2000
MAX_KEY = 64
# Nested containers beyond this depth, and items beyond this count, are elided ("…").
MAX_DEPTH = 4
MAX_ITEMS = 50
ELLIPSIS = "…"


class MetadataItem(NamedTuple):
    """One ``key: value`` of an audit event's metadata, ready to print."""

    key: str
    value: str
    # The untruncated value when ``value`` was cut; empty otherwise.
    title: str


@register.filter
def metadata_items(metadata: Any) -> list[MetadataItem]:
    """The metadata of an audit event as (key, shown value, tooltip) triples, sorted by key.

    Any JSON value is accepted: nested objects read ``{key: value}``, lists ``[a, b]``, and
    ``null``, ``true`` and ``false`` as in JSON. A metadata value that is not an object at all
    (never written by ``hub.audit.audit``, but a JSON column may hold one) is one item with an
    empty key.
    """
    if metadata is None or metadata == {}:
        return []
    if not isinstance(metadata, dict):
        return [_item("", metadata)]
    keys = sorted(metadata, key=str)
    items = [_item(_cut(str(key), MAX_KEY), metadata[key]) for key in keys[:MAX_ITEMS]]
    if len(keys) > MAX_ITEMS:
        items.append(MetadataItem("", f"{ELLIPSIS} {len(keys) - MAX_ITEMS} more", ""))
    return items


def _item(key: str, value: Any) -> MetadataItem:
    shown = _display(value, depth=0)
    if len(shown) <= MAX_SHOWN:
        return MetadataItem(key, shown, "")
    return MetadataItem(key, _cut(shown, MAX_SHOWN), _cut(shown, MAX_TITLE))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def _display(value: Any, *, depth: int) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        # Bounded before any work on it, so a huge string costs no more than a short one.
        return _cut(value, MAX_TITLE + 1)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return "{" + ELLIPSIS + "}"
        pairs = ((key, value[key]) for key in sorted(value, key=str))
        return "{" + _join(pairs, len(value), depth) + "}"
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return "[" + ELLIPSIS + "]"
        return "[" + _join(((None, each) for each in value), len(value), depth) + "]"
    return _cut(str(value), MAX_TITLE + 1)


def _join(pairs: Iterator[tuple[Any, Any]], count: int, depth: int) -> str:
    """Show a container's members until the text is long enough to be cut anyway."""
    parts: list[str] = []
    length = 0
    for shown, (key, value) in enumerate(pairs):
        if shown == MAX_ITEMS or length > MAX_TITLE:
            parts.append(f"{ELLIPSIS} {count - shown} more")
            break
        text = _display(value, depth=depth + 1)
        if key is not None:
            text = f"{_cut(str(key), MAX_KEY)}: {text}"
        parts.append(text)
        length += len(text) + 2
    return ", ".join(parts)
