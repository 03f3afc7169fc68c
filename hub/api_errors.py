"""One error shape for every API response: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from hub.errors import ServiceError

_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    Http404: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid",
}


_NOT_FOUND = "No such endpoint or object."


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _first_message(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    if isinstance(detail, dict) and detail:
        key, value = next(iter(detail.items()))
        inner = _first_message(value)
        return inner if key == "non_field_errors" else f"{key}: {inner}"
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        # A refused API key (hub.api_auth.ApiKeyRefusedError) carries the challenge DRF set on it.
        challenge = getattr(exc, "auth_header", None)
        headers = {"WWW-Authenticate": challenge} if challenge else None
        body = error_body(exc.code, exc.message, exc.details)
        return Response(body, status=exc.status, headers=headers)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # A real bug: Django's 500 handler answers with a generic JSON body.
    code = next((c for kind, c in _CODES.items() if isinstance(exc, kind)), "error")
    details: Any = None
    if isinstance(exc, exceptions.ValidationError):
        message = _first_message(exc.detail)
        details = exc.detail
    else:
        message = str(getattr(exc, "detail", exc))
    if not message.strip():
        # A bare Http404 (DRF raises one for an unknown ?format=) has no message of its own.
        message = _NOT_FOUND if code == "not_found" else "The request could not be served."
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        details = {"retry_after_seconds": int(wait)}
    response.data = error_body(code, message, details)
    return response


def api_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    """The catch-all under /api/: JSON, even with DEBUG on (Django's 404 page would be HTML)."""
    return JsonResponse(error_body("not_found", _NOT_FOUND), status=status.HTTP_404_NOT_FOUND)
