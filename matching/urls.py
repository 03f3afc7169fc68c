"""Detection review, the allow list and webhooks, under ``/o/<org_slug>/`` (see hub.urls)."""

from __future__ import annotations

from django.urls import path

from matching import views, webhook_views

urlpatterns = [
    path("detections/", views.detections, name="detections"),
    path("detections/chart/", views.detections_chart, name="detections_chart"),
    # Under review/, not detections/<id>/: an id is never one of these words.
    path("review/bulk/", views.detections_bulk_review, name="detections_bulk_review"),
    path("review/settings/", views.detections_settings, name="detections_settings"),
    path("detections/summary/", views.detections_summary, name="detections_summary"),
    path("detections/<str:detection_id>/", views.detection_detail, name="detection_detail"),
    path("detections/<str:detection_id>/review/", views.detection_review, name="detection_review"),
    path(
        "detections/<str:detection_id>/holds/",
        views.detection_hold_place,
        name="detection_hold_place",
    ),
    path(
        "detections/<str:detection_id>/holds/<str:preservation_id>/release/",
        views.detection_hold_release,
        name="detection_hold_release",
    ),
    path("allow-list/", views.allow_list, name="allow_list"),
    path("allow-list/<str:allowed_id>/remove/", views.allow_list_remove, name="allow_list_remove"),
    path("webhooks/", webhook_views.webhooks, name="webhooks"),
    path("webhooks/<str:endpoint_id>/", webhook_views.webhook_detail, name="webhook_detail"),
    path("webhooks/<str:endpoint_id>/delete/", webhook_views.webhook_delete, name="webhook_delete"),
    path("webhooks/<str:endpoint_id>/test/", webhook_views.webhook_test, name="webhook_test"),
    path("webhooks/<str:endpoint_id>/rotate/", webhook_views.webhook_rotate, name="webhook_rotate"),
]
