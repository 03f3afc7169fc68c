"""Uploads are held in memory only (invariant 1: no uploaded byte ever reaches disk), and capped.

Every request gets :class:`MemoryOnlyUploadHandler` with the largest cap of any upload (a hash
file, FILE_UPLOAD_MAX_MEMORY_SIZE). A view that takes something smaller (an image) calls
:func:`cap_uploads` before the body is parsed: the request is refused from its declared length
before a byte is read, else as soon as a file passes the view's cap while it streams in.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import MemoryFileUploadHandler
from django.http import HttpRequest

# A multipart body is the file plus boundaries and the other (small) form fields.
UPLOAD_SLACK = 64 * 1024


class UploadTooLargeError(RequestDataTooBig):
    """A request or uploaded file over the cap of the view it was sent to.

    A RequestDataTooBig, so that wherever a view does not answer it precisely Django still
    answers 400 rather than 500. ``declared`` is the request's Content-Length when that alone
    was too large (nothing was read), else None (refused while streaming, at ``max_bytes``).
    """

    def __init__(self, max_bytes: int, declared: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.declared = declared
        if declared is None:
            self.message = f"The uploaded file is too large; the limit is {max_bytes} bytes."
        else:
            self.message = f"The request is {declared} bytes; the limit is {max_bytes} bytes."
        super().__init__(self.message)


class MemoryOnlyUploadHandler(MemoryFileUploadHandler):
    """Django's memory handler, but never stepping aside for a temporary file.

    The stock handler declines uploads over FILE_UPLOAD_MAX_MEMORY_SIZE so that the next handler
    spools them to disk; with this one alone, an oversized upload is refused instead, in the
    chunk that passes ``max_bytes`` (FILE_UPLOAD_MAX_MEMORY_SIZE when not given).
    """

    def __init__(self, request: HttpRequest | None = None, *, max_bytes: int | None = None) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes

    def handle_raw_input(self, *args: Any, **kwargs: Any) -> None:
        self.activated = True

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        limit = settings.FILE_UPLOAD_MAX_MEMORY_SIZE if self.max_bytes is None else self.max_bytes
        if start + len(raw_data) > limit:
            if self.max_bytes is None:
                raise RequestDataTooBig("The upload is larger than this hub accepts.")
            raise UploadTooLargeError(limit)
        return super().receive_data_chunk(raw_data, start)


def declared_length(request: HttpRequest) -> int:
    """The request's Content-Length (0 when absent or malformed: Django then reads nothing)."""
    try:
        return max(0, int(request.META.get("CONTENT_LENGTH") or 0))
    except ValueError:
        return 0


def cap_uploads(request: HttpRequest, max_bytes: int) -> None:
    """Refuse this request's files over ``max_bytes``: now, from the declared length, or later
    while the body streams in (UploadTooLargeError either way).

    Call it before anything reads the body: Django refuses to change the upload handlers after
    (so a view behind CsrfViewMiddleware is csrf_exempt and checks the token itself afterwards,
    Django's documented way of setting upload handlers per view).
    """
    length = declared_length(request)
    if length > max_bytes + UPLOAD_SLACK:
        raise UploadTooLargeError(max_bytes, declared=length)
    request.upload_handlers = [MemoryOnlyUploadHandler(request, max_bytes=max_bytes)]
