"""The endpoints of API v1 that lists serves: the signal types.

``lists`` and everything under it are sharing.api_urls' (see sharing.api).
"""

from __future__ import annotations

from django.urls import path

from lists import api

urlpatterns = [
    path("hashtypes", api.HashTypesApi.as_view(), name="api_hashtypes"),
]
