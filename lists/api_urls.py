from __future__ import annotations

from django.urls import path

from lists import api

urlpatterns = [
    path("hashtypes", api.HashTypesApi.as_view(), name="api_hashtypes"),
    path("lists", api.ListsApi.as_view(), name="api_lists"),
    path("lists/<str:list_id>", api.ListDetailApi.as_view(), name="api_list"),
    path("lists/<str:list_id>/entries", api.EntriesApi.as_view(), name="api_list_entries"),
    path(
        "lists/<str:list_id>/entries/remove",
        api.EntriesRemoveApi.as_view(),
        name="api_list_entries_remove",
    ),
]
