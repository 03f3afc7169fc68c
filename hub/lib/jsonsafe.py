"""JSON decoding with bounds, for every text that comes from outside (DESIGN.md invariant 9).

Python's decoder recurses once per nested array or object, so a few kilobytes of ``[`` raise
RecursionError (a 500 in a view, a crashed page in an import); it turns numbers of 4,301 digits
or more into a ValueError of its own wording, and a long one short of that costs quadratic time;
it reads ``1e999`` as infinity and ``NaN`` as a float that PostgreSQL's jsonb cannot store.
:func:`loads_bounded` refuses all of these *before* they cost anything, with a sentence a person
can act on, by raising :class:`JSONLimitError`.

The nesting is measured by a scan of the text (strings skipped) before the decoder runs, so the
decoder never gets near the recursion limit whatever thread or stack it runs on, and the error
can say at which character the limit was passed.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import Any

from django.utils.datastructures import MultiValueDict

DEFAULT_MAX_DEPTH = 32
"""Nesting allowed by default: every format the hub reads needs fewer than 6 levels."""

MAX_NUMBER_CHARS = 100
"""The longest number literal accepted. Timestamps, sequence numbers and counts need 20 at most;
Python refuses integers of more than 4,300 digits, and converts shorter long ones in quadratic
time."""

_STRUCTURE = re.compile(r'[\[\]{}"]')
_STRUCTURE_ONLY = {code: None for code in range(128) if chr(code) not in '[]{}"'}
_BARE_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
# The rest of a JSON string after its opening quote (the "unrolled loop": no backtracking).
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class JSONLimitError(ValueError):
    """A JSON text over one of :func:`loads_bounded`'s bounds.

    ``code`` is ``too_large``, ``too_deep``, ``number_too_long``, ``not_finite`` or
    ``nul_character``; ``offset`` is the character offset where the problem was seen, when known.
    The message is a sentence that names the limit, never the offending text.
    """

    def __init__(self, code: str, message: str, *, offset: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.offset = offset


def loads_bounded(
    data: str | bytes | bytearray,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_bytes: int | None = None,
    max_number_chars: int = MAX_NUMBER_CHARS,
    allow_nul: bool = True,
) -> Any:
    """``json.loads(data)``, refusing what would be costly or unstorable.

    Raises :class:`JSONLimitError` (a ValueError) for a text over ``max_bytes`` (UTF-8 bytes;
    None: no limit), arrays and objects nested more than ``max_depth`` levels (a scalar inside
    ``max_depth`` arrays is fine), a number literal longer than ``max_number_chars``, a number
    that is not finite (``NaN``, ``Infinity``, ``1e999``), and, unless ``allow_nul``, a string
    or key holding U+0000 (which PostgreSQL's text and jsonb cannot store). Text that is not
    JSON raises json.JSONDecodeError, bytes that are not UTF-8/16/32 UnicodeDecodeError, both
    ValueErrors too: callers catch ValueError for "not acceptable JSON". No other effect.
    """
    if isinstance(data, bytes | bytearray):
        if max_bytes is not None and len(data) > max_bytes:
            raise _too_large(max_bytes)
        # What json.loads does with bytes: UTF-8, -16 or -32, told apart by the first bytes.
        text = data.decode(json.detect_encoding(data), "surrogatepass")
    else:
        text = data
        if max_bytes is not None and (
            len(text) > max_bytes
            or (
                len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes
            )
        ):
            raise _too_large(max_bytes)
    too_deep = nesting_limit_passed(text, max_depth)
    if too_deep is not None:
        raise _too_deep(max_depth, too_deep)

    def parse_int(literal: str) -> int:
        _check_length(literal, max_number_chars)
        return int(literal)

    def parse_float(literal: str) -> float:
        _check_length(literal, max_number_chars)
        number = float(literal)
        if not math.isfinite(number):
            raise _not_finite()
        return number

    def parse_constant(literal: str) -> Any:
        raise _not_finite()

    try:
        value = json.loads(
            text, parse_int=parse_int, parse_float=parse_float, parse_constant=parse_constant
        )
    except RecursionError:  # not expected after the scan; never a crash all the same
        raise _too_deep(max_depth, -1) from None
    if not allow_nul and "\\u0000" in text and holds_nul(value):
        raise JSONLimitError(
            "nul_character", "The JSON holds a NUL character (\\u0000), which cannot be stored."
        )
    return value


def nesting_limit_passed(text: str, max_depth: int) -> int | None:
    """Where ``text`` first opens level ``max_depth + 1`` of arrays or objects, or None.

    The answer is an offset, or -1 when the text is too deep but not JSON enough to say where.
    Brackets inside strings do not count. For text that is not JSON the measure may be too
    high, never lower than what the decoder would reach before it gives up on the text.
    """
    if text.count("[") + text.count("{") <= max_depth:
        return None  # cannot nest that deep: the common case costs two counts
    # Everything but the structure out, in C: first the escaped backslashes, then the escaped
    # quotes (in JSON a backslash appears only inside strings, where each starts a two-character
    # escape, so removing backslash pairs left to right removes whole escapes), then all but
    # brackets and quotes, then the strings, which now hold no quote of their own.
    reduced = text.replace("\\\\", "").replace('\\"', "").translate(_STRUCTURE_ONLY)
    brackets = _NOT_BRACKETS.sub("", _BARE_STRING.sub("", reduced))
    if max(accumulate(map(_STEP.__getitem__, brackets)), default=0) <= max_depth:
        return None
    return _deep_offset(text, max_depth)


def _deep_offset(text: str, max_depth: int) -> int:
    """The offset of the bracket opening level ``max_depth + 1``; -1 when a string does not end
    before it (one scan, stopping there: each string is matched once, from its own quote)."""
    depth = 0
    position = 0
    while True:
        found = _STRUCTURE.search(text, position)
        if found is None:
            return -1
        char, at = found.group(), found.start()
        if char == '"':
            rest = _STRING_REST.match(text, at + 1)
            if rest is None:
                return -1
            position = rest.end()
            continue
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return at
        else:
            depth -= 1
        position = at + 1


def depth_exceeds(data: Any, limit: int = DEFAULT_MAX_DEPTH) -> bool:
    """Whether decoded ``data`` nests lists or mappings more than ``limit`` levels deep.

    Iterative (no recursion), for values that did not come through :func:`loads_bounded`.
    """
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


def holds_nul(data: Any) -> bool:
    """Whether a string anywhere in ``data`` (keys and values of mappings, every value of a
    query string or form, items of lists and tuples) holds U+0000. Iterative: no recursion."""
    stack: list[Any] = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, MultiValueDict):  # its values() would give one value a key
            stack.extend(value.lists())
        elif isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
    return False


def _check_length(literal: str, max_number_chars: int) -> None:
    if len(literal) > max_number_chars:
        raise JSONLimitError(
            "number_too_long",
            f"The JSON holds a number of more than {max_number_chars} characters.",
        )


def _not_finite() -> JSONLimitError:
    return JSONLimitError(
        "not_finite", "The JSON holds a number that is not finite (NaN, Infinity or 1e999)."
    )


def _too_deep(max_depth: int, offset: int) -> JSONLimitError:
    where = f" (at character {offset + 1})" if offset >= 0 else ""
    return JSONLimitError(
        "too_deep",
        f"The JSON nests arrays or objects more than {max_depth} levels deep{where}.",
        offset=offset if offset >= 0 else None,
    )


def _too_large(max_bytes: int) -> JSONLimitError:
    return JSONLimitError("too_large", f"The JSON is larger than {max_bytes:,} bytes.")
