from __future__ import annotations

from django.urls import path

from matching import api

urlpatterns = [
    path("match", api.MatchApi.as_view(), name="api_match"),
    path("match/image", api.MatchImageApi.as_view(), name="api_match_image"),
    path("export", api.ExportApi.as_view(), name="api_export"),
]
