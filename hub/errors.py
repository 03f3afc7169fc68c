"""The one error type services raise for a refusal a client can understand and fix."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A refused request: a machine-readable ``code``, a human sentence, optional ``details``.

    Views turn it into a form error or a 4xx JSON body ``{"error": {code, message, details}}``.
    """

    status = 400

    def __init__(self, code: str, message: str, details: Any = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.status = status
