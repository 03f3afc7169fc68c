"""The base class of every API view that acts for an API key's organisation."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from typing import Any

from django.http import HttpRequest
from django_scopes import scope
from rest_framework import parsers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.api_schema import ApiAutoSchema
from hub.errors import ServiceError
from hub.lib.jsonsafe import holds_nul
from hub.models import ApiKey


def _nul_refused() -> ServiceError:
    return ServiceError(
        "nul_character",
        "The request holds a NUL character (U+0000), which no field of this API accepts.",
    )


class _NulRefusingParser(parsers.BaseParser):
    """Another parser, whose result is refused if a string in it holds U+0000.

    In the parser, not before the view: the body is read when the view first asks for it, after
    it has set its own upload handlers (matching.api's image upload must never touch the disk).
    """

    def __init__(self, inner: parsers.BaseParser) -> None:
        self.inner = inner
        self.media_type = inner.media_type

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        parsed = self.inner.parse(stream, media_type, parser_context)
        data = parsed.data if isinstance(parsed, parsers.DataAndFiles) else parsed
        if holds_nul(data):
            raise _nul_refused()
        return parsed


class OrgAPIView(APIView):
    """Base for every API view that acts for the key's organisation.

    After authentication, the organisation's scope is opened for the rest of the request, so a
    query on a tenant-owned model outside it fails loudly instead of leaking another tenant's rows.
    A request with a NUL character anywhere in its path, query or body is then refused with 400
    ``nul_character``: PostgreSQL's text cannot hold one, and wherever one reached a query (a
    list id, a label filter, a note, a content_ref) the request failed with a 500.
    """

    schema = ApiAutoSchema()
    required_scope: str | None = None
    # A scalar SQL query (a constant) answered in the same round trip as the API key's lookup;
    # its value is on ``request.auth.lookup_also`` (see hub.services.api_key_authenticate).
    key_lookup_also = ""

    def get_required_scope(self) -> str | None:
        """The key scope this request needs; override to vary it by method."""
        return self.required_scope

    def get_parsers(self) -> list[parsers.BaseParser]:
        return [_NulRefusingParser(parser) for parser in super().get_parsers()]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Response:
        with ExitStack() as stack:
            self._scope_stack = stack
            return super().dispatch(request, *args, **kwargs)  # type: ignore[return-value]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        key = request.auth
        if isinstance(key, ApiKey):
            self._scope_stack.enter_context(scope(organization=key.organization_id))
            request.organization = key.organization  # type: ignore[attr-defined]
        if holds_nul([kwargs, request.query_params]):  # the body's: _NulRefusingParser
            raise _nul_refused()
