"""Request body parsers of the API: DRF's, with the bounds DESIGN.md invariant 9 asks for."""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import get_encoding  # type: ignore[attr-defined]  # not in the stubs

from hub.lib.jsonsafe import DEFAULT_MAX_DEPTH, JSONLimitError, depth_exceeds, loads_bounded

MAX_JSON_DEPTH = DEFAULT_MAX_DEPTH
"""How deeply a request body's arrays and objects may nest; every API body needs fewer than 6."""


def json_depth_exceeds(data: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data`` nests arrays or objects more than ``limit`` levels deep (no recursion)."""
    return depth_exceeds(data, limit)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, decoding with hub.lib.jsonsafe.loads_bounded: a 400, never a 500.

    Python's decoder raises RecursionError (a 500) on a body of thousands of nested arrays,
    which a few kilobytes make; within the recursion limit, deep nesting still costs every
    reader after the parser, so it is refused at ``MAX_JSON_DEPTH`` too. Numbers that are not
    finite (DRF's strict JSON refused the ``NaN`` and ``Infinity`` literals already) or longer
    than a hundred characters are refused as well. The body's size is Django's to cap
    (DATA_UPLOAD_MAX_MEMORY_SIZE).
    """

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        encoding = get_encoding(parser_context or {})
        try:
            text = codecs.getreader(encoding)(stream).read()
            return loads_bounded(text, max_depth=MAX_JSON_DEPTH)
        except JSONLimitError as error:
            if error.code == "too_deep":
                raise ParseError(
                    f"The JSON body nests arrays or objects more than {MAX_JSON_DEPTH} levels deep."
                ) from None
            raise ParseError(f"JSON parse error - {error.message}") from None
        except ValueError as error:
            raise ParseError(f"JSON parse error - {error}") from None
