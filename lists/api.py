"""API v1 of lists that is not about one organisation's lists: the signal types.

Every ``/api/v1/lists/**`` endpoint is sharing.api's: reading a list needs sharing's answer to
who may read it, and lists may not import sharing (DESIGN.md).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from hub.api_base import OrgAPIView
from lists.hashtypes import all_signal_types


class HashTypesApi(OrgAPIView):
    @extend_schema(
        operation_id="hashtypes_list", summary="The signal types this hub knows", responses=dict
    )
    def get(self, request: Request) -> Response:
        return Response({"types": [t.describe() for t in all_signal_types()]})
