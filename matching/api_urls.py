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
    path(
        "detections/<str:detection_id>/holds",
        detections_api.DetectionHoldsApi.as_view(),
        name="api_detection_holds",
    ),
    path(
        "detections/<str:detection_id>/holds/<str:preservation_id>/release",
        detections_api.DetectionHoldReleaseApi.as_view(),
        name="api_detection_hold_release",
    ),
]
