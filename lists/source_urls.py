"""Staff pages of upstream sources, under ``/staff/sources/`` (included by hub.urls).

A source's entitlements are sharing's page, under ``/staff/sources/<source_id>/entitlements/``
(sharing.source_urls).
"""

from __future__ import annotations

from django.urls import path

from lists import source_views

urlpatterns = [
    path("", source_views.sources_index, name="staff_sources"),
    path("<str:source_id>/", source_views.source_detail, name="staff_source"),
    path("<str:source_id>/run/", source_views.source_run_now, name="staff_source_run_now"),
    path("<str:source_id>/upload/", source_views.source_upload, name="staff_source_upload"),
    path("<str:source_id>/runs/<str:run_id>/", source_views.source_run, name="staff_source_run"),
    path(
        "<str:source_id>/runs/<str:run_id>/progress/",
        source_views.source_run_progress,
        name="staff_source_run_progress",
    ),
]
