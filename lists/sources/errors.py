"""The error that stops an import run, raised by adapters and their HTTP client alike.

Its own module so that lists.sources.adapters.base and lists.sources.adapters.http both import
it without importing each other.
"""

from __future__ import annotations


class SourceError(Exception):
    """The run cannot go on: the checkpoint stays where the last good page left it.

    ``code`` is machine-readable (``auth_failed``, ``http_error``, ``timeout``,
    ``malformed_page``, ``unsafe_xml``, ``bad_config``, ``credentials_missing``...); ``message``
    is a sentence for staff. Never put credentials in either.
    """

    def __init__(self, code: str, message: str, *, position: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.position = position
