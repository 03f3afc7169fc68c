"""How API v1 describes itself in OpenAPI (drf-spectacular): the API-key scheme, the one error
shape every 4xx carries, and the links between operations.

Every operation declares its bodies, every error status it can answer (:func:`error_responses`)
and, where one operation's answer feeds another's request, an OpenAPI link (:func:`links`).
tests/test_api_schema.py holds the API to this document with schemathesis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema_field,
    extend_schema_serializer,
)
from rest_framework import serializers


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "hub.api_auth.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "hh_<prefix>_<secret>",
            "description": "An organisation's API key: `Authorization: Bearer <key>`.",
        }


# --- the error shape --------------------------------------------------------------------------


@extend_schema_serializer(component_name="ErrorBody")
class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Machine-readable, e.g. `not_found`; stable.")
    message = serializers.CharField(help_text="A human sentence saying what to fix.")
    details = serializers.JSONField(
        allow_null=True, help_text="More about the error (its shape depends on the code), or null."
    )


@extend_schema_serializer(component_name="Error")
class ErrorSerializer(serializers.Serializer):
    """``{"error": {"code", "message", "details"}}``: every error answer of the API."""

    error = ErrorBodySerializer()


_STATUS_MEANING = {
    400: "The request is malformed or a value is invalid",
    401: "No API key, or one that is unknown, revoked or expired",
    403: "The key lacks the scope this needs, or the organisation may not do this",
    404: "No such object, or not one the caller may see (the same answer for both)",
    409: "The request conflicts with the current state",
    406: "The request's Accept header takes no JSON, which is all this API answers",
    413: "The body (or the image) is larger than this hub accepts",
    415: "The body is not of a media type this operation reads",
    429: "Too many requests for this key or organisation: wait `Retry-After` seconds",
    503: "The hub cannot do this now; try again later",
}

_ALWAYS = {
    400: ("nul_character",),
    401: ("not_authenticated", "authentication_failed", "key_expired"),
    406: ("not_acceptable",),
    429: ("throttled",),
}
_BODY = {
    400: ("malformed_request",),
    413: ("request_too_large",),
    415: ("unsupported_media_type",),
}


def error_responses(
    codes: Mapping[int, Iterable[str]] | None = None, *, body: bool = False
) -> dict[int, OpenApiResponse]:
    """The error answers of one operation, each with the :class:`ErrorSerializer` body.

    ``codes`` maps a status to the ``error.code`` values the operation answers with it. Added to
    every operation: 400 ``nul_character`` (hub.api_base), 401 (no or bad key), 406 (an Accept
    without JSON) and 429 (throttled); with ``body``, those of reading a request body: 400
    ``malformed_request``, 413 ``request_too_large`` and 415 ``unsupported_media_type``.
    """
    merged: dict[int, list[str]] = {}
    for table in (codes or {}, _ALWAYS, _BODY if body else {}):
        for status, names in table.items():
            merged.setdefault(status, [])
            merged[status] += [name for name in names if name not in merged[status]]
    return {
        status: OpenApiResponse(
            ErrorSerializer,
            description=f"{_STATUS_MEANING[status]}. `error.code`: "
            + ", ".join(f"`{name}`" for name in merged[status])
            + ".",
        )
        for status, _ in sorted(merged.items())
    }


ERROR_HEADERS = [
    OpenApiParameter(
        "WWW-Authenticate",
        str,
        OpenApiParameter.HEADER,
        description="The scheme to authenticate with: `Bearer`.",
        response=[401],
    ),
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        description="Seconds to wait before the next request.",
        response=[429],
    ),
]
"""The response headers of the errors every operation may answer (add to ``parameters``)."""


# --- shared field shapes ----------------------------------------------------------------------


@extend_schema_field({"type": "string", "format": "date-time"})
class IsoDateTimeField(serializers.DateTimeField):
    """A moment as Python's ``isoformat()`` writes it (``+00:00``, not DRF's ``Z``)."""

    def to_representation(self, value: Any) -> str:
        return str(value.isoformat())


def bounded_int(minimum: int, maximum: int, description: str = "") -> dict[str, Any]:
    """The schema of an integer query parameter from ``minimum`` to ``maximum``."""
    schema: dict[str, Any] = {"type": "integer", "minimum": minimum, "maximum": maximum}
    if description:
        schema["description"] = description
    return schema


# --- links --------------------------------------------------------------------------------------

_LINKS = "x-hashhub-links"


def link(operation_id: str, description: str, **parameters: str) -> dict[str, Any]:
    """One OpenAPI link: ``parameters`` maps the target's parameter names to runtime expressions
    (``$response.body#/id``, ``$request.path.list_id``)."""
    return {"operationId": operation_id, "parameters": parameters, "description": description}


def links(by_status: Mapping[int, Mapping[str, dict[str, Any]]]) -> dict[str, Any]:
    """``extend_schema(extensions=links({201: {"GetList": link(...)}}))``: the links of the
    operation's responses by status; :class:`ApiAutoSchema` moves them into the responses."""
    return {_LINKS: {str(status): dict(named) for status, named in by_status.items()}}


class ApiAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, with the links :func:`links` declared put in place."""

    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature
        # A view's docstring is written for the code's readers (and the base class's would show
        # on every operation): an operation's description is only what extend_schema says.
        return ""

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        for status, named in operation.pop(_LINKS, {}).items():
            operation["responses"][status]["links"] = named
        return operation
