"""The list pages, under ``/o/<org_slug>/lists/`` (included by hub.urls)."""

from __future__ import annotations

from django.urls import path

from lists import views

urlpatterns = [
    path("", views.lists_index, name="lists"),
    # Import jobs come before "<list_id>/…" so that "imports" is never read as a list id.
    path("imports/<str:job_id>/", views.import_job, name="import_job"),
    path("imports/<str:job_id>/progress/", views.import_job_progress, name="import_job_progress"),
    path("imports/<str:job_id>/report.csv", views.import_job_report, name="import_job_report"),
    path("<str:list_id>/", views.list_detail, name="list_detail"),
    path("<str:list_id>/remove/", views.entry_remove, name="list_entry_remove"),
    path("<str:list_id>/settings/", views.list_settings, name="list_settings"),
    path("<str:list_id>/delete/", views.list_delete, name="list_delete"),
    path("<str:list_id>/upload/", views.list_upload, name="list_upload"),
    path("<str:list_id>/image/", views.list_add_image, name="list_add_image"),
    path("<str:list_id>/image/add/", views.list_add_image_hashes, name="list_add_image_hashes"),
    path("<str:list_id>/export.csv", views.list_export, name="list_export"),
]
