"""Request body parsers of the API: DRF's, with the bounds DESIGN.md invariant 9 asks for."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

MAX_JSON_DEPTH = 32
"""How deeply a request body's arrays and objects may nest; every API body needs fewer than 6."""


def json_depth_exceeds(data: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data`` nests arrays or objects more than ``limit`` levels deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, Mapping | list):
            continue
        if depth > limit:
            return True
        children = value.values() if isinstance(value, Mapping) else value
        stack.extend((child, depth + 1) for child in children)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser that refuses bodies nested too deeply with a 400.

    Python's decoder raises RecursionError (a 500) on a body of thousands of nested arrays,
    which a few kilobytes make; within the recursion limit, deep nesting still costs every
    reader after the parser, so it is refused at ``MAX_JSON_DEPTH`` too.
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        message = f"The JSON body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep."
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(message) from None
        if json_depth_exceeds(data):
            raise ParseError(message)
        return data
