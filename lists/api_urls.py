"""List endpoints of API v1 that only ever concern the caller's own lists.

``lists``, ``lists/<id>`` and ``lists/<id>/entries`` are served by sharing.api_urls, whose views
extend lists.api with the community lists (lists may not import sharing).
"""

from __future__ import annotations

from django.urls import path

from lists import api

urlpatterns = [
    path("hashtypes", api.HashTypesApi.as_view(), name="api_hashtypes"),
    path(
        "lists/<str:list_id>/entries/remove",
        api.EntriesRemoveApi.as_view(),
        name="api_list_entries_remove",
    ),
]
