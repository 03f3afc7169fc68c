"""Staff pages of upstream sources, under ``/staff/sources/`` (included by hub.urls).

A source's entitlements are sharing's page, under ``/staff/sources/<source_id>/entitlements/``
(sharing.source_urls).
"""

from __future__ import annotations

from django.urls import path

from lists.sources import views

urlpatterns = [
    path("", views.sources_index, name="staff_sources"),
    path("<str:source_id>/", views.source_detail, name="staff_source"),
    path("<str:source_id>/run/", views.source_run_now, name="staff_source_run_now"),
    path("<str:source_id>/upload/", views.source_upload, name="staff_source_upload"),
    path("<str:source_id>/runs/<str:run_id>/", views.source_run, name="staff_source_run"),
    path(
        "<str:source_id>/runs/<str:run_id>/progress/",
        views.source_run_progress,
        name="staff_source_run_progress",
    ),
]
