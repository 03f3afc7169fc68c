"""The base class of every API view that acts for an API key's organisation."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from django.http import HttpRequest
from django_scopes import scope
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from hub.models import ApiKey


class OrgAPIView(APIView):
    """Base for every API view that acts for the key's organisation.

    After authentication, the organisation's scope is opened for the rest of the request, so a
    query on a tenant-owned model outside it fails loudly instead of leaking another tenant's rows.
    """

    required_scope: str | None = None
    # A scalar SQL query (a constant) answered in the same round trip as the API key's lookup;
    # its value is on ``request.auth.lookup_also`` (see hub.services.api_key_authenticate).
    key_lookup_also = ""

    def get_required_scope(self) -> str | None:
        """The key scope this request needs; override to vary it by method."""
        return self.required_scope

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
