from __future__ import annotations

from django.urls import path

from matching import api, detections_api

urlpatterns = [
    path("match", api.MatchApi.as_view(), name="api_match"),
    path("match/image", api.MatchImageApi.as_view(), name="api_match_image"),
    path("export", api.ExportApi.as_view(), name="api_export"),
    path("detections", detections_api.DetectionsApi.as_view(), name="api_detections"),
    path(
        "detections/<str:detection_id>",
        detections_api.DetectionApi.as_view(),
        name="api_detection",
    ),
    path(
        "detections/<str:detection_id>/review",
        detections_api.DetectionReviewApi.as_view(),
        name="api_detection_review",
    ),
]
