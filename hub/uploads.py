"""Uploads are held in memory only (invariant 1: no uploaded byte ever reaches disk)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import MemoryFileUploadHandler


class MemoryOnlyUploadHandler(MemoryFileUploadHandler):
    """Django's memory handler, but never stepping aside for a temporary file.

    The stock handler declines uploads over FILE_UPLOAD_MAX_MEMORY_SIZE so that the next handler
    spools them to disk; with this one alone, an oversized upload is refused instead. Views check
    the declared size first to answer with a precise 413; this is the safety net.
    """

    def handle_raw_input(self, *args: Any, **kwargs: Any) -> None:
        self.activated = True

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if start + len(raw_data) > settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
            raise RequestDataTooBig("The upload is larger than this hub accepts.")
        return super().receive_data_chunk(raw_data, start)
